"""Use cases of computers: pre-create, list, show, delete.

A computer is referred to by its id or its hostname (`ComputerRef`): the CLI passes what the admin typed,
the console and the admin API pass ids.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, delete, or_, select
from sqlalchemy.orm import Session, selectinload

from oco.db.models import (
    Computer,
    ComputerGroup,
    ComputerGroupMember,
    ComputerPackage,
    ComputerSoftware,
    Job,
    JobContainer,
    Package,
    PackageFamily,
)
from oco.domain.hostnames import hostname_key, normalize_hostname
from oco.domain.presence import Presence, online_since
from oco.domain.versions import parse_version_condition
from oco.errors import Conflict, InvalidInput, NotFound
from oco.services import audit
from oco.services.listing import (
    UNCACHED,
    PageRequest,
    chunks,
    contains,
    distinct_words,
    export_batches,
    fetch_page,
    ids_in,
)
from oco.services.runtime import Runtime
from oco.services.views import (
    Choice,
    ComputerDetailPublic,
    ComputerListPublic,
    ComputerPagePublic,
    ComputerPublic,
    ComputerSoftwarePublic,
    FilterChoices,
    PagePublic,
    SoftwarePublic,
    computer_detail_view,
    computer_inventory_view,
    computer_view,
    job_view,
    software_view,
)

ComputerRef = int | str
"""A computer's id, or its hostname (a text of digits is an id)."""


def add_computer(rt: Runtime, hostname: str, actor: str, notes: str = "") -> ComputerPublic:
    """Pre-create a computer; its agent may then register with the registration key."""
    name = normalize_hostname(hostname)
    with rt.transaction() as session:
        if computer_id_by_hostname(session, name) is not None:
            raise Conflict(f"computer {name!r} already exists", field="hostname")
        computer = Computer(hostname=name, notes=notes)
        session.add(computer)
        session.flush()
        audit.record(session, actor, "computer.create", "computer", computer.id, hostname=name)
        return computer_view(computer, rt.now(), rt.settings.computer_offline_seconds)


@dataclass(frozen=True, slots=True)
class ComputerQuery:
    """Which computers a list shows: words to search for (each must match hostname, OS, address, uid or
    agent version), online/offline/never seen, an OS, a group, a package installed, software its
    inventory reports (name contains `software`; version satisfies `software_version`, e.g. "< 120")."""

    search: str = ""
    presence: Presence | None = None
    os: str = ""
    group_id: int | None = None
    package_id: int | None = None
    software: str = ""
    software_version: str = ""


COMPUTER_SORTS = (
    "hostname",
    "os",
    "os_version",
    "architecture",
    "remote_address",
    "agent_version",
    "last_seen",
)


def search_computers(rt: Runtime, query: ComputerQuery, request: PageRequest) -> PagePublic[ComputerPublic]:
    """One page of the computers that match `query`, sorted as `request` says (by hostname at first)."""
    with rt.reading() as session:
        return search_computers_in(session, query, request, rt.now(), rt.settings.computer_offline_seconds)


def search_computers_in(
    session: Session, query: ComputerQuery, request: PageRequest, now: datetime, offline_seconds: int
) -> PagePublic[ComputerPublic]:
    """`search_computers` in the caller's unit of work."""
    order = {key: getattr(Computer, key) for key in COMPUTER_SORTS}
    matching = _matching(select(Computer), query, now, offline_seconds)
    fetched = fetch_page(session, matching, order, Computer.id, request, "hostname")
    return fetched.page([computer_view(row[0], now, offline_seconds) for row in fetched.rows])


def export_computers(rt: Runtime, query: ComputerQuery) -> Iterator[ComputerPublic]:
    """Every computer that matches `query`, by hostname (for a CSV download, read in batches)."""
    now, offline = rt.now(), rt.settings.computer_offline_seconds
    return export_batches(
        rt,
        _matching(select(Computer), query, now, offline),
        (Computer.hostname, Computer.id),
        lambda _, rows: [computer_view(row[0], now, offline) for row in rows],
    )


