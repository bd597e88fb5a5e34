"""Migration from OCO-Server 1.x: how OCO's stored values become ours (`oco import oco-server`).

OCO-Server keeps its data in MariaDB/MySQL with integer codes of its own and naive local times; these
rules turn each value into our vocabulary (`oco.domain.states`), or say why a row cannot be carried.
They are pure: the reader (`oco.services.ocoimport.source`) hands in plain values, the use case
(`oco.services.ocoimport`) stores what comes out.

OCO's codes, from its schema and models (OCO-Server 1.x, `sql/SCHEMA.sql`, `lib/Models/`):
- package `upgrade_behavior`: 0 keep other versions, 1 the installer removes other versions, 2 explicit
  uninstall jobs (the default);
- post-actions: 0 none, 1 restart, 2 shutdown, 3 exit agent (ours are the same numbers);
- job states: ours, plus -4 "package conflict", which we do not have: such a job is carried as failed;
- job container `wol_sent`: 0 WOL asked for and not sent yet, 1 sent, anything else no WOL;
- a job's `wol_shutdown_set` is set while a shutdown added for a woken computer may still be removed
  (its `post_action` then reads shutdown); once the computer came up in time OCO clears it and the
  shutdown stays for good;
- groups nest (`parent_*_group_id`); ours are flat with unique names, so a nested group is named by its
  path ("Site A / Floor 2").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from oco.domain.containers import PRIORITY_MAX, PRIORITY_MIN
from oco.domain.errors import DomainError
from oco.domain.logins import LOGIN_TIME_FORMAT
from oco.domain.returncodes import normalize_codes
from oco.domain.states import JobState, PostAction, SequenceMode, UpgradeBehavior
from oco.errors import OcoError

GROUP_PATH_SEPARATOR = " / "
"""Between the names of a nested OCO group's ancestors in the flat name it gets here."""
PACKAGE_CONFLICT_STATE = -4
"""OCO's job state "package conflict" (we have no such state)."""
PACKAGE_CONFLICT_NOTE = "[imported from OCO-Server: the job failed there with a package conflict]"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
UINT32_RANGE = 2**32

_UPGRADE_BEHAVIORS: Mapping[int, UpgradeBehavior] = {
    0: UpgradeBehavior.KEEP,
    1: UpgradeBehavior.INSTALLER_REMOVES,
    2: UpgradeBehavior.EXPLICIT_UNINSTALL,
}
OCO_DEFAULT_UPGRADE_BEHAVIOR = 2
_WOL_PENDING, _WOL_SENT = 0, 1


class UnsupportedValue(DomainError):
    """An OCO value has no counterpart here; the row holding it is skipped with this reason."""


class ImportKind(StrEnum):
    """What the import carries, in the order it carries it (later kinds refer to earlier ones)."""

    COMPUTER = "computer"
    COMPUTER_GROUP = "computer-group"
    COMPUTER_GROUP_MEMBER = "computer-group-member"
    PACKAGE_FAMILY = "package-family"
    PACKAGE = "package"
    PACKAGE_GROUP = "package-group"
    PACKAGE_GROUP_MEMBER = "package-group-member"
    ASSIGNMENT = "assignment"
    JOB_CONTAINER = "job-container"
    JOB = "job"


def upgrade_behavior(value: int | None) -> UpgradeBehavior:
    """OCO's `upgrade_behavior` code as ours; a missing column means OCO's default (explicit jobs)."""
    code = OCO_DEFAULT_UPGRADE_BEHAVIOR if value is None else int(value)
    try:
        return _UPGRADE_BEHAVIORS[code]
    except KeyError:
        raise UnsupportedValue(f"upgrade behavior {code} is not one OCO-Server defines (0, 1, 2)") from None


def post_action(value: int | None) -> PostAction:
    """OCO's post-action code (NULL meaning none) as ours."""
    if value is None:
        return PostAction.NONE
    try:
        return PostAction(int(value))
    except ValueError:
        raise UnsupportedValue(f"post-action {value} is not one OCO-Server defines (0-3)") from None


def sequence_mode(value: int | None) -> SequenceMode:
    """OCO's sequence mode (0 ignore failed jobs, 1 abort after a failed job) as ours."""
    try:
        return SequenceMode(int(value or 0))
    except ValueError:
        raise UnsupportedValue(f"sequence mode {value} is not one OCO-Server defines (0, 1)") from None


