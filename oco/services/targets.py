"""What a deployment is about: the target computers and packages, groups expanded, as the planner sees them.

`resolve_targets` loads them: computers straight into the domain's `TargetComputer`, packages as rows
that `package_to_deploy` maps to `PackageToDeploy`; `oco.domain.planning` plans with those.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.interfaces import ORMOption

from oco.db.models import Computer, ComputerNetwork, ComputerPackage, Package
from oco.domain.planning import InstalledPackage, PackageToDeploy, TargetComputer
from oco.domain.presence import is_online
from oco.domain.states import PostAction, UpgradeBehavior
from oco.errors import InvalidInput, NotFound
from oco.services.computers import (
    ComputerQuery,
    ComputerRef,
    matching_computer_ids,
    resolve_computer_ids,
    search_computers_in,
)
from oco.services.groups import (
    GroupRef,
    all_package_groups,
    computer_group_members,
    group_summaries,
    package_group_members,
)
from oco.services.listing import UNCACHED, PageRequest, chunks, ids_in
from oco.services.packages import all_families
from oco.services.runtime import Runtime
from oco.services.views import TargetChoices, computer_view, family_view, package_group_view


@dataclass(frozen=True, slots=True)
class Targets:
    """Computers and computer groups, packages and package groups, each in the order given.

    Computers are ids or hostnames, groups ids or names, packages ids; `matching` adds every computer
    that matches a list's filter.
    """

    computers: Sequence[ComputerRef] = ()
    computer_groups: Sequence[GroupRef] = ()
    packages: Sequence[int] = ()
    package_groups: Sequence[GroupRef] = ()
    matching: ComputerQuery | None = None
    """Every computer that matches this filter, too (a selection of "all matching" in a list)."""


@dataclass(frozen=True, slots=True)
class ResolvedTargets:
    """The targets as the planner sees them: computers with their assignments, packages with their
    families loaded."""

    computers: list[TargetComputer] = field(default_factory=list)
    packages: list[Package] = field(default_factory=list)


PICKER_LIMIT = 100
"""Computers the assistant lists for a search; beyond that the admin narrows the search or picks a group
or a filter ("all matching")."""


def target_choices(
    rt: Runtime, selected: Sequence[int] = (), search: str = "", matching: ComputerQuery | None = None
) -> TargetChoices:
    """What the Deployment Assistant offers: the selected computers, then up to PICKER_LIMIT that match
    `search`; computer groups with their sizes; package families and package groups; and how many
    computers an "all matching" filter selects."""
    now, offline = rt.now(), rt.settings.computer_offline_seconds
    with rt.reading() as session:
        chosen = _load(session, Computer, list(dict.fromkeys(selected)), [], "computer") if selected else []
        found = search_computers_in(
            session, ComputerQuery(search=search), PageRequest(1, PICKER_LIMIT), now, offline
        )
        chosen_ids = {c.id for c in chosen}
        return TargetChoices(
            computers=[computer_view(c, now, offline) for c in chosen]
            + [c for c in found.items if c.id not in chosen_ids],
            found=found.total,
            computer_groups=group_summaries(session),
            families=[family_view(f) for f in all_families(session)],
            package_groups=[package_group_view(g) for g in all_package_groups(session)],
            matching=len(matching_computer_ids(session, matching, now, offline)) if matching else None,
        )


def resolve_targets(
    session: Session, targets: Targets, now: datetime, offline_seconds: int
) -> ResolvedTargets:
    """Load the target computers (with their assignments) and packages, groups expanded, order kept.

    Computers come in the order given, group members after; packages likewise, each package group in
    its own order. Duplicates are dropped at their second appearance. Unknown ones are refused.
    """
    computer_ids = _unique(
        [
            *resolve_computer_ids(session, targets.computers),
            *computer_group_members(session, targets.computer_groups),
            *(
                matching_computer_ids(session, targets.matching, now, offline_seconds)
                if targets.matching
                else []
            ),
        ]
    )
    package_ids = _unique([*targets.packages, *package_group_members(session, targets.package_groups)])
    if not computer_ids:
        raise InvalidInput("choose at least one computer or computer group", field="computers")
    if not package_ids:
        raise InvalidInput("choose at least one package or package group", field="packages")
    return ResolvedTargets(
        computers=target_computers(session, computer_ids, now, offline_seconds),
        packages=_load(session, Package, package_ids, [selectinload(Package.family)], "package"),
    )


def target_computers(
    session: Session, computer_ids: list[int], now: datetime, offline_seconds: int
) -> list[TargetComputer]:
    """The planner's view of these computers, in this order: inventory, online or not, assignments.

    Read as plain rows, each package once however many computers have it: a deployment to 10,000
    computers loads no ORM objects for them. The first missing id is named.
    """
    rows = {
        row.id: row
        for chunk in chunks(computer_ids)
        for row in session.execute(
            select(
                Computer.id,
                Computer.hostname,
                Computer.os,
                Computer.os_version,
                Computer.architecture,
                Computer.last_seen,
                Computer.remote_address,
            ).where(ids_in(Computer.id, chunk)),
            execution_options=UNCACHED,
        )
    }
    missing = [i for i in computer_ids if i not in rows]
    if missing:
        raise NotFound(f"computer {missing[0]} does not exist")
    assigned: dict[int, list[int]] = {}
    for chunk in chunks(computer_ids):
        assignments = (
            select(ComputerPackage.computer_id, ComputerPackage.package_id)
            .where(ids_in(ComputerPackage.computer_id, chunk))
            .order_by(ComputerPackage.id)
        )
        for computer_id, package_id in session.execute(assignments, execution_options=UNCACHED):
            assigned.setdefault(computer_id, []).append(package_id)
    with_mac = {
        computer_id
        for chunk in chunks(computer_ids)
        for computer_id in session.scalars(
            select(ComputerNetwork.computer_id)
            .where(ids_in(ComputerNetwork.computer_id, chunk), ComputerNetwork.mac != "")
            .distinct(),
            execution_options=UNCACHED,
        )
    }
    installed = _installed_packages(session, {i for ids in assigned.values() for i in ids})
    return [
        TargetComputer(
            id=row.id,
            hostname=row.hostname,
            os=row.os,
            os_version=row.os_version,
            architecture=row.architecture,
            online=is_online(row.last_seen, now, offline_seconds),
            installed=tuple(installed[i] for i in assigned.get(row.id, ())),
            seen=row.last_seen is not None,
            mac_known=row.id in with_mac,
            address=row.remote_address,
        )
        for row in (rows[i] for i in computer_ids)
    ]


def _installed_packages(session: Session, package_ids: set[int]) -> dict[int, InstalledPackage]:
    """What the planner needs to know of installed packages, by id."""
    loaded = _load(session, Package, sorted(package_ids), [selectinload(Package.family)], "package")
    return {
        package.id: InstalledPackage(
            package_id=package.id,
            family_id=package.family_id,
            name=package.display_name,
            uninstall_procedure=package.uninstall_procedure,
            uninstall_success_codes=package.uninstall_success_codes,
            uninstall_post_action=PostAction(package.uninstall_post_action),
        )
        for package in loaded
    }


_Row = TypeVar("_Row", Computer, Package)


def _load(
    session: Session, model: type[_Row], ids: list[int], options: list[ORMOption], what: str
) -> list[_Row]:
    """The rows with these ids, in the order of `ids`; the first missing one is named."""
    rows = {
        row.id: row
        for chunk in chunks(ids)
        for row in session.scalars(select(model).where(model.id.in_(chunk)).options(*options))
    }
    missing = [i for i in ids if i not in rows]
    if missing:
        raise NotFound(f"{what} {missing[0]} does not exist")
    return [rows[i] for i in ids]


def _unique(ids: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(ids))


def package_to_deploy(package: Package) -> PackageToDeploy:
    """The planner's view of a loaded package: install settings and compatibility."""
    return PackageToDeploy(
        id=package.id,
        family_id=package.family_id,
        name=package.display_name,
        install_procedure=package.install_procedure,
        install_success_codes=package.install_success_codes,
        install_post_action=PostAction(package.install_post_action),
        upgrade_behavior=UpgradeBehavior(package.upgrade_behavior),
        compatible_os=package.compatible_os,
        compatible_os_version=package.compatible_os_version,
        compatible_architecture=package.compatible_architecture,
    )
