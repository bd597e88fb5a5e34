"""Use cases of computer groups (deployment targets) and package groups (ordered package sets).

A group is referred to by its id or its name (`GroupRef`); members are referred to as the use case says.
Every use case loads what it needs itself and answers with the group as it is afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

from sqlalchemy import ColumnElement, Select, delete, func, select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.interfaces import ORMOption

from oco.db.bulk import insert_rows
from oco.db.models import (
    ComputerGroup,
    ComputerGroupMember,
    Package,
    PackageGroup,
    PackageGroupMember,
)
from oco.errors import Conflict, InvalidInput, NotFound
from oco.services import audit
from oco.services.computers import (
    ComputerQuery,
    Computers,
    export_computers,
    search_computers_in,
    selected_ids,
    shown_reference,
)
from oco.services.listing import (
    UNCACHED,
    Column,
    PageRequest,
    chunks,
    contains,
    distinct_words,
    fetch_page,
    ids_in,
)
from oco.services.packages import all_families, resolve_package_ids
from oco.services.runtime import Runtime
from oco.services.views import (
    ComputerGroupPagePublic,
    ComputerGroupPublic,
    ComputerPublic,
    GroupsPagePublic,
    GroupSummaryPublic,
    MembershipChangePublic,
    PackageGroupPublic,
    computer_group_view,
    family_view,
    package_group_view,
)

GroupRef = int | str
"""A group's id, or its name (a text of digits is an id)."""
FIND_LIMIT = 100
"""Computers a group's page lists for a search, to add."""


# Computer groups ----------------------------------------------------------------------------------


def add_computer_group(rt: Runtime, name: str, actor: str) -> ComputerGroupPublic:
    """Create an empty computer group with a name no other has."""
    group_name = _group_name(name)
    with rt.transaction() as session:
        if session.scalar(select(ComputerGroup.id).where(ComputerGroup.name == group_name)):
            raise Conflict(f"computer group {group_name!r} already exists", field="name")
        group = ComputerGroup(name=group_name, members=[])
        session.add(group)
        session.flush()
        audit.record(session, actor, "computer_group.create", "computer_group", group.id, name=group_name)
        return computer_group_view(group)


def list_computer_groups(rt: Runtime) -> list[ComputerGroupPublic]:
    """Every computer group with its members, by name."""
    with rt.reading() as session:
        return [computer_group_view(group) for group in all_computer_groups(session)]


GROUP_SORTS = ("name", "size")


def groups_page(rt: Runtime, search: str = "", request: PageRequest | None = None) -> GroupsPagePublic:
    """The groups page: one page of the computer groups whose name has the words of `search`, with their
    sizes (by name unless sorted otherwise); package groups with their members in order; the package
    families whose versions can be added."""
    with rt.reading() as session:
        order: dict[str, Column] = {"name": ComputerGroup.name, "size": _SIZE}
        counted = select(ComputerGroup.id).where(*_named(search))
        fetched = fetch_page(
            session, _sizes(search), order, ComputerGroup.id, request or PageRequest(), "name", counted
        )
        return GroupsPagePublic(
            computer_groups=fetched.page(
                [GroupSummaryPublic(id=i, name=name, size=count) for i, name, count in fetched.rows]
            ),
            package_groups=[package_group_view(g) for g in all_package_groups(session)],
            families=[family_view(f) for f in all_families(session)],
        )


def export_group_summaries(rt: Runtime, search: str) -> list[GroupSummaryPublic]:
    """Every computer group whose name has the words of `search`, with its size, by name (a download)."""
    with rt.reading() as session:
        rows = session.execute(_sizes(search).order_by(ComputerGroup.name, ComputerGroup.id))
        return [GroupSummaryPublic(id=i, name=name, size=count) for i, name, count in rows]


_SIZE = func.count(ComputerGroupMember.id)


def _named(search: str) -> list[ColumnElement[bool]]:
    return [contains(ComputerGroup.name, word) for word in distinct_words(search)]


def _sizes(search: str) -> Select[int, str, int]:
    """The computer groups whose name has the words of `search`, each with how many members it has."""
    return (
        select(ComputerGroup.id, ComputerGroup.name, _SIZE)
        .outerjoin(ComputerGroupMember, ComputerGroupMember.group_id == ComputerGroup.id)
        .where(*_named(search))
        .group_by(ComputerGroup.id, ComputerGroup.name)
    )


