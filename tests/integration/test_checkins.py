"""Check-ins through the agent endpoint, on every database: a steady agent's hello is answered from reads
once the database confirmed its timestamp in a batch; replay protection holds across the fast and the write
path, and across processes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from oco.db.models import Computer, WolTarget
from oco.errors import Unavailable
from oco.services import checkins, computers, deployments, packages
from oco.services.agents import AuthenticationFailed
from oco.services.deployments import ContainerOptions, DeploymentRequest
from oco.services.ledger import CheckinLedger, Claim
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


def test_a_steady_check_in_is_answered_from_reads_once_the_database_holds_it(
    rt: Runtime, client: TestClient, clock: Clock
) -> None:
    agent = registered(rt, client)
    container_id = with_one_job(rt)
    clock.advance(minutes=1)

    answer = agent.hello()

    assert [job["container-id"] for job in answer["software-jobs"]] == [container_id]
    confirmed = stored(rt)  # confirmed in a batch before the answer went out
    assert confirmed.last_agent_timestamp == agent.last_timestamp
    assert confirmed.last_server_timestamp == agent.last_server_timestamp
    assert confirmed.last_seen == clock.current
    assert confirmed.remote_address == "testclient"
    assert checkins.flush(rt) == 0  # nothing waits


def test_a_replayed_check_in_is_refused_even_by_a_process_that_never_saw_it(
    rt: Runtime, client: TestClient
) -> None:
    agent = registered(rt, client)
    body = agent.body("oco.agent.hello", {"agent_version": "1.1.7", "networks": []})
    assert agent.send(body).status_code == 200

    assert agent.send(body).status_code == 401
    rt.checkins = CheckinLedger()  # a restarted process, or another one: only the database knows
    replayed = agent.send(body)
    assert replayed.status_code == 401
    assert "replay" in replayed.text


def registered_offline(rt: Runtime, *hostnames: str) -> list[Computer]:
    """Computers registered through an application stopped again: no confirming thread runs."""
    from oco.application import create_app

    with TestClient(create_app(rt, run_housekeeping=False)) as client:
        for hostname in hostnames:
            registered(rt, client, hostname)
    return [stored(rt, hostname) for hostname in hostnames]


def test_of_two_processes_claiming_one_timestamp_only_one_is_confirmed(rt: Runtime) -> None:
    [computer] = registered_offline(rt, "pc1")
    timestamp = computer.last_agent_timestamp + 1
    first, second = CheckinLedger(), CheckinLedger()  # each process has its own
    claims = [pending_claim(ledger, computer, timestamp) for ledger in (first, second)]

    rt.checkins = first
    assert checkins.flush(rt) == 1
    rt.checkins = second
    assert checkins.flush(rt) == 0

    assert claims[0].confirmed is not None and claims[0].confirmed.result() is None
    assert claims[1].confirmed is not None
    assert isinstance(claims[1].confirmed.exception(), AuthenticationFailed)
    assert second.last_agent_timestamp(computer.id, computer.agent_key, 0.0) < timestamp  # reverted
    assert stored(rt).last_agent_timestamp == timestamp


def pending_claim(
    ledger: CheckinLedger,
    computer: Computer,
    timestamp: float,
    *,
    computer_id: int | None = None,
    uid: str = "",
) -> Claim:
    claim = ledger.claim(
        computer.id if computer_id is None else computer_id,
        computer.agent_key,
        computer.last_agent_timestamp,
        computer.last_server_timestamp,
        timestamp,
        seen=datetime.now(UTC),
        address="192.0.2.1",
        uid=uid,
        deferred=True,
    )
    assert claim is not None
    ledger.submit(claim)
    return claim


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


def test_check_ins_the_database_does_not_confirm_are_answered_with_an_error(
    rt: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = registered(rt, client)

    def unavailable(*_args: object) -> list[bool]:
        raise Unavailable("database error: connection refused")

    monkeypatch.setattr(checkins, "confirm", unavailable)
    response = agent.send(agent.body("oco.agent.hello", {"agent_version": "1.1.7", "networks": []}))
    assert response.status_code == 503
    assert "connection refused" in response.json()["error"]["message"]
    monkeypatch.undo()

    # Nothing was used up: the agent's next hello (an older timestamp would do too) is accepted.
    agent.last_timestamp -= 0.5
    agent.hello()
    assert stored(rt).last_agent_timestamp == agent.last_timestamp


def test_one_check_in_the_database_refuses_does_not_hold_back_the_others(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    rows = registered_offline(rt, *(f"pc{index}" for index in range(4)))
    ledger = rt.checkins
    timestamp = time.time() + 60
    good = [pending_claim(ledger, row, timestamp) for row in rows if row.hostname != "pc2"]
    # A value the database refuses: PostgreSQL and MariaDB a uid longer than its column, SQLite (which
    # stores any length) a computer id beyond 64 bits.
    too_long = rt.engine.dialect.name != "sqlite"
    bad = pending_claim(ledger, rows[2], timestamp, computer_id=None if too_long else 2**70, uid="u" * 300)

    assert checkins.flush(rt) == len(good)

    for claim in good:
        assert claim.confirmed is not None and claim.confirmed.result() is None
    for row in rows:
        if row.hostname != "pc2":
            assert stored(rt, row.hostname).last_agent_timestamp == timestamp
    assert bad.confirmed is not None and isinstance(bad.confirmed.exception(), Unavailable)
    assert stored(rt, "pc2").last_agent_timestamp < timestamp
    assert "could not be written" in caplog.text


def test_a_check_in_after_wake_on_lan_is_proof_written_before_the_answer(
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

    assert woken(rt, container_id) == clock.current


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

    assert stored(rt).last_agent_timestamp == again.last_timestamp


def test_a_hostname_in_another_case_names_the_same_computer(rt: Runtime, client: TestClient) -> None:
    agent = registered(rt, client, "pc1")
    container_id = with_one_job(rt, "pc1")
    agent.hostname = "PC1.example.org"  # Windows agents shout; the domain part is dropped

    answer = agent.hello()

    assert [job["container-id"] for job in answer["software-jobs"]] == [container_id]
    with rt.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Computer)) == 1
