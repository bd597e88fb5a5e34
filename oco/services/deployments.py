"""Use cases of deployments: create (and preview), uninstall, edit, renew, delete job containers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from oco.db.models import (
    Computer,
    ComputerGroup,
    ComputerGroupMember,
    ComputerPackage,
    Package,
    PackageGroup,
    PackageGroupMember,
)
from oco.services.errors import InvalidInput, NotFound


@dataclass(frozen=True, slots=True)
class Targets:
    """What a deployment is about: computers and computer groups, packages and package groups."""

    computer_ids: Sequence[int] = ()
    computer_group_ids: Sequence[int] = ()
    package_ids: Sequence[int] = ()
    package_group_ids: Sequence[int] = ()


@dataclass(frozen=True, slots=True)
class ResolvedTargets:
    computers: list[Computer] = field(default_factory=list)
    packages: list[Package] = field(default_factory=list)


def resolve_targets(session: Session, targets: Targets) -> ResolvedTargets:
    """Load the target computers (with their assignments) and packages, groups expanded, order kept.

    Computers come in the order given, group members after; packages likewise, each package group in
    its own order. Duplicates are dropped at their second appearance. Unknown ids are refused.
    """
    computer_ids = _unique(
        [*targets.computer_ids, *_computer_group_members(session, targets.computer_group_ids)]
    )
    package_ids = _unique([*targets.package_ids, *_package_group_members(session, targets.package_group_ids)])
    if not computer_ids:
        raise InvalidInput("choose at least one computer or computer group", field="computers")
    if not package_ids:
        raise InvalidInput("choose at least one package or package group", field="packages")
    computers = _load(
        session,
        Computer,
        computer_ids,
        [
            selectinload(Computer.networks),
            selectinload(Computer.assignments)
            .selectinload(ComputerPackage.package)
            .selectinload(Package.family),
        ],
        "computer",
    )
    packages = _load(session, Package, package_ids, [selectinload(Package.family)], "package")
    return ResolvedTargets(computers=computers, packages=packages)


def _computer_group_members(session: Session, group_ids: Sequence[int]) -> list[int]:
    _require_all(session, ComputerGroup, group_ids, "computer group")
    members: list[int] = []
    for group_id in group_ids:
        query = (
            select(ComputerGroupMember.computer_id)
            .where(ComputerGroupMember.group_id == group_id)
            .order_by(ComputerGroupMember.id)
        )
        members.extend(session.scalars(query))
    return members


def _package_group_members(session: Session, group_ids: Sequence[int]) -> list[int]:
    _require_all(session, PackageGroup, group_ids, "package group")
    members: list[int] = []
    for group_id in group_ids:
        query = (
            select(PackageGroupMember.package_id)
            .where(PackageGroupMember.group_id == group_id)
            .order_by(PackageGroupMember.sequence)
        )
        members.extend(session.scalars(query))
    return members


def _require_all(session: Session, model: type, ids: Sequence[int], what: str) -> None:
    if not ids:
        return
    found = set(session.scalars(select(model.id).where(model.id.in_(ids))))  # type: ignore[attr-defined]
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"{what} {missing[0]} does not exist")


def _load(session: Session, model: type, ids: list[int], options: list, what: str) -> list:  # type: ignore[type-arg]
    rows = {row.id: row for row in session.scalars(select(model).where(model.id.in_(ids)).options(*options))}  # type: ignore[attr-defined]
    missing = [i for i in ids if i not in rows]
    if missing:
        raise NotFound(f"{what} {missing[0]} does not exist")
    return [rows[i] for i in ids]


def _unique(ids: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(ids))


def _now_or(value: datetime | None, now: datetime) -> datetime:
    return value if value is not None else now
