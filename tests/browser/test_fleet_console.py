"""The console with a fleet of 10,000 computers, in a real browser: find, filter, select all that match and
deploy to them; a container with failures that lead its page; every page usable at 400 px wide.

Screenshots at 1280 by 800 and 400 by 800 are kept under `test-artifacts/screenshots/`
(or `$OCO_TEST_ARTIFACTS`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import insert, select, update

from oco.db.models import Computer, Job
from oco.domain.states import JobState, ReturnCode
from oco.services import packages
from tests.browser.conftest import PASSWORD
from tests.conftest import make_runtime
from tests.live import LiveServer, start_server

FLEET = 10_000
WIDE, NARROW = {"width": 1280, "height": 800}, {"width": 400, "height": 800}
DASH = "\N{EN DASH}"  # as the pager writes ranges: 1-50
ARTIFACTS = Path(os.environ.get("OCO_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"))


@pytest.fixture(scope="module")
def fleet_server(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[LiveServer]:
    """A server over 10,000 computers: a tenth online, every third one Windows."""
    workdir = tmp_path_factory.mktemp("fleet")
    shutil.copy(sqlite_template, workdir / "oco.sqlite3")
    url = f"sqlite:///{workdir / 'oco.sqlite3'}"
    rt = make_runtime(url, workdir)
    now = datetime.now(UTC)
    with rt.transaction() as session:
        rows = [
            {
                "hostname": f"pc-{i:05d}",
                "hostname_key": f"pc-{i:05d}",
                "os": "Windows 11 Pro" if i % 3 == 0 else "Debian GNU/Linux",
                "os_version": "23H2" if i % 3 == 0 else "12",
                "last_seen": now if i % 10 == 0 else now - timedelta(days=2),
                "agent_version": "1.2.0",
            }
            for i in range(FLEET)
        ]
        session.execute(insert(Computer), rows)
    packages.create_package(rt, packages.PackageSpec("Editor", "2.0", "true", "true"), None, "tests")
    rt.close()
    live = start_server(workdir, url)
    live.oco("user", "add", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    yield live
    live.stop()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    directory = ARTIFACTS / "screenshots" / request.node.name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def logged_in(browser: Browser, server: LiveServer, viewport: dict[str, int]) -> Page:
    page = browser.new_page(viewport=viewport)  # type: ignore[arg-type]
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{server.url}/login")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    return page


def test_find_filter_select_all_that_match_and_deploy(
    browser: Browser, fleet_server: LiveServer, shots: Path
) -> None:
    page = logged_in(browser, fleet_server, WIDE)
    page.get_by_role("link", name="Computers").click()
    expect(page.get_by_role("heading", name="Computers")).to_contain_text("10,000")
    expect(page.locator(".pager .count")).to_have_text(f"1{DASH}50 of 10,000 computers")
    page.screenshot(path=shots / "computers-1280.png")
    page.get_by_label("per page").select_option("200")  # submits by itself
    expect(page.locator(".pager .count")).to_have_text(f"1{DASH}200 of 10,000 computers")
    expect(page.locator("#computers tbody tr")).to_have_count(200)
    assert "size=200" in page.url

    page.get_by_label("Search").fill("pc-0012")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator(".pager .count")).to_have_text(f"1{DASH}10 of 10 computers")
    assert "q=pc-0012" in page.url  # the address keeps the view

    page.goto(f"{fleet_server.url}/computers")
    page.get_by_label("Status").select_option("online")
    page.get_by_label("OS", exact=True).fill("windows")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator(".pager .count")).to_have_text(f"1{DASH}50 of 334 computers")  # every 30th of 10,000
    page.get_by_role("columnheader", name="Hostname").get_by_role("link").click()  # reverse the sort
    expect(page.locator("#computers tbody tr").first).to_contain_text("pc-09990")

    page.get_by_label("Select all on this page").check()
    expect(page.locator(".selected-count")).to_have_text("50 selected")
    page.get_by_label("Select all 334 computers that match").check()
    expect(page.locator(".selected-count")).to_have_text("all that match are selected")
    page.screenshot(path=shots / "computers-selected-1280.png")
    page.get_by_role("button", name="Deploy…").click()

    expect(page.locator("#targets")).to_contain_text("All 334 computers that match")
    page.get_by_label("Editor 2.0").check()
    page.locator("input[name=name]").fill("Editor for online Windows")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview .sentence")).to_have_text("334 jobs to run on 334 computers.")
    page.get_by_role("button", name="Create jobs").click()
    expect(page.get_by_role("heading", name="Editor for online Windows")).to_be_visible()
    expect(page.locator("#outcome")).to_contain_text("334 waiting")
    expect(page.locator(".pager .count")).to_have_text(f"1{DASH}50 of 334 jobs")
    page.screenshot(path=shots / "container-1280.png")


def test_a_container_with_failures_leads_with_them(
    browser: Browser, fleet_server: LiveServer, shots: Path
) -> None:
    container = fleet_server.oco(
        "deploy",
        "--name",
        "Patch day",
        "--computer",
        "pc-00001",
        "--computer",
        "pc-00002",
        "--computer",
        "pc-00003",
        "--computer",
        "pc-00004",
        "--computer",
        "pc-00005",
        "--package",
        "1",
    ).stdout.strip()
    rt = make_runtime(fleet_server.env["OCO_DATABASE_URL"], Path(fleet_server.env["OCO_DEPOT_PATH"]).parent)
    with rt.transaction() as session:
        ids = list(session.scalars(select(Job.id).where(Job.container_id == int(container)).order_by(Job.id)))
        outcomes = [
            (JobState.SUCCEEDED, 0, ""),
            (JobState.FAILED, int(ReturnCode.AGENT_ERROR), "download aborted: connection lost"),
            (JobState.FAILED, 3, "setup: disk full"),
            (JobState.FAILED, int(ReturnCode.ABORTED_AFTER_FAILED_JOB), "Aborted after failed job"),
        ]
        for job_id, (state, code, message) in zip(ids, outcomes, strict=False):
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    state=int(state), return_code=code, message=message, execution_finished=datetime.now(UTC)
                )
            )
    rt.close()
    page = logged_in(browser, fleet_server, WIDE)
    page.goto(f"{fleet_server.url}/jobs/{container}")
    rows = page.locator("#jobs tbody tr[data-job]")
    expect(rows.first).to_contain_text("Failed")
    expect(page.locator("#outcome")).to_contain_text("1 succeeded")
    expect(page.locator("#outcome")).to_contain_text("3 failed")
    expect(page.locator("#jobs")).to_contain_text("-9999 agent error")
    expect(page.locator("#jobs")).to_contain_text("-8888 aborted after failed job")
    expect(page.locator("#jobs")).to_contain_text("exit code 3")
    expect(page.locator("#jobs")).to_contain_text("the computer is offline since")
    expect(page.get_by_text("The procedure ended with code 3, which is not a success code")).to_be_visible()
    page.screenshot(path=shots / "failures-1280.png", full_page=True)

    page.locator("nav.quick-filters").get_by_role("link", name="Failed 3").click()
    expect(rows).to_have_count(3)
    assert "outcome=failed" in page.url

    dashboard = logged_in(browser, fleet_server, WIDE)
    expect(dashboard.locator("#failures")).to_contain_text("-9999 agent error")
    dashboard.screenshot(path=shots / "dashboard-1280.png", full_page=True)


PAGES = [
    "/",
    "/computers",
    "/computers/1",
    "/jobs",
    "/jobs/new",
    "/packages",
    "/packages/1",
    "/groups",
    "/audit",
]


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["1280", "400"])
def test_every_page_fits_the_screen(
    browser: Browser, fleet_server: LiveServer, shots: Path, viewport: dict[str, int]
) -> None:
    """Wide tables scroll inside their card; the page itself never scrolls sideways."""
    page = logged_in(browser, fleet_server, viewport)
    too_wide = {}
    for path in PAGES:
        page.goto(f"{fleet_server.url}{path}")
        overflow = page.evaluate("(e => e.scrollWidth - e.clientWidth)(document.scrollingElement)")
        if overflow > 1:
            too_wide[path] = overflow
        name = path.strip("/").replace("/", "-") or "dashboard"
        page.screenshot(path=shots / f"{name}-{viewport['width']}.png")
    assert not too_wide, f"wider than a {viewport['width']} px screen (px): {too_wide}"


def _fail(server: LiveServer, container: str, count: int) -> None:
    """The first `count` jobs of a container failed with an agent error, as a broken download leaves them."""
    rt = make_runtime(server.env["OCO_DATABASE_URL"], Path(server.env["OCO_DEPOT_PATH"]).parent)
    with rt.transaction() as session:
        ids = list(session.scalars(select(Job.id).where(Job.container_id == int(container)).order_by(Job.id)))
        session.execute(
            update(Job)
            .where(Job.id.in_(ids[:count]))
            .values(
                state=int(JobState.FAILED),
                return_code=int(ReturnCode.AGENT_ERROR),
                message="download aborted",
                execution_finished=datetime.now(UTC),
            )
        )
    rt.close()


def test_selected_jobs_are_renewed_moved_and_deleted(browser: Browser, fleet_server: LiveServer) -> None:
    hosts = [f"pc-0010{i}" for i in range(5)]
    computers = [arg for host in hosts for arg in ("--computer", host)]
    rollout = fleet_server.oco("deploy", "--name", "Lab rollout", *computers, "--package", "1").stdout.strip()
    spare = fleet_server.oco(
        "deploy", "--name", "Spare", "--computer", "pc-00200", "--package", "1"
    ).stdout.strip()
    _fail(fleet_server, rollout, 2)
    page = logged_in(browser, fleet_server, WIDE)
    page.goto(f"{fleet_server.url}/jobs/{rollout}")
    expect(page.locator("#outcome")).to_contain_text("2 failed")

    page.locator("nav.quick-filters").get_by_role("link", name="Failed 2").click()
    page.get_by_label("Select all on this page").check()
    page.get_by_role("button", name="Renew", exact=True).click()
    expect(page.locator("#outcome")).to_contain_text("5 waiting")  # both failed jobs wait to run again
    expect(page.locator("#outcome")).not_to_contain_text("failed")

    page.goto(f"{fleet_server.url}/jobs/{rollout}?q=pc-00104")
    page.locator("#jobs tbody tr[data-job] input[type=checkbox]").first.check()
    page.get_by_label("to container").fill(spare)
    page.get_by_role("button", name="Move").click()
    expect(page.get_by_role("heading", name="Spare")).to_be_visible()  # the container they went to
    expect(page.locator("#jobs")).to_contain_text("pc-00104")
    expect(page.locator(".pager .count")).to_have_text(f"1{DASH}2 of 2 jobs")

    page.goto(f"{fleet_server.url}/jobs/{rollout}")
    expect(page.locator(".pager .count")).to_have_text(f"1{DASH}4 of 4 jobs")
    page.get_by_label("Select all on this page").check()  # all four: no "all that match" to offer
    expect(page.get_by_label("Select all 4 jobs that match")).to_have_count(0)
    page.locator("form.selection").get_by_role("button", name="Delete").click()  # the dialog is accepted
    expect(page.get_by_text("Deleted 4 job(s)")).to_be_visible()
    expect(page.locator("#outcome")).to_contain_text("no jobs")


def test_all_matching_computers_join_a_group_or_are_deleted(
    browser: Browser, fleet_server: LiveServer
) -> None:
    fleet_server.oco("group", "computer", "create", "Night shift")
    for i in range(3):
        fleet_server.oco("computer", "add", f"spare-{i}")
    page = logged_in(browser, fleet_server, WIDE)

    page.goto(f"{fleet_server.url}/computers?q=pc-002")
    expect(page.locator(".pager .count")).to_have_text(f"1{DASH}50 of 100 computers")
    page.get_by_label("Select all on this page").check()
    page.get_by_label("Select all 100 computers that match").check()
    page.get_by_label("to group").select_option(label="Night shift")
    page.get_by_role("button", name="Add to group").click()
    page.goto(f"{fleet_server.url}/groups")
    page.get_by_role("link", name="Night shift").click()
    expect(page.locator(".pager .count")).to_have_text(f"1{DASH}50 of 100 members")

    page.goto(f"{fleet_server.url}/computers?q=spare-")
    expect(page.locator(".pager .count")).to_have_text(f"1{DASH}3 of 3 computers")
    page.get_by_label("Select all on this page").check()
    page.locator("form.selection").get_by_role("button", name="Delete").click()
    expect(page.locator("#computers")).to_contain_text("No computer matches")
    page.goto(f"{fleet_server.url}/computers")
    expect(page.locator(".pager .count")).to_have_text(f"1{DASH}50 of 10,000 computers")


def test_the_dashboard_shows_a_new_failure_without_a_reload(
    browser: Browser, fleet_server: LiveServer
) -> None:
    container = fleet_server.oco(
        "deploy", "--name", "Live failure", "--computer", "pc-00300", "--package", "1"
    ).stdout.strip()
    page = logged_in(browser, fleet_server, WIDE)
    expect(page.locator("#running")).to_contain_text("Live failure")
    expect(page.locator("#failures")).not_to_contain_text("pc-00300")
    _fail(fleet_server, container, 1)
    expect(page.locator("#failures")).to_contain_text("pc-00300", timeout=30_000)  # through the event stream
