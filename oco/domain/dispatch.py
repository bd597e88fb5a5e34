"""Which jobs an agent gets now, and in which order (PROTOCOL.md "Eligible jobs")."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from oco.domain.ipranges import admits, parse_ip_ranges
from oco.domain.states import PENDING_STATES, JobState, PostAction


@dataclass(frozen=True, slots=True)
class ContainerWindow:
    """The container facts that decide whether its jobs may run now."""

    id: int
    priority: int
    created: datetime
    start: datetime
    end: datetime | None
    enabled: bool
    ip_ranges: str


@dataclass(frozen=True, slots=True)
class CandidateJob:
    id: int
    sequence: int
    state: JobState
    container: ContainerWindow


def is_open(container: ContainerWindow, now: datetime) -> bool:
    """A container hands out jobs while enabled and start <= now < end (no end: forever)."""
    return container.enabled and container.start <= now and (container.end is None or now < container.end)


def is_eligible(job: CandidateJob, now: datetime, client_address: str) -> bool:
    """A job may run now: still pending, its container open, and the IP constraint admits the client."""
    return (
        job.state in PENDING_STATES
        and is_open(job.container, now)
        and admits(parse_ip_ranges(job.container.ip_ranges), client_address)
    )


def dispatch_order(job: CandidateJob) -> tuple[int, datetime, int, int, int]:
    """Higher priority first, then older containers, whole containers at a time, then sequence."""
    container = job.container
    return (-container.priority, container.created, container.id, job.sequence, job.id)


def jobs_to_hand_out(jobs: Iterable[CandidateJob], now: datetime, client_address: str) -> list[CandidateJob]:
    """The eligible jobs of one computer in the order its agent must run them."""
    return sorted((job for job in jobs if is_eligible(job, now, client_address)), key=dispatch_order)


def wire_post_action(post_action: PostAction, restart_timeout: int) -> dict[str, int | None]:
    """The `restart`/`shutdown`/`exit` keys of a job: the chosen one carries the timeout in minutes."""
    keys: dict[str, int | None] = {"restart": None, "shutdown": None, "exit": None}
    key = {PostAction.RESTART: "restart", PostAction.SHUTDOWN: "shutdown", PostAction.EXIT_AGENT: "exit"}.get(
        post_action
    )
    if key is not None:
        keys[key] = restart_timeout
    return keys
