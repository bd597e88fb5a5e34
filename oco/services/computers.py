"""Use cases of computers: pre-create, list, show, delete.

A computer is referred to by its id or its hostname (`ComputerRef`): the CLI passes what the admin typed,
the console and the admin API pass ids.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, delete, select
from sqlalchemy.orm import Session, selectinload

from oco.db.models import Computer, ComputerPackage, Job, Package
from oco.domain.hostnames import hostname_key, normalize_hostname
from oco.errors import Conflict, NotFound
from oco.services import audit
from oco.services.runtime import Runtime
from oco.services.views import ComputerDetailPublic, ComputerPublic, computer_detail_view, computer_view

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
        return computer_detail_view(computer, list(history), rt.now(), rt.settings.computer_offline_seconds)


def delete_computer(rt: Runtime, reference: ComputerRef, actor: str) -> str:
    """Forget a computer with its assignments, jobs and group memberships; returns its hostname."""
    with rt.transaction() as session:
        computer = find_computer(session, reference)
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
    found_ids: set[int] = set()
    if wanted_ids:
        found_ids = set(session.scalars(select(Computer.id).where(Computer.id.in_(wanted_ids))))
    by_name: dict[ComputerRef, int] = {}
    if names:
        rows = session.execute(
            select(Computer.hostname_key, Computer.id).where(Computer.hostname_key.in_(list(names)))
        )
        by_name = {names[key]: computer_id for key, computer_id in rows}
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
