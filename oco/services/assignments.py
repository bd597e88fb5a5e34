"""Use cases of assignments: which package versions a computer has installed."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from oco.db.models import Computer, ComputerPackage, Package
from oco.services import audit
from oco.services.errors import Conflict, NotFound


def add_assignment(session: Session, computer: Computer, package: Package, actor: str) -> ComputerPackage:
    """Record by hand that `package` is installed on `computer` (e.g. installed before OCO)."""
    if _find(session, computer.id, package.id) is not None:
        raise Conflict(f"{package.display_name} is already assigned to {computer.hostname}")
    assignment = ComputerPackage(computer_id=computer.id, package_id=package.id)
    session.add(assignment)
    session.flush()
    audit.record(session, actor, "assignment.create", "computer", computer.id, package=package.id)
    return assignment


def remove_assignments(session: Session, assignment_ids: list[int], actor: str) -> int:
    """Remove assignments by id (the seed's "Remove Assignment"); all must exist."""
    rows = list(session.scalars(select(ComputerPackage).where(ComputerPackage.id.in_(assignment_ids))))
    missing = set(assignment_ids) - {row.id for row in rows}
    if missing:
        raise NotFound(f"assignment(s) {sorted(missing)} do not exist")
    for row in rows:
        session.delete(row)
        audit.record(session, actor, "assignment.remove", "computer", row.computer_id, package=row.package_id)
    return len(rows)


def find_assignment(session: Session, computer: Computer, package: Package) -> ComputerPackage:
    assignment = _find(session, computer.id, package.id)
    if assignment is None:
        raise NotFound(f"{package.display_name} is not assigned to {computer.hostname}")
    return assignment


def _find(session: Session, computer_id: int, package_id: int) -> ComputerPackage | None:
    return session.scalar(
        select(ComputerPackage).where(
            ComputerPackage.computer_id == computer_id, ComputerPackage.package_id == package_id
        )
    )
