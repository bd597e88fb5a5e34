"""Download slots: how many computers may download a payload at once (docs/rollouts.md "Download slots").

A limit has a scope: one container (`--max-downloads N`), the whole server (`max_concurrent_downloads`),
or a network of client addresses (`download_network_limits`, `10.1.0.0/16=5`). A job with a payload to
download that one or more limits apply to is handed out only with a slot of each: numbered places
`0 … limit-1` of the scope, each held by at most one job. A slot is held from hand-out until its job is
past downloading (executing, finished, failed, gone) or its time runs out (`download_slot_timeout_seconds`).

The rules here are pure: which limits apply to a job, whether a slot is held, whether the job may be
handed out now, and which numbers are free to take. Taking one is a conditional write in
`oco.services.slots`, so two server processes never hand out the same place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import TypeVar

from oco.domain.errors import InvalidDownloadLimit, InvalidIpRange
from oco.domain.ipranges import Network, client_ip, parse_ip_ranges
from oco.domain.states import JobState

SERVER_SCOPE = "server"
CONTAINER_PREFIX = "container:"
NETWORK_PREFIX = "network:"
MAX_DOWNLOADS_MAX = 1_000_000
"""The largest limit accepted (a place is a row: a limit is a count of computers, not a rate)."""
NETWORK_LIMITS_MAX = 100
HOLDING_STATES = frozenset({JobState.WAITING, JobState.DOWNLOADING})
"""A slot's job holds it while handed out but not past downloading."""


def container_scope(container_id: int) -> str:
    return f"{CONTAINER_PREFIX}{container_id}"


def network_scope(network: Network) -> str:
    return f"{NETWORK_PREFIX}{network}"


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `limit` slots of `scope` held at once."""

    scope: str
    limit: int


@dataclass(frozen=True, slots=True)
class NetworkLimit:
    """At most `limit` computers of `network` download at once."""

    network: Network
    limit: int

    @property
    def text(self) -> str:
        return f"{self.network}={self.limit}"


def parse_max_downloads(value: int | str | None, field_name: str = "max_downloads") -> int | None:
    """A container's `--max-downloads`: a positive count, or None (0, empty, None: no limit)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidDownloadLimit(
            f"maximum downloads must be a whole number, not {value!r}", field=field_name
        ) from None
    if number < 0 or number > MAX_DOWNLOADS_MAX:
        raise InvalidDownloadLimit(
            f"maximum downloads must be 0 (no limit) to {MAX_DOWNLOADS_MAX}, not {number}", field=field_name
        )
    return number or None


def parse_network_limits(
    entries: Iterable[str], field_name: str = "download_network_limits"
) -> tuple[NetworkLimit, ...]:
    """`10.1.0.0/16=5`-style entries (a network as in agent IP ranges, `=`, a positive count), order kept."""
    limits = []
    for entry in entries:
        text = entry.strip()
        if not text:
            continue
        network_text, equals, count_text = text.rpartition("=")
        if not equals or not network_text.strip():
            raise InvalidDownloadLimit(
                f"network limit {text!r}: write NETWORK=COUNT (10.1.0.0/16=5)", field=field_name
            )
        try:
            rules = parse_ip_ranges(network_text.strip())
        except InvalidIpRange as exc:
            raise InvalidDownloadLimit(f"network limit {text!r}: {exc}", field=field_name) from None
        if len(rules) != 1 or rules[0].negated:
            raise InvalidDownloadLimit(f"network limit {text!r}: one network before '='", field=field_name)
        count = parse_max_downloads(count_text.strip(), field_name)
        if count is None:
            raise InvalidDownloadLimit(
                f"network limit {text!r}: the count must be positive", field=field_name
            )
        limits.append(NetworkLimit(rules[0].network, count))
    if len(limits) > NETWORK_LIMITS_MAX:
        raise InvalidDownloadLimit(f"at most {NETWORK_LIMITS_MAX} network limits", field=field_name)
    return tuple(limits)


@dataclass(frozen=True, slots=True)
class Limits:
    """The server-wide limits: `max_concurrent_downloads` (None: none) and the network limits."""

    server: int | None = None
    networks: tuple[NetworkLimit, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.server) or bool(self.networks)


