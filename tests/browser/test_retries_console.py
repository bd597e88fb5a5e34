"""Retries and a container's plan in the console, in a real browser: a real agent's command that could
not start is waiting for its retry with its failed attempt shown; the edit form then previews and saves
the container's retries, phases plan and windows, and the page shows their effect."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import Browser, expect

from tests.browser.test_console_story import log_in, real_agent
from tests.live import LiveServer


def test_a_retried_job_and_the_edit_form_of_its_plan(
    browser: Browser, server: LiveServer, tmp_path: Path, screenshots: Path
) -> None:
    agent = real_agent(server, tmp_path / "agents", "retry-pc")
    for n in range(3):
        server.oco("computer", "add", f"retry-other-{n}")
    server.oco("package", "add", "--family", "Retried", "--version", "1", "--install", "no-such-installer")
    package_id = next(
        p["id"]
        for p in json.loads(server.oco("package", "list", "--json").stdout)
        if p["family"] == "Retried"
    )
    targets = ["--computer", "retry-pc", *(a for n in range(3) for a in ("--computer", f"retry-other-{n}"))]
    container = server.oco(
        "deploy", "--name", "Retried tool", "--package", str(package_id), *targets,
        "--retries", "2", "--retry-delay", "1h",
    ).stdout.strip()  # fmt: skip
    assert agent.run().returncode == 0  # the shell cannot find the installer: -9999, retried in an hour

    page = browser.new_page()
    log_in(page, server)
    page.goto(f"{server.url}/jobs/{container}")
    expect(page.locator("#retries")).to_have_text("retries 2, 1h apart (-9999 only)")
    expect(page.locator("#jobs")).to_contain_text("retry 1 of 2 at")
    attempts = page.locator("table.attempts")
    expect(attempts).to_contain_text("Attempts (2 retries allowed)")
    expect(attempts.locator("tbody tr").first).to_contain_text("-9999")
    page.screenshot(path=screenshots / "retry-waiting.png", full_page=True)

    page.locator("#edit summary").click()
    page.locator("#edit input[name=phases]").fill("50%,10%")
    page.locator("#edit").get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert").first).to_contain_text("phases must grow")
    page.locator("#edit input[name=phases]").fill("1,all")
    page.locator("#edit").get_by_role("button", name="Preview").click()
    expect(page.locator("#edit-preview")).to_contain_text("nothing is saved yet")
    expect(page.locator("#rollout")).to_contain_text("Phase 1 of 2 open")
    page.locator("#edit input[name=halt_failure_rate]").fill("50")
    page.locator("#edit textarea[name=windows]").fill("daily 00:00-24:00")
    page.locator("#edit input[name=retries]").fill("1")
    page.locator("#edit").get_by_role("button", name="Save").click()
    expect(page.locator("#rollout")).to_contain_text("Phase 1 of 2 open")
    expect(page.locator("#rollout")).to_contain_text("halts above 50 % failed")
    expect(page.locator("#windows")).to_have_text("windows daily 00:00-24:00 (computer time)")
    expect(page.locator("#retries")).to_have_text("retries 1, 1h apart (-9999 only)")
    expect(page.locator("#edit-preview")).to_have_count(0)
    page.screenshot(path=screenshots / "plan-edited.png", full_page=True)
