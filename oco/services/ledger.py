"""The check-in ledger: which requests this process accepted from agents, and what they left to write.

A request's timestamp is accepted here, atomically, only when it is newer than both the database's and any
this process accepted for the computer; each acceptance also fixes the strictly increasing server timestamp
of the answer. `oco.services.checkins` writes what the ledger holds to the database in batches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
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
    previous_unwritten: bool = False
    """The previous entry was still waiting for the flush when this claim took its place."""

    @property
    def server_timestamp(self) -> float:
        """The `result.timestamp` to answer the accepted request with."""
        return self.entry.server_timestamp

    @property
    def superseded(self) -> Seen | None:
        """The unwritten traces a request that writes its own took over (their Wake-on-LAN proof counts)."""
        return self.previous if self.previous_unwritten else None


class CheckinLedger:
    """Thread-safe: the API's worker threads accept, the flusher drains."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[int, Seen] = {}
        self._unwritten: set[int] = set()

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
        deferred: bool,
    ) -> Claim | None:
        """Accept `timestamp` if newer than any accepted for the computer; None for a replay.

        `deferred` requests leave their traces for `flush`. The others write them themselves, with a
        conditional UPDATE that only a newer timestamp passes: the flush must never write theirs first, so
        their computer leaves the unwritten set (their own write supersedes the earlier traces).
        """
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
            previous_unwritten = previous is not None and computer_id in self._unwritten
            self._seen[computer_id] = entry
            if deferred:
                self._unwritten.add(computer_id)
            else:
                self._unwritten.discard(computer_id)
            return Claim(entry, previous, previous_unwritten)

    def last_agent_timestamp(self, computer_id: int, agent_key: str, stored: float) -> float:
        """The newest accepted timestamp of a computer: the database's or this process's."""
        with self._lock:
            entry = self._seen.get(computer_id)
        if entry is None or entry.agent_key != agent_key:
            return stored
        return max(stored, entry.agent_timestamp)

    def revert(self, claim: Claim) -> None:
        """The request failed after its claim: forget it, unless a newer request came meanwhile."""
        with self._lock:
            computer_id = claim.entry.computer_id
            if self._seen.get(computer_id) is not claim.entry:
                return
            if claim.previous is None:
                del self._seen[computer_id]
            else:
                self._seen[computer_id] = claim.previous
            if claim.previous_unwritten:
                self._unwritten.add(computer_id)
            else:
                self._unwritten.discard(computer_id)

    def drain(self) -> list[Seen]:
        """The traces not written yet; they count as written from now on."""
        with self._lock:
            entries = [self._seen[computer_id] for computer_id in self._unwritten]
            self._unwritten.clear()
        return entries

    def restore(self, entries: Iterable[Seen]) -> None:
        """A flush failed: its entries are written by the next one (unless newer ones replaced them)."""
        with self._lock:
            for entry in entries:
                if self._seen.get(entry.computer_id) is entry:
                    self._unwritten.add(entry.computer_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._unwritten)


def next_server_timestamp(last: float) -> float:
    """A server time strictly greater than the last one this computer was sent."""
    return max(time.time(), last + TIMESTAMP_STEP)
