"""The server process starts, migrates its database, reports its health and stops cleanly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil

from tests.agentclient import ProtocolClient
from tests.live import REGISTRATION_KEY, LiveServer, start_server
from tests.support import wait_until


def test_the_server_answers_healthz(live_server: LiveServer) -> None:
    response = httpx.get(f"{live_server.url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_admin_commands_see_the_servers_data(live_server: LiveServer) -> None:
    computer_id = live_server.oco("computer", "add", "pc1").stdout.strip()
    assert computer_id.isdigit()
    assert "pc1" in live_server.oco("computer", "list").stdout


def last_seen(server: LiveServer, hostname: str) -> str | None:
    shown = json.loads(server.oco("computer", "show", hostname, "--json").stdout)
    return shown["last_seen"]  # type: ignore[no-any-return]


def test_a_check_in_is_in_the_database_once_answered_and_the_server_stops_cleanly(
    tmp_path: Path, sqlite_url: str
) -> None:
    server = start_server(tmp_path, sqlite_url, housekeeping_interval_seconds="60")
    try:
        server.oco("computer", "add", "pc1")
        agent = ProtocolClient(server.url, "pc1", REGISTRATION_KEY)
        agent.hello()  # first contact: written at once
        first = last_seen(server, "pc1")
        assert first is not None
        # The next check-in is seen at a later time. The shown time has whole seconds and the stored one
        # does not: a second after the shown one is later than the stored one too.
        shown = datetime.fromisoformat(first)
        wait_until(lambda: datetime.now(UTC) > shown + timedelta(seconds=1), interval=0.01)
        agent.hello()  # a plain check-in: answered from reads, confirmed in the database first
        assert last_seen(server, "pc1") != first
    finally:
        server.stop()  # SIGTERM: uvicorn shuts the application down, then dies of the signal
    assert "Application shutdown complete" in server.log.read_text()


def test_several_server_processes_share_the_port_and_the_database(tmp_path: Path, sqlite_url: str) -> None:
    server = start_server(tmp_path, sqlite_url, server_args=("--workers", "2"))
    children: list[psutil.Process] = []
    try:

        def workers() -> list[psutil.Process]:
            found = psutil.Process(server.process.pid).children()
            return found if len(found) >= 2 else []

        # The supervisor starts both before /healthz answers, or soon after.
        children = wait_until(workers, timeout=30, message="the server processes did not start")
        agents = []
        for index in range(6):
            server.oco("computer", "add", f"pc{index}")
            agents.append(ProtocolClient(server.url, f"pc{index}", REGISTRATION_KEY))
        for _ in range(3):
            for agent in agents:  # a new connection each time: the processes share them out
                agent.hello()
                agent.close()
        wait_until(
            lambda: all(last_seen(server, agent.hostname) is not None for agent in agents),
            timeout=10,
            interval=0.2,
            message="check-ins were not written",
        )
    finally:
        server.stop()
    _gone, alive = psutil.wait_procs(children, timeout=30)
    assert alive == [], "server processes outlived their supervisor"
