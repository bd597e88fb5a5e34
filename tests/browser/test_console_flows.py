"""The console's flows as a new admin meets them, in a real browser: the assistant proposes a name,
shows its preview where the admin looks and tells the truth about each computer; uninstall asks for
the container's options; a container's edit form has every setting; messages after an action come from
the server, never from the address; only possible actions are offered; every page states its zone."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.agentclient import ProtocolClient
from tests.browser.test_console_story import log_in
from tests.live import REGISTRATION_KEY, LiveServer


def checked_in(server: LiveServer, hostname: str, mac: str = "") -> ProtocolClient:
    """A computer that registered, checked in and (with a MAC address) sent its inventory."""
    client = ProtocolClient(server.url, hostname, REGISTRATION_KEY)
    client.hello()  # registers: keys issued
    client.hello()  # checks in with them: seen, online
    if mac:
        network = {"addr": "127.0.0.1", "netmask": "255.0.0.0", "broadcast": "127.255.255.255", "mac": mac}
        client.call("oco.agent.update", {"hostname": hostname, "os": "Linux", "networks": [network]})
    client.close()
    return client


def package(server: LiveServer, family: str, version: str = "1.0") -> str:
    return server.oco(
        "package", "add", "--family", family, "--version", version, "--install", "true", "--uninstall", "true"
    ).stdout.strip()


def new_page(browser: Browser, server: LiveServer) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, server)
    return page


def test_the_assistant_names_the_container_and_tells_the_truth(
    browser: Browser, server: LiveServer, screenshots: Path
) -> None:
    checked_in(server, "truth-online")
    server.oco("computer", "add", "truth-never-seen")
    browser_package = package(server, "Truthful Browser", "120")
    page = new_page(browser, server)

    page.goto(f"{server.url}/jobs/new?package={browser_package}")
    expect(page.locator("input[name=name]")).to_have_value("Truthful Browser 120")
    page.get_by_placeholder("Find computers: hostname, OS, address…").fill("truth-")
    page.get_by_role("button", name="Find").click()
    page.get_by_label("truth-online").check()
    page.get_by_label("truth-never-seen").check()
    page.locator("input[name=wol]").check()
    page.locator("#agent_ip_ranges").fill("10.0.0.0/8")
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview")
    expect(preview).to_be_in_viewport()
    expect(preview.locator(".sentence")).to_have_text(
        "2 jobs to run on 2 computers; 1 offline computer cannot be woken (no MAC address known);"
        " 1 computer will wait: last seen from outside the agent IP ranges."
    )
    expect(preview).to_contain_text("cannot be woken: no MAC address known (never checked in)")
    expect(preview).to_contain_text("will wait: last seen from 127.0.0.1, outside the agent IP ranges")
    expect(preview).not_to_contain_text("will be woken")
    page.screenshot(path=screenshots / "assistant-truthful-preview.png", full_page=True)

    # Checking another package renames the container while the admin has not typed a name.
    page.goto(f"{server.url}/jobs/new")
    page.get_by_label("Truthful Browser 120").check()
    expect(page.locator("input[name=name]")).to_have_value("Truthful Browser 120")
    page.locator("input[name=name]").fill("My own name")
    page.get_by_label("Truthful Browser 120").uncheck()
    expect(page.locator("input[name=name]")).to_have_value("My own name")


def test_already_installed_is_said_once(browser: Browser, server: LiveServer) -> None:
    checked_in(server, "twice-pc")
    installed = package(server, "Twice", "2")
    server.oco("assignment", "add", "--computer", "twice-pc", "--package", installed)
    page = new_page(browser, server)
    page.goto(f"{server.url}/jobs/new?package={installed}")
    page.get_by_placeholder("Find computers: hostname, OS, address…").fill("twice-pc")
    page.get_by_role("button", name="Find").click()
    page.get_by_label("twice-pc").check()
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview .sentence")).to_have_text(
        "0 jobs to run on 1 computer, 1 job skipped (1 already installed)."
    )
    row = page.locator("#preview tbody tr", has_text="Twice 2")
    expect(row).to_contain_text("already installed")
    expect(row).not_to_contain_text("already installed — already installed")


def test_uninstall_asks_for_the_container_options(browser: Browser, server: LiveServer) -> None:
    checked_in(server, "dialog-pc")
    installed = package(server, "Dialog Editor", "3")
    server.oco("assignment", "add", "--computer", "dialog-pc", "--package", installed)
    computer_id = json.loads(server.oco("computer", "list", "--json", "--search", "dialog-pc").stdout)[0][
        "id"
    ]
    page = new_page(browser, server)
    page.goto(f"{server.url}/computers/{computer_id}")
    page.get_by_label("Dialog Editor 3").check()
    page.get_by_role("button", name="Uninstall Package…").click()
    dialog = page.locator("#uninstall-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("input[name=name]").fill("Remove the editor")
    dialog.locator("input[name=priority]").fill("7")
    dialog.locator("input[name=restart_timeout]").fill("-1")
    dialog.locator("select[name=sequence_mode]").select_option(label="Abort after failed job")
    dialog.get_by_role("button", name="Create uninstall jobs").click()
    expect(page.get_by_role("heading", name="Remove the editor")).to_be_visible()
    summary = page.locator("#container")
    expect(summary).to_contain_text("priority 7")
    expect(summary).to_contain_text("abort after failed job")
    expect(summary).to_contain_text("no restart/shutdown")
    expect(page.get_by_role("status")).to_have_text("Created the job container Remove the editor.")

    # Cancel closes the dialog and creates nothing.
    page.goto(f"{server.url}/computers/{computer_id}")
    page.get_by_role("button", name="Uninstall Package…").click()
    page.locator("#uninstall-dialog").get_by_role("button", name="Cancel").click()
    expect(page.locator("#uninstall-dialog")).to_be_hidden()


def test_the_edit_form_has_every_setting(browser: Browser, server: LiveServer) -> None:
    checked_in(server, "edit-pc")
    edited = package(server, "Edited", "1")
    container = server.oco(
        "deploy",
        "--name",
        "To edit",
        "--computer",
        "edit-pc",
        "--package",
        edited,
        "--start",
        "2099-01-01T08:00",
    ).stdout.strip()
    page = new_page(browser, server)
    page.goto(f"{server.url}/jobs/{container}")
    page.get_by_text("Edit job container").click()
    form = page.locator("#edit form")
    form.locator("textarea[name=description]").fill("Rolled out to the lab first")
    form.locator("input[name=restart_timeout]").fill("45")
    form.locator("input[name=wol]").check()
    form.locator("input[name=shutdown_waked]").check()
    expect(form.locator("textarea[name=notes]")).to_have_count(0)
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved the container.")
    summary = page.locator("#container")
    expect(summary).to_contain_text("Rolled out to the lab first")
    expect(summary).to_contain_text("restart timeout 45 min")
    expect(summary).to_contain_text("Wake-on-LAN + shutdown")


def test_messages_come_from_the_server_and_reloads_are_safe(browser: Browser, server: LiveServer) -> None:
    checked_in(server, "flash-pc")
    flashed = package(server, "Flashed", "1")
    container = server.oco(
        "deploy", "--name", "Flash", "--computer", "flash-pc", "--package", flashed
    ).stdout.strip()
    page = new_page(browser, server)

    # Text in the address is never shown as the server's.
    page.goto(f"{server.url}/jobs?notice=Your+password+expired,+call+0900-EVIL")
    expect(page.get_by_text("Your password expired")).to_have_count(0)

    # Nothing failed: no Renew buttons; the action's address, typed, leads to its page.
    page.goto(f"{server.url}/jobs/{container}")
    expect(page.get_by_role("button", name="Renew failed in a new container")).to_have_count(0)
    page.goto(f"{server.url}/jobs/{container}/renew")
    expect(page).to_have_url(f"{server.url}/jobs/{container}")
    expect(page.get_by_role("heading", name="Flash")).to_be_visible()

    # After an action, its message once; a reload shows the page without it.
    page.locator("input[name=job]").first.check()
    page.locator(".toolbar").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_have_text("Deleted 1 job(s).")
    page.reload()
    expect(page.get_by_role("status")).to_have_count(0)

    # A refused action says why on the page it came from, at an address that reloads.
    page.locator(".toolbar").get_by_role("button", name="Move").click()
    expect(page).to_have_url(f"{server.url}/jobs/{container}")
    expect(page.get_by_role("alert")).to_contain_text("job")


def test_small_things_a_newcomer_trips_over(browser: Browser, server: LiveServer) -> None:
    page = new_page(browser, server)
    page.goto(f"{server.url}/packages/new")
    expect(page.locator(".progress.upload")).to_be_hidden()
    for path in ("/", "/jobs", "/computers", "/packages", "/groups", "/audit", "/jobs/new"):
        page.goto(f"{server.url}{path}")
        expect(page.locator("footer.page-zone")).to_contain_text("Times in UTC.")
    icon = httpx.get(f"{server.url}/favicon.ico", follow_redirects=True)
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
