"""Wake-on-LAN: packets caught by a UDP listener on 127.0.0.1, and the shutdown-expiry rule both ways.

No packet ever leaves loopback: the configured WOL address is 127.0.0.1 and subnet broadcasts are off.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from oco.db.models import Computer, ComputerNetwork, Job
from oco.domain.wol import magic_packet
from oco.errors import NotFound
from oco.services import wol
from oco.services.runtime import Runtime
from tests.conftest import Clock, make_runtime
from tests.integration.test_deployments import add_computers, add_package, deploy
from tests.support import WolListener

MACS = {"pc1": "AA:BB:CC:DD:EE:01", "pc2": "aa-bb-cc-dd-ee-02", "pc3": "aabb.ccdd.ee03"}


@pytest.fixture
def wrt(database_url: str, tmp_path: Path, clock: Clock, wol_listener: WolListener) -> Iterator[Runtime]:
    runtime = make_runtime(
        database_url,
        tmp_path,
        clock,
        wol_addresses=["127.0.0.1"],
        wol_port=wol_listener.port,
        wol_subnet_broadcasts=False,
    )
    yield runtime
    runtime.close()


def computers_with_macs(rt: Runtime, clock: Clock, online: set[str]) -> dict[str, int]:
    ids = dict(zip(MACS, add_computers(rt, *MACS), strict=True))
    with rt.transaction() as session:
        for hostname, computer_id in ids.items():
            computer = session.get(Computer, computer_id)
            assert computer is not None
            computer.networks.append(
                ComputerNetwork(interface="eth0", address="192.0.2.10", mac=MACS[hostname])
            )
            computer.last_seen = clock.current if hostname in online else clock.current - timedelta(days=1)
    return ids


def shutdown_flags(rt: Runtime, container_id: int) -> dict[str, list[bool]]:
    """Which jobs carry the WOL shutdown mark (the read model shows only its effect, the post-action)."""
    with rt.transaction() as session:
        flags: dict[str, list[bool]] = {}
        for job in session.scalars(select(Job).where(Job.container_id == container_id).order_by(Job.id)):
            flags.setdefault(job.computer.hostname, []).append(job.wol_shutdown)
        return flags


def test_manual_wake_sends_one_packet_per_mac(wrt: Runtime, clock: Clock, wol_listener: WolListener) -> None:
    ids = computers_with_macs(wrt, clock, online=set())
    assert wol.wake_computers(wrt, [ids["pc1"], "pc2", str(ids["pc3"])]) == 3
    expected = {
        magic_packet(bytes.fromhex(m.replace(":", "").replace("-", "").replace(".", "")))
        for m in MACS.values()
    }
    packets = wol_listener.received()
    assert len(packets) == 3 and set(packets) == expected
    assert all(len(p) == 102 and p[:6] == b"\xff" * 6 for p in packets)


def test_waking_an_unknown_computer_sends_nothing(
    wrt: Runtime, clock: Clock, wol_listener: WolListener
) -> None:
    ids = computers_with_macs(wrt, clock, online=set())
    with pytest.raises(NotFound, match="computer 'nobody' does not exist"):
        wol.wake_computers(wrt, [ids["pc1"], "nobody"])
    assert wol_listener.received() == []


def test_a_deployment_wakes_offline_computers_only_and_marks_their_last_job(
    wrt: Runtime, clock: Clock, wol_listener: WolListener
) -> None:
    ids = computers_with_macs(wrt, clock, online={"pc3"})
    packages = [add_package(wrt, "A"), add_package(wrt, "B")]

    container = deploy(wrt, list(ids.values()), packages, wol=True, shutdown_waked=True)

    assert len(wol_listener.received()) == 2  # pc1 and pc2
    assert shutdown_flags(wrt, container) == {
        "pc1": [False, True],
        "pc2": [False, True],
        "pc3": [False, False],
    }


def test_woken_computers_keep_the_shutdown_others_lose_it(
    wrt: Runtime, clock: Clock, wol_listener: WolListener
) -> None:
    ids = computers_with_macs(wrt, clock, online=set())
    container = deploy(wrt, [ids["pc1"], ids["pc2"]], [add_package(wrt)], wol=True, shutdown_waked=True)
    assert len(wol_listener.received()) == 2

    clock.advance(seconds=120)  # pc1 comes up within WOL_SHUTDOWN_EXPIRY_SECONDS
    with wrt.transaction() as session:
        wol.mark_woken(session, wrt.settings, [(ids["pc1"], clock.current)])
    clock.advance(seconds=181)  # the window (300 s) is over
    with wrt.transaction() as session:
        assert wol.expire_wol_shutdowns(session, wrt.settings, clock.current) == 1
        wol.mark_woken(session, wrt.settings, [(ids["pc2"], clock.current)])  # switched on by a person, later

    assert shutdown_flags(wrt, container) == {"pc1": [True], "pc2": [False]}
    with wrt.transaction() as session:
        assert wol.expire_wol_shutdowns(session, wrt.settings, clock.current) == 0


def test_a_future_start_wakes_computers_when_it_is_reached(
    wrt: Runtime, clock: Clock, wol_listener: WolListener
) -> None:
    ids = computers_with_macs(wrt, clock, online=set())
    deploy(wrt, [ids["pc1"]], [add_package(wrt)], wol=True, start=clock.current + timedelta(hours=2))
    with wrt.transaction() as session:
        assert wol.send_due_packets(session, wrt.settings, clock.current) == 0
    assert wol_listener.received() == []

    clock.advance(hours=2)
    with wrt.transaction() as session:
        assert wol.send_due_packets(session, wrt.settings, clock.current) == 1
    with wrt.transaction() as session:
        assert wol.send_due_packets(session, wrt.settings, clock.current) == 0  # once per container
    assert len(wol_listener.received()) == 1


def test_subnet_broadcasts_come_from_the_stored_network_data(tmp_path: Path) -> None:
    """Only the list of destinations is computed here; nothing is sent."""
    from oco.config import Settings
    from oco.db.models import Computer

    settings = Settings(
        database_url="sqlite://", wol_addresses=["255.255.255.255"], wol_subnet_broadcasts=True
    )
    computer = Computer(hostname="pc")
    computer.networks = [
        ComputerNetwork(address="192.0.2.10", netmask="255.255.255.0", mac="aa:bb:cc:dd:ee:ff"),
        ComputerNetwork(address="198.51.100.7", netmask="255.255.0.0", broadcast="198.51.255.255"),
        ComputerNetwork(address="fe80::1", netmask="ffff:ffff:ffff:ffff::"),
    ]
    assert wol.destinations(settings, computer) == ["255.255.255.255", "192.0.2.255", "198.51.255.255"]
    quiet = Settings(database_url="sqlite://", wol_addresses=["127.0.0.1"], wol_subnet_broadcasts=False)
    assert wol.destinations(quiet, computer) == ["127.0.0.1"]
