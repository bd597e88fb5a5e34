"""Wake-on-LAN use cases: wake computers, wake a container's offline targets at its start, and
remove the automatic shutdown of computers that did not come up in time.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, bindparam, exists, select, update
from sqlalchemy.orm import Session, selectinload

from oco.config import Settings
from oco.db.models import Computer, Job, JobContainer, WolTarget
from oco.db.types import UTCDateTime
from oco.domain.errors import DomainError
from oco.domain.planning import wol_shutdown_carrier
from oco.domain.presence import is_online
from oco.domain.states import JobState
from oco.domain.wol import (
    magic_packet,
    parse_mac,
    subnet_broadcast,
    wake_window_over,
    wake_window_sent_bounds,
)
from oco.services.computers import Computers, selected_ids
from oco.services.listing import chunks
from oco.services.runtime import Runtime

log = logging.getLogger("oco.wol")


def destinations(settings: Settings, computer: Computer) -> list[str]:
    """Where a computer's packets go: the configured addresses, plus its subnets' broadcast addresses."""
    targets = list(settings.wol_addresses)
    if settings.wol_subnet_broadcasts:
        for network in computer.networks:
            broadcast = network.broadcast or subnet_broadcast(network.address, network.netmask)
            if broadcast and broadcast not in targets:
                targets.append(broadcast)
    return targets


def macs(computer: Computer) -> list[bytes]:
    """The computer's distinct, valid MAC addresses (interfaces without one are skipped)."""
    found: dict[bytes, None] = {}
    for network in computer.networks:
        if not network.mac:
            continue
        try:
            mac = parse_mac(network.mac)
        except DomainError:
            log.warning("computer %s: ignoring bad MAC %r", computer.hostname, network.mac)
            continue
        if any(mac) and mac != b"\xff" * 6:
            found[mac] = None
    return list(found)


def send_packets(settings: Settings, computers: Iterable[Computer]) -> int:
    """Send one magic packet per MAC and destination over UDP; returns how many were sent."""
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        for computer in computers:
            for mac in macs(computer):
                for address in destinations(settings, computer):
                    try:
                        sock.sendto(magic_packet(mac), (address, settings.wol_port))
                        sent += 1
                    except OSError as exc:
                        log.warning("WOL to %s via %s failed: %s", computer.hostname, address, exc)
    return sent


def wake_computers(rt: Runtime, computers: Computers) -> int:
    """Manual "Wake": magic packets for the computers (ids, hostnames, a selection) now; how many were sent.

    NotFound names a computer that does not exist, and then nothing is sent.
    """
    with rt.reading() as session:
        computer_ids = selected_ids(session, computers, rt.now(), rt.settings.computer_offline_seconds)
        targets = [
            computer
            for chunk in chunks(computer_ids)
            for computer in session.scalars(
                select(Computer).where(Computer.id.in_(chunk)).options(selectinload(Computer.networks))
            )
        ]
    return send_packets(rt.settings, targets)


def send_container_packets(
    session: Session, settings: Settings, container: JobContainer, now: datetime
) -> int:
    """At a container's start: wake its offline targets once; online ones are never shut down."""
    targets = list(
        session.scalars(
            select(WolTarget).where(WolTarget.container_id == container.id, WolTarget.sent.is_(None))
        )
    )
    computers = {
        c.id: c
        for chunk in chunks([t.computer_id for t in targets])
        for c in session.scalars(
            select(Computer).where(Computer.id.in_(chunk)).options(selectinload(Computer.networks))
        )
    }
    offline = []
    for target in targets:
        computer = computers[target.computer_id]
        if is_online(computer.last_seen, now, settings.computer_offline_seconds):
            target.expired = True
            _set_wol_shutdown(session, container, computer.id, False)
            continue
        target.sent = now
        offline.append(computer)
        _set_wol_shutdown(session, container, computer.id, container.shutdown_waked)
    container.wol_sent = now
    return send_packets(settings, offline)


