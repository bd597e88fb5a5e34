"""Writing the check-in ledger (`oco.services.ledger`) to the database in batches.

A steady agent's check-in (`oco.agent.hello` with nothing new to store) only reads: its signature is
verified, its timestamp accepted here, its jobs read, and the traces it leaves — last seen, remote
address, uid, the accepted agent timestamp, the server timestamp sent, a Wake-on-LAN target woken — are
written by `flush` for every computer seen since the last flush, in one transaction (the server flushes
every `checkin_flush_seconds`, before housekeeping and on shutdown).

Replay protection stays exact inside the process: a timestamp is accepted here, atomically, only when it
is newer than both the database's and this ledger's last one. Requests that change data (inventory, job
reports, downloads, first contact) also write their timestamp with a conditional UPDATE, so they stay
exact across processes too; a replayed plain check-in sent to a second server process sharing the
database could be answered within one flush interval, and it changes nothing but `last seen`.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import ColumnElement, bindparam, case, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from oco.config import Settings
from oco.db.models import Computer
from oco.db.types import UTCDateTime
from oco.errors import Unavailable
from oco.services import wol
from oco.services.ledger import Seen
from oco.services.runtime import Runtime

log = logging.getLogger("oco.checkins")


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


def write(session: Session, settings: Settings, entries: list[Seen]) -> None:
    """Write the traces of `entries` in the caller's transaction, batched."""
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
    wol.mark_woken(session, settings, [(entry.computer_id, entry.seen) for entry in entries])


def flush(runtime: Runtime) -> int:
    """Write what the ledger holds; returns how many computers were written.

    All entries go in one transaction. If it fails, each is tried again in a transaction of its own, so
    one entry the database refuses never holds back the others: it is logged and dropped (its computer's
    next check-in brings fresh traces). If the database does not answer, the entries not written yet are
    kept for the next flush and the error is raised.
    """
    entries = runtime.checkins.drain()
    if not entries:
        return 0
    try:
        with runtime.transaction() as session:
            write(session, runtime.settings, entries)
    except Exception:
        log.warning("writing %d check-ins in one batch failed; writing them one by one", len(entries))
    else:
        return len(entries)
    written = 0
    for index, entry in enumerate(entries):
        try:
            with runtime.transaction() as session:
                write(session, runtime.settings, [entry])
        except Unavailable:  # the database does not answer: nothing is wrong with the entries
            runtime.checkins.restore(entries[index:])
            raise
        except Exception:
            log.exception(
                "the check-in of computer %d could not be written and is dropped: %r",
                entry.computer_id,
                entry,
            )
        else:
            written += 1
    return written
