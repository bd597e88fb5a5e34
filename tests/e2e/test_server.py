"""The server process starts, migrates its database and reports its health."""

from __future__ import annotations

import httpx

from tests.live import LiveServer


def test_the_server_answers_healthz(live_server: LiveServer) -> None:
    response = httpx.get(f"{live_server.url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_admin_commands_see_the_servers_data(live_server: LiveServer) -> None:
    computer_id = live_server.oco("computer", "add", "pc1").stdout.strip()
    assert computer_id.isdigit()
    assert "pc1" in live_server.oco("computer", "list").stdout