def computer_group_page(
    rt: Runtime, reference: GroupRef, members: ComputerQuery, request: PageRequest, find: str = ""
) -> ComputerGroupPagePublic:
    """A computer group with one page of its members that match `members`, and, for `find`, up to
    FIND_LIMIT computers found to add."""
    now, offline = rt.now(), rt.settings.computer_offline_seconds
    with rt.reading() as session:
        group = _computer_group_alone(session, reference)
        size = session.scalar(
            select(func.count())
            .select_from(ComputerGroupMember)
            .where(ComputerGroupMember.group_id == group.id)
        )
        in_group = replace(members, group_id=group.id)
        found = None
        if find.strip():
            found = search_computers_in(
                session, ComputerQuery(search=find), PageRequest(1, FIND_LIMIT), now, offline
            )
        return ComputerGroupPagePublic(
            id=group.id,
            name=group.name,
            size=size or 0,
            members=search_computers_in(session, in_group, request, now, offline),
            found=found,
        )


def export_members(rt: Runtime, reference: GroupRef, members: ComputerQuery) -> Iterator[ComputerPublic]:
    """Every member of a computer group that matches `members`, by hostname (a CSV download)."""
    with rt.reading() as session:
        group = find_computer_group(session, reference)
        in_group = replace(members, group_id=group.id)
    return export_computers(rt, in_group)


def computer_group(rt: Runtime, reference: GroupRef) -> ComputerGroupPublic:
    """One computer group with its members."""
    with rt.reading() as session:
        return computer_group_view(find_computer_group(session, reference))


def add_computers_to_group(
    rt: Runtime, reference: GroupRef, computers: Computers, actor: str
) -> MembershipChangePublic:
    """Add computers (ids, hostnames, a selection) to a group; ones already in it stay where they are.
    Tens of thousands at once: the members are compared as ids and the new ones inserted in one go."""
    with rt.transaction() as session:
        group = _computer_group_alone(session, reference)
        computer_ids = selected_ids(session, computers, rt.now(), rt.settings.computer_offline_seconds)
        present = _members_among(session, group.id, computer_ids)
        added = [i for i in computer_ids if i not in present]
        if added:
            group_id = group.id  # read once, not once a row
            rows = [{"group_id": group_id, "computer_id": i} for i in added]
            insert_rows(session.connection(), ComputerGroupMember, rows)
        audit.record(session, actor, "computer_group.add", "computer_group", group.id, computers=added)
        return _membership(session, group, len(added))


def remove_computers_from_group(
    rt: Runtime, reference: GroupRef, computers: Computers, actor: str, *, strict: bool = False
) -> MembershipChangePublic:
    """Remove computers from a group; with `strict`, each must be a member (NotFound otherwise).
    Tens of thousands at once: the members among them are read as ids and deleted in one statement."""
    with rt.transaction() as session:
        group = _computer_group_alone(session, reference)
        wanted = selected_ids(session, computers, rt.now(), rt.settings.computer_offline_seconds)
        present = _members_among(session, group.id, wanted)
        if strict and len(present) < len(wanted):
            missing = next(i for i in wanted if i not in present)
            raise NotFound(f"computer {missing} is not in group {group.name!r}")
        removed = sorted(present)
        if removed:
            session.execute(
                delete(ComputerGroupMember).where(
                    ComputerGroupMember.group_id == group.id, ids_in(ComputerGroupMember.computer_id, removed)
                ),
                execution_options={**UNCACHED, "synchronize_session": False},  # no member is loaded
            )
        audit.record(session, actor, "computer_group.remove", "computer_group", group.id, computers=removed)
        return _membership(session, group, len(removed))


def _computer_group_alone(session: Session, reference: GroupRef) -> ComputerGroup:
    """A computer group by id or name, its members not loaded (a group may have tens of thousands)."""
    group = session.scalar(select(ComputerGroup).where(_by_reference(ComputerGroup, reference)))
    if group is None:
        raise NotFound(f"computer group {shown_reference(reference)} does not exist")
    return group


def _members_among(session: Session, group_id: int, computer_ids: Sequence[int]) -> set[int]:
    """Which of `computer_ids` are members of the group."""
    return {
        member
        for chunk in chunks(computer_ids)
        for member in session.scalars(
            select(ComputerGroupMember.computer_id).where(
                ComputerGroupMember.group_id == group_id, ids_in(ComputerGroupMember.computer_id, chunk)
            ),
            execution_options=UNCACHED,
        )
    }


