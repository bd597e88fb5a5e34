"""Check-ins through the agent endpoint, on every database: a steady agent's hello is answered from reads
once a batch confirmed its timestamp in the database, with its traces; replay protection holds across the
fast and the write path, and across processes sharing the database."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from oco.db.models import Computer, ComputerNetwork, WolTarget
from oco.errors import Unavailable
from oco.services import checkins, computers, deployments, packages
from oco.services.deployments import ContainerOptions, DeploymentRequest
from oco.services.ledger import CheckinLedger
from oco.services.runtime import Runtime
from oco.services.targets import Targets
from tests.agentclient import ProtocolClient
from tests.conftest import Clock, make_runtime

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


def test_a_steady_check_in_is_answered_once_its_traces_are_in_the_database(
    rt: Runtime, client: TestClient, clock: Clock
) -> None:
    agent = registered(rt, client)
    container_id = with_one_job(rt)
    clock.advance(minutes=1)

    answer = agent.hello()

    assert [job["container-id"] for job in answer["software-jobs"]] == [container_id]
    confirmed = stored(rt)
    assert confirmed.last_agent_timestamp == agent.last_timestamp
    assert confirmed.last_server_timestamp == agent.last_server_timestamp
    assert confirmed.last_seen == clock.current
    assert confirmed.remote_address == "testclient"


def test_a_replayed_check_in_is_refused(rt: Runtime, client: TestClient) -> None:
    agent = registered(rt, client)
    body = agent.body("oco.agent.hello", {"agent_version": "1.1.7", "networks": []})
    assert agent.send(body).status_code == 200

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
    assert computer.agent_version == "1.2.0"  # written at once
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


def plain_claim(
    rt: Runtime, ledger: CheckinLedger, hostname: str, timestamp: float, **traces: Any
) -> checkins.Unconfirmed:
    """A plain check-in's claim as a server process with `ledger` makes it (another process: its own)."""
    computer = stored(rt, hostname)
    claim = ledger.claim(
        computer.id,
        computer.agent_key or "",
        computer.last_agent_timestamp,
        computer.last_server_timestamp,
        timestamp,
        seen=traces.get("seen", datetime.now(UTC)),
        address=traces.get("address", "192.0.2.1"),
        uid=traces.get("uid", ""),
    )
    assert claim is not None
    return checkins.Unconfirmed(claim, awaited=False)


def test_a_claim_another_process_confirmed_first_is_refused(rt: Runtime, client: TestClient) -> None:
    """Two server processes handed the same request: the database confirms one of them."""
    agent = registered(rt, client)
    timestamp = time.time() + 5
    first = plain_claim(rt, CheckinLedger(), "pc1", timestamp)
    second = plain_claim(rt, CheckinLedger(), "pc1", timestamp)  # the other process's ledger knows nothing

    assert checkins.confirm(rt, [first]) == [checkins.Outcome.CONFIRMED]
    assert checkins.confirm(rt, [second]) == [checkins.Outcome.REPLAYED]
    assert stored(rt).last_agent_timestamp == timestamp
    assert agent.last_timestamp < timestamp


def test_a_confirmation_never_moves_timestamps_backwards(rt: Runtime, client: TestClient) -> None:
    agent = registered(rt, client)
    older = plain_claim(rt, CheckinLedger(), "pc1", agent.last_timestamp + 1)
    agent.last_timestamp += 2
    agent.call("oco.agent.update", {"os": "Debian", "networks": [], "logins": []})  # newer, written
    newest = stored(rt).last_agent_timestamp

    assert checkins.confirm(rt, [older]) == [checkins.Outcome.REPLAYED]
    assert stored(rt).last_agent_timestamp == newest


