"""Check-ins through the agent endpoint, on every database: a steady agent's hello only reads and its
traces are written by the ledger's flush; replay protection holds across the fast and the write path."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from oco.db.models import Computer, WolTarget
from oco.errors import Unavailable
from oco.services import checkins, computers, deployments, packages
from oco.services.deployments import ContainerOptions, DeploymentRequest
from oco.services.runtime import Runtime
from oco.services.targets import Targets
from tests.agentclient import ProtocolClient
from tests.conftest import Clock

REGISTRATION_KEY = "registration-key-for-tests"


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    from oco.application import create_app

    with TestClient(create_app(rt, run_housekeeping=False)) as test_client:
        yield test_client


def registered(rt: Runtime, client: TestClient, hostname: str = "pc1") -> ProtocolClient:
    computers.add_computer(rt, hostname, "tests")
    agent = ProtocolClient("http://testserver", hostname, REGISTRATION_KEY, _client=client)
    agent.hello()  # first contact: keys issued, written at once
    return agent


def stored(rt: Runtime, hostname: str = "pc1") -> Computer:
    with rt.transaction() as session:
        computer = session.scalar(select(Computer).where(Computer.hostname == hostname))
        assert computer is not None
        return computer


def with_one_job(rt: Runtime, hostname: str = "pc1", **options: Any) -> int:
    spec = packages.PackageSpec(family=f"App for {hostname}", version="1.0", install_procedure="true")
    package_id = packages.create_package(rt, spec, None, "admin").id
    request = DeploymentRequest(
        ContainerOptions(name=f"rollout {hostname}", **options),
        Targets(computers=[hostname], packages=[package_id]),
    )
    return deployments.create_deployment(rt, request, "admin").id


def test_a_steady_check_in_is_answered_from_reads_and_written_by_the_flush(
    rt: Runtime, client: TestClient, clock: Clock
) -> None:
    agent = registered(rt, client)
    container_id = with_one_job(rt)
    before = stored(rt)
    clock.advance(minutes=1)

    answer = agent.hello()

    assert [job["container-id"] for job in answer["software-jobs"]] == [container_id]
    after = stored(rt)
    assert (after.last_agent_timestamp, after.last_seen) == (before.last_agent_timestamp, before.last_seen)
    assert checkins.flush(rt) == 1
    flushed = stored(rt)
    assert flushed.last_agent_timestamp == agent.last_timestamp
    assert flushed.last_server_timestamp == agent.last_server_timestamp
    assert flushed.last_seen == clock.current
    assert flushed.remote_address == "testclient"
    assert checkins.flush(rt) == 0


def test_a_replayed_check_in_is_refused_before_and_after_the_flush(rt: Runtime, client: TestClient) -> None:
    agent = registered(rt, client)
    body = agent.body("oco.agent.hello", {"agent_version": "1.1.7", "networks": []})
    assert agent.send(body).status_code == 200

    assert agent.send(body).status_code == 401
    checkins.flush(rt)
    replayed = agent.send(body)
    assert replayed.status_code == 401
    assert "replay" in replayed.text


def test_a_check_in_with_news_takes_the_write_path_and_stays_protected(
    rt: Runtime, client: TestClient
) -> None:
    agent = registered(rt, client)
    networks = [{"addr": "192.0.2.10", "netmask": "255.255.255.0", "mac": "00:11:22:33:44:55"}]
    body = agent.body("oco.agent.hello", {"agent_version": "1.2.0", "networks": networks})

    assert agent.send(body).status_code == 200

    computer = stored(rt)
    assert computer.agent_version == "1.2.0"  # written at once, not at the flush
    assert computer.last_agent_timestamp == agent.last_timestamp
    # The same body again has nothing new: it would take the fast path, which knows it.
    assert agent.send(body).status_code == 401


def test_server_timestamps_increase_across_both_paths(rt: Runtime, client: TestClient) -> None:
    agent = registered(rt, client)
    for round_ in range(3):
        agent.hello()  # fast path
        agent.call("oco.agent.update", {"os": "Debian", "networks": [], "logins": []})  # write path
        agent.hello(agent_version=f"1.1.{8 + round_}")  # news: write path
        agent.hello()
    # ProtocolClient asserts every answer's timestamp exceeds the previous one.
    checkins.flush(rt)
    assert stored(rt).last_server_timestamp == agent.last_server_timestamp


def test_a_failed_request_does_not_use_up_its_timestamp(rt: Runtime, client: TestClient) -> None:
    agent = registered(rt, client)
    earlier = agent.body("oco.agent.hello", {"agent_version": "1.1.7", "networks": []})
    failing = agent.body(
        "oco.agent.update_job_state", {"job-id": 999_999, "state": 3, "return-code": 0, "message": ""}
    )

    assert agent.send(failing).status_code == 400
    assert stored(rt).last_agent_timestamp < agent.last_timestamp

    # A request signed before the failing one is still newer than anything accepted.
    assert agent.send(earlier).status_code == 200


def test_the_flush_never_moves_timestamps_backwards(rt: Runtime, client: TestClient) -> None:
    agent = registered(rt, client)
    agent.hello()  # deferred, not written yet
    agent.call("oco.agent.update", {"os": "Debian", "networks": [], "logins": []})  # newer, written
    newest = stored(rt).last_agent_timestamp
    assert newest == agent.last_timestamp

    checkins.flush(rt)

    assert stored(rt).last_agent_timestamp == newest


def test_a_flush_the_database_does_not_answer_is_written_by_the_next_one(
    rt: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = registered(rt, client)
    agent.hello()
    real_write = checkins.write

    def unavailable(*_args: object) -> None:
        raise Unavailable("database error: connection refused")

    monkeypatch.setattr(checkins, "write", unavailable)
    with pytest.raises(Unavailable):
        checkins.flush(rt)
    monkeypatch.setattr(checkins, "write", real_write)

    assert checkins.flush(rt) == 1
    assert stored(rt).last_agent_timestamp == agent.last_timestamp


def test_one_check_in_the_database_refuses_does_not_hold_back_the_others(
    rt: Runtime, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    agents = [registered(rt, client, f"pc{index}") for index in range(4)]
    for agent in agents:
        agent.hello()
    bad = stored(rt, "pc2")
    # A value the database refuses: PostgreSQL and MariaDB a uid longer than its column, SQLite (which
    # stores any length) a computer id beyond 64 bits.
    too_long = rt.engine.dialect.name != "sqlite"
    rt.checkins.claim(
        bad.id if too_long else 2**70,
        bad.agent_key,
        0.0,
        0.0,
        time.time() + 60,
        seen=datetime.now(UTC),
        address="192.0.2.1",
        uid="u" * 300 if too_long else "",
        deferred=True,
    )

    assert checkins.flush(rt) == len(agents) - 1 + (0 if too_long else 1)

    for agent in agents:
        if agent.hostname != "pc2" or not too_long:
            assert stored(rt, agent.hostname).last_agent_timestamp == agent.last_timestamp
    assert "could not be written and is dropped" in caplog.text
    assert checkins.flush(rt) == 0  # dropped, not retried forever


def test_stopping_the_application_writes_what_the_ledger_holds(rt: Runtime) -> None:
    from oco.application import create_app

    with TestClient(create_app(rt, run_housekeeping=False)) as client:
        agent = registered(rt, client)
        agent.hello()
        assert stored(rt).last_agent_timestamp < agent.last_timestamp

    assert stored(rt).last_agent_timestamp == agent.last_timestamp


def test_a_check_in_after_wake_on_lan_is_proof_written_by_the_flush(
    rt: Runtime, client: TestClient, clock: Clock
) -> None:
    agent = registered(rt, client)
    container_id = with_one_job(rt, wol=True)
    computer_id = stored(rt).id
    with rt.transaction() as session:  # packets went out (the computer has no MAC here: pretend)
        target = session.scalar(select(WolTarget).where(WolTarget.computer_id == computer_id))
        assert target is not None and target.woken is None
        target.sent, target.expired = clock.current, False
    clock.advance(minutes=2)

    agent.hello()
    assert woken(rt, container_id) is None
    checkins.flush(rt)

    assert woken(rt, container_id) == clock.current


def test_a_hello_with_news_proves_the_wake_at_once_with_the_plain_check_in_it_follows(
    rt: Runtime, client: TestClient, clock: Clock
) -> None:
    agent = registered(rt, client)
    container_id = with_one_job(rt, wol=True)
    computer_id = stored(rt).id
    with rt.transaction() as session:
        target = session.scalar(select(WolTarget).where(WolTarget.computer_id == computer_id))
        assert target is not None
        target.sent, target.expired = clock.current, False
    clock.advance(minutes=2)
    agent.hello()  # plain: its proof waits for the flush...
    clock.advance(minutes=4)  # ...and the window (5 minutes) closes before the agent's next hello

    agent.hello(agent_version="1.2.0")  # news: written at once, with the traces it took over

    assert woken(rt, container_id) == clock.current - timedelta(minutes=4)
    assert stored(rt).agent_version == "1.2.0"
    assert checkins.flush(rt) == 0  # nothing left for the flush


def woken(rt: Runtime, container_id: int) -> datetime | None:
    with rt.transaction() as session:
        target = session.scalar(select(WolTarget).where(WolTarget.container_id == container_id))
        assert target is not None
        return target.woken


def test_a_computer_deleted_and_added_again_starts_afresh(rt: Runtime, client: TestClient) -> None:
    agent = registered(rt, client)
    agent.last_timestamp = time.time() + 3600  # an agent whose clock ran far ahead
    agent.hello()
    computers.delete_computer(rt, "pc1", "tests")

    again = registered(rt, client)  # same name, new keys, a right clock: old traces must not bind it
    again.hello()

    checkins.flush(rt)
    assert stored(rt).last_agent_timestamp == again.last_timestamp


def test_a_hostname_in_another_case_names_the_same_computer(rt: Runtime, client: TestClient) -> None:
    agent = registered(rt, client, "pc1")
    container_id = with_one_job(rt, "pc1")
    agent.hostname = "PC1.example.org"  # Windows agents shout; the domain part is dropped

    answer = agent.hello()

    assert [job["container-id"] for job in answer["software-jobs"]] == [container_id]
    with rt.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Computer)) == 1
