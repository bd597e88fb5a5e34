"""Which jobs an agent gets now, and in which order (PROTOCOL.md "Eligible jobs").

Order: container priority descending, then container creation ascending, then container id (two
containers created in the same instant still never interleave), then the job's sequence. A lower-priority
container's job therefore never precedes a higher-priority one's, and equal-priority containers come
whole, one after the other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from enum import StrEnum

from oco.domain.errors import InvalidIpRange
from oco.domain.ipranges import IpRangeRule, admits, parse_ip_ranges
from oco.domain.phases import HALTED, phase_is_open
from oco.domain.presence import is_online
from oco.domain.slots import Decision
from oco.domain.slots import waiting_text as slot_waiting_text
from oco.domain.states import PENDING_STATES, JobState, PostAction, Vocabulary, spell
from oco.domain.windows import (
    Windows,
    WindowZone,
    next_opening,
    opening_text,
    reported_zone,
    stored_windows,
    window_clock,
)
from oco.domain.windows import (
    is_open as window_is_open,
)

WIRE_POST_ACTIONS = tuple(action for action in PostAction if action is not PostAction.NONE)
"""The post-actions a job on the wire names by a key of their own: the action's text."""


@dataclass(frozen=True, slots=True)
class ContainerWindow:
    """The container facts that decide whether its jobs may run now.

    `ip_ranges` is the stored constraint text or rules already parsed by `parse_ip_ranges`.
    """

    id: int
    priority: int
    created: datetime
    start: datetime
    end: datetime | None
    enabled: bool
    ip_ranges: str | Sequence[IpRangeRule]
    open_phase: int | None = None
    """The last phase of a rollout that is open (`oco.domain.phases`); None without phases, HALTED when
    halted."""
    windows: str | None = None
    """Maintenance windows in their stored form (`oco.domain.windows`); None: any time."""


@dataclass(frozen=True, slots=True)
class CandidateJob:
    """A job of the checking-in computer, with its container."""

    id: int
    sequence: int
    state: JobState
    container: ContainerWindow
    phase: int | None = None
    not_before: datetime | None = None
    """A job waiting for its retry runs from then on (`oco.domain.retries`)."""

    def waits_for_retry(self, now: datetime) -> bool:
        """Waiting, and its retry time has not come yet."""
        return self.state is JobState.WAITING and self.not_before is not None and now < self.not_before


def is_open(container: ContainerWindow, now: datetime) -> bool:
    """A container hands out jobs while enabled and start <= now < end (no end: forever)."""
    return container.enabled and container.start <= now and (container.end is None or now < container.end)


def container_admits(container: ContainerWindow, client_address: str | None) -> bool:
    """Whether the container's IP constraint admits the client address.

    Stored text that no longer parses admits nobody: a broken constraint must not widen who runs the jobs.
    """
    rules = container.ip_ranges
    if isinstance(rules, str):
        try:
            rules = parse_ip_ranges(rules)
        except InvalidIpRange:
            return False
    return admits(rules, client_address)


@dataclass(frozen=True, slots=True)
class Clocks:
    """The zones maintenance windows are read on: the computer's (as its agent reports it, or "") and
    the server's."""

    computer: str = ""
    server: tzinfo = UTC

    def zone_for(self, windows: Windows) -> tzinfo:
        return window_clock(windows, reported_zone(self.computer), self.server)


SERVER_CLOCK = Clocks()


def in_window(container: ContainerWindow, now: datetime, clocks: Clocks) -> bool:
    """Whether the container's maintenance windows are open now on the computer's (or server's) clock."""
    if container.windows is None:
        return True
    windows = stored_windows(container.windows)
    return windows is not None and window_is_open(windows, now, clocks.zone_for(windows))


def is_eligible(
    job: CandidateJob, now: datetime, client_address: str | None, clocks: Clocks = SERVER_CLOCK
) -> bool:
    """A job may run now: still pending, its container handing out (`hand_out_hold`), and its rollout
    phase and maintenance window open (a job already started finishes either way)."""
    return (
        job.state in PENDING_STATES
        and not job.waits_for_retry(now)
        and hand_out_hold(job.container, now, client_address) is None
        and (
            job.state is not JobState.WAITING
            or (phase_is_open(job.phase, job.container.open_phase) and in_window(job.container, now, clocks))
        )
    )


def hand_out_hold(container: ContainerWindow, now: datetime, client_address: str | None) -> Hold | None:
    """Why the container hands no job to a client at `client_address` now (disabled, not started, ended,
    outside its IP ranges); None when it hands them out. The one rule of hand-out, downloads and reports."""
    if not container.enabled:
        return Hold.DISABLED
    if container.start > now:
        return Hold.SCHEDULED
    if container.end is not None and now >= container.end:
        return Hold.ENDED
    if not container_admits(container, client_address):
        return Hold.OUTSIDE_IP_RANGES
    return None