def matching_computer_ids(
    session: Session, query: ComputerQuery, now: datetime, offline_seconds: int
) -> list[int]:
    """The ids of every computer that matches `query` ("all matching" selections), by hostname."""
    return list(
        session.scalars(
            _matching(select(Computer.id), query, now, offline_seconds).order_by(Computer.hostname)
        )
    )


def matching_computers(query: ComputerQuery, now: datetime, offline_seconds: int) -> Select[tuple[int]]:
    """The ids of the computers that match `query`, as a subquery to select by."""
    return _matching(select(Computer.id), query, now, offline_seconds)


def _matching(base: Select[Any], query: ComputerQuery, now: datetime, offline_seconds: int) -> Select[Any]:
    conditions: list[ColumnElement[bool]] = []
    for word in distinct_words(query.search):
        fields = (
            Computer.hostname,
            Computer.os,
            Computer.remote_address,
            Computer.uid,
            Computer.agent_version,
        )
        conditions.append(or_(*(contains(field, word) for field in fields)))
    if query.os.strip():
        conditions.append(contains(Computer.os, query.os.strip()))
    threshold = online_since(now, offline_seconds)
    if query.presence is Presence.ONLINE:
        conditions.append(Computer.last_seen > threshold)
    elif query.presence is Presence.OFFLINE:
        conditions.append(Computer.last_seen <= threshold)
    elif query.presence is Presence.NEVER_SEEN:
        conditions.append(Computer.last_seen.is_(None))
    if query.group_id is not None:
        members = select(ComputerGroupMember.computer_id).where(
            ComputerGroupMember.group_id == query.group_id
        )
        conditions.append(Computer.id.in_(members))
    if query.package_id is not None:
        holders = select(ComputerPackage.computer_id).where(ComputerPackage.package_id == query.package_id)
        conditions.append(Computer.id.in_(holders))
    software = _with_software(query)
    if software is not None:
        conditions.append(Computer.id.in_(software))
    return base.where(*conditions)


_VERSION_COMPARISONS = {
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    ">": operator.gt,
}


def _with_software(query: ComputerQuery) -> Select[Any] | None:
    """The computers whose software inventory has an entry named like `query.software` (each word, case
    ignored) in a version that satisfies `query.software_version` — compared in SQL by version key."""
    name, condition_text = query.software.strip(), query.software_version.strip()
    if not name:
        if condition_text:
            raise InvalidInput("a version condition needs a software name to apply to", field="software")
        return None
    conditions = [contains(ComputerSoftware.name, word) for word in distinct_words(name)]
    if condition_text:
        condition = parse_version_condition(condition_text, field="software_version")
        compare = _VERSION_COMPARISONS[condition.operator]
        conditions.append(compare(ComputerSoftware.version_key, condition.key))
    return select(ComputerSoftware.computer_id).where(*conditions)


@dataclass(frozen=True, slots=True)
class ComputerSelection:
    """Computers to act on: these ids or hostnames, and, with `matching`, every computer that matches."""

    references: Sequence[ComputerRef] = ()
    matching: ComputerQuery | None = None

    def resolve(self, session: Session, now: datetime, offline_seconds: int) -> list[int]:
        """The selected computers' ids, in order, each once; NotFound names a reference that exists not."""
        ids = resolve_computer_ids(session, self.references)
        if self.matching is not None:
            ids += matching_computer_ids(session, self.matching, now, offline_seconds)
        return list(dict.fromkeys(ids))


Computers = Sequence[ComputerRef] | ComputerSelection
"""Computers a use case acts on: a list of ids or hostnames, or a selection (which may be "all matching")."""


def selected_ids(session: Session, computers: Computers, now: datetime, offline_seconds: int) -> list[int]:
    """The ids of the computers a use case acts on, in order, each once."""
    selection = computers if isinstance(computers, ComputerSelection) else ComputerSelection(computers)
    return selection.resolve(session, now, offline_seconds)


