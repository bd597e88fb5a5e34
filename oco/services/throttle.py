"""Login throttling in the database: failure counts per account name and client address, shared by every
server process. The rules are `oco.domain.throttle`'s; this module only loads and stores the counts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, select, tuple_
from sqlalchemy.orm import Session

from oco.config import Settings
from oco.db.models import LoginFailure
from oco.domain.throttle import FailureCount, ThrottlePolicy, ThrottleScope, after_failure

Subject = tuple[ThrottleScope, str]
"""An account name or a client address, by its scope."""


def policy_of(settings: Settings) -> ThrottlePolicy:
    """The throttling policy the settings describe."""
    return ThrottlePolicy(
        lockout_after=settings.login_lockout_after,
        lockout_seconds=settings.login_lockout_seconds,
        max_lockout_seconds=settings.login_lockout_max_seconds,
        forget_after_seconds=settings.login_failures_forgotten_after_seconds,
    )


def subjects(username: str, address: str) -> list[Subject]:
    """What one login attempt counts against: its account name, and its client address if known."""
    found: list[Subject] = [(ThrottleScope.ACCOUNT, username)]
    if address:
        found.append((ThrottleScope.ADDRESS, address))
    return found


def load_counts(session: Session, of: Iterable[Subject]) -> dict[Subject, FailureCount]:
    """The stored failure counts of `of` (subjects without failures are absent)."""
    wanted = {(str(scope), _hash(subject)): (scope, subject) for scope, subject in of}
    rows = session.scalars(select(LoginFailure).where(_key_in(list(wanted))))
    return {wanted[(row.scope, row.subject_hash)]: _count(row) for row in rows}


def record_failure(
    session: Session, of: Iterable[Subject], now: datetime, policy: ThrottlePolicy
) -> dict[Subject, FailureCount]:
    """Count one more failure against each of `of`, in the caller's transaction; returns the new counts."""
    counted: dict[Subject, FailureCount] = {}
    for scope, subject in of:
        row = session.get(LoginFailure, (str(scope), _hash(subject)), with_for_update=True)
        count = after_failure(_count(row) if row else None, now, policy)
        if row is None:
            row = LoginFailure(scope=str(scope), subject_hash=_hash(subject), subject=subject[:255])
            session.add(row)
        row.failures, row.last_failure = count.failures, count.last_failure
        row.locked_until = count.locked_until
        counted[(scope, subject)] = count
    session.flush()
    return counted


def clear(session: Session, of: Iterable[Subject]) -> None:
    """Forget the failures of `of` (after a successful login), in the caller's transaction."""
    keys = [(str(scope), _hash(subject)) for scope, subject in of]
    session.execute(delete(LoginFailure).where(_key_in(keys)))


def forget_login_failures(session: Session, settings: Settings, now: datetime) -> int:
    """Delete the counts whose last failure is older than the forgetting window (a housekeeping task)."""
    cutoff = now - timedelta(seconds=settings.login_failures_forgotten_after_seconds)
    result = session.execute(delete(LoginFailure).where(LoginFailure.last_failure <= cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


def _key_in(keys: list[tuple[str, str]]) -> ColumnElement[bool]:
    return tuple_(LoginFailure.scope, LoginFailure.subject_hash).in_(keys)


def _count(row: LoginFailure) -> FailureCount:
    return FailureCount(row.failures, row.last_failure, row.locked_until)


def _hash(subject: str) -> str:
    return hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()
