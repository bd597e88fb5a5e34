"""Confirming plain check-ins in the database, in batches, before they are answered.

A steady agent's check-in (`oco.agent.hello` with nothing new to store) is answered from reads: its
signature is verified, its timestamp claimed in the process's ledger (`oco.services.ledger`), its jobs
read. Before the answer goes out, the claim is confirmed here together with every other claim waiting at
that moment (a group commit, `oco.api.agent.CheckIns`): one transaction reads the claimed computers'
stored timestamps, locked, in id order; keeps the claims whose timestamp is newer; writes their traces —
the accepted agent timestamp, the server timestamp sent, last seen, remote address, uid, a Wake-on-LAN
target proved woken — with one batched UPDATE; and commits. Only then are those requests answered.

So an accepted timestamp is in the database before its answer exists: of two server processes handed the
same request, the one whose batch locks the row second sees the first one's timestamp and refuses it, and
a process killed right after answering leaves nothing a restart could forget. There is still no write per
request: a batch holds whatever arrived while the previous one was being written.

If a batch fails, each of its claims is confirmed again in a transaction of its own, so one entry the
database refuses never holds back the others: that one is logged and its request answered with an error
(the agent sends a new one at its next interval). A database that does not answer fails them all.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, case, select, text, update
from sqlalchemy.orm import InstrumentedAttribute

from oco.config import Settings
from oco.db.models import Computer
from oco.db.types import UTCDateTime
from oco.errors import Unavailable
from oco.services import metrics, wol
from oco.services.ledger import Claim, Seen
from oco.services.listing import chunks
from oco.services.runtime import Runtime, WriterBusy

log = logging.getLogger("oco.checkins")


class Outcome(enum.Enum):
    """What the database said of a claim."""

    CONFIRMED = "confirmed"
    REPLAYED = "replayed"
    """The stored timestamp is as new or newer: another server process accepted it (or a later one)."""
    FAILED = "failed"
    """Its traces could not be written; the request is answered with an error."""


@dataclass(frozen=True, slots=True)
class Unconfirmed:
    """A plain check-in's claim waiting for the database, and what the check-in's read found."""

    claim: Claim
    awaited: bool
    """The computer is an awaited Wake-on-LAN target: its check-in proves the packets worked."""


def _newer(column: InstrumentedAttribute[float], name: str) -> ColumnElement[Any]:
    parameter = bindparam(name, type_=column.type)
    return case((column < parameter, parameter), else_=column)


# Never moves a timestamp backwards. The key guards against a computer deleted meanwhile whose id a new
# one got.
_TOUCH = (
    update(Computer)
    .where(Computer.id == bindparam("p_id"), Computer.agent_key == bindparam("p_key"))
    .values(
        last_agent_timestamp=_newer(Computer.last_agent_timestamp, "p_timestamp"),
        last_server_timestamp=_newer(Computer.last_server_timestamp, "p_server_timestamp"),
        last_seen=bindparam("p_seen", type_=UTCDateTime()),
        remote_address=bindparam("p_address"),
        uid=bindparam("p_uid"),
    )
)
_STORED = (
    select(Computer.id, Computer.agent_key, Computer.last_agent_timestamp)
    .where(Computer.id.in_(bindparam("p_ids", expanding=True)))
    .order_by(Computer.id)
    .with_for_update()
)


def confirm(rt: Runtime, pending: Sequence[Unconfirmed], *, wait: bool = True) -> list[Outcome]:
    """Decide `pending` against the stored timestamps and write the accepted ones' traces; one outcome
    for each, in order. Raises `Unavailable` when the database does not answer; not `wait`, `WriterBusy`
    when SQLite's write lock is taken (nothing done)."""
    if not pending:
        return []
    started = time.perf_counter()
    try:
        outcomes = _confirm(rt, pending, wait)
    except (Unavailable, WriterBusy):
        raise
    except Exception:
        log.warning("confirming %d check-ins in one batch failed; confirming them one by one", len(pending))
    else:
        metrics.observe_flush(time.perf_counter() - started, len(pending))
        return outcomes
    outcomes = []
    for one in pending:
        try:
            outcomes.extend(_confirm(rt, [one]))
        except Unavailable:
            raise
        except Exception:
            computer_id = one.claim.entry.computer_id
            log.exception("the check-in of computer %d could not be written: %r", computer_id, one)
            outcomes.append(Outcome.FAILED)
    return outcomes


def _confirm(rt: Runtime, pending: Sequence[Unconfirmed], wait: bool = True) -> list[Outcome]:
    """One transaction: on PostgreSQL a single statement, elsewhere a locked read and a batched UPDATE."""
    if rt.engine.dialect.name == "postgresql":
        return rt.at_once(lambda connection: _confirm_in_one_statement(connection, rt.settings, pending))
    with rt.writing(wait=wait) as connection:
        return _confirm_locked(connection, rt.settings, pending)


