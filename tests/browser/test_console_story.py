"""The console as an admin uses it, in a real browser: log in, create a package with an uploaded
payload, run the Deployment Assistant with its preview, watch a real agent finish the job, uninstall
from the computer page and remove an assignment. Each page is saved as a screenshot."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import PASSWORD
from tests.e2e.test_agent_e2e import RealAgent
from tests.live import REGISTRATION_KEY, LiveServer
from tests.support import write_zip


def real_agent(server: LiveServer, root: Path, hostname: str) -> RealAgent:
    from oco.agent.config import AgentConfig, save_config

    base = root / hostname
    (base / "markers").mkdir(parents=True)
    config = AgentConfig(
        server_url=server.url,
        registration_key=REGISTRATION_KEY,
        hostname=hostname,
        state_dir=str(base / "state"),
        power_backend="record",
    )
    save_config(base / "agent.toml", config)
    agent = RealAgent(hostname, base / "agent.toml", base / "state", base / "markers")
    assert agent.run().returncode == 0
    return agent


def log_in(page: Page, server: LiveServer) -> None:
    page.goto(f"{server.url}/jobs")
    expect(page).to_have_url(f"{server.url}/login?next=/jobs")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Job containers")).to_be_visible()
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def test_the_admin_story(browser: Browser, server: LiveServer, tmp_path: Path, screenshots: Path) -> None:
    agent = real_agent(server, tmp_path / "agents", "browser-pc")
    page = browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, server)
    page.screenshot(path=screenshots / "01-jobs.png", full_page=True)

    # Create a package with an uploaded payload.
    payload = write_zip(
        tmp_path / "payload.zip",
        {
            "install.sh": 'echo "installed by the browser story"; touch "$MARKERS/editor"\n',
            "uninstall.sh": 'rm -f "$MARKERS/editor"\n',
        },
    )
    page.get_by_role("link", name="Packages").click()
    page.get_by_role("link", name="New package").click()
    form = page.locator("#package-form")
    form.locator("input[name=family]").fill("Editor")
    form.locator("input[name=version]").fill("1.0")
    form.locator("input[name=install_procedure]").fill("sh install.sh")
    form.locator("input[name=uninstall_procedure]").fill("sh uninstall.sh")
    form.locator("input[name=payload]").set_input_files(str(payload))
    page.screenshot(path=screenshots / "02-new-package.png", full_page=True)
    page.get_by_role("button", name="Create package").click()
    expect(page.get_by_role("heading", name="Editor 1.0")).to_be_visible()
    page.screenshot(path=screenshots / "03-package.png", full_page=True)
    expect(page.get_by_text(f"{payload.stat().st_size:,} bytes")).to_be_visible()

    # The Deployment Assistant, opened from the package page, with a preview first.
    page.get_by_role("link", name="Deploy", exact=True).click()
    page.screenshot(path=screenshots / "03b-assistant.png", full_page=True)
    page.get_by_placeholder("Find computers: hostname, OS, address…").fill("browser")
    page.get_by_role("button", name="Find").click()
    page.get_by_label("browser-pc").check()
    expect(page.locator("#targets .selected-count")).to_have_text("1 selected")
    page.locator("input[name=name]").fill("Editor rollout")
    page.locator("#agent_ip_ranges").fill("10.0.0.0/40")
    expect(page.locator("#agent_ip_ranges-error")).to_contain_text("prefix length must be 0..32")
    page.locator("#agent_ip_ranges").fill("127.0.0.0/8")
    expect(page.locator("#agent_ip_ranges-error")).to_be_hidden()
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview .sentence")).to_have_text("1 job to run on 1 computer.")
    page.screenshot(path=screenshots / "04-assistant-preview.png", full_page=True)
    page.get_by_role("button", name="Create jobs").click()
    expect(page.get_by_role("heading", name="Editor rollout")).to_be_visible()
    expect(page.locator("#jobs")).to_contain_text("Waiting")

    # A real agent runs the job; the page updates itself.
    assert agent.run().returncode == 0
    expect(page.locator("#status")).to_have_text("Succeeded", timeout=15_000)
    expect(page.locator("#jobs")).to_contain_text("Succeeded")
    expect(page.locator("#outcome")).to_contain_text("1 succeeded")
    page.get_by_text("Output").first.click()
    expect(page.locator("pre.output").first).to_contain_text("installed by the browser story")
    page.screenshot(path=screenshots / "05-container.png", full_page=True)

    # Uninstall from the computer page.
    page.get_by_role("link", name="browser-pc").first.click()
    expect(page.get_by_role("heading", name="Installed Packages")).to_be_visible()
    page.screenshot(path=screenshots / "06-computer.png", full_page=True)
    page.get_by_label("Editor 1.0").check()
    page.get_by_role("button", name="Uninstall Package…").click()
    page.locator("#uninstall-dialog").get_by_role("button", name="Create uninstall jobs").click()
    expect(page.get_by_role("heading", name="Uninstall Editor")).to_be_visible()
    assert agent.run().returncode == 0
    expect(page.locator("#status")).to_have_text("Succeeded", timeout=15_000)
    page.screenshot(path=screenshots / "07-uninstall.png", full_page=True)

    # Remove an assignment that an unlisted uninstall code would leave behind.
    server.oco("assignment", "add", "--computer", "browser-pc", "--package", "1")
    page.goto(f"{server.url}/computers")
    page.screenshot(path=screenshots / "08-computers.png", full_page=True)
    page.get_by_role("link", name="browser-pc").click()
    page.get_by_label("Editor 1.0").check()
    page.get_by_role("button", name="Remove Assignment").click()
    expect(page.get_by_text("No packages installed.")).to_be_visible()
    page.screenshot(path=screenshots / "09-assignment-removed.png", full_page=True)

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert len(list(screenshots.glob("*.png"))) == 10


def test_the_jobs_list_follows_progress_live(browser: Browser, server: LiveServer, tmp_path: Path) -> None:
    agent = real_agent(server, tmp_path / "agents", "live-pc")
    package = server.oco(
        "package", "add", "--family", "Live", "--version", "1", "--install", "true"
    ).stdout.strip()
    server.oco("deploy", "--name", "Live rollout", "--computer", "live-pc", "--package", package)
    page = browser.new_page()
    log_in(page, server)
    page.get_by_role("link", name="Jobs", exact=True).click()
    row = page.locator("#containers tr", has_text="Live rollout")
    expect(row).to_contain_text("1 waiting")

    assert agent.run().returncode == 0

    expect(row).to_contain_text("1 succeeded", timeout=15_000)
    page.screenshot(path=tmp_path / "jobs-live.png", full_page=True)

    page.get_by_role("link", name="Groups").click()
    page.get_by_label("New computer group").fill("Live lab")
    page.get_by_role("button", name="Create").first.click()
    page.get_by_role("link", name="Live lab").click()
    page.get_by_label("Find").fill("live")
    page.get_by_role("button", name="Find").click()
    page.get_by_label("live-pc").check()
    page.get_by_role("button", name="Add checked").click()
    expect(page.locator("#members")).to_contain_text("live-pc")
    expect(page.get_by_role("heading", name="Live lab")).to_contain_text("1 computers")
    page.screenshot(path=tmp_path / "groups.png", full_page=True)
