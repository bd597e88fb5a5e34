"""The audit log: one row per change, written in the same transaction as the change, and read back a
page at a time, newest first."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from oco.db.models import AuditLog, User
from oco.domain.roles import Role
from oco.services.listing import PageRequest, contains, distinct_words, export_batches, fetch_page
from oco.services.runtime import Runtime
from oco.services.views import AuditEntryPublic, PagePublic

USER_CHANNELS = ("web:", "api:")
"""Actors that are console users: "web:NAME" in the console, "api:NAME" with one of NAME's API tokens."""
_ROLES = "audit.roles"


def acting_user(actor: str) -> str | None:
    """The console user behind an actor ("web:alice" and "api:alice" are alice), or None (the CLI, an
    agent, housekeeping)."""
    for channel in USER_CHANNELS:
        if actor.startswith(channel) and len(actor) > len(channel):
            return actor[len(channel) :]
    return None


def record(
    session: Session, actor: str, action: str, object_type: str, object_id: int | None, **details: Any
) -> None:
    """Add an audit entry to the current transaction, with the acting user and their role now."""
    username = acting_user(actor)
    session.add(
        AuditLog(
            actor=actor,
            username=username,
            role=_role_of(session, username),
            action=action,
            object_type=object_type,
            object_id=object_id,
            details=details or None,
        )
    )


def _role_of(session: Session, username: str | None) -> str | None:
    """The role of `username`, read once per transaction (a use case may record many entries)."""
    if username is None:
        return None
    roles: dict[str, str | None] = session.info.setdefault(_ROLES, {})
    if username not in roles:
        roles[username] = session.scalar(select(User.role).where(User.username == username))
    return roles[username]


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which entries: words to find in actor and action, an actor, a console user (in the console or
    with their API tokens), a role, an action (or its first part, such as "container"), an object type."""

    search: str = ""
    actor: str = ""
    action: str = ""
    object_type: str = ""
    username: str = ""
    role: Role | None = None


AUDIT_SORTS = ("at", "actor", "user", "action")


def search_audit(rt: Runtime, query: AuditQuery, request: PageRequest) -> PagePublic[AuditEntryPublic]:
    """One page of the audit entries that match `query`, newest first unless sorted otherwise."""
    order = {"at": AuditLog.id, "actor": AuditLog.actor, "user": AuditLog.username, "action": AuditLog.action}
    with rt.reading() as session:
        matching = select(AuditLog).where(*_conditions(query))
        fetched = fetch_page(session, matching, order, AuditLog.id, request, "-at")
        return fetched.page([_entry(e) for (e,) in fetched.rows])


def export_audit(rt: Runtime, query: AuditQuery) -> Iterator[AuditEntryPublic]:
    """Every audit entry that matches `query`, newest first (for a CSV download, read in batches)."""
    return export_batches(
        rt,
        select(AuditLog).where(*_conditions(query)),
        (AuditLog.id,),
        lambda _, rows: [_entry(row[0]) for row in rows],
        descending=True,
    )


def _conditions(query: AuditQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        or_(contains(AuditLog.actor, word), contains(AuditLog.action, word))
        for word in distinct_words(query.search)
    ]
    if query.actor.strip():
        conditions.append(AuditLog.actor == query.actor.strip())
    if query.action.strip():
        action = query.action.strip()
        conditions.append(
            or_(AuditLog.action == action, AuditLog.action.startswith(f"{action}.", autoescape=True))
        )
    if query.username.strip():
        conditions.append(AuditLog.username == query.username.strip())
    if query.role is not None:
        conditions.append(AuditLog.role == query.role.text)
    if query.object_type.strip():
        conditions.append(AuditLog.object_type == query.object_type.strip())
    return conditions


def _entry(entry: AuditLog) -> AuditEntryPublic:
    return AuditEntryPublic(
        id=entry.id,
        at=entry.at,
        actor=entry.actor,
        username=entry.username,
        role=Role(entry.role) if entry.role else None,
        action=entry.action,
        object_type=entry.object_type,
        object_id=entry.object_id,
        details=entry.details,
    )
