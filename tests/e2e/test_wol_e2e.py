"""Wake-on-LAN end to end: a real server sends magic packets (to a UDP listener on 127.0.0.1, never a
broadcast) for offline computers; the one whose agent checks in within WOL_SHUTDOWN_EXPIRY_SECONDS is
shut down after its job, the one that comes up later is not. Power actions are only recorded."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from oco.db.models import ComputerNetwork
from oco.services import computers
from tests.conftest import make_runtime
from tests.e2e.test_agent_e2e import World, add_package, deploy, jobs, make_agent
from tests.live import start_server

EXPIRY_S = 8


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    yield sock
    sock.close()


@pytest.fixture
def wol_world(tmp_path: Path, sqlite_template: Path, listener: socket.socket) -> Iterator[World]:
    shutil.copy(sqlite_template, tmp_path / "oco.sqlite3")
    url = f"sqlite:///{tmp_path / 'oco.sqlite3'}"
    server = start_server(
        tmp_path,
        url,
        self_registration="true",
        wol_port=str(listener.getsockname()[1]),
        wol_shutdown_expiry_seconds=str(EXPIRY_S),
        computer_offline_seconds="1",
    )
    rt = make_runtime(  # the same WOL settings as the server's: the test creates the deployment
        url,
        tmp_path,
        wol_port=listener.getsockname()[1],
        wol_shutdown_expiry_seconds=EXPIRY_S,
        computer_offline_seconds=1,
    )
    yield World(server, rt, tmp_path)
    server.stop()
    rt.close()


def packets(sock: socket.socket) -> list[bytes]:
    received = []
    try:
        while True:
            received.append(sock.recv(1024))
    except TimeoutError:
        return received


def test_only_computers_woken_in_time_are_shut_down(wol_world: World, listener: socket.socket) -> None:
    early = make_agent(wol_world, "wol-early")
    late = make_agent(wol_world, "wol-late")
    with wol_world.rt.transaction() as session:
        for agent, mac in ((early, "02:00:00:00:00:01"), (late, "02-00-00-00-00-02")):
            computer = computers.find_computer(session, agent.hostname)
            computer.networks = [ComputerNetwork(interface="eth0", address="192.0.2.5", mac=mac)]
    time.sleep(1.5)  # both are offline now (computer_offline_seconds = 1)

    started = datetime.now(UTC)
    container = deploy(
        wol_world, [early, late], [add_package(wol_world, "Patch", "1")], wol=True, shutdown_waked=True
    )

    assert sorted(p[6:12] for p in packets(listener)) == [
        bytes.fromhex("020000000001"),
        bytes.fromhex("020000000002"),
    ]
    early.run()  # comes up within the window: runs its job, then shuts down
    assert [entry["action"] for entry in early.power_log] == ["shutdown"]

    while (datetime.now(UTC) - started).total_seconds() < EXPIRY_S + 2.5:
        time.sleep(0.5)  # the server's housekeeping removes the shutdown of the one that did not come up
    late.run()
    assert late.power_log == []
    assert {j[0]: j[3].name for j in jobs(wol_world, container)} == {
        "wol-early": "SUCCEEDED",
        "wol-late": "SUCCEEDED",
    }