def _membership(session: Session, group: ComputerGroup, changed: int) -> MembershipChangePublic:
    size = session.scalar(
        select(func.count()).select_from(ComputerGroupMember).where(ComputerGroupMember.group_id == group.id)
    )
    return MembershipChangePublic(id=group.id, name=group.name, size=size or 0, changed=changed)


def delete_computer_group(rt: Runtime, reference: GroupRef, actor: str) -> None:
    """Delete a computer group; its computers stay."""
    with rt.transaction() as session:
        group = _computer_group_alone(session, reference)  # its members go in one statement, not one by one
        session.execute(
            delete(ComputerGroupMember).where(ComputerGroupMember.group_id == group.id),
            execution_options={"synchronize_session": False},
        )
        session.delete(group)
        audit.record(session, actor, "computer_group.delete", "computer_group", group.id, name=group.name)


# Package groups -----------------------------------------------------------------------------------


def add_package_group(rt: Runtime, name: str, actor: str) -> PackageGroupPublic:
    """Create an empty package group with a name no other has."""
    group_name = _group_name(name)
    with rt.transaction() as session:
        if session.scalar(select(PackageGroup.id).where(PackageGroup.name == group_name)):
            raise Conflict(f"package group {group_name!r} already exists", field="name")
        group = PackageGroup(name=group_name, members=[])
        session.add(group)
        session.flush()
        audit.record(session, actor, "package_group.create", "package_group", group.id, name=group_name)
        return package_group_view(group)


def list_package_groups(rt: Runtime) -> list[PackageGroupPublic]:
    """Every package group with its members in deployment order, by name."""
    with rt.reading() as session:
        return [package_group_view(group) for group in all_package_groups(session)]


def package_group(rt: Runtime, reference: GroupRef) -> PackageGroupPublic:
    """One package group with its members in deployment order."""
    with rt.reading() as session:
        return package_group_view(find_package_group(session, reference))


def add_packages_to_group(
    rt: Runtime, reference: GroupRef, package_ids: Sequence[int], actor: str
) -> PackageGroupPublic:
    """Append packages to the end of the group, keeping the order given; members stay where they are."""
    with rt.transaction() as session:
        group = find_package_group(session, reference)
        packages = resolve_package_ids(session, package_ids)
        present = {member.package_id for member in group.members}
        next_sequence = max((member.sequence for member in group.members), default=0) + 1
        for package_id in packages:
            if package_id in present:
                continue
            group.members.append(PackageGroupMember(package_id=package_id, sequence=next_sequence))
            present.add(package_id)
            next_sequence += 1
        audit.record(session, actor, "package_group.add", "package_group", group.id, packages=packages)
        return _reloaded_package_group(session, group.id)


def remove_packages_from_group(
    rt: Runtime, reference: GroupRef, package_ids: Sequence[int], actor: str, *, strict: bool = False
) -> PackageGroupPublic:
    """Remove packages from a group; with `strict`, each must be a member (NotFound otherwise)."""
    with rt.transaction() as session:
        group = find_package_group(session, reference)
        removed = set(resolve_package_ids(session, package_ids))
        missing = sorted(removed - {member.package_id for member in group.members})
        if strict and missing:
            raise NotFound(f"package {missing[0]} is not in group {group.name!r}")
        group.members = [member for member in group.members if member.package_id not in removed]
        audit.record(
            session, actor, "package_group.remove", "package_group", group.id, packages=sorted(removed)
        )
        return _reloaded_package_group(session, group.id)


def order_package_group(
    rt: Runtime, reference: GroupRef, package_ids: Sequence[int], actor: str
) -> PackageGroupPublic:
    """Put the group's packages in the order given, which must name each member exactly once."""
    with rt.transaction() as session:
        group = find_package_group(session, reference)
        _reorder(session, group, package_ids, actor)
        return _reloaded_package_group(session, group.id)


def move_package_in_group(
    rt: Runtime, reference: GroupRef, package_id: int, steps: int, actor: str
) -> PackageGroupPublic:
    """Move one package `steps` places later in the group (negative: earlier), stopping at either end."""
    with rt.transaction() as session:
        group = find_package_group(session, reference)
        order = [member.package_id for member in group.members]
        if package_id not in order:
            raise NotFound(f"package {package_id} is not in group {group.name!r}")
        index = order.index(package_id)
        order.insert(min(max(index + steps, 0), len(order) - 1), order.pop(index))
        _reorder(session, group, order, actor)
        return _reloaded_package_group(session, group.id)


