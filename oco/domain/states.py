"""Job states, special return codes and the small enumerations of the domain — and how each is written.

The integer values are the ones OCO agents and OCO's database use; they travel on the wire
(PROTOCOL.md "Job states") and are stored as plain integers.

The vocabulary is defined here once: every enumeration people choose from or read has a `text` (what the
admin API, the CLI, console forms and `--json` output use, and, for post-actions, the agent's wire keys) and
a `label` (what a person reads). `from_text` parses a text back and refuses any other spelling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum, StrEnum
from typing import Any, Self, cast

from oco.domain.errors import InvalidChoice


@dataclass(frozen=True, slots=True)
class Spelling:
    """How one member of an enumeration is written for programs (`text`) and for people (`label`)."""

    text: str
    label: str


_SPELLINGS: dict[type, Mapping[Any, Spelling]] = {}


class Vocabulary:
    """The `text`/`label`/`from_text` of an enumeration whose spellings `spell` registered."""

    @property
    def text(self) -> str:
        """The spelling programs use (API, CLI, forms, JSON)."""
        return _SPELLINGS[type(self)][self].text

    @property
    def label(self) -> str:
        """The spelling people read."""
        return _SPELLINGS[type(self)][self].label

    @classmethod
    def texts(cls) -> tuple[str, ...]:
        """Every member's text, in definition order."""
        return tuple(spelling.text for spelling in _SPELLINGS[cls].values())

    @classmethod
    def from_text(cls, text: str, *, field: str | None = None) -> Self:
        """The member written `text` (surrounding blanks ignored); InvalidChoice names the choices."""
        wanted = text.strip() if isinstance(text, str) else text
        for member, spelling in _SPELLINGS[cls].items():
            if spelling.text == wanted:
                return cast(Self, member)
        raise InvalidChoice(
            f"{_noun(cls)} {text!r} must be one of {', '.join(cls.texts())}", field=field or _field(cls)
        )


def _noun(cls: type) -> str:
    return "".join(f" {c.lower()}" if c.isupper() else c for c in cls.__name__).strip()


def _field(cls: type) -> str:
    return _noun(cls).replace(" ", "_")


def spell(enumeration: type[Enum], spellings: Mapping[Any, tuple[str, str]]) -> None:
    """Register the (text, label) of every member of a `Vocabulary` enumeration; all must be given."""
    missing = set(enumeration) - set(spellings)
    if missing:
        raise AssertionError(f"{enumeration.__name__}: no spelling for {sorted(m.name for m in missing)}")
    _SPELLINGS[enumeration] = {member: Spelling(*spellings[member]) for member in enumeration}


class JobState(Vocabulary, IntEnum):
    """Server-side state of one job."""

    WAITING = 0
    DOWNLOADING = 1
    EXECUTING = 2
    SUCCEEDED = 3
    FAILED = -1
    EXPIRED = -2
    OS_INCOMPATIBLE = -3
    ALREADY_INSTALLED = -5

    @property
    def is_final(self) -> bool:
        """A final job is never changed again by an agent report."""
        return self not in PENDING_STATES

    @property
    def is_running(self) -> bool:
        """The agent has started the job (downloading or executing) and not reported its end yet."""
        return self in (JobState.DOWNLOADING, JobState.EXECUTING)

    @property
    def is_success(self) -> bool:
        """Succeeded, or already installed: a container made only of these counts as succeeded."""
        return self in (JobState.SUCCEEDED, JobState.ALREADY_INSTALLED)

    @property
    def is_failure(self) -> bool:
        """Failed, expired or incompatible: a container holding one counts as failed."""
        return self in (JobState.FAILED, JobState.EXPIRED, JobState.OS_INCOMPATIBLE)

    @property
    def is_renewable(self) -> bool:
        """Failed and expired jobs can be run again ("renew"); skipped ones would only be skipped again."""
        return self in RENEWABLE_STATES


PENDING_STATES: frozenset[JobState] = frozenset({JobState.WAITING, JobState.DOWNLOADING, JobState.EXECUTING})
"""States of a job an agent may still be handed (running jobs are sent again after an agent crash)."""

RENEWABLE_STATES: frozenset[JobState] = frozenset({JobState.FAILED, JobState.EXPIRED})
"""States of the jobs "renew failed jobs" runs again."""

spell(
    JobState,
    {
        JobState.WAITING: ("waiting", "Waiting"),
        JobState.DOWNLOADING: ("downloading", "Downloading"),
        JobState.EXECUTING: ("executing", "Executing"),
        JobState.SUCCEEDED: ("succeeded", "Succeeded"),
        JobState.FAILED: ("failed", "Failed"),
        JobState.EXPIRED: ("expired", "Expired"),
        JobState.OS_INCOMPATIBLE: ("os_incompatible", "OS incompatible"),
        JobState.ALREADY_INSTALLED: ("already_installed", "Already installed"),
    },
)


class AgentJobState(IntEnum):
    """States an agent reports in `oco.agent.update_job_state`."""

    DOWNLOADING = 1
    EXECUTING = 2
    FINISHED = 3
    ERROR = -1


