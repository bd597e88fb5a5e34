"""Safe rollouts in the console, in a real browser: the Deployment Assistant's rollout options with the
phases in its preview, and a rollout a real agent's failure halted — shown in red with the numbers that
caused it — resumed from its page."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import Browser, expect

from tests.browser.test_console_story import log_in, real_agent
from tests.live import LiveServer


def test_assistant_previews_the_phases_and_creates_the_rollout(
    browser: Browser, server: LiveServer, screenshots: Path
) -> None:
    for n in range(5):
        server.oco("computer", "add", f"phased-{n}")
    server.oco("package", "add", "--family", "Phased", "--version", "1", "--install", "true")
    page = browser.new_page()
    log_in(page, server)
    page.goto(f"{server.url}/jobs/new")
    page.get_by_placeholder("Find computers: hostname, OS, address…").fill("phased")
    page.get_by_role("button", name="Find").click()
    for n in range(5):
        page.get_by_label(f"phased-{n}").check()
    page.get_by_label("Phased 1").check()
    page.locator("input[name=name]").fill("Staged update")
    page.locator("input[name=phases]").fill("1,3,all")
    page.locator("input[name=halt_failure_rate]").fill("10")
    page.locator("input[name=phase_soak]").fill("soon")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("alert").first).to_contain_text("duration 'soon' must be like 90s, 30m, 2h or 1d")
    page.locator("input[name=phase_soak]").fill("30m")
    page.locator("textarea[name=windows]").fill("Someday 10:00-11:00")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("alert").first).to_contain_text("'someday' is not a day")
    page.locator("textarea[name=windows]").fill("daily 00:00-24:00")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-windows")).to_contain_text(
        "daily 00:00-24:00 (computer time); 5 computer(s) report no time zone "
        "and read them in server time (UTC)"
    )
    phases = page.locator("#preview-phases li")
    expect(phases).to_have_count(3)
    expect(phases.nth(0)).to_contain_text("phase 1: 1 computer(s)")
    expect(phases.nth(1)).to_contain_text("phase 2: 2 computer(s)")
    expect(phases.nth(2)).to_contain_text("phase 3: 2 computer(s)")
    expect(page.locator("input[name=phases]")).to_have_value("1,3,all")  # kept across the preview
    page.screenshot(path=screenshots / "rollout-preview.png", full_page=True)
    page.get_by_role("button", name="Create jobs").click()
    expect(page.get_by_role("heading", name="Staged update")).to_be_visible()
    rollout = page.locator("#rollout")
    expect(rollout).to_contain_text("Phase 1 of 3 open")
    expect(rollout).to_contain_text("30m soak")
    expect(rollout).to_contain_text("halts above 10 % failed")
    expect(page.locator("#windows")).to_have_text("windows daily 00:00-24:00 (computer time)")
    expect(page.locator("#jobs")).to_contain_text("waiting for phase 2 of the rollout to open")
    page.screenshot(path=screenshots / "rollout-created.png", full_page=True)


def test_a_halted_rollout_shows_in_red_with_its_numbers_and_resumes(
    browser: Browser, server: LiveServer, tmp_path: Path, screenshots: Path
) -> None:
    agent = real_agent(server, tmp_path / "agents", "halting-pc")
    server.oco("computer", "add", "waiting-pc")
    server.oco("group", "computer", "create", "Halt pilots")
    server.oco("group", "computer", "add", "Halt pilots", "halting-pc")
    server.oco("package", "add", "--family", "Broken", "--version", "1", "--install", "exit 3")
    package_id = next(
        p["id"] for p in json.loads(server.oco("package", "list", "--json").stdout) if p["family"] == "Broken"
    )
    container = server.oco(
        "deploy",
        "--name",
        "Broken rollout",
        "--computer",
        "halting-pc",
        "--computer",
        "waiting-pc",
        "--package",
        str(package_id),
        "--pilot-group",
        "Halt pilots",
        "--halt-failure-rate",
        "0",
    ).stdout.strip()
    assert agent.run().returncode == 0  # the pilot fails: the report halts the rollout

    page = browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, server)
    page.goto(f"{server.url}/jobs/{container}")
    expect(page.locator("h1 .badge.halted")).to_have_text("halted")
    reason = page.locator("#rollout .halt-reason")
    expect(reason).to_contain_text("pilot: 1 of 1 finished jobs failed (100 %, more than 0 %)")
    expect(reason).to_contain_text("Nothing more is handed out.")
    expect(page.locator("#rollout h2")).to_contain_text("pilot group Halt pilots, then the rest")
    red = page.evaluate("getComputedStyle(document.querySelector('#rollout .halt-reason')).color")
    assert red == page.evaluate(
        "getComputedStyle(document.querySelector('.state-failed, .badge.halted')).color"
    )
    expect(page.locator("#rollout tr.phase-halted")).to_contain_text("pilot")
    expect(page.locator("#jobs")).to_contain_text("the rollout is halted")
    page.screenshot(path=screenshots / "rollout-halted.png", full_page=True)
    page.goto(f"{server.url}/jobs")
    expect(page.get_by_role("row", name="Broken rollout").locator(".badge.halted")).to_have_text("halted")
    page.goto(f"{server.url}/jobs/{container}")

    page.get_by_label("run the halted phase's failed jobs again").check()
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("h1 .badge.halted")).to_have_count(0)
    expect(page.locator("#rollout")).to_contain_text("Phase 1 of 2 open")
    expect(page.locator("#rollout")).to_contain_text("Halt")
    page.get_by_role("button", name="Cancel rollout").click()
    expect(page.locator("#rollout")).to_contain_text("Canceled")
    expect(page.locator("#rollout")).to_contain_text("by web:admin: its waiting jobs expired")
    page.screenshot(path=screenshots / "rollout-canceled.png", full_page=True)


def test_assistant_caps_downloads_with_the_preview_saying_so_and_the_limit_is_edited(
    browser: Browser, server: LiveServer, screenshots: Path, tmp_path: Path
) -> None:
    for n in range(5):
        server.oco("computer", "add", f"capped-{n}")
    payload = tmp_path / "setup.sh"
    payload.write_text("echo installed\n")
    server.oco(
        "package", "add", "--family", "Capped", "--version", "1", "--install", "sh setup.sh",
        "--payload", str(payload),
    )  # fmt: skip
    page = browser.new_page()
    log_in(page, server)
    page.goto(f"{server.url}/jobs/new")
    page.get_by_placeholder("Find computers: hostname, OS, address…").fill("capped")
    page.get_by_role("button", name="Find").click()
    for n in range(5):
        page.get_by_label(f"capped-{n}").check()
    page.get_by_label("Capped 1").check()
    page.locator("input[name=name]").fill("Capped update")
    page.locator("input[name=max_downloads]").fill("2000000")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("alert").first).to_contain_text("maximum downloads must be 0 (no limit) to")
    page.locator("input[name=max_downloads]").fill("2")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-downloads")).to_have_text(
        "Download slots: At most 2 of the 5 computers with a payload to download fetch it at once "
        "(this deployment's limit); the others wait for a download slot and get their jobs at a later "
        "check-in."
    )
    expect(page.locator("input[name=max_downloads]")).to_have_value("2")  # kept across the preview
    page.screenshot(path=screenshots / "downloads-preview.png", full_page=True)
    page.get_by_role("button", name="Create jobs").click()
    expect(page.get_by_role("heading", name="Capped update")).to_be_visible()
    expect(page.locator("#max-downloads")).to_have_text("at most 2 download(s) at once")
    page.locator("#edit summary").click()
    page.locator("#edit input[name=max_downloads]").fill("4")
    page.locator("#edit").get_by_role("button", name="Save").click()
    expect(page.locator("#max-downloads")).to_have_text("at most 4 download(s) at once")
    page.locator("#edit summary").click()
    page.locator("#edit input[name=max_downloads]").fill("")
    page.locator("#edit").get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved the container.")).to_be_visible()
    expect(page.locator("#max-downloads")).to_have_count(0)
    shown = json.loads(server.oco("container", "list", "--json").stdout)
    assert [c["max_downloads"] for c in shown if c["name"] == "Capped update"] == [None]
