"""Users and roles in a real browser against a real server: an administrator adds, disables and removes
users; a read-only user sees no action and is refused what they craft; an operator cannot delete a
package or manage users; a user changes their own password."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import PASSWORD
from tests.live import LiveServer

USER_PASSWORD = "a user's long password"
ACTION_PAGES = ("/", "/jobs", "/computers", "/packages", "/groups", "/audit")


@pytest.fixture(scope="module")
def fleet(server: LiveServer) -> dict[str, int]:
    """A computer and a package to look at, and users of each role (made with the CLI)."""
    token = server.oco("token", "create", "--name", "fleet").stdout.strip()
    headers = {"authorization": f"Bearer {token}"}
    computer = httpx.post(f"{server.url}/api/v1/computers", json={"hostname": "role-pc"}, headers=headers)
    package = httpx.post(
        f"{server.url}/api/v1/packages",
        data={"family": "Viewer", "version": "1.0", "install_procedure": "true"},
        headers=headers,
    )
    assert computer.status_code == 201 and package.status_code == 201, (computer.text, package.text)
    for name, role in (("reader", "read-only"), ("oper", "operator")):
        server.oco("user", "add", name, "--role", role, "--password-stdin", stdin=USER_PASSWORD + "\n")
    return {"computer": computer.json()["id"], "package": package.json()["id"]}


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context()
    yield context
    context.close()


def log_in(context: BrowserContext, server: LiveServer, username: str, password: str) -> Page:
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{server.url}/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    return page


def csrf_of(page: Page) -> str:
    value = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert value
    return value


def token_of(server: LiveServer, username: str) -> dict[str, str]:
    token = server.oco("token", "create", "--name", f"{username}'s", "--user", username).stdout.strip()
    return {"authorization": f"Bearer {token}"}


def test_a_read_only_user_sees_no_action_and_is_refused_what_they_craft(
    context: BrowserContext, server: LiveServer, fleet: dict[str, int], screenshots: Path
) -> None:
    page = log_in(context, server, "reader", USER_PASSWORD)
    expect(page.locator(".topbar .who")).to_contain_text("Read-only")
    expect(page.get_by_role("link", name="Users")).to_have_count(0)
    for path in (*ACTION_PAGES, f"/computers/{fleet['computer']}", f"/packages/{fleet['package']}"):
        page.goto(server.url + path)
        expect(page.locator("main h1")).to_be_visible()
        # No form that changes anything, no button of one, no way into the assistant or a new package.
        expect(page.locator("main form[method=post]")).to_have_count(0)
        expect(page.locator("main a[href^='/jobs/new'], main a[href^='/packages/new']")).to_have_count(0)
        expect(
            page.get_by_role("button", name=re.compile("Delete|Deploy|Wake|Uninstall|Renew|Add"))
        ).to_have_count(0)
        page.screenshot(
            path=screenshots / f"read-only{path.replace('/', '-') or '-home'}.png", full_page=True
        )

    # What the read-only user sends anyway is refused with 403, and nothing changes.
    crafted = page.request.post(
        f"{server.url}/packages/{fleet['package']}/delete", form={"csrf_token": csrf_of(page)}
    )
    assert crafted.status == 403
    assert "you have the read-only role, which may not delete packages" in crafted.text()
    assert page.request.get(f"{server.url}/jobs/new").status == 403
    page.goto(f"{server.url}/packages/{fleet['package']}")
    expect(page.get_by_role("heading", name="Viewer 1.0")).to_be_visible()

    # Their API token reads, and is refused writes with a clear message.
    headers = token_of(server, "reader")
    assert httpx.get(f"{server.url}/api/v1/packages", headers=headers).status_code == 200
    refused = httpx.post(
        f"{server.url}/api/v1/deployments",
        json={"name": "x", "computer_ids": [fleet["computer"]], "package_ids": [fleet["package"]]},
        headers=headers,
    )
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        "not allowed: reader has the read-only role, which may not deploy, uninstall and wake computers"
        " (ask an administrator)"
    )


def test_an_operator_deploys_but_cannot_delete_a_package_or_manage_users(
    context: BrowserContext, server: LiveServer, fleet: dict[str, int]
) -> None:
    page = log_in(context, server, "oper", USER_PASSWORD)
    expect(page.get_by_role("link", name="Users")).to_have_count(0)
    page.goto(f"{server.url}/packages/{fleet['package']}")
    expect(page.get_by_role("link", name="Deploy", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="New version")).to_be_visible()
    expect(page.get_by_role("button", name="Delete version")).to_have_count(0)

    assert (
        page.request.post(
            f"{server.url}/packages/{fleet['package']}/delete", form={"csrf_token": csrf_of(page)}
        ).status
        == 403
    )
    page.goto(f"{server.url}/users")
    expect(page.get_by_text("you have the operator role, which may not manage users")).to_be_visible()
    added = page.request.post(
        f"{server.url}/users",
        form={
            "csrf_token": csrf_of(page),
            "username": "sneaky",
            "role": "administrator",
            "password": "x" * 12,
        },
    )
    assert added.status == 403

    headers = token_of(server, "oper")
    gone = httpx.delete(f"{server.url}/api/v1/packages/{fleet['package']}", headers=headers)
    assert gone.status_code == 403 and "may not delete packages" in gone.json()["detail"]
    sneaky = {"username": "sneaky", "password": "x" * 12, "role": "administrator"}
    assert httpx.post(f"{server.url}/api/v1/users", json=sneaky, headers=headers).status_code == 403
    computer = httpx.post(f"{server.url}/api/v1/computers", json={"hostname": "oper-pc"}, headers=headers)
    assert computer.status_code == 201  # what an operator may do works


def test_a_user_changes_their_own_password(
    context: BrowserContext, server: LiveServer, fleet: dict[str, int]
) -> None:
    server.oco("user", "add", "pat", "--role", "read-only", "--password-stdin", stdin=USER_PASSWORD + "\n")
    page = log_in(context, server, "pat", USER_PASSWORD)
    page.locator(".topbar .who").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    form = page.locator("#password-form")

    form.get_by_label("Current password").fill("not my password")
    form.get_by_label("New password", exact=True).fill("pat's new password")
    form.get_by_label("Repeat the new password").fill("pat's new password")
    form.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("the current password is wrong")).to_be_visible()

    form = page.locator("#password-form")
    form.get_by_label("Current password").fill(USER_PASSWORD)
    form.get_by_label("New password", exact=True).fill("pat's new password")
    form.get_by_label("Repeat the new password").fill("pat's new password")
    form.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Password changed")).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    page.get_by_label("User name").fill("pat")
    page.get_by_label("Password").fill(USER_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("wrong user name or password")).to_be_visible()
    page.get_by_label("User name").fill("pat")
    page.get_by_label("Password").fill("pat's new password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def test_an_administrator_adds_disables_and_removes_a_user(
    browser: Browser, context: BrowserContext, server: LiveServer, fleet: dict[str, int], screenshots: Path
) -> None:
    admin = log_in(context, server, "admin", PASSWORD)
    admin.get_by_role("link", name="Users").click()
    expect(admin.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    form = admin.locator("#user-form")
    form.get_by_label("User name").fill("newbie")
    form.get_by_label("Full name").fill("New Bie")
    form.get_by_label("Role").select_option("operator")
    form.get_by_label("Password", exact=True).fill(USER_PASSWORD)
    form.get_by_label("Repeat the password").fill(USER_PASSWORD)
    form.get_by_role("button", name="Add user").click()
    expect(admin.get_by_text("Added user newbie")).to_be_visible()
    row = admin.locator("#users tr", has_text="newbie")
    expect(row).to_contain_text("Operator")
    admin.screenshot(path=screenshots / "users.png", full_page=True)

    # The new user logs in (their own browser); the administrator disables them: their session ends.
    other = browser.new_context()
    try:
        newbie = log_in(other, server, "newbie", USER_PASSWORD)
        admin.get_by_role("link", name="newbie").click()
        admin.get_by_role("button", name="Disable user").click()
        expect(admin.get_by_text("Disabled: sessions ended, API tokens revoked")).to_be_visible()
        newbie.goto(f"{server.url}/jobs")
        expect(newbie).to_have_url(re.compile(r"/login\?next=/jobs$"))
        newbie.get_by_label("User name").fill("newbie")
        newbie.get_by_label("Password").fill(USER_PASSWORD)
        newbie.get_by_role("button", name="Log in").click()
        expect(newbie.get_by_text("wrong user name or password")).to_be_visible()
    finally:
        other.close()

    # The administrator cannot disable or demote themselves, nor remove the last administrator.
    admin.goto(f"{server.url}/users")
    admin.get_by_role("link", name="admin", exact=True).click()
    expect(admin.get_by_role("button", name="Disable user")).to_have_count(0)
    expect(admin.get_by_role("button", name="Remove user")).to_have_count(0)
    crafted = admin.request.post(admin.url + "/enabled", form={"csrf_token": csrf_of(admin), "enabled": "0"})
    assert crafted.status == 403 and "cannot disable your own account" in crafted.text()

    admin.goto(f"{server.url}/users")
    admin.get_by_role("link", name="newbie").click()
    admin.get_by_role("button", name="Remove user").click()
    expect(admin.get_by_text("User removed")).to_be_visible()
    expect(admin.locator("#users")).not_to_contain_text("newbie")

    # The audit log says who did it, with their role, and filters by user and action.
    admin.goto(f"{server.url}/audit?user=admin&action=user")
    table = admin.locator("#audit")
    expect(table.locator("tbody tr")).to_have_count(3)  # create, disable, remove
    for action in ("user.create", "user.disable", "user.remove"):
        expect(table.locator("tr", has_text=action)).to_contain_text("Administrator")
    admin.get_by_label("Role").select_option("operator")
    admin.get_by_role("button", name="Filter").click()
    expect(table).to_contain_text("No entry matches.")
