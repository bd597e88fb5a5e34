"""The check-in ledger: which requests this process accepted from agents.

A request's timestamp is claimed here, atomically, only when it is newer than both the database's and any
this process claimed for the computer; each claim also fixes the strictly increasing server timestamp of
the answer. That refuses a replay inside the process at once, without a trip to the database. The
database still decides across processes and restarts: a request that writes carries its timestamp in its
own conditional UPDATE, and a plain check-in is answered only once `oco.services.checkins` confirmed its
claim there (in a batch with the others of that moment).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

TIMESTAMP_STEP = 0.001
"""The smallest increase of the server timestamp sent to one computer."""


@dataclass(frozen=True, slots=True)
class Seen:
    """The last request this process accepted from one computer."""

    computer_id: int
    agent_key: str
    """The key the computer signed with: a computer with a new key (or a reused id) starts afresh."""
    agent_timestamp: float
    server_timestamp: float
    seen: datetime
    address: str
    uid: str


@dataclass(frozen=True, slots=True)
class Claim:
    """An accepted request: the server timestamp to answer with, and what to restore if it fails."""

    entry: Seen
    previous: Seen | None

    @property
    def server_timestamp(self) -> float:
        """The `result.timestamp` to answer the accepted request with."""
        return self.entry.server_timestamp


class CheckinLedger:
    """Thread-safe: the event loop and the API's worker threads claim and revert."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[int, Seen] = {}

    def claim(
        self,
        computer_id: int,
        agent_key: str,
        stored_agent_timestamp: float,
        stored_server_timestamp: float,
        timestamp: float,
        *,
        seen: datetime,
        address: str,
        uid: str,
    ) -> Claim | None:
        """Accept `timestamp` if newer than any accepted for the computer; None for a replay."""
        with self._lock:
            previous = self._seen.get(computer_id)
            last_agent, last_server = stored_agent_timestamp, stored_server_timestamp
            if previous is not None and previous.agent_key == agent_key:
                last_agent = max(last_agent, previous.agent_timestamp)
                last_server = max(last_server, previous.server_timestamp)
            if timestamp <= last_agent:
                return None
            entry = Seen(
                computer_id=computer_id,
                agent_key=agent_key,
                agent_timestamp=timestamp,
                server_timestamp=next_server_timestamp(last_server),
                seen=seen,
                address=address,
                uid=uid,
            )
            self._seen[computer_id] = entry
            return Claim(entry, previous)

    def last_agent_timestamp(self, computer_id: int, agent_key: str, stored: float) -> float:
        """The newest accepted timestamp of a computer: the database's or this process's."""
        with self._lock:
            entry = self._seen.get(computer_id)
        if entry is None or entry.agent_key != agent_key:
            return stored
        return max(stored, entry.agent_timestamp)

    def revert(self, claim: Claim) -> None:
        """The request failed after its claim, or the database refused it: forget it, unless a newer
        request came meanwhile."""
        with self._lock:
            computer_id = claim.entry.computer_id
            if self._seen.get(computer_id) is not claim.entry:
                return
            if claim.previous is None:
                del self._seen[computer_id]
            else:
                self._seen[computer_id] = claim.previous


def next_server_timestamp(last: float) -> float:
    """A server time strictly greater than the last one this computer was sent."""
    return max(time.time(), last + TIMESTAMP_STEP)