def report_refusal(job: CandidateJob, now: datetime, client_address: str | None) -> Hold | None:
    """Why a computer may not report on its `job` now; None when it may.

    A computer reports only what it could have received: a waiting job only while it would be handed
    out (`hand_out_hold`). A job it has started (downloading, executing) was handed out, so it stays
    reportable whatever its container does meanwhile — disabled, past its end, or the computer moved to
    another network: the software may be installed by now, and dropping the result would leave the
    server believing otherwise. (Housekeeping still expires it at the container's end, `status.is_expired`.)
    A report on a finished job is answered but never applied (`oco.domain.outcomes`), so it is not
    refused here either.
    """
    if job.state is not JobState.WAITING:
        return None
    return hand_out_hold(job.container, now, client_address)


class Hold(Vocabulary, StrEnum):
    """Why a waiting job has not been handed out (yet)."""

    DISABLED = "disabled"
    SCHEDULED = "scheduled"
    ENDED = "ended"
    HALTED = "halted"
    LATER_PHASE = "later-phase"
    OUTSIDE_WINDOW = "outside-window"
    OUTSIDE_IP_RANGES = "outside-ip-ranges"
    DOWNLOAD_SLOT = "download-slot"
    RETRY = "retry"
    BEHIND_RETRY = "behind-retry"
    OFFLINE = "offline"
    NEXT_CHECK_IN = "next-check-in"


spell(
    Hold,
    {
        Hold.DISABLED: ("disabled", "the container is disabled"),
        Hold.SCHEDULED: ("scheduled", "scheduled"),
        Hold.ENDED: ("ended", "the container's end has passed"),
        Hold.HALTED: ("halted", "the rollout is halted"),
        Hold.LATER_PHASE: ("later-phase", "waiting for its phase of the rollout to open"),
        Hold.OUTSIDE_WINDOW: ("outside-window", "waiting for its window"),
        Hold.OUTSIDE_IP_RANGES: ("outside-ip-ranges", "outside the container's IP ranges"),
        Hold.DOWNLOAD_SLOT: ("download-slot", "waiting for a download slot"),
        Hold.RETRY: ("retry", "waiting for its retry"),
        Hold.BEHIND_RETRY: ("behind-retry", "waiting for an earlier job of the container to be retried"),
        Hold.OFFLINE: ("offline", "the computer is offline"),
        Hold.NEXT_CHECK_IN: ("next-check-in", "handed out at the computer's next check-in"),
    },
)


@dataclass(frozen=True, slots=True)
class WaitReason:
    """Why a waiting job waits: `since` is the start (scheduled) or the last check-in (offline);
    `address` the last known address (outside the IP ranges); `phase` the job's phase (later phase)."""

    hold: Hold
    since: datetime | None = None
    address: str | None = None
    phase: int | None = None
    opens: str | None = None
    """When its maintenance window opens: "Mon 18:00 computer time"."""
    slots: str | None = None
    """Waiting for a download slot: "waiting for a download slot (50 of 50 in use)"."""
    retry: RetryWait | None = None
    """Which retry it waits for, and until when."""


@dataclass(frozen=True, slots=True)
class RetryWait:
    """A job waiting for its retry: its next attempt (2 = the first retry), the retries allowed, and when."""

    attempt: int
    retries: int
    at: datetime


def why_waiting(
    container: ContainerWindow,
    last_seen: datetime | None,
    last_address: str | None,
    now: datetime,
    offline_seconds: int,
    phase: int | None = None,
    clocks: Clocks = SERVER_CLOCK,
    retry: RetryWait | None = None,
    behind_retry: datetime | None = None,
    download: Decision | None = None,
) -> WaitReason:
    """Why a waiting job of `container` (in rollout `phase`, waiting for `retry` when it was retried, or
    behind an earlier job of the computer retried at `behind_retry`) has not run, judged by what the
    server knows of the computer; `download` is what its download slots say
    (`oco.domain.slots.may_download`)."""
    hold = hand_out_hold(container, now, last_address or None)
    if hold is Hold.DISABLED:
        return WaitReason(hold)
    if hold is Hold.SCHEDULED:
        return WaitReason(hold, since=container.start)
    if hold is Hold.ENDED:
        return WaitReason(hold, since=container.end)
    if phase is not None and container.open_phase == HALTED:
        return WaitReason(Hold.HALTED, phase=phase)
    if not phase_is_open(phase, container.open_phase):
        return WaitReason(Hold.LATER_PHASE, phase=phase)
    if retry is not None and now < retry.at:
        return WaitReason(Hold.RETRY, since=retry.at, retry=retry)
    if behind_retry is not None and now < behind_retry:
        return WaitReason(Hold.BEHIND_RETRY, since=behind_retry)
    if not in_window(container, now, clocks):
        return WaitReason(Hold.OUTSIDE_WINDOW, opens=window_opens(container, now, clocks))
    if hold is Hold.OUTSIDE_IP_RANGES and last_address:
        return WaitReason(hold, address=last_address)
    if download is not None and download.full is not None and is_online(last_seen, now, offline_seconds):
        return WaitReason(Hold.DOWNLOAD_SLOT, slots=slot_waiting_text(download.full, download.in_use))
    if not is_online(last_seen, now, offline_seconds):
        return WaitReason(Hold.OFFLINE, since=last_seen)
    return WaitReason(Hold.NEXT_CHECK_IN, since=last_seen)


