"""The software inventory in a real browser: computers found by software and version, a computer's
software on its page and, paged and searchable, on a page of its own."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from tests.agentclient import ProtocolClient
from tests.browser.conftest import PASSWORD
from tests.live import REGISTRATION_KEY, LiveServer

DASH = "\N{EN DASH}"


def inventoried(server: LiveServer, hostname: str, firefox: str) -> None:
    agent = ProtocolClient(server.url, hostname, REGISTRATION_KEY)
    agent.hello()
    tools = [
        {"name": f"tool-{n:02d}", "version": f"1.{n}", "description": f"Tool number {n}"} for n in range(30)
    ]
    agent.update(
        software=[{"name": "Mozilla Firefox", "version": firefox, "description": "Web browser"}, *tools],
        screens=[{"name": "DELL U2720Q", "resolution": "3840x2160"}],
    )


def logged_in(browser: Browser, server: LiveServer) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{server.url}/login")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    return page


def test_which_computers_have_firefox_older_than_120_and_what_one_has_installed(
    browser: Browser, server: LiveServer
) -> None:
    inventoried(server, "sw-old", "115.5.0esr")
    inventoried(server, "sw-new", "121.0")
    page = logged_in(browser, server)

    page.goto(f"{server.url}/computers")
    page.get_by_label("Software").fill("firefox")
    page.get_by_label("Version").fill("< 120")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#computers tbody tr")).to_have_count(1)
    expect(page.locator("#computers tbody")).to_contain_text("sw-old")
    assert "software=firefox" in page.url and "software_version=%3C+120" in page.url

    page.get_by_label("Version").fill("<< 120")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("alert")).to_contain_text("version condition '<< 120'")

    page.goto(f"{server.url}/computers?software=firefox&software_version=%3E%3D120")
    page.get_by_role("link", name="sw-new").click()
    software = page.locator("#software")
    expect(software.get_by_role("heading")).to_contain_text("31")
    expect(software.locator("tbody tr")).to_have_count(10)
    expect(page.locator("#inventory-details")).to_contain_text("DELL U2720Q")

    software.get_by_role("link", name="All 31 entries…").click()
    expect(page.locator(".pager .count")).to_have_text(f"1{DASH}31 of 31 entries")
    page.get_by_label("Search").fill("firefox")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#software tbody tr")).to_have_count(1)
    expect(page.locator("#software tbody")).to_contain_text("121.0")

    page.get_by_role("link", name="Clear").click()
    page.get_by_role("columnheader", name="Version").get_by_role("link").click()
    expect(page.locator("#software tbody tr").first).to_contain_text("tool-00")  # 1.0 first: version order
    page.get_by_role("columnheader", name="Version").get_by_role("link").click()
    expect(page.locator("#software tbody tr").first).to_contain_text("121.0")
