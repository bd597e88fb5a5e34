"""Write-path agent requests answered together (`agent_requests.answer_together`), on every database: one
transaction for the batch, a savepoint for each request, so one request's refusal takes back its own
writes and its claim and nothing of the others'; a batch the database fails as a whole is run again
request by request, and nobody is answered for work that was not committed."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError

from oco.api.agent import AgentApi
from oco.db.models import Computer, ComputerNetwork, ComputerSoftware
from oco.domain.protocol import AgentMethod
from oco.errors import InvalidInput, Unauthorized
from oco.services import agent_requests, computers, deployments, packages
from oco.services.agent_jobs import DownloadGrant
from oco.services.agent_requests import AgentAnswer
from oco.services.agents import AgentRequest
from oco.services.deployments import ContainerOptions, DeploymentRequest
from oco.services.runtime import Runtime, WriterBusy
from oco.services.targets import Targets
from tests.agentclient import ProtocolClient
from tests.conftest import make_runtime

REGISTRATION_KEY = "registration-key-for-tests"
SOFTWARE = [{"name": f"App {i}", "version": f"{i}.0", "description": ""} for i in range(5)]
NETWORKS = [
    {"interface": "eth0", "addr": "192.0.2.7", "netmask": "255.255.255.0", "mac": "52:54:00:00:00:01"}
]


def request(
    agent: ProtocolClient, method: str, data: dict[str, Any], timestamp: float | None = None
) -> AgentRequest:
    """`method` as `agent` signs it (with `timestamp`, or its next one)."""
    sent = agent.next_timestamp() if timestamp is None else timestamp
    document = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": method,
        "params": {"uid": agent.uid, "hostname": agent.hostname, "timestamp": sent, "data": data},
    }
    body = json.dumps(document).encode()
    return AgentRequest(
        method=AgentMethod(method),
        hostname=agent.hostname,
        uid=agent.uid,
        timestamp=sent,
        data=data,
        body=body,
        signature=agent.sign(body),
        client_address="127.0.0.1",
    )


def hello(agent: ProtocolClient, version: str = "1.1.7", timestamp: float | None = None) -> AgentRequest:
    data = {"agent_version": version, "networks": [], "uptime": 1, "services": []}
    return request(agent, "oco.agent.hello", data, timestamp)


def inventory(agent: ProtocolClient, networks: list[Any], timestamp: float | None = None) -> AgentRequest:
    data = {"os": "Linux", "os_version": "12", "networks": networks, "software": SOFTWARE, "logins": []}
    return request(agent, "oco.agent.update", data, timestamp)


def registered(rt: Runtime, *hostnames: str) -> list[ProtocolClient]:
    """Computers an admin created, each enrolled by its first hello (in one batch)."""
    agents = []
    for hostname in hostnames:
        computers.add_computer(rt, hostname, "tests")
        agents.append(ProtocolClient("http://unused", hostname, REGISTRATION_KEY))
    for agent, answered in zip(
        agents, agent_requests.answer_together(rt, [hello(a) for a in agents]), strict=True
    ):
        assert isinstance(answered, AgentAnswer), answered
        agent.agent_key = answered.params["agent-key"]
        agent.server_key = answered.params["server-key"]
    return agents


def stored(rt: Runtime, hostname: str) -> Computer:
    with rt.transaction() as session:
        computer = session.scalar(select(Computer).where(Computer.hostname == hostname))
        assert computer is not None
        session.expunge(computer)
        return computer


def rows(rt: Runtime, model: type[ComputerSoftware] | type[ComputerNetwork], hostname: str) -> int:
    with rt.transaction() as session:
        computer_id = session.scalar(select(Computer.id).where(Computer.hostname == hostname))
        return session.scalar(select(func.count()).where(model.computer_id == computer_id)) or 0


def test_one_requests_refusal_takes_back_its_own_writes_and_nothing_of_the_others(rt: Runtime) -> None:
    pc1, pc2, pc3, pc4 = registered(rt, "pc1", "pc2", "pc3", "pc4")
    before = stored(rt, "pc3")
    forged = dataclasses.replace(hello(pc2, "6.6.6"), signature="0" * 64)
    broken = inventory(pc3, [*NETWORKS, "not an interface"])  # refused after its accepting UPDATE ran

    outcomes = agent_requests.answer_together(
        rt, [hello(pc1, "1.2.0"), forged, broken, inventory(pc4, NETWORKS)]
    )

    assert isinstance(outcomes[0], AgentAnswer)
    assert isinstance(outcomes[1], Unauthorized)
    assert isinstance(outcomes[2], InvalidInput)
    assert "networks" in outcomes[2].message
    assert isinstance(outcomes[3], AgentAnswer)
    assert stored(rt, "pc1").agent_version == "1.2.0"
    assert stored(rt, "pc2").agent_version == "1.1.7"
    refused = stored(rt, "pc3")  # its savepoint rolled back: timestamp, columns and rows as before
    assert refused.last_agent_timestamp == before.last_agent_timestamp
    assert refused.os == before.os
    assert rows(rt, ComputerSoftware, "pc3") == 0
    assert stored(rt, "pc4").os == "Linux"
    assert rows(rt, ComputerSoftware, "pc4") == len(SOFTWARE)
    assert rows(rt, ComputerNetwork, "pc4") == 1

    # The refused request used nothing up: its timestamp, sent again with valid data, is accepted.
    again = agent_requests.answer_together(rt, [inventory(pc3, NETWORKS, broken.timestamp), hello(pc1)])
    assert all(isinstance(answered, AgentAnswer) for answered in again), again
    assert stored(rt, "pc3").last_agent_timestamp == broken.timestamp
    assert rows(rt, ComputerSoftware, "pc3") == len(SOFTWARE)


def test_requests_of_one_computer_in_one_batch_follow_one_another(rt: Runtime) -> None:
    (pc1,) = registered(rt, "pc1")
    first, second = hello(pc1, "1.2.0"), inventory(pc1, NETWORKS)
    replay = hello(pc1, "1.3.0", first.timestamp)

    outcomes = agent_requests.answer_together(rt, [first, second, replay])

    assert isinstance(outcomes[0], AgentAnswer) and isinstance(outcomes[1], AgentAnswer)
    assert isinstance(outcomes[2], Unauthorized)
    assert "replayed" in outcomes[2].message
    assert outcomes[1].timestamp > outcomes[0].timestamp
    assert stored(rt, "pc1").last_agent_timestamp == second.timestamp
    assert stored(rt, "pc1").agent_version == "1.2.0"


@dataclasses.dataclass
class Fault:
    """The database fails the first UPDATE of computer `computer_id` it is sent, as a deadlock or a lost
    connection does (an injected error at the driver's edge)."""

    computer_id: int = 0
    failed: bool = False

    def __call__(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if self.failed or not statement.startswith("UPDATE computer"):
            return
        values = parameters.values() if isinstance(parameters, dict) else parameters
        if self.computer_id in values:
            self.failed = True
            raise OperationalError(statement, parameters, Exception("injected: the database went away"))


@pytest.fixture
def fault(rt: Runtime) -> Iterator[Fault]:
    injected = Fault()
    event.listen(rt.engine, "before_cursor_execute", injected)
    try:
        yield injected
    finally:
        event.remove(rt.engine, "before_cursor_execute", injected)


def test_a_batch_the_database_fails_is_answered_request_by_request(rt: Runtime, fault: Fault) -> None:
    pc1, pc2, pc3 = registered(rt, "pc1", "pc2", "pc3")
    fault.computer_id = stored(rt, "pc2").id
    batch = [hello(pc1, "1.2.0"), hello(pc2, "1.2.0"), inventory(pc3, NETWORKS)]

    outcomes = agent_requests.answer_together(rt, batch)

    assert fault.failed  # the batch's transaction did fail, after pc1's work
    assert all(isinstance(answered, AgentAnswer) for answered in outcomes), outcomes
    for agent, sent in zip((pc1, pc2, pc3), batch, strict=True):
        assert stored(rt, agent.hostname).last_agent_timestamp == sent.timestamp
    assert stored(rt, "pc2").agent_version == "1.2.0"
    assert rows(rt, ComputerSoftware, "pc3") == len(SOFTWARE)  # written once, by the second run


def test_downloads_are_granted_together_and_one_without_a_job_is_refused_alone(
    rt: Runtime, tmp_path: Path
) -> None:
    pc1, pc2, pc3 = registered(rt, "pc1", "pc2", "pc3")
    script = tmp_path / "install.sh"
    script.write_text("echo installed\n")
    spec = packages.PackageSpec(family="Firefox", version="1.0", install_procedure="sh install.sh")
    package_id = packages.create_package(rt, spec, lambda depot: depot.put_file(script), "admin").id
    deployments.create_deployment(
        rt,
        DeploymentRequest(
            ContainerOptions(name="Firefox"), Targets(computers=["pc1", "pc3"], packages=[package_id])
        ),
        "admin",
    )

    def download(agent: ProtocolClient) -> tuple[AgentRequest, int]:
        return request(agent, "oco.agent.download", {"package-id": package_id}), package_id

    granted = agent_requests.grant_together(rt, [download(pc1), download(pc2), download(pc3)])

    assert isinstance(granted[0], DownloadGrant) and isinstance(granted[2], DownloadGrant)
    assert granted[0].package_id == granted[2].package_id == package_id
    assert isinstance(granted[1], Unauthorized) and "no job" in granted[1].message
    # Refused alone, and its claim given back: an older timestamp than the refused one still passes.
    before = stored(rt, "pc2").last_agent_timestamp
    again = agent_requests.answer_together(rt, [hello(pc2, timestamp=before + 0.0005)])
    assert isinstance(again[0], AgentAnswer), again


def test_a_check_in_batch_waits_for_a_held_sqlite_lock_off_the_event_loop(
    sqlite_url: str, tmp_path: Path
) -> None:
    """SQLite's plain check-ins run on the event loop; when another writer holds the database (another
    server process, an `oco` command), their confirmation waits in a thread and the loop goes on."""
    rt = make_runtime(sqlite_url, tmp_path)
    api = AgentApi(rt)
    try:
        pc1, pc2 = registered(rt, "pc1", "pc2")
        other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # the database's write lock, held by another connection

        async def story() -> list[Any]:
            batch = asyncio.get_running_loop().create_task(
                api.check_ins._on_loop_unless_locked([hello(pc1), hello(pc2)])
            )
            await asyncio.sleep(0)  # the batch ran until it had to wait for the lock
            assert not batch.done()  # ... and waits without holding up the loop, which runs this
            other.execute("COMMIT")
            return list(await asyncio.wait_for(batch, timeout=60))

        outcomes = asyncio.run(story())
        other.close()
        assert all(isinstance(answered, AgentAnswer) for answered in outcomes), outcomes
        assert stored(rt, "pc1").last_agent_timestamp == pc1.last_timestamp
    finally:
        api.close()
        rt.close()


def test_a_write_that_must_not_wait_is_refused_at_once_while_the_lock_is_taken(
    sqlite_url: str, tmp_path: Path
) -> None:
    rt = make_runtime(sqlite_url, tmp_path)
    try:
        other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(WriterBusy), rt.writing(wait=False):
            pass
        other.execute("COMMIT")
        other.close()
        held, done = threading.Event(), threading.Event()

        def console() -> None:  # a transaction of this process, as the console's run in its threads
            with rt.transaction() as session:
                session.execute(text("UPDATE computer SET notes = notes"))
                held.set()
                done.wait(60)

        writer = threading.Thread(target=console)
        writer.start()
        try:
            assert held.wait(60)
            with pytest.raises(WriterBusy), rt.writing(wait=False):
                pass
        finally:
            done.set()
            writer.join()
        with rt.writing(wait=False) as connection:  # free again: written, and waits as before after
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 0
        with rt.writing() as connection:
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    finally:
        rt.close()