class ReturnCode(IntEnum):
    """Return codes generated by OCO itself rather than by a procedure."""

    AGENT_ERROR = -9999
    ABORTED_AFTER_FAILED_JOB = -8888


ABORTED_AFTER_FAILED_JOB_MESSAGE = "Aborted after failed job"
"""Message of the jobs a failure aborts in sequence mode "abort after failed job" (return code -8888)."""

JOB_EXPIRED_MESSAGE = "Expired: the job container ended before the job could run"
"""Message of a job that was still pending when its container's end passed (state -2)."""

DOWNLOAD_PROGRESS_UNPACKING = 101
"""`download-progress` value an agent sends while unpacking the payload."""


class JobAction(StrEnum):
    """What a job does with its package."""

    INSTALL = "install"
    UNINSTALL = "uninstall"


class PostAction(Vocabulary, IntEnum):
    """What the agent does after a procedure succeeded. Values are OCO's.

    The texts of restart, shutdown and exit are also the keys of a job on the wire (PROTOCOL.md).
    """

    NONE = 0
    RESTART = 1
    SHUTDOWN = 2
    EXIT_AGENT = 3


spell(
    PostAction,
    {
        PostAction.NONE: ("none", "None"),
        PostAction.RESTART: ("restart", "Restart"),
        PostAction.SHUTDOWN: ("shutdown", "Shutdown"),
        PostAction.EXIT_AGENT: ("exit", "Exit agent"),
    },
)


class SequenceMode(Vocabulary, IntEnum):
    """What happens to a computer's remaining jobs of a container after one failed. Values are OCO's."""

    IGNORE_FAILED = 0
    ABORT_AFTER_FAILED = 1


spell(
    SequenceMode,
    {
        SequenceMode.IGNORE_FAILED: ("ignore", "Ignore failed jobs"),
        SequenceMode.ABORT_AFTER_FAILED: ("abort", "Abort after failed job"),
    },
)


class UpgradeBehavior(Vocabulary, StrEnum):
    """How installing a new version treats the family's other installed versions."""

    EXPLICIT_UNINSTALL = "explicit-uninstall"
    """Schedule uninstall jobs for the other installed versions before the install (the default)."""
    INSTALLER_REMOVES = "installer-removes"
    """The installer removes other versions itself: drop their assignments when the install succeeds."""
    KEEP = "keep"
    """Other versions stay installed side by side."""


spell(
    UpgradeBehavior,
    {
        UpgradeBehavior.EXPLICIT_UNINSTALL: ("explicit-uninstall", "Automatically create uninstall jobs"),
        UpgradeBehavior.INSTALLER_REMOVES: ("installer-removes", "Installer removes other versions"),
        UpgradeBehavior.KEEP: ("keep", "Keep other versions"),
    },
)


class ContainerStatus(Vocabulary, StrEnum):
    """Status of a job container, derived from its jobs (PROTOCOL.md "Job states")."""

    SCHEDULED = "scheduled"
    IN_PROGRESS = "in-progress"
    DISABLED = "disabled"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EMPTY = "empty"


spell(
    ContainerStatus,
    {
        ContainerStatus.SCHEDULED: ("scheduled", "Scheduled"),
        ContainerStatus.IN_PROGRESS: ("in-progress", "In progress"),
        ContainerStatus.DISABLED: ("disabled", "Disabled"),
        ContainerStatus.SUCCEEDED: ("succeeded", "Succeeded"),
        ContainerStatus.FAILED: ("failed", "Failed"),
        ContainerStatus.EMPTY: ("empty", "Empty"),
    },
)


class JobOutcome(Vocabulary, StrEnum):
    """How a job counts in a container's outcome bar: what became of it, in the order the bar shows."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RUNNING = "running"
    WAITING = "waiting"
    EXPIRED = "expired"
    SKIPPED = "skipped"


spell(
    JobOutcome,
    {
        JobOutcome.SUCCEEDED: ("succeeded", "Succeeded"),
        JobOutcome.FAILED: ("failed", "Failed"),
        JobOutcome.RUNNING: ("running", "Running"),
        JobOutcome.WAITING: ("waiting", "Waiting"),
        JobOutcome.EXPIRED: ("expired", "Expired"),
        JobOutcome.SKIPPED: ("skipped", "Skipped"),
    },
)

OUTCOME_OF: Mapping[JobState, JobOutcome] = {
    JobState.SUCCEEDED: JobOutcome.SUCCEEDED,
    JobState.FAILED: JobOutcome.FAILED,
    JobState.DOWNLOADING: JobOutcome.RUNNING,
    JobState.EXECUTING: JobOutcome.RUNNING,
    JobState.WAITING: JobOutcome.WAITING,
    JobState.EXPIRED: JobOutcome.EXPIRED,
    JobState.OS_INCOMPATIBLE: JobOutcome.SKIPPED,
    JobState.ALREADY_INSTALLED: JobOutcome.SKIPPED,
}
"""Every job state's place in the outcome bar (incompatible and already installed are skipped)."""
