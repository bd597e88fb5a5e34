"""The console under its Content-Security-Policy, in a real browser: every main page loads, its script
runs, and the browser reports no violation (no inline script or style anywhere)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.browser.conftest import PASSWORD
from tests.live import LiveServer

REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  const where = `${event.sourceFile}:${event.lineNumber}`;
  console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI} ${where}`);
});
"""
"""An init script (the browser runs it before the page's own, outside the policy)."""


@pytest.fixture(scope="module")
def objects(server: LiveServer) -> dict[str, int]:
    """A computer, a package with a payload, a deployment and a group, through the admin API."""
    token = server.oco("token", "create", "--name", "csp").stdout.strip()
    with httpx.Client(base_url=f"{server.url}/api/v1", headers={"authorization": f"Bearer {token}"}) as api:
        computer = api.post("/computers", json={"hostname": "csp-pc"}).json()["id"]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("install.sh", "true\n")
        package = api.post(
            "/packages",
            data={"family": "CSP Tool", "version": "1", "install_procedure": "./install.sh"},
            files={"payload": ("payload.zip", buffer.getvalue())},
        ).json()["id"]
        container = api.post(
            "/deployments", json={"name": "csp rollout", "computer_ids": [computer], "package_ids": [package]}
        ).json()["id"]
        group = api.post("/computer-groups", json={"name": "csp group"}).json()["id"]
    return {"computer": computer, "package": package, "container": container, "group": group}


@pytest.fixture
def page(browser: Browser, server: LiveServer) -> Iterator[tuple[Page, list[str]]]:
    context = browser.new_context()
    context.add_init_script(REPORT_VIOLATIONS)
    tab = context.new_page()
    problems: list[str] = []

    def note(message: ConsoleMessage) -> None:
        text = message.text
        if text.startswith("Failed to load resource") and "404" in text and "/99999" in tab.url:
            return  # the page of an id beyond 64 bits is a 404 on purpose
        if message.type == "error" or "Content Security Policy" in text or "CSP violation" in text:
            problems.append(f"{tab.url}: {text}")

    tab.on("console", note)
    tab.on("pageerror", lambda error: problems.append(f"{tab.url}: {error}"))
    tab.goto(f"{server.url}/login")
    tab.get_by_label("User name").fill("admin")
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Log in").click()
    expect(tab.get_by_role("heading", name="Dashboard")).to_be_visible()
    yield tab, problems
    context.close()


PAGES = [
    ("/", "Dashboard"),
    ("/jobs", "Job containers"),
    ("/jobs/new", None),
    ("/jobs/{container}", "csp rollout"),
    ("/computers", None),
    ("/computers/{computer}", "csp-pc"),
    ("/packages", None),
    ("/packages/new", None),
    ("/packages/{package}", "CSP Tool 1"),
    ("/groups", None),
    ("/groups/computer/{group}", "csp group"),
    ("/audit", None),
    ("/api/v1/docs", "OCO Deploy admin API"),
    ("/computers/99999999999999999999", None),
]


def test_the_main_pages_load_under_the_policy_without_a_violation(
    page: tuple[Page, list[str]], server: LiveServer, objects: dict[str, int]
) -> None:
    tab, problems = page
    for path, heading in PAGES:
        response = tab.goto(server.url + path.format(**objects))
        assert response is not None and "content-security-policy" in response.headers
        if heading:
            expect(tab.get_by_role("heading", name=heading).first).to_be_visible()
        tab.wait_for_load_state("load")
    assert problems == []


def test_the_script_runs_under_the_policy(
    page: tuple[Page, list[str]], server: LiveServer, objects: dict[str, int]
) -> None:
    tab, problems = page
    tab.goto(f"{server.url}/computers")
    tab.get_by_label("Select all on this page").check()

    expect(tab.locator("[data-count-for=computer]")).to_have_text("1 selected")  # app.js counted
    tab.goto(f"{server.url}/jobs/{objects['container']}")
    expect(tab.locator("#outcome svg.bar rect.part")).to_have_count(
        1
    )  # the outcome bar, drawn without style=
    assert problems == []