NO_LIMITS = Limits()


def limits_for(
    container_id: int, max_downloads: int | None, limits: Limits, address: str | None
) -> tuple[Limit, ...]:
    """The limits a download of a job of the container by a client at `address` counts against, sorted
    by scope (the order slots are taken in, so two takers never wait on each other in a circle)."""
    if not limits.server and not limits.networks:
        return _container_limit(container_id, max_downloads) if max_downloads else ()
    # The check-in asks on every hello of a waiting computer: cached (the address only matters to networks).
    return _limits_for(container_id, max_downloads, limits, address if limits.networks else None)


@lru_cache(maxsize=4096)
def _container_limit(container_id: int, max_downloads: int) -> tuple[Limit, ...]:
    return (Limit(container_scope(container_id), max_downloads),)


@lru_cache(maxsize=4096)
def _limits_for(
    container_id: int, max_downloads: int | None, limits: Limits, address: str | None
) -> tuple[Limit, ...]:
    found = []
    if max_downloads:
        found.append(Limit(container_scope(container_id), max_downloads))
    if limits.server:
        found.append(Limit(SERVER_SCOPE, limits.server))
    if limits.networks:
        found.extend(_network_limits(limits.networks, address))
    return tuple(sorted(found, key=lambda limit: limit.scope))


def _network_limits(networks: tuple[NetworkLimit, ...], address: str | None) -> list[Limit]:
    ip = client_ip(address)
    if ip is None:
        return []
    return [
        Limit(network_scope(entry.network), entry.limit)
        for entry in networks
        if entry.network.version == ip.version and ip in entry.network
    ]


@dataclass(frozen=True, slots=True)
class Slot:
    """One place of a scope as stored: the job holding it (None: never taken), until when, and the
    job's state now (None: the job is gone)."""

    number: int
    job_id: int | None
    expires: datetime | None
    job_state: JobState | None

    def held(self, now: datetime) -> bool:
        """Held by its job: taken, not run out, and the job not past downloading."""
        return (
            self.job_id is not None
            and self.expires is not None
            and now < self.expires
            and self.job_state in HOLDING_STATES
        )


@dataclass(frozen=True, slots=True)
class Occupancy:
    """The places of one scope as read at one moment."""

    limit: Limit
    slots: tuple[Slot, ...] = ()
    holders: Mapping[int, datetime] = field(default_factory=dict)
    """The jobs holding a place and when it runs out, as read."""
    first_expiry: datetime | None = None
    """The earliest time a holder's place runs out: until then all of them hold (the check-in's case)."""

    @classmethod
    def of(cls, limit: Limit, slots: Sequence[Slot], now: datetime) -> Occupancy:
        holders: dict[int, datetime] = {
            slot.job_id: slot.expires
            for slot in slots
            if slot.held(now) and slot.job_id is not None and slot.expires is not None
        }
        first = min(holders.values()) if holders else None
        return cls(limit, tuple(slots), holders, first)

    def with_holder(self, job_id: int, expires: datetime) -> Occupancy:
        """The occupancy once the job holds a place until `expires` (it took one, or held one)."""
        if job_id in self.holders:
            return self
        holders = {**self.holders, job_id: expires}
        first = expires if self.first_expiry is None else min(self.first_expiry, expires)
        return Occupancy(self.limit, self.slots, holders, first)

    def in_use(self, now: datetime) -> int:
        if self.first_expiry is None or now < self.first_expiry:
            return len(self.holders)
        return sum(1 for expires in self.holders.values() if now < expires)

    def holds(self, job_id: int, now: datetime) -> bool:
        expires = self.holders.get(job_id)
        return expires is not None and now < expires

    def free_numbers(self, now: datetime) -> list[int]:
        """The places below the limit nobody holds (never taken, run out, or their job past downloading);
        none once the limit is reached — also when places above a lowered limit are still held."""
        if self.in_use(now) >= self.limit.limit:
            return []
        taken = {slot.number for slot in self.slots if slot.held(now)}
        return [number for number in range(self.limit.limit) if number not in taken]


