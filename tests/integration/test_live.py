"""Live pages over Server-Sent Events: after the first picture, only what changed travels."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from oco.application import create_app
from oco.domain.states import AgentJobState
from oco.services import containers, users
from oco.services.runtime import Runtime
from oco.web import live
from tests.conftest import Clock, make_runtime
from tests.integration.test_deployments import add_computers, add_package, deploy, report

PASSWORD = "a long password"


@pytest.fixture
def console(
    sqlite_url: str, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, Runtime]]:
    monkeypatch.setattr(live, "INTERVAL_S", 0.05)
    rt = make_runtime(sqlite_url, tmp_path, clock)
    users.add_user(rt, "admin", PASSWORD, "tests")
    with TestClient(create_app(rt, run_housekeeping=False), follow_redirects=False) as client:
        token = re.search(r'name="login_csrf" value="([^"]+)"', client.get("/login").text)
        assert token is not None
        client.post("/login", data={"username": "admin", "password": PASSWORD, "login_csrf": token.group(1)})
        yield client, rt
    rt.close()


def events(lines: Iterator[str]) -> Iterator[tuple[str, dict | str]]:  # type: ignore[type-arg]
    """The (event, data) pairs of a stream, as they come."""
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, json.loads(line.removeprefix("data: "))


def test_a_container_page_gets_only_the_jobs_that_changed(console: tuple[TestClient, Runtime]) -> None:
    client, rt = console
    pcs = add_computers(rt, "pc1", "pc2", "pc3")
    container = deploy(rt, pcs, [add_package(rt)])
    first_job = containers.container_detail(rt, container).jobs[0]

    with client.stream("GET", f"/jobs/{container}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = events(response.iter_lines())
        picture = [next(stream) for _ in range(4)]
        assert [name for name, _ in picture] == ["container", "job", "job", "job"]

        report(rt, first_job.computer_id, first_job.id, AgentJobState.FINISHED, 0)

        changed = [next(stream) for _ in range(2)]
    assert {name for name, _ in changed} == {"container", "job"}
    job = next(data for name, data in changed if name == "job")
    container_data = next(data for name, data in changed if name == "container")
    assert isinstance(job, dict) and isinstance(container_data, dict)
    assert (job["id"], job["state_label"], job["final"]) == (first_job.id, "Succeeded", True)
    assert container_data["outcomes"]["succeeded"] == 1


def test_a_stream_for_a_container_deleted_meanwhile_says_so(console: tuple[TestClient, Runtime]) -> None:
    client, rt = console
    container = deploy(rt, add_computers(rt, "pc1"), [add_package(rt)])
    with client.stream("GET", f"/jobs/{container}/events") as response:
        stream = events(response.iter_lines())
        assert [next(stream)[0] for _ in range(2)] == ["container", "job"]
        containers.delete_container(rt, container, "tests")
        name, data = next(stream)
    assert (name, data) == ("gone", {"message": f"job container {container} does not exist"})


def test_a_stream_for_a_container_that_does_not_exist_is_not_found(
    console: tuple[TestClient, Runtime],
) -> None:
    client, _ = console
    response = client.get("/jobs/999/events")
    assert response.status_code == 404  # the browser's EventSource does not reconnect to a 404
    assert "job container 999 does not exist" in response.text


def test_the_dashboard_sends_its_parts_as_html(console: tuple[TestClient, Runtime]) -> None:
    client, rt = console
    add_computers(rt, "pc1")
    with client.stream("GET", "/events/dashboard") as response:
        stream = events(response.iter_lines())
        parts = dict(next(stream) for _ in range(4))
    assert set(parts) == {"fleet", "history", "running", "failures"}
    assert "1 <small>computers</small>" in str(parts["fleet"])
