"""Download slots in the database: reading a scope's places, taking them, and what this process last read.

A place is a row of `download_slot` keyed by (scope, number). Taking one is a single conditional write
— an INSERT that does nothing when the row exists, or an UPDATE whose WHERE holds only while the place
is free — so of two server processes taking the same place only one succeeds, whatever the database;
the numbers stop at the limit, so no scope ever has more holders than places. Nothing is written to
release a place: it is free once its time ran out or its job is past downloading (the report that moves
the job on releases it without a statement of its own), and the next taker overwrites it.

The check-in is read-only and hot. What this process read of a scope is kept for `REFRESH_SECONDS`
(`SlotBoard`): a waiting computer's check-in against a full scope costs no query, and only a check-in
that may take a place goes to the write path, which reads the scope again in its transaction and takes
the place there. A stale board never hands out a place: at worst a computer waits one check-in longer.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Insert,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from oco.db.models import DownloadSlot, Job
from oco.db.types import UTCDateTime
from oco.domain.slots import HOLDING_STATES, Limit, Occupancy, Slot
from oco.domain.states import JobState

REFRESH_SECONDS = 0.5
"""How long a process trusts what it read of a scope before reading it again."""
ROWS_A_SECOND = 1000
"""A scope of many slots is read again less often: one second for each thousand of them (10,000 held
slots read every 0.5 s cost a third of SQLite's check-in throughput)."""

_HOLDING: list[ColumnElement[Any]] = [literal_column(str(int(state))) for state in sorted(HOLDING_STATES)]
_READ = (
    select(DownloadSlot.scope, DownloadSlot.number, DownloadSlot.job_id, DownloadSlot.expires, Job.state)
    .select_from(DownloadSlot)
    .outerjoin(Job, Job.id == DownloadSlot.job_id)
    .where(DownloadSlot.scope.in_(bindparam("p_scopes", expanding=True)))
)
_FREE = or_(
    DownloadSlot.job_id.is_(None),
    DownloadSlot.expires.is_(None),
    DownloadSlot.expires <= bindparam("p_now", type_=UTCDateTime()),
    ~exists().where(Job.id == DownloadSlot.job_id, Job.state.in_(_HOLDING)),
)
_TAKE_FREE = (
    update(DownloadSlot)
    .where(DownloadSlot.scope == bindparam("p_scope"), DownloadSlot.number == bindparam("p_number"), _FREE)
    .values(
        job_id=bindparam("p_job"),
        computer_id=bindparam("p_computer"),
        expires=bindparam("p_expires", type_=UTCDateTime()),
    )
)
_GIVE_BACK = (
    update(DownloadSlot)
    .where(
        DownloadSlot.scope == bindparam("p_scope"),
        DownloadSlot.number == bindparam("p_number"),
        DownloadSlot.job_id == bindparam("p_job"),
    )
    .values(job_id=None, computer_id=None, expires=None)
)
_VALUES = {
    "scope": bindparam("p_scope"),
    "number": bindparam("p_number"),
    "job_id": bindparam("p_job"),
    "computer_id": bindparam("p_computer"),
    "expires": bindparam("p_expires", type_=UTCDateTime()),
}


def _insert_if_absent(dialect: str) -> Insert:
    """INSERT of a new place that does nothing (rowcount 0) when the place exists already."""
    if dialect == "postgresql":
        upsert = postgresql.insert(DownloadSlot).values(_VALUES).on_conflict_do_nothing()
        return upsert.returning(DownloadSlot.number)
    if dialect == "sqlite":
        ignore = sqlite.insert(DownloadSlot).values(_VALUES).on_conflict_do_nothing()
        return ignore.returning(DownloadSlot.number)
    return insert(DownloadSlot).values(_VALUES).prefix_with("IGNORE")


def _inserted(connection: Connection, statement: Insert, values: dict[str, Any]) -> bool:
    """Whether the INSERT of a new place wrote it (RETURNING where the driver's rowcount says -1)."""
    result = connection.execute(statement, values)
    if result.returns_rows:
        return result.first() is not None
    return result.rowcount == 1


_INSERTS = {name: _insert_if_absent(name) for name in ("postgresql", "sqlite", "mysql", "mariadb")}


LOCK_NUMBER = -1
"""A scope's lock row (PostgreSQL, MariaDB): takers of the scope's places take it first, one at a time."""
_LOCK = (
    select(DownloadSlot.number)
    .where(DownloadSlot.scope == bindparam("p_scope"), DownloadSlot.number == LOCK_NUMBER)
    .with_for_update()
)
_LOCK_EXISTS = select(DownloadSlot.number).where(
    DownloadSlot.scope == bindparam("p_scope"), DownloadSlot.number == LOCK_NUMBER
)


def _lock_scopes(connection: Connection, scopes: Sequence[str]) -> None:
    """Take the scopes' lock rows, in sorted order, until the caller's transaction ends.

    Without them, MariaDB deadlocks: two takers whose INSERT of the same new place met an existing row hold
    shared locks on it, and each one's UPDATE of that place then waits for the other's. With them, the
    takers of a scope queue (they are few: a check-in goes to take a place only while one is free) and
    the conditional writes still decide. A missing lock row is created first in a transaction of its own,
    which holds no other lock (a locking read of a missing row would lock the gap on MariaDB, and the
    creation would wait for it). SQLite needs none: it has one writer at a time.
    """
    if connection.dialect.name == "sqlite":
        return
    for scope in sorted(scopes):
        if connection.execute(_LOCK_EXISTS, {"p_scope": scope}).first() is None:
            with connection.engine.begin() as own:
                statement = _INSERTS.get(own.dialect.name, _INSERTS["mysql"])
                own.execute(statement, {**_NO_HOLDER, "p_scope": scope, "p_number": LOCK_NUMBER})
        connection.execute(_LOCK, {"p_scope": scope})


_NO_HOLDER = {"p_job": None, "p_computer": None, "p_expires": None}


_READ_LOCKED = _READ.with_for_update(read=True, of=DownloadSlot)
"""The places as the latest commit left them (a locking read: MariaDB's plain reads in a transaction see
its first snapshot)."""


def read_occupancy(
    connection: Connection, limits: Sequence[Limit], now: datetime, *, locked: bool = False
) -> list[Occupancy]:
    """The places of each limit's scope as stored now, in one query (`locked`: the latest, in a taker's
    transaction)."""
    if not limits:
        return []
    by_scope: dict[str, list[Slot]] = {limit.scope: [] for limit in limits}
    query = _READ_LOCKED if locked and connection.dialect.name != "sqlite" else _READ
    rows = connection.execute(query, {"p_scopes": sorted(by_scope)})
    for scope, number, job_id, expires, state in rows:
        by_scope[scope].append(Slot(number, job_id, expires, JobState(state) if state is not None else None))
    return [Occupancy.of(limit, by_scope[limit.scope], now) for limit in limits]


def take(
    connection: Connection,
    job_id: int,
    computer_id: int,
    limits: Sequence[Limit],
    now: datetime,
    timeout_seconds: int,
) -> tuple[bool, list[Occupancy]]:
    """Take a place of every limit for the job, in the caller's transaction, scopes in sorted order; a
    place the job already holds counts. False (and nothing kept) when a limit has no free place. Also
    the occupancies as this transaction read them, with the job's places if it took them."""
    expires = now + timedelta(seconds=timeout_seconds)
    taken: list[tuple[str, int]] = []
    statement = _INSERTS.get(connection.dialect.name, _INSERTS["mysql"])
    ordered = sorted(limits, key=lambda limit: limit.scope)
    _lock_scopes(connection, [limit.scope for limit in ordered])
    seen = read_occupancy(connection, ordered, now, locked=True)
    for occupancy in seen:
        if occupancy.holds(job_id, now):
            continue
        scope = occupancy.limit.scope
        stored = {slot.number for slot in occupancy.slots}
        numbers = occupancy.free_numbers(now)
        random.shuffle(numbers)  # concurrent takers rarely try the same place first
        place = None
        for number in numbers:
            values: dict[str, Any] = {
                "p_scope": scope,
                "p_number": number,
                "p_job": job_id,
                "p_computer": computer_id,
                "p_expires": expires,
            }
            if number not in stored and _inserted(connection, statement, values):
                place = number
                break
            if connection.execute(_TAKE_FREE, {**values, "p_now": now}).rowcount == 1:
                place = number
                break
        if place is None:
            for scope_taken, number in taken:
                connection.execute(_GIVE_BACK, {"p_scope": scope_taken, "p_number": number, "p_job": job_id})
            return False, seen
        taken.append((scope, place))
    return True, [occupancy.with_holder(job_id, expires) for occupancy in seen]


_HELD = (
    select(DownloadSlot.scope, func.count())
    .join(Job, and_(Job.id == DownloadSlot.job_id, Job.state.in_(_HOLDING)))
    .where(
        DownloadSlot.scope.in_(bindparam("p_scopes", expanding=True)),
        DownloadSlot.expires > bindparam("p_now", type_=UTCDateTime()),
    )
    .group_by(DownloadSlot.scope)
)


def in_use(connection: Connection, scopes: Sequence[str], now: datetime) -> dict[str, int]:
    """How many places of each scope are held now (for pages that explain why jobs wait)."""
    if not scopes:
        return {}
    counts = {scope: 0 for scope in scopes}
    counts.update(
        {
            scope: count
            for scope, count in connection.execute(_HELD, {"p_scopes": sorted(set(scopes)), "p_now": now})
        }
    )
    return counts


@dataclass(slots=True)
class _Reading:
    at: float
    occupancy: Occupancy
    reserved: int = 0
    """Check-ins this process sent to the write path for a place since the reading."""


class SlotBoard:
    """What this process last read of each scope, trusted for `REFRESH_SECONDS` (thread-safe)."""

    def __init__(self, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self._lock = threading.Lock()
        self._readings: dict[str, _Reading] = {}
        self.refresh_seconds = refresh_seconds

    def known(self, limits: Sequence[Limit]) -> list[Occupancy] | None:
        """The occupancies of the limits as last read, if all are recent enough and read for the same
        limits; None when one must be read again."""
        moment = time.monotonic()
        found = []
        with self._lock:
            for limit in limits:
                reading = self._readings.get(limit.scope)
                if (
                    reading is None
                    or moment - reading.at > self._trusted_for(reading.occupancy)
                    or reading.occupancy.limit != limit
                ):
                    return None
                found.append(reading.occupancy)
        return found

    def _trusted_for(self, occupancy: Occupancy) -> float:
        """How long a reading is trusted: `refresh_seconds`, longer for a scope of many slots (a second
        a thousand rows), whose reading costs more than a slot handed out a little later."""
        if self.refresh_seconds <= 0:
            return 0.0
        return max(self.refresh_seconds, len(occupancy.slots) / ROWS_A_SECOND)

    def note(self, occupancies: Sequence[Occupancy]) -> None:
        moment = time.monotonic()
        with self._lock:
            for occupancy in occupancies:
                self._readings[occupancy.limit.scope] = _Reading(moment, occupancy)

    def reserve(self, limits: Sequence[Limit], now: datetime) -> bool:
        """Whether a check-in may go to the write path for places of these limits: only while fewer have
        gone since the last reading than there were free places (so one freed place does not send every
        waiting computer's check-in to the write path at once). A reading replaced or run out starts
        afresh."""
        with self._lock:
            readings = [self._readings.get(limit.scope) for limit in limits]
            if any(
                reading is None or reading.occupancy.in_use(now) + reading.reserved >= limit.limit
                for reading, limit in zip(readings, limits, strict=True)
            ):
                return False
            for reading in readings:
                assert reading is not None
                reading.reserved += 1
        return True

    def forget(self, limits: Sequence[Limit]) -> None:
        """A place of these scopes was taken here (or lost to another process): read them again."""
        with self._lock:
            for limit in limits:
                self._readings.pop(limit.scope, None)
