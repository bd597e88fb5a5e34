"""Use cases of computers, computer groups and package groups."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session, selectinload

from oco.db.models import (
    Computer,
    ComputerGroup,
    ComputerGroupMember,
    ComputerPackage,
    Job,
    Package,
    PackageGroup,
    PackageGroupMember,
)
from oco.domain.hostnames import hostname_key
from oco.services import audit
from oco.services.errors import Conflict, InvalidInput, NotFound

HOSTNAME_MAX = 255


def add_computer(session: Session, hostname: str, actor: str, notes: str = "") -> Computer:
    """Pre-create a computer; its agent may then register with the registration key."""
    name = normalise_hostname(hostname)
    if computer_id_by_hostname(session, name) is not None:
        raise Conflict(f"computer {name!r} already exists", field="hostname")
    computer = Computer(hostname=name, notes=notes)
    session.add(computer)
    session.flush()
    audit.record(session, actor, "computer.create", "computer", computer.id, hostname=name)
    return computer


def normalise_hostname(hostname: str) -> str:
    """Hostnames are stored without their domain part, as OCO agents send them."""
    name = hostname.strip().split(".", 1)[0]
    if not name:
        raise InvalidInput("hostname must not be empty", field="hostname")
    if len(hostname_key(name)) > HOSTNAME_MAX or any(c.isspace() for c in name):
        raise InvalidInput(f"hostname {hostname!r} is not valid", field="hostname")
    return name


def computer_id_by_hostname(session: Session | Connection, hostname: str) -> int | None:
    """Hostnames are compared without regard to case, as DNS and Windows do (indexed)."""
    return session.scalar(select(Computer.id).where(Computer.hostname_key == hostname_key(hostname)))


def list_computers(session: Session) -> list[Computer]:
    query = select(Computer).options(selectinload(Computer.networks)).order_by(Computer.hostname)
    return list(session.scalars(query))


def get_computer(session: Session, computer_id: int) -> Computer:
    computer = session.get(
        Computer,
        computer_id,
        options=[
            selectinload(Computer.networks),
            selectinload(Computer.assignments)
            .selectinload(ComputerPackage.package)
            .selectinload(Package.family),
        ],
    )
    if computer is None:
        raise NotFound(f"computer {computer_id} does not exist")
    return computer


def find_computer(session: Session, reference: str) -> Computer:
    """A computer by id (digits) or hostname."""
    if reference.isdigit():
        return get_computer(session, int(reference))
    computer_id = computer_id_by_hostname(session, normalise_hostname(reference))
    if computer_id is None:
        raise NotFound(f"computer {reference!r} does not exist")
    return get_computer(session, computer_id)


def delete_computer(session: Session, computer_id: int, actor: str) -> None:
    """Forget a computer with its assignments, jobs and group memberships."""
    computer = get_computer(session, computer_id)
    session.execute(Job.__table__.delete().where(Job.computer_id == computer_id))
    session.delete(computer)
    audit.record(session, actor, "computer.delete", "computer", computer_id, hostname=computer.hostname)


def is_online(computer: Computer, now: datetime, offline_seconds: int) -> bool:
    """A computer is online while its last check-in is recent."""
    return computer.last_seen is not None and now - computer.last_seen < timedelta(seconds=offline_seconds)


def job_history(session: Session, computer_id: int) -> list[Job]:
    """The computer's jobs, newest first."""
    query = (
        select(Job)
        .where(Job.computer_id == computer_id)
        .options(selectinload(Job.container))
        .order_by(Job.id.desc())
    )
    return list(session.scalars(query))


# Computer groups ----------------------------------------------------------------------------------


def add_computer_group(session: Session, name: str, actor: str) -> ComputerGroup:
    group_name = _group_name(name)
    if session.scalar(select(ComputerGroup.id).where(ComputerGroup.name == group_name)):
        raise Conflict(f"computer group {group_name!r} already exists", field="name")
    group = ComputerGroup(name=group_name)
    session.add(group)
    session.flush()
    audit.record(session, actor, "computer_group.create", "computer_group", group.id, name=group_name)
    return group


def list_computer_groups(session: Session) -> list[ComputerGroup]:
    query = (
        select(ComputerGroup)
        .options(selectinload(ComputerGroup.members).selectinload(ComputerGroupMember.computer))
        .order_by(ComputerGroup.name)
    )
    return list(session.scalars(query))


def find_computer_group(session: Session, reference: str) -> ComputerGroup:
    """A computer group by id (digits) or name."""
    condition = (
        ComputerGroup.id == int(reference) if reference.isdigit() else ComputerGroup.name == reference.strip()
    )
    group = session.scalar(
        select(ComputerGroup)
        .where(condition)
        .options(selectinload(ComputerGroup.members).selectinload(ComputerGroupMember.computer))
    )
    if group is None:
        raise NotFound(f"computer group {reference!r} does not exist")
    return group


