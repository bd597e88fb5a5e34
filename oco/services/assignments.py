"""Use cases of assignments: which package versions a computer has installed (seed "Remove Package
Assignments")."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from oco.db.models import ComputerPackage, Package
from oco.errors import Conflict, NotFound
from oco.services import audit
from oco.services.computers import ComputerRef, find_computer
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


def remove_assignments(rt: Runtime, assignment_ids: Sequence[int], actor: str) -> int:
    """Remove assignments by id without uninstalling anything; all must exist. Returns how many."""
    with rt.transaction() as session:
        rows = list(
            session.scalars(select(ComputerPackage).where(ComputerPackage.id.in_(list(assignment_ids))))
        )
        missing = set(assignment_ids) - {row.id for row in rows}
        if missing:
            raise NotFound(f"assignment(s) {sorted(missing)} do not exist")
        for row in rows:
            session.delete(row)
            audit.record(
                session, actor, "assignment.remove", "computer", row.computer_id, package=row.package_id
            )
        return len(rows)


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


def assignment_ids(session: Session, computer: ComputerRef, package_ids: Sequence[int]) -> list[int]:
    """The assignments of these packages on one computer, in the order given; NotFound names a package
    that is not installed there."""
    found = find_computer(session, computer)
    ids = []
    for package_id in package_ids:
        package = get_package(session, package_id)
        assignment = _find(session, found.id, package.id)
        if assignment is None:
            raise NotFound(f"{package.display_name} is not assigned to {found.hostname}")
        ids.append(assignment.id)
    return ids


def _find(session: Session, computer_id: int, package_id: int) -> ComputerPackage | None:
    return session.scalar(
        select(ComputerPackage)
        .where(ComputerPackage.computer_id == computer_id, ComputerPackage.package_id == package_id)
        .options(selectinload(ComputerPackage.package).selectinload(Package.family))
    )