def test_a_check_in_the_database_cannot_confirm_is_answered_with_an_error_and_uses_up_nothing(
    rt: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = registered(rt, client)
    body = agent.body("oco.agent.hello", {"agent_version": "1.1.7", "networks": []})
    real_confirm = checkins._confirm

    def unavailable(*_args: object) -> None:
        raise Unavailable("database error: connection refused")

    monkeypatch.setattr(checkins, "_confirm", unavailable)
    refused = agent.send(body)
    assert refused.status_code == 503
    assert "replay" not in refused.text
    monkeypatch.setattr(checkins, "_confirm", real_confirm)

    assert agent.send(body).status_code == 200  # the claim was given back: the same request passes now
    assert stored(rt).last_agent_timestamp == agent.last_timestamp


def test_one_check_in_the_database_refuses_does_not_hold_back_the_others(
    rt: Runtime, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    agents = [registered(rt, client, f"pc{index}") for index in range(4)]
    ledger = CheckinLedger()
    timestamp = time.time() + 5
    pending = [plain_claim(rt, ledger, agent.hostname, timestamp) for agent in agents]
    # A value the database refuses: PostgreSQL and MariaDB a uid longer than its column, SQLite (which
    # stores any length) a computer id beyond 64 bits.
    bad = pending[2].claim
    if rt.engine.dialect.name == "sqlite":
        entry = dataclasses.replace(bad.entry, computer_id=2**70)
    else:
        entry = dataclasses.replace(bad.entry, uid="u" * 300)
    pending[2] = checkins.Unconfirmed(dataclasses.replace(bad, entry=entry), awaited=False)

    outcomes = checkins.confirm(rt, pending)

    confirmed = checkins.Outcome.CONFIRMED
    assert outcomes == [confirmed, confirmed, checkins.Outcome.FAILED, confirmed]
    for agent in agents:
        if agent.hostname != "pc2":
            assert stored(rt, agent.hostname).last_agent_timestamp == timestamp
    assert stored(rt, "pc2").last_agent_timestamp < timestamp
    assert "could not be written" in caplog.text


def test_a_check_in_after_wake_on_lan_is_proof_at_once(rt: Runtime, client: TestClient, clock: Clock) -> None:
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


def test_a_hello_with_news_proves_the_wake_too(rt: Runtime, client: TestClient, clock: Clock) -> None:
    agent = registered(rt, client)
    container_id = with_one_job(rt, wol=True)
    computer_id = stored(rt).id
    with rt.transaction() as session:
        target = session.scalar(select(WolTarget).where(WolTarget.computer_id == computer_id))
        assert target is not None
        target.sent, target.expired = clock.current, False
    clock.advance(minutes=2)

    agent.hello(agent_version="1.2.0")

    assert woken(rt, container_id) == clock.current
    assert stored(rt).agent_version == "1.2.0"


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


def interfaces(rt: Runtime, hostname: str = "pc1") -> list[tuple[str, str, str]]:
    with rt.transaction() as session:
        rows = session.execute(
            select(ComputerNetwork.interface, ComputerNetwork.address, ComputerNetwork.mac)
            .join(Computer, Computer.id == ComputerNetwork.computer_id)
            .where(Computer.hostname == hostname)
            .order_by(ComputerNetwork.interface)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_network_rows_follow_the_latest_hello_or_inventory(rt: Runtime, client: TestClient) -> None:
    agent = registered(rt, client)
    eth0 = {"interface": "eth0", "addr": "10.0.0.5", "netmask": "255.0.0.0", "mac": "aa:bb:cc:00:00:01"}
    eth1 = {"interface": "eth1", "address": "10.1.0.5", "netmask": "255.255.0.0", "mac": "aa:bb:cc:00:00:02"}
    agent.hello(networks=[eth0], agent_version="1.2.0")
    assert interfaces(rt) == [("eth0", "10.0.0.5", "aa:bb:cc:00:00:01")]
    assert stored(rt).agent_version == "1.2.0"
    agent.hello(networks=[eth0, eth1], agent_version="1.2.0")
    assert interfaces(rt) == [
        ("eth0", "10.0.0.5", "aa:bb:cc:00:00:01"),
        ("eth1", "10.1.0.5", "aa:bb:cc:00:00:02"),
    ]
    # An inventory with the same interfaces keeps them; its other fields are stored with its timestamp.
    assert agent.call("oco.agent.update", {"os": "Linux", "networks": [eth0, eth1], "logins": []}) == {
        "policies": {}
    }
    assert len(interfaces(rt)) == 2
    assert (stored(rt).os, stored(rt).force_update) == ("Linux", False)
    agent.call("oco.agent.update", {"os": "Linux", "networks": [eth1]})
    assert interfaces(rt) == [("eth1", "10.1.0.5", "aa:bb:cc:00:00:02")]
    assert stored(rt).inventory == {"os": "Linux"}


def test_a_self_registered_computer_is_seen_at_its_first_hello(
    database_url: str, tmp_path: Path, clock: Clock
) -> None:
    from oco.application import create_app

    own = make_runtime(database_url, tmp_path, clock, self_registration=True)
    with TestClient(create_app(own, run_housekeeping=False)) as test_client:
        agent = ProtocolClient("http://testserver", "newcomer", REGISTRATION_KEY, _client=test_client)
        agent.hello()  # unknown: registered, keys issued

    computer = stored(own, "newcomer")
    assert computer.last_seen == clock.current
    assert computer.notes == "Self-registered"
