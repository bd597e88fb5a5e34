"""What a deployment is about: the target computers and packages, groups expanded, as the planner sees them.

`resolve_targets` loads the rows; `target_computer` and `package_to_deploy` map them to the domain's
`TargetComputer` and `PackageToDeploy`, which `oco.domain.planning` plans with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.interfaces import ORMOption

from oco.db.models import Computer, ComputerPackage, Package
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
from oco.services.listing import PageRequest, chunks
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
    """The loaded target rows: computers with their assignments, packages with their families."""

    computers: list[Computer] = field(default_factory=list)
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
        chosen = load_computers(session, [i for i in dict.fromkeys(selected)]) if selected else []
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
        computers=load_computers(session, computer_ids),
        packages=_load(session, Package, package_ids, [selectinload(Package.family)], "package"),
    )


def load_computers(session: Session, computer_ids: list[int]) -> list[Computer]:
    """The computers with these ids, in this order, with their assignments' packages loaded."""
    options: list[ORMOption] = [
        selectinload(Computer.assignments).selectinload(ComputerPackage.package).selectinload(Package.family)
    ]
    return _load(session, Computer, computer_ids, options, "computer")


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


def target_computer(computer: Computer, now: datetime, offline_seconds: int) -> TargetComputer:
    """The planner's view of a loaded computer: inventory, online or not, and its assignments."""
    return TargetComputer(
        id=computer.id,
        hostname=computer.hostname,
        os=computer.os,
        os_version=computer.os_version,
        architecture=computer.architecture,
        online=is_online(computer.last_seen, now, offline_seconds),
        installed=tuple(
            InstalledPackage(
                package_id=a.package_id,
                family_id=a.package.family_id,
                name=a.package.display_name,
                uninstall_procedure=a.package.uninstall_procedure,
                uninstall_success_codes=a.package.uninstall_success_codes,
                uninstall_post_action=PostAction(a.package.uninstall_post_action),
            )
            for a in computer.assignments
        ),
    )


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
