"""Agent API conformance, jobs part: selection, order, windows, IP ranges, reports, downloads.

A real `oco server` process answers; the test sets up data through the services on the same database
and plays OCO agents with the signing client of tests/agentclient.py (bound to 127.0.0.x addresses).
"""

from __future__ import annotations

import hashlib
import io
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from oco.domain.states import AgentJobState, JobState, PostAction, ReturnCode, SequenceMode
from oco.services import computers, containers, deployments, packages
from oco.services.containers import ContainerEdit
from oco.services.deployments import ContainerOptions, DeploymentRequest
from oco.services.runtime import Runtime
from oco.services.targets import Targets
from tests.agentclient import ProtocolClient
from tests.conftest import make_runtime
from tests.live import REGISTRATION_KEY, LiveServer, start_server

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, not a zip: the depot wraps it


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[tuple[LiveServer, Runtime]]:
    workdir = tmp_path_factory.mktemp("agent-jobs")
    shutil.copy(sqlite_template, workdir / "oco.sqlite3")
    url = f"sqlite:///{workdir / 'oco.sqlite3'}"
    server = start_server(workdir, url, self_registration="true")
    rt = make_runtime(url, workdir)
    yield server, rt
    server.stop()
    rt.close()


@pytest.fixture
def server(world: tuple[LiveServer, Runtime]) -> LiveServer:
    return world[0]


@pytest.fixture
def rt(world: tuple[LiveServer, Runtime]) -> Runtime:
    return world[1]


_counter = iter(range(1, 10_000))


def agent(server: LiveServer, rt: Runtime, source: str = "127.0.0.1") -> tuple[ProtocolClient, int]:
    """A registered agent with a fresh hostname; returns it with its computer id."""
    client = ProtocolClient(server.url, f"host{next(_counter)}", REGISTRATION_KEY, source_address=source)
    client.hello()
    return client, _computer_id(rt, client.hostname)


def _computer_id(rt: Runtime, hostname: str) -> int:
    return computers.computer_detail(rt, hostname).id


def package(rt: Runtime, family: str, payload: bytes | None = None, **changes: object) -> int:
    spec = packages.PackageSpec(
        family=f"{family}-{next(_counter)}",
        version="1.0",
        install_procedure=f"install {family}",
        **changes,  # type: ignore[arg-type]
    )
    store = None
    if payload is not None:
        store = lambda depot: depot.put_upload(io.BytesIO(payload), "setup.bin")  # noqa: E731
    return packages.create_package(rt, spec, store, "admin").id


def deploy(rt: Runtime, computer_ids: list[int], package_ids: list[int], **options: object) -> int:
    request = DeploymentRequest(
        ContainerOptions(name=str(options.pop("name", "rollout")), **options),  # type: ignore[arg-type]
        Targets(computers=computer_ids, packages=package_ids),
    )
    return deployments.create_deployment(rt, request, "admin").id


def job_ids(rt: Runtime, container_id: int) -> list[int]:
    return [job.id for job in containers.container_detail(rt, container_id).jobs]


def states(rt: Runtime, container_id: int) -> list[tuple[JobState, int | None, str]]:
    return [(j.state, j.return_code, j.message) for j in containers.container_detail(rt, container_id).jobs]


def test_jobs_come_by_priority_then_container_age_without_interleaving(
    server: LiveServer, rt: Runtime
) -> None:
    client, pc = agent(server, rt)
    a, b, c = package(rt, "A"), package(rt, "B"), package(rt, "C")
    low = deploy(rt, [pc], [a, b], name="low", priority=-5)
    older = deploy(rt, [pc], [a, b], name="older")
    newer = deploy(rt, [pc], [c], name="newer")
    high = deploy(rt, [pc], [c], name="high", priority=10)

    jobs = client.hello()["software-jobs"]

    assert [job["container-id"] for job in jobs] == [high, older, older, newer, low, low]
    assert [job["id"] for job in jobs] == job_ids(rt, high) + job_ids(rt, older) + job_ids(
        rt, newer
    ) + job_ids(rt, low)
    first = jobs[0]
    assert set(first) == {  # OCO's keys, and ours that OCO agents do not read
        "id",
        "container-id",
        "package-id",
        "download",
        "procedure",
        "sequence-mode",
        "restart",
        "shutdown",
        "exit",
        "action",
    }
    assert first["action"] == "install"
    assert first["package-id"] == c and first["download"] is False and first["procedure"] == "install C"