def list_page(rt: Runtime, query: ComputerQuery, request: PageRequest) -> ComputerListPublic:
    """The computers page: one page of those that match, and what its filters offer (groups, packages)."""
    return ComputerListPublic(computers=search_computers(rt, query, request), choices=filter_choices(rt))


def filter_choices(rt: Runtime) -> FilterChoices:
    """The computer groups and packages a computer list can be filtered by, by name."""
    with rt.reading() as session:
        groups = session.execute(select(ComputerGroup.id, ComputerGroup.name).order_by(ComputerGroup.name))
        packages = session.execute(
            select(Package.id, PackageFamily.name, Package.version)
            .join(PackageFamily, Package.family_id == PackageFamily.id)
            .order_by(PackageFamily.name, Package.id)
        )
        return FilterChoices(
            groups=[Choice(id=i, name=name) for i, name in groups],
            packages=[Choice(id=i, name=f"{family} {version}") for i, family, version in packages],
        )


def delete_computers(rt: Runtime, selection: ComputerSelection, actor: str) -> int:
    """Forget the selected computers with their assignments, jobs and group memberships; how many."""
    with rt.transaction() as session:
        ids = selection.resolve(session, rt.now(), rt.settings.computer_offline_seconds)
        for computer_id in ids:
            _delete(session, computer_id, actor)
        return len(ids)


def list_computers(rt: Runtime) -> list[ComputerPublic]:
    """Every computer, by hostname."""
    now, offline = rt.now(), rt.settings.computer_offline_seconds
    with rt.reading() as session:
        return [computer_view(c, now, offline) for c in all_computers(session)]


def computer_detail(rt: Runtime, reference: ComputerRef) -> ComputerDetailPublic:
    """A computer with its inventory, installed packages and job history (newest first)."""
    with rt.reading() as session:
        computer = find_computer(session, reference)
        history = session.scalars(
            select(Job)
            .where(Job.computer_id == computer.id)
            .options(selectinload(Job.container))
            .order_by(Job.id.desc())
        )
        software = session.scalars(
            select(ComputerSoftware)
            .where(ComputerSoftware.computer_id == computer.id)
            .order_by(ComputerSoftware.name, ComputerSoftware.version_key)
        )
        return computer_detail_view(
            computer, list(history), rt.now(), rt.settings.computer_offline_seconds, list(software)
        )


def computer_page(rt: Runtime, reference: ComputerRef, request: PageRequest) -> ComputerPagePublic:
    """A computer's inventory and installed packages, with one page of its jobs, newest first."""
    now, offline = rt.now(), rt.settings.computer_offline_seconds
    with rt.reading() as session:
        computer = find_computer(session, reference)
        history = (
            select(Job, JobContainer.name)
            .join(JobContainer, Job.container_id == JobContainer.id)
            .where(Job.computer_id == computer.id)
        )
        fetched = fetch_page(session, history, {"created": Job.id}, Job.id, request, "-created")
        return ComputerPagePublic(
            computer=computer_inventory_view(computer, now, offline),
            jobs=fetched.page([job_view(job, name, computer.hostname) for job, name in fetched.rows]),
            software=_software_page(session, computer.id, "", PageRequest(1, SOFTWARE_ON_PAGE)),
        )


SOFTWARE_SORTS = ("name", "version", "first_seen")
SOFTWARE_ON_PAGE = 10
"""Software entries the computer's page shows; the rest are a page of their own."""


def computer_software(
    rt: Runtime, reference: ComputerRef, search: str, request: PageRequest
) -> ComputerSoftwarePublic:
    """A page of a computer's software inventory: entries whose name or version contains each word of
    `search`, by name at first (by version: in version order)."""
    now, offline = rt.now(), rt.settings.computer_offline_seconds
    with rt.reading() as session:
        computer = find_computer(session, reference)
        return ComputerSoftwarePublic(
            computer=computer_view(computer, now, offline),
            software=_software_page(session, computer.id, search, request),
        )


