"""Download slots through the agent endpoint, on every database: a container's `max_downloads`, the
server-wide and per-network limits, holders keeping their slot, slots freed by reports and by the timeout,
jobs without a payload never held back, two runtimes (two server processes) never exceeding a limit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from oco.db.models import DownloadSlot, Job
from oco.domain.dispatch import Hold
from oco.domain.errors import InvalidDownloadLimit
from oco.domain.slots import Limit
from oco.services import computers, containers, deployments, jobs, packages, slots
from oco.services.containers import ContainerEdit
from oco.services.deployments import ContainerOptions, DeploymentRequest
from oco.services.jobs import JobQuery
from oco.services.listing import PageRequest
from oco.services.runtime import Runtime
from oco.services.targets import Targets
from tests.agentclient import ProtocolClient
from tests.conftest import Clock, make_runtime

REGISTRATION_KEY = "registration-key-for-tests"


def _app_client(rt: Runtime, address: str = "10.1.0.5") -> TestClient:
    from oco.application import create_app

    return TestClient(create_app(rt, run_housekeeping=False), client=(address, 50000))


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    rt.download_slots.refresh_seconds = 0  # every check-in reads the places: reports free them at once
    with _app_client(rt) as test_client:
        yield test_client


def _agents(rt: Runtime, client: TestClient, count: int, prefix: str = "pc") -> list[ProtocolClient]:
    agents = []
    for n in range(count):
        hostname = f"{prefix}{n:02}"
        computers.add_computer(rt, hostname, "tests")
        agent = ProtocolClient("http://testserver", hostname, REGISTRATION_KEY, _client=client)
        agent.hello()  # first contact: keys issued
        agents.append(agent)
    return agents


def _package(rt: Runtime, tmp_path: Path, payload: bool = True, name: str = "Firefox") -> int:
    spec = packages.PackageSpec(family=name, version="1.0", install_procedure="sh install.sh")
    if not payload:
        return packages.create_package(rt, spec, None, "admin").id
    script = tmp_path / f"{name}.sh"
    script.write_text("echo installed\n")
    return packages.create_package(rt, spec, lambda depot: depot.put_file(script), "admin").id


def _deploy(rt: Runtime, agents: list[ProtocolClient], package_ids: list[int], **options: Any) -> int:
    request = DeploymentRequest(
        ContainerOptions(name=str(options.pop("name", "Firefox")), **options),
        Targets(computers=[agent.hostname for agent in agents], packages=package_ids),
    )
    return deployments.create_deployment(rt, request, "admin").id


def _jobs_handed(agent: ProtocolClient) -> list[int]:
    return [job["id"] for job in agent.hello()["software-jobs"]]


def _waiting_texts(rt: Runtime, container_id: int) -> dict[str, str | None]:
    page = jobs.search_jobs(rt, container_id, JobQuery(), PageRequest(1, 100, "computer"))
    return {
        row.computer: row.waiting.slots if row.waiting and row.waiting.hold is Hold.DOWNLOAD_SLOT else None
        for row in page.items
    }


def test_a_container_hands_out_at_most_its_downloads_and_holders_keep_their_slot(
    rt: Runtime, client: TestClient, tmp_path: Path, clock: Clock
) -> None:
    agents = _agents(rt, client, 5)
    container_id = _deploy(rt, agents, [_package(rt, tmp_path)], max_downloads=2)
    assert containers.container_summary(rt, container_id).max_downloads == 2

    handed = {agent.hostname: _jobs_handed(agent) for agent in agents}
    holders = [agent for agent in agents if handed[agent.hostname]]
    waiting = [agent for agent in agents if not handed[agent.hostname]]
    assert len(holders) == 2 and len(waiting) == 3
    texts = _waiting_texts(rt, container_id)
    assert {texts[agent.hostname] for agent in waiting} == {"waiting for a download slot (2 of 2 in use)"}
    assert all(_jobs_handed(agent) == handed[agent.hostname] for agent in holders)  # they keep theirs
    assert all(_jobs_handed(agent) == [] for agent in waiting)

    first = holders[0]
    [job_id] = handed[first.hostname]
    first.report(job_id, 1, None, "", **{"download-progress": 0})
    assert all(_jobs_handed(agent) == [] for agent in waiting)  # still downloading: still held
    assert first.download(_package_of(rt, job_id)).status_code == 200
    first.report(job_id, 2, None, "")  # executing: the download is done, its slot free
    taken = [agent for agent in waiting if _jobs_handed(agent)]
    assert len(taken) == 1
    assert _jobs_handed(first) == [job_id]  # executing jobs are handed out again, slot or not
    first.report(job_id, 3, 0, "done")

    clock.advance(seconds=rt.settings.download_slot_timeout_seconds + 1)  # the others never reported
    rest = [agent for agent in waiting if agent not in taken]
    assert sum(1 for agent in rest if _jobs_handed(agent)) == 2  # the slots ran out: two more go


def _package_of(rt: Runtime, job_id: int) -> int:
    with rt.reading() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.package_id is not None
        return job.package_id


def test_jobs_without_a_payload_are_never_held_back_and_one_download_at_a_time(
    rt: Runtime, client: TestClient, tmp_path: Path
) -> None:
    agents = _agents(rt, client, 3)
    script_only = _package(rt, tmp_path, payload=False, name="Settings")
    _deploy(rt, agents, [script_only], max_downloads=1, name="no payload")
    assert all(len(_jobs_handed(agent)) == 1 for agent in agents)

    first, second = _package(rt, tmp_path, name="Office"), _package(rt, tmp_path, name="Chrome")
    _deploy(rt, agents[:1], [first, second], max_downloads=5, name="two payloads")
    answer = _jobs_handed(agents[0])
    assert len(answer) == 2  # the plain job and the first payload; the second waits for its own slot
    with rt.reading() as session:
        held = session.scalar(
            select(func.count()).select_from(DownloadSlot).where(DownloadSlot.job_id.is_not(None))
        )
    assert held == 1


def test_the_server_wide_and_network_limits(database_url: str, tmp_path: Path, clock: Clock) -> None:
    rt = make_runtime(
        database_url,
        tmp_path,
        clock,
        max_concurrent_downloads=3,
        download_network_limits="10.1.0.0/16=1",
    )
    rt.download_slots.refresh_seconds = 0
    try:
        with _app_client(rt, "10.1.0.5") as branch, _app_client(rt, "10.9.0.5") as office:
            thin = _agents(rt, branch, 3, "branch")
            wide = _agents(rt, office, 4, "office")
            package = _package(rt, tmp_path)
            container_id = _deploy(rt, [*thin, *wide], [package])  # no limit of its own
            preview = deployments.preview_deployment(
                rt,
                DeploymentRequest(
                    ContainerOptions(name="preview", max_downloads=10),
                    Targets(computers=[a.hostname for a in wide], packages=[package]),
                ),
            )
            assert preview.downloads is not None and preview.downloads.at_once == 3
            assert "the server's limit" in preview.downloads.sentence
            assert sum(1 for agent in thin if _jobs_handed(agent)) == 1  # the branch office's one
            assert sum(1 for agent in wide if _jobs_handed(agent)) == 2  # the server's other two
            texts = _waiting_texts(rt, container_id)
            assert "waiting for a download slot of the server (3 of 3 in use)" in texts.values()
    finally:
        rt.close()


def test_the_limit_is_edited_and_refused_when_out_of_range(
    rt: Runtime, client: TestClient, tmp_path: Path
) -> None:
    agents = _agents(rt, client, 3)
    container_id = _deploy(rt, agents, [_package(rt, tmp_path)], max_downloads=1)
    assert sum(1 for agent in agents if _jobs_handed(agent)) == 1
    containers.edit_container(rt, container_id, ContainerEdit(max_downloads=0), "admin")
    assert containers.container_summary(rt, container_id).max_downloads is None
    assert all(_jobs_handed(agent) for agent in agents)  # no limit any more
    with pytest.raises(InvalidDownloadLimit, match="maximum downloads"):
        containers.edit_container(rt, container_id, ContainerEdit(max_downloads=-3), "admin")
    containers.delete_container(rt, container_id, "admin")  # its slots go with it
    with rt.reading() as session:
        assert session.scalar(select(func.count()).select_from(DownloadSlot)) == 0


def test_two_server_processes_taking_slots_at_once_never_exceed_the_limit(
    rt: Runtime, database_url: str, tmp_path: Path, clock: Clock
) -> None:
    """Two runtimes (as two `oco server` processes have) race for the places of one scope."""
    other = make_runtime(database_url, tmp_path, clock)
    limit = Limit("container:1", 4)
    agents = 24
    with _app_client(rt) as test_client:
        clients = _agents(rt, test_client, agents)
    container_id = _deploy(rt, clients, [_package(rt, tmp_path)])
    with rt.reading() as session:
        job_ids = list(session.scalars(select(Job.id).where(Job.container_id == container_id)))
    won: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def race(runtime: Runtime, mine: list[int]) -> None:
        barrier.wait()
        try:
            for job_id in mine:
                with runtime.writing() as connection:
                    got, _seen = slots.take(connection, job_id, job_id, [limit], runtime.now(), 1800)
                if got:
                    with lock:
                        won.append(job_id)
        except BaseException as exc:  # reported below: a deadlock or refusal must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(rt if n % 2 else other, job_ids[n::8])) for n in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        other.close()
    assert errors == []
    assert len(won) == limit.limit
    with rt.reading() as session:
        [occupancy] = slots.read_occupancy(session.connection(), [limit], rt.now())
    assert sorted(occupancy.holders) == sorted(won)
