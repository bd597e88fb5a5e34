"""Use cases of assignments: which package versions a computer has installed (seed "Remove Package
Assignments")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from oco.db.models import ComputerPackage, Package
from oco.errors import Conflict, InvalidInput, NotFound
from oco.services import audit
from oco.services.computers import ComputerQuery, ComputerRef, find_computer, matching_computers
from oco.services.listing import chunks
from oco.services.packages import get_package
from oco.services.runtime import Runtime
from oco.services.views import AssignmentPublic, assignment_view


def add_assignment(rt: Runtime, computer: ComputerRef, package_id: int, actor: str) -> AssignmentPublic:
    """Record by hand that a package is installed on a computer (e.g. installed before OCO)."""
    with rt.transaction() as session:
        found = find_computer(session, computer)
        package = get_package(session, package_id)
        if _find(session, found.id, package.id) is not None:
            raise Conflict(f"{package.display_name} is already assigned to {found.hostname}")
        assignment = ComputerPackage(computer_id=found.id, package_id=package.id)
        session.add(assignment)
        session.flush()
        audit.record(session, actor, "assignment.create", "computer", found.id, package=package.id)
        session.refresh(assignment, ["computer", "package"])
        return assignment_view(assignment)


@dataclass(frozen=True, slots=True)
class InstalledSelection:
    """Assignments of one package, as its page selects them: the ids chosen must be of that package,
    and with `computers`, the package's assignments on every computer that matches are added."""

    package_id: int
    computers: ComputerQuery | None = None


def remove_assignments(
    rt: Runtime, assignment_ids: Sequence[int], actor: str, *, installed: InstalledSelection | None = None
) -> int:
    """Remove assignments by id (all must exist), and those `installed` selects, without uninstalling
    anything. Returns how many."""
    with rt.transaction() as session:
        wanted = selected_assignments(
            session, assignment_ids, installed, rt.now(), rt.settings.computer_offline_seconds
        )
        rows = [
            row
            for chunk in chunks(wanted)
            for row in session.scalars(select(ComputerPackage).where(ComputerPackage.id.in_(chunk)))
        ]
        missing = set(wanted) - {row.id for row in rows}
        if missing:
            raise NotFound(f"assignment(s) {sorted(missing)} do not exist")
        for row in rows:
            session.delete(row)
            audit.record(
                session, actor, "assignment.remove", "computer", row.computer_id, package=row.package_id
            )
        return len(rows)


def computers_of(
    rt: Runtime, assignment_ids: Sequence[int], installed: InstalledSelection | None = None
) -> list[int]:
    """The computers of these assignments (of `installed`'s package, if given), in order, each once."""
    with rt.reading() as session:
        assignment_ids = selected_assignments(
            session, assignment_ids, installed, rt.now(), rt.settings.computer_offline_seconds
        )
        by_id = {
            assignment_id: computer_id
            for chunk in chunks(list(assignment_ids))
            for assignment_id, computer_id in session.execute(
                select(ComputerPackage.id, ComputerPackage.computer_id).where(ComputerPackage.id.in_(chunk))
            )
        }
        missing = [i for i in assignment_ids if i not in by_id]
        if missing:
            raise NotFound(f"assignment {missing[0]} does not exist")
        return list(dict.fromkeys(by_id[i] for i in assignment_ids))


def remove_assignment(rt: Runtime, computer: ComputerRef, package_id: int, actor: str) -> None:
    """Remove the assignment of a package on a computer, without uninstalling anything."""
    with rt.transaction() as session:
        found = find_computer(session, computer)
        package = get_package(session, package_id)
        assignment = _find(session, found.id, package.id)
        if assignment is None:
            raise NotFound(f"{package.display_name} is not assigned to {found.hostname}")
        session.delete(assignment)
        audit.record(session, actor, "assignment.remove", "computer", found.id, package=package.id)


def selected_assignments(
    session: Session,
    assignment_ids: Sequence[int],
    installed: InstalledSelection | None,
    now: datetime,
    offline_seconds: int,
) -> list[int]:
    """The ids of the assignments given, then of those `installed` selects, each once."""
    ids = list(assignment_ids)
    if installed is None:
        return list(dict.fromkeys(ids))
    package = get_package(session, installed.package_id)
    for chunk in chunks(ids):
        stray = session.scalar(
            select(ComputerPackage.id).where(
                ComputerPackage.id.in_(chunk), ComputerPackage.package_id != package.id
            )
        )
        if stray is not None:
            raise NotFound(f"assignment {stray} is not one of {package.display_name}")
    if installed.computers is not None:
        computers = matching_computers(installed.computers, now, offline_seconds)
        ids += session.scalars(
            select(ComputerPackage.id)
            .where(
                ComputerPackage.package_id == installed.package_id, ComputerPackage.computer_id.in_(computers)
            )
            .order_by(ComputerPackage.id)
        )
    return list(dict.fromkeys(ids))


def assignment_ids(
    session: Session, computers: Sequence[ComputerRef], package_ids: Sequence[int]
) -> list[int]:
    """The assignments of these packages on these computers, computer by computer in the order given.

    A computer that has some of the packages loses those it has; NotFound names a package none of the
    computers has, or a computer that has none of the packages.
    """
    found = [find_computer(session, computer) for computer in dict.fromkeys(computers)]
    packages = [get_package(session, package_id) for package_id in dict.fromkeys(package_ids)]
    if not packages:
        raise InvalidInput("name at least one package to uninstall", field="packages")
    assigned = {
        (computer_id, package_id): assignment_id
        for chunk in chunks([computer.id for computer in found])
        for assignment_id, computer_id, package_id in session.execute(
            select(ComputerPackage.id, ComputerPackage.computer_id, ComputerPackage.package_id).where(
                ComputerPackage.computer_id.in_(chunk),
                ComputerPackage.package_id.in_([package.id for package in packages]),
            )
        )
    }
    for package in packages:
        if not any((computer.id, package.id) in assigned for computer in found):
            where = found[0].hostname if len(found) == 1 else f"any of the {len(found)} computers"
            raise NotFound(f"{package.display_name} is not assigned to {where}")
    for computer in found:
        if not any((computer.id, package.id) in assigned for package in packages):
            raise NotFound(f"{computer.hostname} has none of the packages to uninstall")
    return [
        assigned[(computer.id, package.id)]
        for computer in found
        for package in packages
        if (computer.id, package.id) in assigned
    ]


def _find(session: Session, computer_id: int, package_id: int) -> ComputerPackage | None:
    return session.scalar(
        select(ComputerPackage)
        .where(ComputerPackage.computer_id == computer_id, ComputerPackage.package_id == package_id)
        .options(selectinload(ComputerPackage.package).selectinload(Package.family))
    )