def add_computers_to_group(
    session: Session, group: ComputerGroup, computers: Sequence[Computer], actor: str
) -> None:
    present = {member.computer_id for member in group.members}
    for computer in computers:
        if computer.id not in present:
            group.members.append(ComputerGroupMember(computer_id=computer.id))
            present.add(computer.id)
    audit.record(
        session, actor, "computer_group.add", "computer_group", group.id, computers=[c.id for c in computers]
    )


def remove_computers_from_group(
    session: Session, group: ComputerGroup, computers: Sequence[Computer], actor: str
) -> None:
    removed = {computer.id for computer in computers}
    group.members = [member for member in group.members if member.computer_id not in removed]
    audit.record(
        session, actor, "computer_group.remove", "computer_group", group.id, computers=sorted(removed)
    )


def delete_computer_group(session: Session, group: ComputerGroup, actor: str) -> None:
    session.delete(group)
    audit.record(session, actor, "computer_group.delete", "computer_group", group.id, name=group.name)


# Package groups -----------------------------------------------------------------------------------


def add_package_group(session: Session, name: str, actor: str) -> PackageGroup:
    group_name = _group_name(name)
    if session.scalar(select(PackageGroup.id).where(PackageGroup.name == group_name)):
        raise Conflict(f"package group {group_name!r} already exists", field="name")
    group = PackageGroup(name=group_name)
    session.add(group)
    session.flush()
    audit.record(session, actor, "package_group.create", "package_group", group.id, name=group_name)
    return group


def list_package_groups(session: Session) -> list[PackageGroup]:
    query = (
        select(PackageGroup)
        .options(
            selectinload(PackageGroup.members)
            .selectinload(PackageGroupMember.package)
            .selectinload(Package.family)
        )
        .order_by(PackageGroup.name)
    )
    return list(session.scalars(query))


def find_package_group(session: Session, reference: str) -> PackageGroup:
    """A package group by id (digits) or name."""
    condition = (
        PackageGroup.id == int(reference) if reference.isdigit() else PackageGroup.name == reference.strip()
    )
    group = session.scalar(
        select(PackageGroup)
        .where(condition)
        .options(
            selectinload(PackageGroup.members)
            .selectinload(PackageGroupMember.package)
            .selectinload(Package.family)
        )
    )
    if group is None:
        raise NotFound(f"package group {reference!r} does not exist")
    return group


def add_packages_to_group(
    session: Session, group: PackageGroup, packages: Sequence[Package], actor: str
) -> None:
    """Append packages to the end of the group, keeping the order given."""
    present = {member.package_id for member in group.members}
    next_sequence = max((member.sequence for member in group.members), default=0) + 1
    for package in packages:
        if package.id in present:
            continue
        group.members.append(PackageGroupMember(package_id=package.id, sequence=next_sequence))
        present.add(package.id)
        next_sequence += 1
    audit.record(
        session, actor, "package_group.add", "package_group", group.id, packages=[p.id for p in packages]
    )


def remove_packages_from_group(
    session: Session, group: PackageGroup, packages: Sequence[Package], actor: str
) -> None:
    removed = {package.id for package in packages}
    group.members = [member for member in group.members if member.package_id not in removed]
    audit.record(session, actor, "package_group.remove", "package_group", group.id, packages=sorted(removed))


def order_package_group(
    session: Session, group: PackageGroup, package_ids: Sequence[int], actor: str
) -> None:
    """Put the group's packages in the order given, which must name each member exactly once."""
    by_package = {member.package_id: member for member in group.members}
    if sorted(package_ids) != sorted(by_package):
        raise InvalidInput(
            f"the new order of group {group.name!r} must name each of its packages once: "
            f"{sorted(by_package)}, not {list(package_ids)}",
            field="ids",
        )
    for sequence, package_id in enumerate(package_ids, start=1):
        by_package[package_id].sequence = sequence
    group.members.sort(key=lambda member: member.sequence)
    audit.record(session, actor, "package_group.order", "package_group", group.id, packages=list(package_ids))


def move_package_in_group(
    session: Session, group: PackageGroup, package_id: int, steps: int, actor: str
) -> None:
    """Move one package `steps` places later in the group (negative: earlier), stopping at either end."""
    order = [member.package_id for member in group.members]
    if package_id not in order:
        raise NotFound(f"package {package_id} is not in group {group.name!r}")
    index = order.index(package_id)
    order.insert(min(max(index + steps, 0), len(order) - 1), order.pop(index))
    order_package_group(session, group, order, actor)


def delete_package_group(session: Session, group: PackageGroup, actor: str) -> None:
    session.delete(group)
    audit.record(session, actor, "package_group.delete", "package_group", group.id, name=group.name)


def _group_name(name: str) -> str:
    group_name = name.strip()
    if not group_name:
        raise InvalidInput("group name must not be empty", field="name")
    return group_name


def count_computers(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Computer)) or 0
