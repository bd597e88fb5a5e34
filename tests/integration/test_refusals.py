"""Every entry point refuses unknown ids and bad input the same way (`oco.errors.OUTCOMES`), never with a 500.

The console answers with an error page (status, message, a way back), the admin API with its status and
`{"detail", "field"}`, the agent API with a JSON-RPC error, the CLI with one line and exit status 2.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from oco.application import create_app
from oco.cli import app as cli
from oco.services import computers, packages, users
from oco.services.runtime import Runtime
from oco.web import app as console
from oco.web import groups, inventory, jobs
from tests.agentclient import ProtocolClient
from tests.conftest import Clock, make_runtime

PASSWORD = "a long password"
UNKNOWN = 999
TOO_LARGE = 10**20
PATH_PARAMETER = re.compile(r"\{(\w+)\}")


@pytest.fixture
def rt(sqlite_url: str, tmp_path: Path, clock: Clock) -> Iterator[Runtime]:
    runtime = make_runtime(sqlite_url, tmp_path, clock)
    users.add_user(runtime, "admin", PASSWORD, "tests")
    computers.add_computer(runtime, "pc1", "tests")
    packages.create_package(runtime, packages.PackageSpec("Tool", "1", "install", "uninstall"), None, "tests")
    yield runtime
    runtime.close()


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt, run_housekeeping=False), follow_redirects=False) as test_client:
        yield test_client


def logged_in(client: TestClient) -> str:
    """Log in as the admin; returns the session's CSRF token."""
    page = client.get("/login").text
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page)
    assert login_csrf is not None
    client.post("/login", data={"username": "admin", "password": PASSWORD, "login_csrf": login_csrf.group(1)})
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/jobs").text)
    assert token is not None
    return token.group(1)


def console_routes() -> list[tuple[str, str]]:
    """(method, path) of every console page and form that takes an id in its path."""
    found = []
    for router in (console.router, jobs.router, inventory.router, groups.router):
        for route in router.routes:
            if isinstance(route, APIRoute) and set(PATH_PARAMETER.findall(route.path)) - {"kind"}:
                found.extend((method, route.path) for method in sorted(route.methods))
    return found


def action_for(route: str) -> str:
    """An action the form accepts, so that what is refused is the id."""
    return "remove" if route.endswith("/installed") else "delete"


def with_ids(path: str, value: object) -> str:
    """The route's path with `value` for each id; what else it needs comes along (a kind, a move)."""
    filled = PATH_PARAMETER.sub(lambda m: "package" if m.group(1) == "kind" else str(value), path)
    return filled + "?package=1&steps=1" if filled.endswith("/move") else filled


# The console ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [UNKNOWN, TOO_LARGE, "abc", 0, -1])
def test_the_console_answers_an_unknown_id_with_a_not_found_page(client: TestClient, value: object) -> None:
    token = logged_in(client)
    routes = console_routes()
    assert len(routes) >= 15  # pages and forms of jobs, computers, packages and groups
    for method, route in routes:
        path = with_ids(route, value)
        response = client.request(
            method,
            path,
            data={"csrf_token": token, "action": action_for(route)} if method == "POST" else None,
        )
        assert response.status_code == 404, f"{method} {path}: {response.status_code} {response.text[:300]}"
        if "text/html" in response.headers["content-type"]:
            assert "does not exist" in response.text, f"{method} {path}"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/jobs/999/delete", "job container 999 does not exist"),
        ("/computers/999/delete", "computer 999 does not exist"),
        ("/jobs/999/enabled", "job container 999 does not exist"),
        ("/jobs/1/jobs/999/delete", "job 999 does not exist"),
    ],
)
def test_the_not_found_page_says_what_is_missing_and_leads_back(
    client: TestClient, path: str, message: str
) -> None:
    token = logged_in(client)
    response = client.post(path, data={"csrf_token": token}, headers={"referer": "http://testserver/jobs"})
    assert response.status_code == 404
    assert message in response.text and '<a href="/jobs">Back</a>' in response.text


