"""Confirming plain check-ins in the database, in batches, before they are answered.

A steady agent's check-in (`oco.agent.hello` with nothing new to store) is answered from reads: its
signature is verified, its timestamp claimed in the process's ledger (`oco.services.ledger`), its jobs
read. Before the answer goes out, the claim is confirmed here, together with every other claim waiting
at that moment (a group commit): one transaction locks the claimed computers' rows in id order, keeps the
claims whose timestamp is newer than the stored one, writes their traces — the accepted agent timestamp,
the server timestamp sent, last seen, remote address, uid, a Wake-on-LAN target proved woken — with one
batched UPDATE, and commits. Only then are those requests answered; the others are refused as replays.

So an accepted timestamp is durable and authoritative before its answer exists: of two processes handed
the same request, the one whose batch locks the row second sees the first one's timestamp and refuses,
and a process killed right after answering has nothing unwritten a restart could forget. There is no
write per request: a batch holds whatever arrived while the previous one was being written.

If a batch fails, each of its claims is confirmed again in a transaction of its own, so one entry the
database refuses never holds back the others: it is logged and its request answered with an error (the
agent sends a new one at its next interval). If the database does not answer, the claims left are
answered with `Unavailable`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, bindparam, case, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from oco.config import Settings
from oco.db.models import Computer
from oco.db.types import UTCDateTime
from oco.errors import OcoError, Unavailable
from oco.services import metrics, wol
from oco.services.agents import AuthenticationFailed
from oco.services.ledger import Claim, Seen
from oco.services.runtime import Runtime

log = logging.getLogger("oco.checkins")
CHUNK = 5000
"""Computers locked per SELECT (SQLite takes at most 32,766 parameters)."""
IDLE_WAIT_S = 0.5


def _newer(column: InstrumentedAttribute[float], name: str) -> ColumnElement[Any]:
    parameter = bindparam(name, type_=column.type)
    return case((column < parameter, parameter), else_=column)


# Never moves a timestamp backwards: a request that wrote its own may have been newer. The key guards
# against a computer deleted meanwhile whose id a new one got.
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


def write(session: Session, settings: Settings, entries: Sequence[Seen]) -> None:
    """Write the traces of `entries` (one a computer) in the caller's transaction, batched."""
    if not entries:
        return
    session.connection().execute(
        _TOUCH,
        [
            {
                "p_id": entry.computer_id,
                "p_key": entry.agent_key,
                "p_timestamp": entry.agent_timestamp,
                "p_server_timestamp": entry.server_timestamp,
                "p_seen": entry.seen,
                "p_address": entry.address,
                "p_uid": entry.uid,
            }
            for entry in entries
        ],
    )


def confirm(session: Session, settings: Settings, claims: Sequence[Claim]) -> list[bool]:
    """Decide `claims` against the stored timestamps, locked, and write the accepted ones' traces.

    In the caller's transaction; the answer (accepted or not, for each claim) holds once it commits.
    """
    ids = sorted({claim.entry.computer_id for claim in claims})
    stored: dict[int, tuple[str, float]] = {}
    connection = session.connection()
    for start in range(0, len(ids), CHUNK):
        query = (
            select(Computer.id, Computer.agent_key, Computer.last_agent_timestamp)
            .where(Computer.id.in_(ids[start : start + CHUNK]))
            .order_by(Computer.id)
            .with_for_update()
        )
        for row in connection.execute(query):
            stored[row.id] = (row.agent_key, row.last_agent_timestamp)
    accepted: list[bool] = []
    newest: dict[int, Seen] = {}
    for claim in claims:
        entry = claim.entry
        key, timestamp = stored.get(entry.computer_id, ("", 0.0))
        ok = bool(key) and key == entry.agent_key and entry.agent_timestamp > timestamp
        accepted.append(ok)
        if ok:
            current = newest.get(entry.computer_id)
            if current is None or current.agent_timestamp < entry.agent_timestamp:
                newest[entry.computer_id] = entry
    write(session, settings, [newest[computer_id] for computer_id in sorted(newest)])
    seen = [(c.entry.computer_id, c.entry.seen) for c, ok in zip(claims, accepted, strict=True) if ok]
    wol.mark_woken(session, settings, seen)
    return accepted


def flush(runtime: Runtime) -> int:
    """Confirm the claims waiting in the ledger and resolve them; returns how many were accepted."""
    claims = runtime.checkins.drain()
    if not claims:
        return 0
    metrics.CONFIRM_BATCH.observe(len(claims))
    try:
        with metrics.CONFIRM_SECONDS.time(), runtime.transaction() as session:
            outcomes = confirm(session, runtime.settings, claims)
    except Unavailable as exc:
        _fail(runtime, claims, exc)
        raise
    except Exception:
        log.warning("confirming %d check-ins in one batch failed; confirming them one by one", len(claims))
    else:
        return _resolve(runtime, claims, outcomes)
    accepted = 0
    for index, claim in enumerate(claims):
        try:
            with runtime.transaction() as session:
                outcome = confirm(session, runtime.settings, [claim])
        except Unavailable as exc:  # the database does not answer: nothing is wrong with the claims
            _fail(runtime, claims[index:], exc)
            raise
        except Exception:
            log.exception(
                "the check-in of computer %d could not be written: %r", claim.entry.computer_id, claim.entry
            )
            _fail(runtime, [claim], Unavailable("the check-in could not be recorded; send it again"))
        else:
            accepted += _resolve(runtime, [claim], outcome)
    return accepted


def _resolve(runtime: Runtime, claims: Sequence[Claim], outcomes: Sequence[bool]) -> int:
    for claim, ok in zip(claims, outcomes, strict=True):
        if ok:
            _settle(claim, None)
        else:
            runtime.checkins.revert(claim)
            _settle(
                claim,
                AuthenticationFailed(
                    f"timestamp {claim.entry.agent_timestamp} is not newer than the last one accepted: "
                    "replayed request"
                ),
            )
    return sum(outcomes)


def _fail(runtime: Runtime, claims: Sequence[Claim], error: OcoError) -> None:
    for claim in claims:
        runtime.checkins.revert(claim)
        _settle(claim, error)


def _settle(claim: Claim, error: OcoError | None) -> None:
    future = claim.confirmed
    if future is None or future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class Confirmer:
    """The thread of a server process that confirms check-ins as they come, one batch after the other."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="oco-check-in-confirm", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Confirm what waits, then end the thread."""
        self._stopping.set()
        self.runtime.checkins.wake()
        self._thread.join()
        _flush_logged(self.runtime)

    def _run(self) -> None:
        while not self._stopping.is_set():
            if self.runtime.checkins.wait(IDLE_WAIT_S) and not _flush_logged(self.runtime):
                time.sleep(IDLE_WAIT_S)  # the database does not answer: do not spin


def _flush_logged(runtime: Runtime) -> bool:
    try:
        flush(runtime)
    except Exception:
        log.exception("confirming check-ins failed; their agents were answered with an error")
        return False
    return True
