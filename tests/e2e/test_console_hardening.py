"""The console and the admin API against a real server: security headers, hostile tokens and ids, login
throttling with its fail2ban line, the session cookie behind a TLS-terminating proxy.

Every refusal is a clear 4xx, never a 500, and changes nothing.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from oco.web.headers import CONTENT_SECURITY_POLICY
from tests.live import LiveServer, start_server
from tests.support import wait_until

PASSWORD = "a long password"
HUGE = "99999999999999999999"
FAIL2BAN = re.compile(r"oco-console login failure from (?P<host>\S+):")
"""What docs/security.md's fail2ban filter matches (`<HOST>` standing for the address)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("console-hardening")
    shutil.copy(sqlite_template, workdir / "oco.sqlite3")
    live = start_server(
        workdir,
        f"sqlite:///{workdir / 'oco.sqlite3'}",
        trusted_proxies="127.0.0.1",
        login_lockout_after="3",
        login_lockout_seconds="600",
    )
    live.oco("user", "add", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    live.oco("user", "add", "bob", "--password-stdin", stdin=PASSWORD + "\n")
    yield live
    live.stop()


def login_form(client: httpx.Client) -> str:
    page = client.get("/login")
    found = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def log_in(client: httpx.Client, username: str, password: str, **headers: str) -> httpx.Response:
    token = login_form(client)
    return client.post(
        "/login",
        data={"username": username, "password": password, "login_csrf": token},
        headers=headers,
    )


@pytest.fixture
def console(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as client:
        assert log_in(client, "admin", PASSWORD, **{"x-forwarded-for": "192.0.2.200"}).status_code == 303
        yield client


@pytest.fixture(scope="module")
def api(server: LiveServer) -> Iterator[httpx.Client]:
    token = server.oco("token", "create", "--name", "tests").stdout.strip()
    with httpx.Client(
        base_url=f"{server.url}/api/v1", headers={"authorization": f"Bearer {token}"}
    ) as client:
        yield client


def csrf_of(client: httpx.Client) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/computers").text)
    assert found
    return found.group(1)


# Security headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/login", "/computers", "/static/app.js", "/api/v1/docs", "/nowhere"])
def test_pages_carry_the_security_headers(console: httpx.Client, path: str) -> None:
    response = console.get(path)

    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert (
        "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
        and "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    )
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"


def test_the_api_docs_page_has_no_inline_script_or_style(server: LiveServer) -> None:
    page = httpx.get(f"{server.url}/api/v1/docs").text
    assert "<script" not in page and "<style" not in page and "style=" not in page
    assert "/static/style.css" in page and httpx.get(f"{server.url}/static/style.css").status_code == 200


# Hostile tokens and ids ---------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["é", "\u202e", "x" * 5000, "токен"])
def test_a_non_ascii_or_odd_csrf_token_is_a_403(console: httpx.Client, token: str) -> None:
    response = console.post("/computers", data={"csrf_token": token, "hostname": "pc-csrf"})

    assert response.status_code == 403 and "security token" in response.text
    assert "pc-csrf" not in console.get("/computers").text


def test_a_non_ascii_login_token_is_a_403(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        login_form(client)
        response = client.post("/login", data={"username": "admin", "password": PASSWORD, "login_csrf": "é"})
        assert response.status_code == 403
        client.cookies.set("oco_login_csrf", "%C3%A9")
        response = client.post("/login", data={"username": "admin", "password": PASSWORD, "login_csrf": "é"})
        assert response.status_code == 403


CONSOLE_PAGES = [
    f"/computers/{HUGE}",
    f"/jobs/{HUGE}",
    f"/jobs/{HUGE}/state",
    f"/jobs/{HUGE}/jobs/{HUGE}/output",
    f"/jobs/1/jobs/{HUGE}/output",
    f"/packages/{HUGE}",
    f"/groups/computer/{HUGE}",
    f"/computers/{-1}",
    "/computers/0x10",
]
CONSOLE_FORMS = [
    f"/computers/{HUGE}/delete",
    f"/packages/{HUGE}/delete",
    f"/packages/{HUGE}/installed",
    f"/jobs/{HUGE}/delete",
    f"/jobs/{HUGE}/enabled",
    f"/jobs/{HUGE}/renew",
    f"/jobs/{HUGE}/edit",
    f"/jobs/{HUGE}/jobs/actions",
    f"/jobs/{HUGE}/jobs/{HUGE}/delete",
    f"/groups/computer/{HUGE}/members",
    f"/groups/package/{HUGE}/members",
    f"/groups/package/{HUGE}/delete",
    f"/groups/package/{HUGE}/move?package={HUGE}&steps=1",
]


@pytest.mark.parametrize("path", CONSOLE_PAGES)
def test_a_console_page_of_an_id_beyond_64_bits_does_not_exist(console: httpx.Client, path: str) -> None:
    response = console.get(path)
    assert response.status_code == 404, response.text
    assert "does not exist" in response.text


@pytest.mark.parametrize("path", CONSOLE_FORMS)
def test_a_console_form_for_an_id_beyond_64_bits_is_refused(console: httpx.Client, path: str) -> None:
    response = console.post(path, data={"csrf_token": csrf_of(console), "ids": HUGE, "computer": HUGE})
    assert response.status_code in (400, 404), response.text


API_PATHS = [
    ("GET", f"/computers/{HUGE}"),
    ("DELETE", f"/computers/{HUGE}"),
    ("GET", f"/packages/{HUGE}"),
    ("DELETE", f"/packages/{HUGE}"),
    ("GET", f"/deployments/{HUGE}"),
    ("GET", f"/deployments/{HUGE}/jobs"),
    ("POST", f"/deployments/{HUGE}/renew"),
    ("DELETE", f"/deployments/{HUGE}"),
    ("DELETE", f"/jobs/{HUGE}"),
    ("DELETE", f"/assignments/{HUGE}"),
    ("DELETE", f"/computer-groups/{HUGE}"),
    ("DELETE", f"/computer-groups/1/members/{HUGE}"),
    ("DELETE", f"/package-groups/{HUGE}"),
    ("DELETE", f"/package-groups/1/members/{HUGE}"),
]


@pytest.mark.parametrize(("method", "path"), API_PATHS)
def test_an_api_object_of_an_id_beyond_64_bits_does_not_exist(
    api: httpx.Client, method: str, path: str
) -> None:
    response = api.request(method, path)
    assert response.status_code == 404, response.text
    assert "does not exist" in response.json()["detail"]


def test_an_api_body_id_beyond_64_bits_is_a_clear_422(api: httpx.Client) -> None:
    response = api.post("/assignments", json={"computer_id": int(HUGE), "package_id": 1})
    assert response.status_code == 422


# Login throttling ---------------------------------------------------------------------------------


def test_repeated_failures_lock_the_account_with_a_line_for_fail2ban(
    server: LiveServer, api: httpx.Client
) -> None:
    with httpx.Client(base_url=server.url) as client:
        for attempt in range(3):
            wrong = log_in(client, "bob", "wrong", **{"x-forwarded-for": f"198.51.100.{attempt + 1}"})
            assert wrong.status_code == 401 and "wrong user name or password" in wrong.text

        locked = log_in(client, "bob", PASSWORD, **{"x-forwarded-for": "198.51.100.99"})

    assert locked.status_code == 429 and "too many failed logins" in locked.text
    assert 0 < int(locked.headers["retry-after"]) <= 600
    hosts = wait_until(lambda: [m["host"] for m in FAIL2BAN.finditer(server.log.read_text())][-4:])
    # The address is the client's as the trusted proxy forwards it, not the proxy's.
    assert hosts == ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.99"]


def test_a_name_in_the_log_line_cannot_forge_another_line(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        log_in(client, "eve\noco-console login failure from 203.0.113.66: x", "wrong")
    lines = wait_until(lambda: [line for line in server.log.read_text().splitlines() if "eve" in line])
    assert len(lines) == 1  # the newline is escaped
    first = FAIL2BAN.search(lines[0])  # fail2ban searches a line as re.search does: the first match
    assert first and first["host"] == "127.0.0.1"


# The session cookie behind a TLS-terminating proxy -------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "secure"),
    [
        ({"x-forwarded-proto": "https"}, True),
        ({"x-forwarded-proto": "http"}, False),
        ({}, False),
    ],
)
def test_the_session_cookie_is_secure_when_a_trusted_proxy_says_https(
    server: LiveServer, headers: dict[str, str], secure: bool
) -> None:
    with httpx.Client(base_url=server.url) as client:
        response = log_in(client, "admin", PASSWORD, **headers)
    cookie = next(
        value
        for name, value in response.headers.multi_items()
        if name == "set-cookie" and "oco_session" in value
    )
    assert ("secure" in cookie.lower().split("; ")) is secure


def test_an_untrusted_peer_cannot_claim_https(tmp_path: Path, sqlite_template: Path) -> None:
    shutil.copy(sqlite_template, tmp_path / "oco.sqlite3")
    untrusting = start_server(tmp_path, f"sqlite:///{tmp_path / 'oco.sqlite3'}", trusted_proxies="192.0.2.1")
    try:
        untrusting.oco("user", "add", "admin", "--password-stdin", stdin=PASSWORD + "\n")
        with httpx.Client(base_url=untrusting.url) as client:
            response = log_in(client, "admin", PASSWORD, **{"x-forwarded-proto": "https"})
        assert response.status_code == 303
        assert "secure" not in response.headers["set-cookie"].lower().split("; ")
    finally:
        untrusting.stop()