class Verdict(StrEnum):
    NOT_NEEDED = "not-needed"
    """No payload to download, or no limit applies."""
    DOWNLOADING = "downloading"
    """Handed out and downloading (with or without a slot): it finishes."""
    HOLDS = "holds"
    """The job holds a slot of every limit: it is handed out again."""
    MAY_TAKE = "may-take"
    """Every limit has room: the job is handed out once its slots are taken."""
    FULL = "full"
    """A limit is reached: the job waits."""


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    full: Limit | None = None
    in_use: int = 0
    """For FULL: the limit reached and how many of its slots are in use."""

    @property
    def hands_out(self) -> bool:
        return self.verdict is not Verdict.FULL


NOT_NEEDED = Decision(Verdict.NOT_NEEDED)
DOWNLOADING = Decision(Verdict.DOWNLOADING)
HOLDS = Decision(Verdict.HOLDS)
MAY_TAKE = Decision(Verdict.MAY_TAKE)


def may_download(
    job_id: int,
    state: JobState,
    downloads: bool,
    occupancies: Sequence[Occupancy],
    now: datetime,
) -> Decision:
    """May the computer be handed this job now? `occupancies` are those of the limits that apply to it
    (`limits_for`), read at `now`."""
    if not downloads or not occupancies:
        return NOT_NEEDED
    if state is JobState.DOWNLOADING:
        return DOWNLOADING
    if state is not JobState.WAITING:
        return NOT_NEEDED
    holds_all = True
    for occupancy in occupancies:  # a loop, not lists: every waiting computer's check-in asks
        if occupancy.holds(job_id, now):
            continue
        holds_all = False
        used = occupancy.in_use(now)
        if used >= occupancy.limit.limit:
            return Decision(Verdict.FULL, occupancy.limit, used)
    return HOLDS if holds_all else MAY_TAKE


def waiting_text(limit: Limit, in_use: int) -> str:
    """`waiting for a download slot (50 of 50 in use)`, naming a network or the server-wide limit."""
    where = ""
    if limit.scope == SERVER_SCOPE:
        where = " of the server"
    elif limit.scope.startswith(NETWORK_PREFIX):
        where = f" of network {limit.scope.removeprefix(NETWORK_PREFIX)}"
    return f"waiting for a download slot{where} ({in_use} of {limit.limit} in use)"


J = TypeVar("J")


def hand_out(jobs: Sequence[J], decide: Callable[[J], Decision], take: Callable[[J], bool]) -> list[J]:
    """The jobs of a hello answer under download slots: in their order, up to the first that may not be
    handed out (a later job never runs before an earlier one). A computer downloads one payload after
    the other, so it takes a new slot only when no earlier job of the answer holds one or is downloading:
    the next waits for a later check-in. `take(job)` takes the slots of a MAY_TAKE job (False: another
    computer was quicker, and the job waits)."""
    answered: list[J] = []
    busy = False
    for job in jobs:
        decision = decide(job)
        if decision.verdict is Verdict.FULL:
            break
        if decision.verdict is Verdict.MAY_TAKE and (busy or not take(job)):
            break
        if decision.verdict is not Verdict.NOT_NEEDED:
            busy = True
        answered.append(job)
    return answered


def preview_sentence(
    max_downloads: int | None, server_limit: int | None, downloading: int
) -> tuple[int, str]:
    """How many of the `downloading` computers (those with a payload to fetch) download at once under
    the deployment's and the server's limits, and the preview's sentence saying so."""
    limits = [limit for limit in (max_downloads, server_limit) if limit]
    at_once = min([downloading, *limits])
    if not limits:
        return at_once, f"{_computers(downloading)} with a payload to download fetch it at once (no limit)."
    if downloading <= at_once:
        return at_once, (
            f"{_computers(downloading)} with a payload to download: all fetch it at once "
            f"(limit {min(limits)})."
        )
    source = "this deployment's limit" if max_downloads == min(limits) else "the server's limit"
    return at_once, (
        f"At most {at_once} of the {downloading:,} computers with a payload to download fetch it at once "
        f"({source}); the others wait for a download slot and get their jobs at a later check-in."
    )


def _computers(count: int) -> str:
    return f"{count:,} computer{'' if count == 1 else 's'}"