def job_state(value: int) -> JobState:
    """OCO's job state as ours: the same numbers, but "package conflict" (-4) becomes failed."""
    if int(value) == PACKAGE_CONFLICT_STATE:
        return JobState.FAILED
    try:
        return JobState(int(value))
    except ValueError:
        raise UnsupportedValue(f"job state {value} is not one OCO-Server defines") from None


def job_message(state: int, message: str | None) -> str:
    """A job's output as kept here: OCO's, noting a package conflict we show as a plain failure."""
    text = message or ""
    if int(state) == PACKAGE_CONFLICT_STATE:
        return f"{PACKAGE_CONFLICT_NOTE}\n{text}" if text else PACKAGE_CONFLICT_NOTE
    return text


def return_code(value: int | None) -> int | None:
    """A return code as a 32-bit signed integer, as we store it.

    OCO keeps them as 64-bit; Windows reports unsigned 32-bit codes (3221225477 is -1073741819, an
    NTSTATUS), which are the same 32 bits read signed. A code outside both ranges cannot be kept.
    """
    if value is None:
        return None
    code = int(value)
    if INT32_MIN <= code <= INT32_MAX:
        return code
    if INT32_MAX < code < UINT32_RANGE:
        return code - UINT32_RANGE
    raise UnsupportedValue(f"return code {code} does not fit 32 bits")


def success_codes(text: str | None) -> str:
    """OCO's success return codes ("0, 3010") in our canonical form ("0,3010"); "" means any code."""
    try:
        return normalize_codes(text)
    except OcoError as exc:
        raise UnsupportedValue(exc.message) from exc


def priority(value: int | None) -> int:
    """A container priority in our range: OCO's -128..127 is clamped to -100..100 (the order holds
    unless two containers differ only beyond 100)."""
    return max(PRIORITY_MIN, min(PRIORITY_MAX, int(value or 0)))


def compatibility(text: str | None) -> str:
    """A compatible OS / version / architecture list: OCO joins entries with ", ", which we read too."""
    return (text or "").strip()