def test_start_end_and_enabled_decide_what_is_handed_out(server: LiveServer, rt: Runtime) -> None:
    client, pc = agent(server, rt)
    pkg = package(rt, "Window")
    now = datetime.now(UTC)
    future = deploy(rt, [pc], [pkg], name="future", start=now + timedelta(hours=1))
    ended = deploy(rt, [pc], [pkg], name="ended")
    disabled = deploy(rt, [pc], [pkg], name="disabled")
    containers.edit_container(
        rt, ended, ContainerEdit(start=now - timedelta(hours=2), end=now - timedelta(hours=1)), "t"
    )
    containers.edit_container(rt, disabled, ContainerEdit(enabled=False), "t")

    assert client.hello()["software-jobs"] == []

    containers.edit_container(rt, future, ContainerEdit(start=now - timedelta(minutes=1)), "t")
    containers.edit_container(rt, disabled, ContainerEdit(enabled=True), "t")
    assert [job["container-id"] for job in client.hello()["software-jobs"]] == [future, disabled]


def test_ip_ranges_are_checked_against_the_client_address(server: LiveServer, rt: Runtime) -> None:
    inside, pc_inside = agent(server, rt, "127.0.0.2")
    excluded, pc_excluded = agent(server, rt, "127.0.0.3")
    outside, pc_outside = agent(server, rt, "127.0.0.4")
    pkg = package(rt, "Ranged")
    deploy(
        rt,
        [pc_inside, pc_excluded, pc_outside],
        [pkg],
        agent_ip_ranges="!127.0.0.3/32, 127.0.0.0/30, CAFF:EECA:FFEE:0000::/64",
    )

    assert len(inside.hello()["software-jobs"]) == 1
    assert excluded.hello()["software-jobs"] == []
    assert outside.hello()["software-jobs"] == []


def test_post_actions_carry_the_restart_timeout(server: LiveServer, rt: Runtime) -> None:
    client, pc = agent(server, rt)
    restart = package(rt, "Restart", install_post_action=PostAction.RESTART)
    exit_agent = package(rt, "Exit", install_post_action=PostAction.EXIT_AGENT)
    deploy(rt, [pc], [restart, exit_agent], restart_timeout=15)

    jobs = client.hello()["software-jobs"]

    assert [(j["restart"], j["shutdown"], j["exit"]) for j in jobs] == [(15, None, None), (None, None, 15)]


def test_reports_drive_the_job_and_abort_after_failure(server: LiveServer, rt: Runtime) -> None:
    client, pc = agent(server, rt)
    first, second, third = package(rt, "One"), package(rt, "Two"), package(rt, "Three")
    container = deploy(rt, [pc], [first, second, third], sequence_mode=SequenceMode.ABORT_AFTER_FAILED)
    jobs = client.hello()["software-jobs"]
    assert all(job["sequence-mode"] == 1 for job in jobs)
    job_id = jobs[0]["id"]

    assert client.report(job_id, AgentJobState.EXECUTING, None, "working…") is False
    assert client.hello()["software-jobs"][0]["id"] == job_id  # a running job is sent again
    assert client.report(job_id, AgentJobState.FINISHED, 1603, "fatal error") is False

    assert states(rt, container) == [
        (JobState.FAILED, 1603, "fatal error"),
        (JobState.FAILED, ReturnCode.ABORTED_AFTER_FAILED_JOB, "Aborted after failed job"),
        (JobState.FAILED, ReturnCode.ABORTED_AFTER_FAILED_JOB, "Aborted after failed job"),
    ]
    assert client.hello()["software-jobs"] == []
    assert client.report(job_id, AgentJobState.FINISHED, 0, "late") is False  # final: answered, not applied
    assert states(rt, container)[0] == (JobState.FAILED, 1603, "fatal error")


