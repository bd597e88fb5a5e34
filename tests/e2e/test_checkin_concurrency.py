"""Thousands of concurrent changed hellos against two server processes: none is taken for a replay, and
none fails on a deadlock (replacing neighbouring computers' network interfaces deadlocked on MariaDB).

A hello with news (agent version, network data) writes its timestamp with a conditional UPDATE. Were the
batches confirming plain check-ins to write that timestamp first, the UPDATE would match nothing and a
legitimate agent would get 401 "replayed request" (and a fail2ban line); on every database.
"""

from __future__ import annotations

import secrets
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import insert

from oco.db.models import Computer
from tests.agentclient import ProtocolClient
from tests.conftest import make_runtime
from tests.live import REGISTRATION_KEY, start_server

AGENTS = 1000
CHANGES = 2
THREADS = 32


def seed(database_url: str, tmp_path: Path) -> dict[str, tuple[str, str]]:
    """Registered computers (hostname -> agent key, server key), as enrolment would have left them."""
    keys = {f"race-{i:05d}": (secrets.token_urlsafe(32), secrets.token_urlsafe(32)) for i in range(AGENTS)}
    rt = make_runtime(database_url, tmp_path)
    with rt.transaction() as session:
        rows = [
            {"hostname": name, "hostname_key": name, "agent_key": agent, "server_key": server}
            for name, (agent, server) in keys.items()
        ]
        session.execute(insert(Computer), rows)
    rt.close()
    return keys


def changed_hellos(url: str, agents: list[tuple[str, str, str]]) -> Counter[int]:
    """Each agent sends CHANGES hellos, each with a new agent version and new network interfaces (their
    rows replaced); the statuses, counted."""
    statuses: Counter[int] = Counter()
    for hostname, agent_key, server_key in agents:
        client = ProtocolClient(url, hostname, REGISTRATION_KEY, agent_key=agent_key, server_key=server_key)
        for change in range(CHANGES):
            networks = [  # addresses as data only
                {"interface": f"eth{i}", "addr": f"192.0.2.{change * 4 + i}", "netmask": "255.255.255.0"}
                for i in range(2)
            ]
            data = {"agent_version": f"1.2.{change}", "networks": networks, "uptime": 1, "services": []}
            response = client.send(client.body("oco.agent.hello", data))
            statuses[response.status_code] += 1
            if response.status_code == 200:
                result = response.json()["result"]
                assert result["timestamp"] > client.last_server_timestamp
                client.last_server_timestamp = result["timestamp"]
        client.close()
    return statuses


def test_no_changed_hello_is_refused_as_a_replay(database_url: str, tmp_path: Path) -> None:
    keys = seed(database_url, tmp_path)
    server = start_server(tmp_path, database_url, server_args=("--workers", "2"))
    try:
        agents = [(name, agent, server_key) for name, (agent, server_key) in keys.items()]
        slices = [agents[i::THREADS] for i in range(THREADS)]
        with ThreadPoolExecutor(THREADS) as pool:
            counts = sum(
                (result for result in pool.map(lambda part: changed_hellos(server.url, part), slices)),
                Counter(),
            )
    finally:
        server.stop()
    assert counts == Counter({200: AGENTS * CHANGES}), (
        f"{counts}; server log:\n{server.log.read_text()[-3000:]}"
    )
    assert "replayed request" not in server.log.read_text()
