"""Roles enforced by every entry point, from the one rule (`oco.domain.roles`).

The routes of the admin API and the console are walked: each must declare the permission it needs, so a
route added later without one fails here. Then every write route is tried with a token (or a console
session) of every role: refused with 403 and the rule's message exactly when the rule says so.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.testclient import TestClient

from oco.api import auth as api_auth
from oco.api.admin import create_api
from oco.application import create_app
from oco.domain.roles import WRITES, Permission, Role, can
from oco.services import audit, computers, packages, users
from oco.services.audit import AuditQuery
from oco.services.listing import PageRequest
from oco.services.runtime import Runtime
from oco.web import session as web_session
from oco.web.app import install_console
from tests.conftest import Clock, make_runtime
from tests.support import api_routes

PASSWORD = "a long password"
UNKNOWN = 999
PATH_PARAMETER = re.compile(r"\{(\w+)\}")
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
PUBLIC_CONSOLE = {("GET", "/login"), ("POST", "/login"), ("POST", "/logout"), ("GET", "/favicon.ico")}
"""Console routes open to anyone (logging out needs a session, but no permission)."""


def declared(dependant: Dependant) -> dict[str | None, set[Permission]]:
    """The permissions a route's dependencies declare: {None: {…}} for plain ones, {action: {…}} for
    forms whose `action` field decides."""
    found: dict[str | None, set[Permission]] = {}
    for dependency in dependant.dependencies:
        call = dependency.call
        if isinstance(call, (api_auth.Requires, api_auth.RequiresOrScrapeToken, web_session.Requires)):
            found.setdefault(None, set()).add(call.permission)
        elif isinstance(call, web_session.RequiresForAction):
            for action, permission in call.actions.items():
                found.setdefault(action, set()).add(permission)
        for key, permissions in declared(dependency).items():
            found.setdefault(key, set()).update(permissions)
    return found


def routes(app: FastAPI) -> list[tuple[str, str, dict[str | None, set[Permission]]]]:
    """(method, path, declared permissions) of every route of `app`."""
    return [
        (method, route.path, declared(route.dependant))
        for route in api_routes(app.routes)
        for method in sorted(route.methods)
    ]


API_ROUTES = routes(create_api(cast(Runtime, None)))
_console = FastAPI()
install_console(_console)
CONSOLE_ROUTES = [r for r in routes(_console) if (r[0], r[1]) not in PUBLIC_CONSOLE]
PUBLIC_SERVER = {("GET", "/healthz"), ("GET", "/api/v1/docs")}
"""The server's own routes open to anyone: the load balancer's health check, the API's documentation."""
_CONSOLE_PATHS = {(method, path) for method, path, _ in routes(_console)}


def server_routes(app: FastAPI) -> list[tuple[str, str, dict[str | None, set[Permission]]]]:
    """The routes the server application adds beside the console and the mounted API (`/metrics`)."""
    return [r for r in routes(app) if (r[0], r[1]) not in _CONSOLE_PATHS | PUBLIC_SERVER]


def needed(permissions: dict[str | None, set[Permission]]) -> list[tuple[str | None, Permission]]:
    """(action, the write permission it needs) of a route: one per action of an action form."""
    return [
        (action, permission)
        for action, found in permissions.items()
        for permission in found
        if permission in WRITES
    ]


def write_cases(table: list[tuple[str, str, dict[str | None, set[Permission]]]]) -> list[Any]:
    return [
        pytest.param(method, path, action, permission, role, id=f"{role.text}-{method}-{path}-{action or ''}")
        for method, path, permissions in table
        if method in WRITE_METHODS or needed(permissions)
        for (action, permission), role in itertools.product(needed(permissions), Role)
    ]


# Every route declares what it needs ----------------------------------------------------------------


@pytest.mark.parametrize(("table", "least"), [(API_ROUTES, 30), (CONSOLE_ROUTES, 35)], ids=["api", "console"])
def test_every_route_declares_a_permission_and_every_write_one_that_writes(
    table: list[tuple[str, str, dict[str | None, set[Permission]]]], least: int
) -> None:
    assert len(table) >= least
    for method, path, permissions in table:
        assert permissions, (
            f"{method} {path} declares no permission (oco.api.auth.allow / oco.web.session.may)"
        )
        if method in WRITE_METHODS:
            assert needed(permissions), f"{method} {path} writes but declares only {permissions}"


def test_the_expected_routes_need_what_the_issue_says() -> None:
    api = {(m, p): perms.get(None, set()) for m, p, perms in API_ROUTES}
    assert Permission.DELETE_PACKAGES in api[("DELETE", "/packages/{package_id}")]
    assert Permission.ADD_PACKAGES in api[("POST", "/packages")]
    assert Permission.MANAGE_USERS in api[("POST", "/users")]
    assert Permission.DEPLOY in api[("POST", "/deployments")]
    assert Permission.EDIT_CONTAINERS in api[("POST", "/deployments/{container_id}/renew")]
    console = {(m, p): perms for m, p, perms in CONSOLE_ROUTES}
    assert Permission.DELETE_PACKAGES in console[("POST", "/packages/{package_id}/delete")][None]
    assert Permission.MANAGE_USERS in console[("POST", "/users/{user_id}/delete")][None]
    assert console[("POST", "/computers/actions")]["delete"] == {Permission.EDIT_COMPUTERS}