def _confirm_locked(
    connection: Connection, settings: Settings, pending: Sequence[Unconfirmed]
) -> list[Outcome]:
    ids = sorted({one.claim.entry.computer_id for one in pending})
    stored: dict[int, tuple[str, float]] = {}
    for part in chunks(ids):
        for row in connection.execute(_STORED, {"p_ids": list(part)}):
            stored[row.id] = (row.agent_key, row.last_agent_timestamp)
    return _decided(connection, settings, pending, stored, write=True)


def _decided(
    connection: Connection,
    settings: Settings,
    pending: Sequence[Unconfirmed],
    stored: dict[int, tuple[str, float]],
    *,
    write: bool,
) -> list[Outcome]:
    """Each claim against its computer's stored key and timestamp; the newest accepted one of each
    computer written (`write`), the awaited Wake-on-LAN targets proved woken."""
    outcomes: list[Outcome] = []
    newest: dict[int, Seen] = {}
    woken: list[tuple[int, Seen]] = []
    for one in pending:
        entry = one.claim.entry
        key, timestamp = stored.get(entry.computer_id, ("", 0.0))
        if key and key == entry.agent_key and entry.agent_timestamp > timestamp:
            outcomes.append(Outcome.CONFIRMED)
            current = newest.get(entry.computer_id)
            if current is None or current.agent_timestamp < entry.agent_timestamp:
                newest[entry.computer_id] = entry
            if one.awaited:
                woken.append((entry.computer_id, entry))
        else:
            outcomes.append(Outcome.REPLAYED)
    if write and newest:
        connection.execute(_TOUCH, [_parameters(newest[computer_id]) for computer_id in sorted(newest)])
    for computer_id, entry in woken:
        wol.mark_computer_woken(connection, settings, computer_id, [entry.seen])
    return outcomes


# PostgreSQL: lock, decide and write in one statement (one round trip, atomic on its own). The batch's
# newest claim of each computer comes as one JSON document (psycopg dumps a Python list into an array
# element by element in Python; `json.dumps` is one C call: 0.25 ms less per batch); `locked` takes the
# rows whose stored timestamp is older, in id order (two processes' batches never deadlock), re-checked
# once locked; `touched` writes them; the answer is each locked computer with its timestamp as stored
# before, against which every claim of the batch is decided. A float in JSON is its shortest exact
# decimal (`repr`), which PostgreSQL reads back to the same double: timestamps compare as they were sent.
_CONFIRM_POSTGRESQL = text(
    """
    WITH claimed AS (
        SELECT * FROM json_to_recordset(CAST(:claims AS json)) AS claimed(
            id bigint, agent_key text, agent_timestamp float8, server_timestamp float8, seen timestamp,
            address text, uid text
        )
    ),
    locked AS (
        SELECT computer.id, computer.agent_key, computer.last_agent_timestamp AS stored
        FROM computer JOIN claimed ON claimed.id = computer.id
        WHERE computer.agent_key = claimed.agent_key
          AND computer.last_agent_timestamp < claimed.agent_timestamp
        ORDER BY computer.id
        FOR UPDATE OF computer
    ),
    touched AS (
        UPDATE computer SET
            last_agent_timestamp = claimed.agent_timestamp,
            last_server_timestamp = GREATEST(computer.last_server_timestamp, claimed.server_timestamp),
            last_seen = claimed.seen,
            remote_address = claimed.address,
            uid = claimed.uid
        FROM claimed, locked
        WHERE computer.id = claimed.id AND computer.id = locked.id
        RETURNING computer.id
    )
    SELECT locked.id, locked.agent_key, locked.stored FROM locked
    """
)


def _confirm_in_one_statement(
    connection: Connection, settings: Settings, pending: Sequence[Unconfirmed]
) -> list[Outcome]:
    newest: dict[int, Seen] = {}
    for one in pending:
        entry = one.claim.entry
        current = newest.get(entry.computer_id)
        if current is None or current.agent_timestamp < entry.agent_timestamp:
            newest[entry.computer_id] = entry
    claims = [
        {
            "id": entry.computer_id,
            "agent_key": entry.agent_key,
            "agent_timestamp": entry.agent_timestamp,
            "server_timestamp": entry.server_timestamp,
            "seen": entry.seen.astimezone(UTC).replace(tzinfo=None).isoformat(),
            "address": entry.address,
            "uid": entry.uid,
        }
        for entry in (newest[computer_id] for computer_id in sorted(newest))
    ]
    rows = connection.execute(_CONFIRM_POSTGRESQL, {"claims": json.dumps(claims)})
    stored = {row.id: (row.agent_key, row.stored) for row in rows}
    # A computer not locked is one whose stored timestamp is as new as its newest claim (or whose key
    # changed): every claim of it is refused.
    return _decided(connection, settings, pending, stored, write=False)


def _parameters(entry: Seen) -> dict[str, Any]:
    return {
        "p_id": entry.computer_id,
        "p_key": entry.agent_key,
        "p_timestamp": entry.agent_timestamp,
        "p_server_timestamp": entry.server_timestamp,
        "p_seen": entry.seen,
        "p_address": entry.address,
        "p_uid": entry.uid,
    }
