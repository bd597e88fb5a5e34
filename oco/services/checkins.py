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
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, case, select, update
from sqlalchemy.orm import InstrumentedAttribute

from oco.config import Settings
from oco.db.models import Computer
from oco.db.types import UTCDateTime
from oco.errors import Unavailable
from oco.services import metrics, wol
from oco.services.ledger import Claim, Seen
from oco.services.listing import chunks
from oco.services.runtime import Runtime

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


def confirm(rt: Runtime, pending: Sequence[Unconfirmed]) -> list[Outcome]:
    """Decide `pending` against the stored timestamps and write the accepted ones' traces; one outcome
    for each, in order. Raises `Unavailable` when the database does not answer."""
    if not pending:
        return []
    started = time.perf_counter()
    try:
        with rt.writing() as connection:
            _without_waiting_for_the_disk(connection)
            outcomes = _confirm(connection, rt.settings, pending)
        metrics.observe_flush(time.perf_counter() - started, len(pending))
        return outcomes
    except Unavailable:
        raise
    except Exception:
        log.warning("confirming %d check-ins in one batch failed; confirming them one by one", len(pending))
    outcomes = []
    for one in pending:
        try:
            with rt.writing() as connection:
                _without_waiting_for_the_disk(connection)
                outcomes.extend(_confirm(connection, rt.settings, [one]))
        except Unavailable:
            raise
        except Exception:
            computer_id = one.claim.entry.computer_id
            log.exception("the check-in of computer %d could not be written: %r", computer_id, one)
            outcomes.append(Outcome.FAILED)
    return outcomes


def _without_waiting_for_the_disk(connection: Connection) -> None:
    """PostgreSQL: commit the batch without waiting for its WAL to reach the disk.

    What the confirmation guards against — a second server process, a server restarted after a crash —
    sees the commit at once either way; only a crash of the database server itself within a fraction of
    a second could lose the batch (last seen, timestamps), and with it the refusal of a replay of those
    very requests. Waiting for the disk on every batch cost more than the rest of the batch.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL synchronous_commit = off")


def _confirm(connection: Connection, settings: Settings, pending: Sequence[Unconfirmed]) -> list[Outcome]:
    ids = sorted({one.claim.entry.computer_id for one in pending})
    stored: dict[int, tuple[str, float]] = {}
    for part in chunks(ids):
        for row in connection.execute(_STORED, {"p_ids": list(part)}):
            stored[row.id] = (row.agent_key, row.last_agent_timestamp)
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
    if newest:
        connection.execute(_TOUCH, [_parameters(newest[computer_id]) for computer_id in sorted(newest)])
    for computer_id, entry in woken:
        wol.mark_computer_woken(connection, settings, computer_id, [entry.seen])
    return outcomes


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