def test_the_servers_own_routes_declare_a_permission(client: TestClient) -> None:
    app = cast(FastAPI, client.app)
    table = server_routes(app)
    test_every_route_declares_a_permission_and_every_write_one_that_writes(table, 1)
    assert {(m, p): perms.get(None) for m, p, perms in table}[("GET", "/metrics")] == {Permission.VIEW}


# Fixtures: a user of every role, with a token --------------------------------------------------------


@pytest.fixture(scope="module")
def module_rt(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Runtime]:
    from tests.support import copy_sqlite_template

    workdir = tmp_path_factory.mktemp("roles")
    runtime = make_runtime(copy_sqlite_template(sqlite_template, workdir), workdir, Clock())
    for role in Role:
        users.add_user(runtime, role.text, PASSWORD, "tests", role=role)
    computers.add_computer(runtime, "pc1", "tests")
    packages.create_package(runtime, packages.PackageSpec("Tool", "1", "install", "uninstall"), None, "tests")
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def client(module_rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(module_rt, run_housekeeping=False), follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def tokens(module_rt: Runtime) -> dict[Role, str]:
    return {role: users.create_token(module_rt, role.text, "tests", "tests") for role in Role}


def log_in(client: TestClient, username: str) -> tuple[dict[str, str], str]:
    """A console session of `username`: its cookies and CSRF token."""
    client.cookies.clear()
    page = client.get("/login").text
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page)
    assert login_csrf is not None
    answer = client.post(
        "/login", data={"username": username, "password": PASSWORD, "login_csrf": login_csrf.group(1)}
    )
    assert answer.status_code == 303, answer.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text)
    assert csrf is not None
    cookies = dict(client.cookies)
    client.cookies.clear()
    return cookies, csrf.group(1)


@pytest.fixture(scope="module")
def sessions(client: TestClient) -> dict[Role, tuple[dict[str, str], str]]:
    return {role: log_in(client, role.text) for role in Role}


def filled(path: str) -> str:
    return PATH_PARAMETER.sub(lambda m: "package" if m.group(1) == "kind" else str(UNKNOWN), path)


# Every role, every write route ---------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "action", "permission", "role"), write_cases(API_ROUTES))
def test_the_admin_api_refuses_exactly_what_the_role_may_not_do(
    client: TestClient,
    tokens: dict[Role, str],
    method: str,
    path: str,
    action: str | None,
    permission: Permission,
    role: Role,
) -> None:
    response = client.request(
        method, "/api/v1" + filled(path), json={}, headers={"authorization": f"Bearer {tokens[role]}"}
    )
    if can(role, permission):
        assert response.status_code not in (401, 403), response.text
        assert response.status_code < 500, response.text
    else:
        assert response.status_code == 403, response.text
        assert response.json() == {
            "detail": f"not allowed: {role.text} has the {role.text} role, which may not {permission.label}"
            " (ask an administrator)",
            "field": None,
        }


@pytest.mark.parametrize(("method", "path", "action", "permission", "role"), write_cases(CONSOLE_ROUTES))
def test_the_console_refuses_exactly_what_the_role_may_not_do(
    client: TestClient,
    sessions: dict[Role, tuple[dict[str, str], str]],
    method: str,
    path: str,
    action: str | None,
    permission: Permission,
    role: Role,
) -> None:
    cookies, csrf = sessions[role]
    client.cookies.update(cookies)
    try:
        form = {"csrf_token": csrf, **({"action": action} if action else {})}
        response = client.request(method, filled(path), data=form if method == "POST" else None)
    finally:
        client.cookies.clear()
    if can(role, permission):
        assert response.status_code != 403, response.text[:500]
        assert response.status_code < 500, response.text[:500]
    else:
        assert response.status_code == 403, response.text[:500]
        assert f"you have the {role.text} role, which may not" in response.text


def test_a_read_only_token_reads_and_says_who_it_is(client: TestClient, tokens: dict[Role, str]) -> None:
    headers = {"authorization": f"Bearer {tokens[Role.READ_ONLY]}"}
    assert client.get("/api/v1/packages", headers=headers).status_code == 200
    me = client.get("/api/v1/me", headers=headers).json()
    assert me == {
        "username": "read-only",
        "role": "read-only",
        "permissions": ["view", "change-own-password"],
    }
    refused = client.post("/api/v1/computers", json={"hostname": "pc2"}, headers=headers)
    assert refused.status_code == 403
    assert (
        "read-only has the read-only role, which may not add and delete computers" in refused.json()["detail"]
    )


def test_a_role_change_applies_to_the_users_tokens_at_once(
    client: TestClient, module_rt: Runtime, tokens: dict[Role, str]
) -> None:
    users.add_user(module_rt, "carol", PASSWORD, "tests", role=Role.OPERATOR)
    headers = {"authorization": f"Bearer {users.create_token(module_rt, 'carol', 'carol', 'tests')}"}
    assert client.post("/api/v1/computers", json={"hostname": "carol-pc"}, headers=headers).status_code == 201
    users.change_user(module_rt, "carol", users.UserChanges(role=Role.READ_ONLY), "cli:root")
    assert (
        client.post("/api/v1/computers", json={"hostname": "carol-pc2"}, headers=headers).status_code == 403
    )
    entries = audit.search_audit(module_rt, AuditQuery(username="carol"), PageRequest()).items
    assert [(e.action, e.role) for e in entries] == [("computer.create", Role.OPERATOR)]
    users.remove_user(module_rt, "carol", "cli:root")
