"""Replay protection of the read-only check-in across server processes and restarts, on every database.

A steady agent's hello is answered from reads, but only once the database holds its timestamp (confirmed
in a batch, `oco.services.checkins`): a copy sent to another process sharing the database, or to the same
server after a kill -9 and a restart, is refused as a replay.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from oco.services import computers
from tests.agentclient import ProtocolClient
from tests.conftest import make_runtime
from tests.live import REGISTRATION_KEY, LiveServer, start_server

COMPUTERS = 30
COPIES = 3
"""Copies of each hello sent to each of the two processes, all at once."""
PLAIN_HELLO = {"agent_version": "1.1.7", "networks": [], "uptime": 100, "services": []}


def steady_agents(server: LiveServer, database_url: str, tmp_path: Path, count: int) -> list[ProtocolClient]:
    """Registered computers whose next hello with `PLAIN_HELLO` has nothing new to store."""
    rt = make_runtime(database_url, tmp_path)
    hostnames = [f"steady-{index:03d}" for index in range(count)]
    for hostname in hostnames:
        computers.add_computer(rt, hostname, "tests")
    rt.close()
    agents = []
    for hostname in hostnames:
        agent = ProtocolClient(server.url, hostname, REGISTRATION_KEY)
        agent.hello()  # first contact: keys issued
        agent.hello()  # a plain check-in: the fast path from now on
        agent.close()
        agents.append(agent)
    return agents


def send(url: str, agent: ProtocolClient, body: bytes) -> int:
    headers = {"content-type": "application/json", "x-oco-agent-signature": agent.sign(body)}
    return httpx.post(f"{url}/api-agent.php", content=body, headers=headers, timeout=60).status_code


def test_a_hello_duplicated_across_two_processes_is_answered_once(database_url: str, tmp_path: Path) -> None:
    first = start_server(tmp_path, database_url)
    second = start_server(tmp_path, database_url, server_args=("--no-migrate",))
    try:
        agents = steady_agents(first, database_url, tmp_path, COMPUTERS)
        bodies = [(agent, agent.body("oco.agent.hello", PLAIN_HELLO)) for agent in agents]
        sends = [
            (server.url, agent, body)
            for agent, body in bodies
            for server in (first, second)
            for _ in range(COPIES)
        ]
        with ThreadPoolExecutor(32) as pool:
            statuses = list(pool.map(lambda item: send(*item), sends))
    finally:
        first.stop()
        second.stop()
    copies = 2 * COPIES
    per_body = [Counter(statuses[index : index + copies]) for index in range(0, len(statuses), copies)]
    assert per_body == [Counter({200: 1, 401: copies - 1})] * COMPUTERS, (
        f"{per_body}; logs:\n{first.log.read_text()[-2000:]}\n{second.log.read_text()[-2000:]}"
    )


def test_a_hello_answered_right_before_a_kill_is_refused_after_the_restart(
    database_url: str, tmp_path: Path
) -> None:
    server = start_server(tmp_path, database_url)
    try:
        [agent] = steady_agents(server, database_url, tmp_path, 1)
        body = agent.body("oco.agent.hello", PLAIN_HELLO)
        assert send(server.url, agent, body) == 200
    finally:
        server.process.kill()  # SIGKILL at once: no shutdown, nothing flushed on the way out
        server.process.wait()

    restarted = start_server(tmp_path, database_url, server_args=("--no-migrate",))
    try:
        replayed = httpx.post(
            f"{restarted.url}/api-agent.php",
            content=body,
            headers={"content-type": "application/json", "x-oco-agent-signature": agent.sign(body)},
            timeout=60,
        )
        assert replayed.status_code == 401
        assert "replay" in replayed.text
        agent.server = restarted.url
        agent.hello()  # the agent's next, newer hello is accepted
    finally:
        restarted.stop()