def delete_package_group(rt: Runtime, reference: GroupRef, actor: str) -> None:
    """Delete a package group; its packages stay."""
    with rt.transaction() as session:
        group = find_package_group(session, reference)
        session.delete(group)
        audit.record(session, actor, "package_group.delete", "package_group", group.id, name=group.name)


# In the caller's transaction ----------------------------------------------------------------------


def group_summaries(session: Session) -> list[GroupSummaryPublic]:
    """Every computer group by name, with how many computers it has (members not loaded)."""
    sizes = (
        select(ComputerGroup.id, ComputerGroup.name, func.count(ComputerGroupMember.id))
        .outerjoin(ComputerGroupMember, ComputerGroupMember.group_id == ComputerGroup.id)
        .group_by(ComputerGroup.id, ComputerGroup.name)
        .order_by(ComputerGroup.name)
    )
    return [GroupSummaryPublic(id=i, name=name, size=size) for i, name, size in session.execute(sizes)]


def all_computer_groups(session: Session) -> list[ComputerGroup]:
    """Every computer group by name, members loaded."""
    query = select(ComputerGroup).options(*_computer_members()).order_by(ComputerGroup.name)
    return list(session.scalars(query))


def all_package_groups(session: Session) -> list[PackageGroup]:
    """Every package group by name, members loaded in order."""
    query = select(PackageGroup).options(*_package_members()).order_by(PackageGroup.name)
    return list(session.scalars(query))


def find_computer_group(session: Session, reference: GroupRef) -> ComputerGroup:
    """A computer group by id or name, members loaded; NotFound otherwise."""
    group = session.scalar(
        select(ComputerGroup).where(_by_reference(ComputerGroup, reference)).options(*_computer_members())
    )
    if group is None:
        raise NotFound(f"computer group {shown_reference(reference)} does not exist")
    return group


def find_package_group(session: Session, reference: GroupRef) -> PackageGroup:
    """A package group by id or name, members loaded in order; NotFound otherwise."""
    group = session.scalar(
        select(PackageGroup).where(_by_reference(PackageGroup, reference)).options(*_package_members())
    )
    if group is None:
        raise NotFound(f"package group {shown_reference(reference)} does not exist")
    return group


def computer_group_members(session: Session, references: Sequence[GroupRef]) -> list[int]:
    """The computer ids of the groups in turn, each group's members in the order they were added."""
    members: list[int] = []
    for reference in references:
        group = _computer_group_alone(session, reference)
        members.extend(
            session.scalars(
                select(ComputerGroupMember.computer_id)
                .where(ComputerGroupMember.group_id == group.id)
                .order_by(ComputerGroupMember.id)
            )
        )
    return members


def package_group_members(session: Session, references: Sequence[GroupRef]) -> list[int]:
    """The package ids of the groups in turn, each group in its deployment order."""
    members: list[int] = []
    for reference in references:
        group = find_package_group(session, reference)
        members.extend(member.package_id for member in group.members)
    return members


def _reorder(session: Session, group: PackageGroup, package_ids: Sequence[int], actor: str) -> None:
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


def _reloaded_package_group(session: Session, group_id: int) -> PackageGroupPublic:
    session.flush()
    session.expire_all()
    return package_group_view(find_package_group(session, group_id))


def _by_reference(
    model: type[ComputerGroup] | type[PackageGroup], reference: GroupRef
) -> ColumnElement[bool]:
    if isinstance(reference, int):
        return model.id == reference
    text = reference.strip()
    return model.id == int(text) if text.isdigit() else model.name == text


def _computer_members() -> list[ORMOption]:
    return [selectinload(ComputerGroup.members).selectinload(ComputerGroupMember.computer)]


def _package_members() -> list[ORMOption]:
    return [
        selectinload(PackageGroup.members)
        .selectinload(PackageGroupMember.package)
        .selectinload(Package.family)
    ]


def _group_name(name: str) -> str:
    group_name = name.strip()
    if not group_name:
        raise InvalidInput("group name must not be empty", field="name")
    return group_name
