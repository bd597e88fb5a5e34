"""The check-in ledger: which requests this process accepted from agents, and which wait for the database.

A request's timestamp is accepted here, atomically, only when it is newer than both the database's and any
this process accepted for the computer; each acceptance also fixes the strictly increasing server timestamp
of the answer. That makes replay protection exact inside the process, fast. Across processes and restarts
the database decides: a plain check-in's claim is *pending* until `oco.services.checkins` has confirmed it
in a batch (a locked read of the stored timestamps and one write for all of the batch, committed), and the
agent is answered only then; `confirmed` resolves when it is.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
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


@dataclass(frozen=True, slots=True, eq=False)
class Claim:
    """An accepted request: the server timestamp to answer with, and what to restore if it fails."""

    entry: Seen
    previous: Seen | None
    confirmed: Future[None] | None = field(default=None)
    """A plain check-in's: resolved once the database confirmed it (an error if it refused it)."""

    @property
    def server_timestamp(self) -> float:
        """The `result.timestamp` to answer the accepted request with."""
        return self.entry.server_timestamp


class CheckinLedger:
    """Thread-safe: the API's worker threads claim, the confirming thread drains."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._seen: dict[int, Seen] = {}
        self._pending: list[Claim] = []

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

        `deferred` claims (plain check-ins), once `submit`ted, wait for `drain` and the batch that
        confirms them. The others
        belong to requests that write their timestamp themselves, with a conditional UPDATE in their own
        transaction.
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
            self._seen[computer_id] = entry
            if not deferred:
                return Claim(entry, previous)
            return Claim(entry, previous, Future())

    def submit(self, claim: Claim) -> None:
        """Hand a deferred claim over for confirmation (its request is ready to be answered)."""
        assert claim.confirmed is not None, "only deferred claims are confirmed in batches"
        with self._lock:
            self._pending.append(claim)
            if len(self._pending) == 1:
                self._ready.notify()

    def last_agent_timestamp(self, computer_id: int, agent_key: str, stored: float) -> float:
        """The newest accepted timestamp of a computer: the database's or this process's."""
        with self._lock:
            entry = self._seen.get(computer_id)
        if entry is None or entry.agent_key != agent_key:
            return stored
        return max(stored, entry.agent_timestamp)

    def revert(self, claim: Claim) -> None:
        """The request failed after its claim (or the database refused it): forget it, unless a newer
        request came meanwhile."""
        with self._lock:
            computer_id = claim.entry.computer_id
            if self._seen.get(computer_id) is not claim.entry:
                return
            if claim.previous is None:
                del self._seen[computer_id]
            else:
                self._seen[computer_id] = claim.previous

    def drain(self) -> list[Claim]:
        """The claims waiting for confirmation, in the order they were made; they are the caller's now."""
        with self._lock:
            claims, self._pending = self._pending, []
        return claims

    def wait(self, timeout: float) -> bool:
        """Block until a claim waits for confirmation (True) or `timeout` seconds passed (False)."""
        with self._ready:
            return self._ready.wait_for(lambda: bool(self._pending), timeout)

    def wake(self) -> None:
        """Let a thread blocked in `wait` look again (it is stopping)."""
        with self._ready:
            self._ready.notify_all()

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)


def next_server_timestamp(last: float) -> float:
    """A server time strictly greater than the last one this computer was sent."""
    return max(time.time(), last + TIMESTAMP_STEP)