def _software_page(
    session: Session, computer_id: int, search: str, request: PageRequest
) -> PagePublic[SoftwarePublic]:
    query = select(ComputerSoftware).where(ComputerSoftware.computer_id == computer_id)
    for word in distinct_words(search):
        query = query.where(
            or_(contains(ComputerSoftware.name, word), contains(ComputerSoftware.version, word))
        )
    order = {
        "name": ComputerSoftware.name,
        "version": ComputerSoftware.version_key,
        "first_seen": ComputerSoftware.first_seen,
    }
    fetched = fetch_page(session, query, order, ComputerSoftware.id, request, "name")
    return fetched.page([software_view(row[0]) for row in fetched.rows])


def delete_computer(rt: Runtime, reference: ComputerRef, actor: str) -> str:
    """Forget a computer with its assignments, jobs and group memberships; returns its hostname."""
    with rt.transaction() as session:
        return _delete(session, find_computer(session, reference).id, actor)


def _delete(session: Session, computer_id: int, actor: str) -> str:
    computer = session.get(Computer, computer_id)
    if computer is None:
        raise NotFound(f"computer {computer_id} does not exist")
    session.execute(delete(Job).where(Job.computer_id == computer.id))
    session.delete(computer)
    audit.record(session, actor, "computer.delete", "computer", computer.id, hostname=computer.hostname)
    return computer.hostname


# In the caller's transaction ----------------------------------------------------------------------


def all_computers(session: Session) -> list[Computer]:
    """Every computer, by hostname."""
    return list(session.scalars(select(Computer).order_by(Computer.hostname)))


def computer_id_by_hostname(session: Session | Connection, hostname: str) -> int | None:
    """The id of the computer of that name, compared without regard to case (indexed), or None."""
    return session.scalar(select(Computer.id).where(Computer.hostname_key == hostname_key(hostname)))


def find_computer(session: Session, reference: ComputerRef) -> Computer:
    """The computer by id or hostname, with networks and assignments loaded; NotFound otherwise."""
    computer_id = _as_id(reference)
    if computer_id is None:
        computer_id = computer_id_by_hostname(session, normalize_hostname(str(reference)))
    computer = None
    if computer_id is not None:
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
        raise NotFound(f"computer {shown_reference(reference)} does not exist")
    return computer


def resolve_computer_ids(session: Session, references: Iterable[ComputerRef]) -> list[int]:
    """The ids of the computers referred to, in order; NotFound names the first that does not exist."""
    references = list(references)
    ids = {ref: _as_id(ref) for ref in references}
    wanted_ids = [i for i in ids.values() if i is not None]
    names = {hostname_key(normalize_hostname(str(ref))): ref for ref, i in ids.items() if i is None}
    found_ids = {
        found
        for chunk in chunks(wanted_ids)
        for found in session.scalars(
            select(Computer.id).where(ids_in(Computer.id, chunk)), execution_options=UNCACHED
        )
    }
    by_name: dict[ComputerRef, int] = {}
    for chunk in chunks(list(names)):
        rows = session.execute(
            select(Computer.hostname_key, Computer.id).where(Computer.hostname_key.in_(chunk))
        )
        by_name.update({names[key]: computer_id for key, computer_id in rows})
    resolved = []
    for ref in references:
        computer_id = ids[ref] if ids[ref] in found_ids else by_name.get(ref)
        if computer_id is None:
            raise NotFound(f"computer {shown_reference(ref)} does not exist")
        resolved.append(computer_id)
    return resolved


def shown_reference(reference: int | str) -> str:
    """A reference as messages name it: an id as a number, a name quoted."""
    if isinstance(reference, int):
        return str(reference)
    text = reference.strip()
    return text if text.isdigit() else repr(reference)


def _as_id(reference: ComputerRef) -> int | None:
    if isinstance(reference, int):
        return reference
    text = reference.strip()
    return int(text) if text.isdigit() else None
