"""Wake-on-LAN end to end: a real server sends magic packets (to a UDP listener on 127.0.0.1, never a
broadcast) for offline computers; the one whose agent checks in within WOL_SHUTDOWN_EXPIRY_SECONDS is
shut down after its job, the one that comes up later is not. Power actions are only recorded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from oco.db.models import ComputerNetwork
from oco.domain.presence import is_online
from oco.services import computers, containers
from tests.conftest import make_runtime
from tests.e2e.test_agent_e2e import RealAgent, World, add_package, deploy, jobs, make_agent
from tests.live import start_server
from tests.support import WolListener, copy_sqlite_template, wait_until

EXPIRY_S = 8
OFFLINE_S = 1
QUIET_S = 0.5
"""The magic packets are sent while the deployment is created; this silence after them ends the burst."""


@pytest.fixture
def wol_world(tmp_path: Path, sqlite_template: Path, wol_listener: WolListener) -> Iterator[World]:
    url = copy_sqlite_template(sqlite_template, tmp_path)
    server = start_server(
        tmp_path,
        url,
        self_registration="true",
        wol_port=str(wol_listener.port),
        wol_shutdown_expiry_seconds=str(EXPIRY_S),
        computer_offline_seconds=str(OFFLINE_S),
    )
    rt = make_runtime(  # the same WOL settings as the server's: the test creates the deployment
        url,
        tmp_path,
        wol_port=wol_listener.port,
        wol_shutdown_expiry_seconds=EXPIRY_S,
        computer_offline_seconds=OFFLINE_S,
    )
    yield World(server, rt, tmp_path)
    server.stop()
    rt.close()


def offline(world: World, *agents: RealAgent) -> bool:
    """Whether every one of `agents` counts as offline now, as a deployment created now would see it."""
    now = datetime.now(UTC)
    with world.rt.transaction() as session:
        found = [computers.find_computer(session, agent.hostname) for agent in agents]
        return not any(is_online(computer.last_seen, now, OFFLINE_S) for computer in found)


def keeps_a_shutdown(world: World, container_id: int, agent: RealAgent) -> bool:
    """Whether a job of `agent` in the container still carries the shutdown of woken computers."""
    with world.rt.transaction() as session:
        return any(
            job.wol_shutdown
            for job in containers.find_container(session, container_id).jobs
            if job.computer.hostname == agent.hostname
        )


def test_only_computers_woken_in_time_are_shut_down(wol_world: World, wol_listener: WolListener) -> None:
    early = make_agent(wol_world, "wol-early")
    late = make_agent(wol_world, "wol-late")
    with wol_world.rt.transaction() as session:
        for agent, mac in ((early, "02:00:00:00:00:01"), (late, "02-00-00-00-00-02")):
            computer = computers.find_computer(session, agent.hostname)
            computer.networks = [ComputerNetwork(interface="eth0", address="192.0.2.5", mac=mac)]
    wait_until(lambda: offline(wol_world, early, late), message="the agents still count as online")

    container = deploy(
        wol_world, [early, late], [add_package(wol_world, "Patch", "1")], wol=True, shutdown_waked=True
    )

    assert sorted(p[6:12] for p in wol_listener.received(quiet=QUIET_S)) == [
        bytes.fromhex("020000000001"),
        bytes.fromhex("020000000002"),
    ]
    early.run()  # comes up within the window: runs its job, then shuts down
    assert [entry["action"] for entry in early.power_log] == ["shutdown"]

    # The server's housekeeping removes the shutdown of the one that did not come up in time.
    wait_until(
        lambda: not keeps_a_shutdown(wol_world, container, late),
        timeout=EXPIRY_S + 60,
        interval=0.5,
        message="the shutdown of the computer that did not come up was not removed",
    )
    late.run()
    assert late.power_log == []
    assert {j[0]: j[3].name for j in jobs(wol_world, container)} == {
        "wol-early": "SUCCEEDED",
        "wol-late": "SUCCEEDED",
    }