@pytest.mark.parametrize(
    ("path", "form", "status", "message"),
    [
        ("/computers", {"hostname": "PC1"}, 409, "already exists"),
        ("/computers", {"hostname": "pc 1"}, 400, "is not valid"),
        ("/computers/wake", {"computer": str(UNKNOWN)}, 404, "computer 999 does not exist"),
        ("/assignments/remove", {"assignment": str(UNKNOWN)}, 404, "[999] do not exist"),
        ("/jobs/uninstall", {"assignment": str(UNKNOWN)}, 404, "assignment 999 does not exist"),
        (
            "/jobs/new",
            {"name": "x", "computer": "1", "package": "1", "priority": "a lot"},
            400,
            "whole number",
        ),
        (
            "/jobs/new",
            {"name": "x", "computer": "1", "package": "1", "sequence_mode": "later"},
            400,
            "ignore",
        ),
        (
            "/jobs/new",
            {"name": "x", "computer": "1", "package": "999", "action": "create"},
            404,
            "package 999",
        ),
        (
            "/packages/new",
            {"family": "F", "version": "1", "install_procedure": "x", "install_post_action": "x"},
            400,
            "must be one of none, restart, shutdown, exit",
        ),
        ("/groups/computer", {"name": " "}, 400, "must not be empty"),
    ],
)
def test_the_console_refuses_bad_input_with_its_reason(
    client: TestClient, rt: Runtime, path: str, form: dict[str, str], status: int, message: str
) -> None:
    token = logged_in(client)
    response = client.post(path, data={"csrf_token": token, **form})
    assert response.status_code == status, response.text[:500]
    assert message in response.text.replace("&#39;", "'")
    assert [c.hostname for c in computers.list_computers(rt)] == ["pc1"]  # nothing changed


def test_unknown_pages_and_methods_get_an_error_page(client: TestClient) -> None:
    logged_in(client)
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and "Not found" in missing.text
    reloaded = client.get("/jobs/1/renew", follow_redirects=False)  # a form's address, typed or reloaded
    assert reloaded.status_code == 303 and reloaded.headers["location"] == "/jobs/1"
    assert client.get("/jobs/1/jobs/2/delete", follow_redirects=False).headers["location"] == "/jobs/1"
    assert client.post("/jobs/1").status_code == 405  # a page's address posted to: still refused


def test_a_refused_action_says_why_on_the_page_it_came_from(client: TestClient) -> None:
    token = logged_in(client)
    response = client.post(
        "/jobs/uninstall", data={"csrf_token": token, "back": "/computers"}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/computers"
    page = client.get("/computers")
    assert '<p class="error" role="alert">choose at least one installed package</p>' in page.text
    assert "choose at least one installed package" not in client.get("/computers").text  # shown once
    client.cookies.set("oco_flash", "WyJlcnJvciIsICJmb3JnZWQiXQ.abc")  # ["error", "forged"], not signed
    forged = client.get("/computers")
    assert 'role="alert"' not in forged.text


# The admin API --------------------------------------------------------------------------------------


@pytest.fixture
def api(client: TestClient, rt: Runtime) -> TestClient:
    client.headers["authorization"] = f"Bearer {users.create_token(rt, 'admin', 'tests', 'tests')}"
    return client


def api_routes(api: TestClient) -> list[tuple[str, str]]:
    spec: dict[str, Any] = api.get("/api/v1/openapi.json").json()
    return [
        (method, path)
        for path, operations in spec["paths"].items()
        if PATH_PARAMETER.search(path)
        for method in operations
    ]


def body_for(method: str, path: str) -> dict[str, Any] | None:
    """A body the route would accept for an existing id."""
    if path.startswith("/users/"):
        return {"password": PASSWORD} if path.endswith("/password") else {"full_name": "renamed"}
    if method == "patch":
        return {"name": "renamed"}
    if path.endswith("/renew"):
        return {"new_container": False}
    if path.endswith("/resume"):
        return {"reopen": False}
    if path.endswith(("/halt", "/cancel")):
        return None
    if method in ("post", "put"):
        return {"ids": [1]}
    return None


def test_the_admin_api_answers_an_unknown_id_with_404(api: TestClient) -> None:
    routes = api_routes(api)
    assert len(routes) >= 15
    for method, route in routes:
        path = "/api/v1" + PATH_PARAMETER.sub(str(UNKNOWN), route)
        response = api.request(method, path, json=body_for(method, route))
        assert response.status_code == 404, f"{method} {path}: {response.status_code} {response.text}"
        assert re.search(r"does not exist|do not exist|is not in group", response.json()["detail"])


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("post", "/computers", {"hostname": "pc1"}, 409, "hostname"),
        ("post", "/computers", {"hostname": "pc 1"}, 400, "hostname"),
        (
            "post",
            "/deployments",
            {"name": "x", "computer_ids": [1], "package_ids": [1], "priority": 101},
            422,
            None,
        ),
        (
            "post",
            "/deployments",
            {"name": "x", "computer_ids": [1], "package_ids": [1], "sequence_mode": 1},
            422,
            None,
        ),
        (
            "post",
            "/deployments",
            {"name": "x", "computer_ids": [1], "package_ids": [1], "end": "2000-01-01T00:00Z"},
            400,
            "end",
        ),
        ("post", "/computer-groups", {"name": "Lab", "extra": 1}, 422, None),
    ],
)
def test_the_admin_api_refuses_bad_input(
    api: TestClient, method: str, path: str, body: dict[str, Any], status: int, field: str | None
) -> None:
    response = api.request(method, "/api/v1" + path, json=body)
    assert response.status_code == status, response.text
    if status != 422:
        assert response.json()["field"] == field