def test_success_codes_and_agent_errors(server: LiveServer, rt: Runtime) -> None:
    client, pc = agent(server, rt)
    ok, broken = package(rt, "Reboot", install_success_codes="0,3010"), package(rt, "Broken")
    container = deploy(rt, [pc], [ok, broken])
    first, second = (job["id"] for job in client.hello()["software-jobs"])

    assert client.report(first, AgentJobState.FINISHED, 3010, "needs reboot") is True
    assert client.report(second, AgentJobState.ERROR, ReturnCode.AGENT_ERROR, "download aborted") is False

    assert [s[:2] for s in states(rt, container)] == [(JobState.SUCCEEDED, 3010), (JobState.FAILED, -9999)]
    assert [a.computer_id for a in packages.package_detail(rt, ok).installed_on] == [pc]


def test_a_computer_cannot_report_another_computers_job(server: LiveServer, rt: Runtime) -> None:
    owner, pc = agent(server, rt)
    stranger, _ = agent(server, rt)
    container = deploy(rt, [pc], [package(rt, "Mine")])
    [job_id] = job_ids(rt, container)

    body = stranger.body(
        "oco.agent.update_job_state", {"job-id": job_id, "state": 3, "return-code": 0, "message": ""}
    )
    assert stranger.send(body).status_code == 401
    assert states(rt, container) == [(JobState.WAITING, None, "")]
    assert owner.hello()["software-jobs"][0]["id"] == job_id


def test_download_needs_an_eligible_job_and_honours_ranges(server: LiveServer, rt: Runtime) -> None:
    client, pc = agent(server, rt)
    pkg = package(rt, "Payload", payload=PAYLOAD)
    digest = packages.package_detail(rt, pkg).payload_sha256 or ""
    stored = rt.depot.path(digest).read_bytes()

    assert client.download(pkg).status_code == 401  # no job yet

    container = deploy(rt, [pc], [pkg])
    [job] = client.hello()["software-jobs"]
    assert job["download"] is True
    assert (job["payload-sha256"], job["payload-size"]) == (digest, len(stored))  # in the signed answer

    whole = client.download(pkg)
    assert whole.status_code == 200
    assert whole.content == stored and hashlib.sha256(whole.content).hexdigest() == digest
    assert whole.headers["x-oco-payload-sha256"] == digest
    assert whole.headers["content-disposition"] == f'attachment; filename="{pkg}.zip"'
    assert whole.headers["accept-ranges"] == "bytes"

    resumed = client.download(pkg, {"range": "bytes=1000-"})
    assert resumed.status_code == 206
    assert resumed.content == stored[1000:]
    assert resumed.headers["content-range"] == f"bytes 1000-{len(stored) - 1}/{len(stored)}"

    client.report(job["id"], AgentJobState.FINISHED, 0, "done")
    assert client.download(pkg).status_code == 401  # nothing left to run
    assert states(rt, container)[0][0] is JobState.SUCCEEDED


def test_ipv6_clients_match_ipv6_ranges_only(tmp_path: Path, sqlite_url: str) -> None:
    server = start_server(tmp_path, sqlite_url, host="::1", self_registration="true")
    try:
        rt6 = make_runtime(sqlite_url, tmp_path)
        client = ProtocolClient(server.url, "v6host", REGISTRATION_KEY)
        client.hello()
        pc = _computer_id(rt6, "v6host")
        pkg = package(rt6, "Six")
        deploy(rt6, [pc], [pkg], name="v4 only", agent_ip_ranges="0.0.0.0/0")
        v6 = deploy(rt6, [pc], [pkg], name="v6", agent_ip_ranges="::1/128")
        assert [job["container-id"] for job in client.hello()["software-jobs"]] == [v6]
        rt6.close()
    finally:
        server.stop()