def window_opens(container: ContainerWindow, now: datetime, clocks: Clocks) -> str | None:
    """When the container's window next opens for this computer, in words ("Mon 18:00 computer time";
    server time for a computer that reports no zone)."""
    windows = stored_windows(container.windows) if container.windows else None
    if windows is None:
        return None
    zone = clocks.zone_for(windows)
    opens = next_opening(windows, now, zone)
    if opens is None:
        return None
    reading = windows.zone if reported_zone(clocks.computer) is not None else WindowZone.SERVER
    return opening_text(opens, reading)


def dispatch_order(job: CandidateJob) -> tuple[int, datetime, int, int, int]:
    """Sort key: higher priority first, then older containers, whole containers at a time, then sequence."""
    container = job.container
    return (-container.priority, container.created, container.id, job.sequence, job.id)


def jobs_to_hand_out(
    jobs: Iterable[CandidateJob], now: datetime, client_address: str | None, clocks: Clocks = SERVER_CLOCK
) -> list[CandidateJob]:
    """The eligible jobs of one computer in the order its agent must run them."""
    jobs = list(jobs)
    behind = _retry_barriers(jobs, now)
    return sorted(
        (
            job
            for job in jobs
            if is_eligible(job, now, client_address, clocks)
            and (
                job.state is not JobState.WAITING
                or job.sequence < behind.get(job.container.id, job.sequence + 1)
            )
        ),
        key=dispatch_order,
    )


def _retry_barriers(jobs: Sequence[CandidateJob], now: datetime) -> dict[int, int]:
    """Container id → the sequence of the computer's first job there that waits for its retry: its later
    waiting jobs wait behind it, so the container's order holds (an uninstall retried before the install
    runs); a later job already started is handed out again and finishes, as always."""
    barriers: dict[int, int] = {}
    for job in jobs:
        if job.waits_for_retry(now):
            container = job.container.id
            barriers[container] = min(barriers.get(container, job.sequence), job.sequence)
    return barriers


def wire_post_action(post_action: PostAction, restart_timeout: int) -> dict[str, int | None]:
    """The `restart`/`shutdown`/`exit` keys of a job: the chosen one carries the timeout in minutes,
    the other two are None; with no post-action all three are None."""
    chosen = PostAction(post_action)
    return {action.text: restart_timeout if action is chosen else None for action in WIRE_POST_ACTIONS}


WIRE_ACTION = "action"
WIRE_PAYLOAD_SHA256 = "payload-sha256"
WIRE_PAYLOAD_SIZE = "payload-size"
"""Keys of a job on the wire beyond OCO's (OCO agents read only the keys they know): the job's action and
its payload's SHA-256 and size, which our agent checks the download against — the hello answer is signed
by the server key, the download response is not."""


def wire_payload(sha256: str | None, size: int | None) -> dict[str, str | int]:
    """The `payload-sha256`/`payload-size` keys of a job with a payload; nothing for one without."""
    if sha256 is None or size is None:
        return {}
    return {WIRE_PAYLOAD_SHA256: sha256, WIRE_PAYLOAD_SIZE: size}


@dataclass(frozen=True, slots=True)
class PayloadDigest:
    """The payload a job names: its SHA-256 (lowercase hex) and size in bytes."""

    sha256: str
    size: int


def payload_from_wire(entry: object) -> PayloadDigest | None:
    """The payload a job on the wire names, or None when it names none (or none in a valid form)."""
    if not isinstance(entry, dict):
        return None
    sha256, size = entry.get(WIRE_PAYLOAD_SHA256), entry.get(WIRE_PAYLOAD_SIZE)
    if not isinstance(sha256, str) or not _SHA256_HEX.fullmatch(sha256.lower()):
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        return None
    return PayloadDigest(sha256.lower(), size)


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