def utc(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A time OCO stored naive in its server's local time zone `zone`, as timezone-aware UTC."""
    if value is None:
        return None
    if value.year < 2:  # MariaDB's zero dates come back as the earliest date, or not at all
        return None
    aware = value.replace(tzinfo=zone) if value.tzinfo is None else value
    return aware.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class GroupRow:
    """An OCO computer or package group: its name and the group it sits in."""

    id: int
    name: str
    parent_id: int | None


def group_names(groups: Iterable[GroupRow]) -> dict[int, str]:
    """Each group's flat name here: its own name, prefixed by its ancestors' ("Site A / Floor 2").

    A parent that does not exist (or a cycle) ends the path there, so every group gets a name.
    """
    by_id = {group.id: group for group in groups}
    names: dict[int, str] = {}
    for group in by_id.values():
        parts = [group.name.strip()]
        seen = {group.id}
        parent = group.parent_id
        while parent is not None and parent in by_id and parent not in seen:
            seen.add(parent)
            parts.append(by_id[parent].name.strip())
            parent = by_id[parent].parent_id
        names[group.id] = GROUP_PATH_SEPARATOR.join(reversed(parts))
    return names


@dataclass(frozen=True, slots=True)
class ContainerWol:
    """What a container's Wake-on-LAN state becomes here."""

    wol: bool
    """The deployment asked for Wake-on-LAN."""
    sent: bool
    """The magic packets went out already (OCO never sends them twice)."""


def container_wol(wol_sent: int | None) -> ContainerWol:
    """OCO's `wol_sent` (0 to send at the start, 1 sent, otherwise none) as our WOL state."""
    code = None if wol_sent is None else int(wol_sent)
    return ContainerWol(wol=code in (_WOL_PENDING, _WOL_SENT), sent=code == _WOL_SENT)


@dataclass(frozen=True, slots=True)
class JobPostAction:
    """A job's post-action here and whether it is an automatic Wake-on-LAN shutdown that may still go."""

    post_action: PostAction
    wol_shutdown: bool


def job_post_action(
    job_post_action_code: int | None, wol_shutdown_set: bool, package_post_action: PostAction
) -> JobPostAction:
    """A job's post-action: OCO overwrites it with shutdown for a woken computer and marks the job while
    that shutdown may still be removed; we keep the package's own post-action and the flag instead
    (`oco.domain.planning`), so removing the shutdown restores it."""
    if wol_shutdown_set:
        return JobPostAction(package_post_action, wol_shutdown=True)
    return JobPostAction(post_action(job_post_action_code), wol_shutdown=False)


DEFAULT_RESTART_TIMEOUT = 20
"""OCO-Server's default restart timeout (minutes), for a container whose jobs carry none."""


def restart_timeout(timeouts: Iterable[int | None], default: int = DEFAULT_RESTART_TIMEOUT) -> int:
    """A container's restart timeout: OCO keeps one per job (the same for all of a deployment); the
    most common one wins, the smallest among equals."""
    counted = Counter(int(t) for t in timeouts if t is not None)
    if not counted:
        return default
    return min(counted, key=lambda t: (-counted[t], t))


def package_group_order(members: Iterable[tuple[int, int, int]]) -> list[int]:
    """The member ids (member id, package id, sequence) of an OCO package group in its order:
    by sequence, then as they were added."""
    return [member_id for member_id, _, _ in sorted(members, key=lambda m: (m[2], m[0]))]


def login_entry(username: str, console: str | None, at: datetime | None) -> dict[str, str]:
    """One login as an OCO agent reports it (and as we keep logins): user, console, UTC time."""
    return {
        "username": username,
        "console": console or "",
        "timestamp": at.astimezone(UTC).strftime(LOGIN_TIME_FORMAT) if at is not None else "",
    }


@dataclass(frozen=True, slots=True)
class AgentTrace:
    """What a computer's agent left behind: its keys, its last timestamp, when it was last seen and when
    it last sent a full inventory."""

    agent_key: str
    server_key: str
    agent_timestamp: float
    last_seen: datetime | None
    inventory_updated: datetime | None


def caught_up(ours: AgentTrace, theirs: AgentTrace) -> AgentTrace:
    """A computer imported before, after its agent went on talking to OCO-Server: the newest of each.

    Keys are taken only where ours are empty (the agent registered there after the first import); keys
    we hold are never replaced, so an agent already talking to us keeps working.
    """
    return AgentTrace(
        agent_key=ours.agent_key or theirs.agent_key,
        server_key=ours.server_key or theirs.server_key,
        agent_timestamp=max(ours.agent_timestamp, theirs.agent_timestamp),
        last_seen=_latest(ours.last_seen, theirs.last_seen),
        inventory_updated=_latest(ours.inventory_updated, theirs.inventory_updated),
    )


def inventory_is_newer(ours: datetime | None, theirs: datetime | None) -> bool:
    """OCO-Server holds a newer full inventory of the computer than we do."""
    return theirs is not None and (ours is None or theirs > ours)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def job_moved_on(ours: JobState, theirs: JobState) -> bool:
    """A job imported while waiting that OCO-Server's agent has since run (or that expired there), and
    that no agent has started here: it takes OCO-Server's course, so it does not run twice."""
    return ours is JobState.WAITING and theirs is not JobState.WAITING


@dataclass(frozen=True, slots=True)
class Skip:
    """A row that is not carried, and why."""

    kind: str
    source_id: int | None
    name: str
    reason: str


@dataclass(slots=True)
class KindReport:
    """What the import did (or, dry run, would do) with the rows of one kind."""

    imported: int = 0
    already_imported: int = 0
    updated: int = 0
    """Of those already imported: brought up to date with what changed at the source since."""
    skipped: list[Skip] = field(default_factory=list)


@dataclass(slots=True)
class ImportReport:
    """Counts per kind, the rows skipped with their reasons, and notes on what is not carried."""

    dry_run: bool
    kinds: dict[str, KindReport] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def kind(self, kind: str) -> KindReport:
        """The report of one kind, created empty on first use."""
        return self.kinds.setdefault(kind, KindReport())

    def skip(self, kind: str, source_id: int | None, name: str, reason: str) -> None:
        """Record that a row is not carried."""
        self.kind(kind).skipped.append(Skip(kind, source_id, name, reason))

    @property
    def changed(self) -> int:
        """How many rows were (or would be) written."""
        return sum(report.imported + report.updated for report in self.kinds.values())