def _set_wol_shutdown(session: Session, container: JobContainer, computer_id: int, wanted: bool) -> None:
    jobs = list(
        session.scalars(
            select(Job)
            .where(Job.container_id == container.id, Job.computer_id == computer_id)
            .order_by(Job.sequence)
        )
    )
    carrier = wol_shutdown_carrier([JobState(job.state) for job in jobs]) if wanted else None
    for index, job in enumerate(jobs):
        job.wol_shutdown = index == carrier


def send_due_packets(session: Session, settings: Settings, now: datetime) -> int:
    """Housekeeping: wake the targets of every enabled WOL container whose start has come."""
    due = session.scalars(
        select(JobContainer).where(
            JobContainer.wol.is_(True),
            JobContainer.wol_sent.is_(None),
            JobContainer.enabled.is_(True),
            JobContainer.start_time <= now,
        )
    )
    return sum(send_container_packets(session, settings, container, now) for container in list(due))


_MARK_WOKEN = (
    update(WolTarget)
    .where(
        WolTarget.computer_id == bindparam("p_computer"),
        WolTarget.woken.is_(None),
        WolTarget.expired.is_(False),
        WolTarget.sent.is_not(None),
        WolTarget.sent >= bindparam("p_earliest", type_=UTCDateTime()),
        WolTarget.sent <= bindparam("p_latest", type_=UTCDateTime()),
    )
    .values(woken=bindparam("p_seen", type_=UTCDateTime()))
)
_AWAITED = select(WolTarget.computer_id).where(
    WolTarget.sent.is_not(None), WolTarget.woken.is_(None), WolTarget.expired.is_(False)
)


AWAITED = (
    exists()
    .where(
        WolTarget.computer_id == Computer.id,
        WolTarget.sent.is_not(None),
        WolTarget.woken.is_(None),
        WolTarget.expired.is_(False),
    )
    .label("wol_awaited")
)
"""A column of a query over computers: the computer is a Wake-on-LAN target not seen yet."""


def mark_computer_woken(
    connection: Connection, settings: Settings, computer_id: int, moments: Iterable[datetime]
) -> None:
    """One computer's check-ins (at `moments`) inside a window prove the packets worked: it keeps its
    shutdown. For a computer the caller found awaited (`AWAITED`)."""
    parameters = []
    for seen in moments:
        earliest, latest = wake_window_sent_bounds(seen, settings.wol_shutdown_expiry_seconds)
        parameters.append(
            {"p_computer": computer_id, "p_earliest": earliest, "p_latest": latest, "p_seen": seen}
        )
    connection.execute(_MARK_WOKEN, parameters)


def mark_woken(session: Session, settings: Settings, check_ins: Iterable[tuple[int, datetime]]) -> None:
    """Check-ins (computer id, time) inside a window prove the packets worked: those computers keep
    their shutdown. Only computers still awaited are updated, in one batched UPDATE."""
    connection = session.connection()
    awaited = set(connection.scalars(_AWAITED))
    parameters = []
    for computer_id, seen in check_ins:
        if computer_id in awaited:
            earliest, latest = wake_window_sent_bounds(seen, settings.wol_shutdown_expiry_seconds)
            parameters.append(
                {"p_computer": computer_id, "p_earliest": earliest, "p_latest": latest, "p_seen": seen}
            )
    if parameters:
        connection.execute(_MARK_WOKEN, parameters)


def expire_wol_shutdowns(session: Session, settings: Settings, now: datetime) -> int:
    """Housekeeping: computers that did not check in within the window lose the automatic shutdown."""
    expired = 0
    pending = session.scalars(
        select(WolTarget).where(
            WolTarget.sent.is_not(None), WolTarget.woken.is_(None), WolTarget.expired.is_(False)
        )
    )
    for target in list(pending):
        if target.sent is None or not wake_window_over(
            target.sent, now, settings.wol_shutdown_expiry_seconds
        ):
            continue
        target.expired = True
        session.execute(
            update(Job)
            .where(Job.container_id == target.container_id, Job.computer_id == target.computer_id)
            .values(wol_shutdown=False)
            .execution_options(synchronize_session=False)
        )
        expired += 1
    return expired