def test_the_admin_api_speaks_the_one_vocabulary(api: TestClient) -> None:
    created = api.post(
        "/api/v1/packages",
        data={"family": "F", "version": "1", "install_procedure": "x", "install_post_action": "exit"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["install_post_action"] == "exit"  # as accepted; was returned as "exit_agent"
    refused = api.post(
        "/api/v1/packages",
        data={"family": "F", "version": "2", "install_procedure": "x", "install_post_action": "exit_agent"},
    )
    assert refused.status_code == 422 and "must be one of none, restart, shutdown, exit" in refused.text
    schema = api.get("/api/v1/openapi.json").json()["components"]["schemas"]
    assert schema["PackagePublic"]["properties"]["install_post_action"]["enum"] == [
        "none",
        "restart",
        "shutdown",
        "exit",
    ]
    assert schema["NewDeployment"]["properties"]["priority"]["maximum"] == 100
    assert schema["NewDeployment"]["properties"]["sequence_mode"] == {
        "type": "string",
        "enum": ["ignore", "abort"],
        "title": "Sequence Mode",
        "default": "ignore",
    }


# The agent API --------------------------------------------------------------------------------------


def test_the_agent_api_answers_an_unknown_job_with_a_json_rpc_error(client: TestClient) -> None:
    agent = ProtocolClient("http://testserver", "pc1", "registration-key-for-tests", _client=client)
    agent.hello()
    body = agent.body(
        "oco.agent.update_job_state", {"job-id": UNKNOWN, "state": 3, "return-code": 0, "message": ""}
    )
    response = agent.send(body)
    assert response.status_code == 400
    assert response.json()["error"] == {"code": -32602, "message": "job 999 does not exist"}
    assert (
        agent.send(agent.body("oco.agent.hello", {"networks": "not a list of interfaces"})).status_code == 200
    )


# The CLI --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["computer", "show", "999"], "computer 999 does not exist"),
        (["computer", "show", "nobody"], "computer 'nobody' does not exist"),
        (["computer", "delete", "999"], "computer 999 does not exist"),
        (["computer", "wake", "999"], "computer 999 does not exist"),
        (["package", "show", "999"], "package 999 does not exist"),
        (["package", "delete", "999"], "package 999 does not exist"),
        (["container", "show", "999"], "job container 999 does not exist"),
        (["container", "edit", "999", "--name", "x"], "job container 999 does not exist"),
        (["container", "renew", "999"], "job container 999 does not exist"),
        (["container", "rollout", "999"], "job container 999 does not exist"),
        (["container", "resume", "999"], "job container 999 does not exist"),
        (["container", "cancel", "999"], "job container 999 does not exist"),
        (["container", "delete", "999"], "job container 999 does not exist"),
        (["container", "delete-job", "999"], "job 999 does not exist"),
        (["group", "computer", "show", "999"], "computer group 999 does not exist"),
        (["group", "package", "add", "Nope", "1"], "package group 'Nope' does not exist"),
        (["assignment", "add", "--computer", "pc1", "--package", "999"], "package 999 does not exist"),
        (["assignment", "remove", "--computer", "pc1", "--package", "1"], "Tool 1 is not assigned to pc1"),
        (["uninstall", "--computer", "nobody", "--package", "1"], "computer 'nobody' does not exist"),
        (["token", "revoke", "999"], "API token 999 does not exist"),
        (["user", "passwd", "nobody", "--password-stdin"], "user 'nobody' does not exist"),
        (
            ["deploy", "--name", "x", "--computer", "pc1", "--package", "1", "--restart-timeout", "2000000"],
            "restart_timeout 2000000 must be between",
        ),
    ],
)
def test_the_cli_refuses_with_one_line_and_exit_status_2(rt: Runtime, args: list[str], message: str) -> None:
    env = {"OCO_DATABASE_URL": rt.settings.database_url, "OCO_DEPOT_PATH": str(rt.settings.depot_path)}
    result = CliRunner().invoke(cli, args, env=env, input="a long password\n")
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [f"error: {message}"] or message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_cli_offers_the_vocabulary_as_choices(rt: Runtime) -> None:
    env = {"OCO_DATABASE_URL": rt.settings.database_url, "OCO_DEPOT_PATH": str(rt.settings.depot_path)}
    runner = CliRunner()
    refused = runner.invoke(
        cli,
        [
            "package",
            "add",
            "--family",
            "F",
            "--version",
            "1",
            "--install",
            "x",
            "--install-post-action",
            "exit_agent",
        ],
        env=env,
    )
    assert refused.exit_code == 2
    shown = " ".join(re.sub("[│╭╮╰╯─]", " ", refused.output).split())
    assert "must be one of none, restart, shutdown, exit" in shown
    shown = runner.invoke(cli, ["package", "add", "--help"], env={**env, "COLUMNS": "200"}).output
    assert "[none|restart|shutdown|exit]" in shown
