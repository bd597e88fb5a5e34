"""The job in progress, recorded on disk so that a restarted agent reports it instead of re-running it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from oco.agent.config import write_private

JOURNAL_FILE = "current-job.json"


class Phase(StrEnum):
    """Where a job stood when the journal was last written."""

    DOWNLOADING = "downloading"
    """Nothing ran yet: after a restart the job is handed out again and its download resumes."""
    STARTING = "starting"
    """The procedure is about to start, but it waits for the agent's go: after a restart nothing ran."""
    EXECUTING = "executing"
    """The procedure was let go (its wrapper's pid and start mark are recorded): after a restart the
    agent follows it, or reads its recorded exit code, or reports that the result is unknown."""
    FINISHED = "finished"
    """The final report is in `report` and still has to reach the server."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """The job in progress: its id, container, phase, when it started and (when finished) its report.

    From the start of its procedure on, also the order as received (for the post-action after a
    restart), the procedure's timeout, and its wrapper's pid, start mark and wall-clock start.
    """

    job_id: int
    container_id: int
    phase: str
    report: dict[str, Any] | None = None
    started_at: str = field(default_factory=_now)
    order: dict[str, Any] | None = None
    timeout_s: int | None = None
    pid: int | None = None
    process_start: str | None = None
    launched_at: float | None = None
    """Seconds since the epoch when the procedure was started: its timeout counts from there."""


class JobJournal:
    """One JSON file in the state directory, replaced atomically at each phase change."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / JOURNAL_FILE

    def record(self, entry: JournalEntry) -> None:
        """Write `entry` as the job in progress (atomic: a crash leaves the old or the new entry)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_private(self.path, json.dumps(asdict(entry)).encode())

    def advance(
        self, entry: JournalEntry, phase: Phase, report: dict[str, Any] | None = None, **changes: Any
    ) -> JournalEntry:
        """Record `entry` in a new phase (with `report` and any other `changes`), keeping the rest;
        returns the new entry."""
        moved = replace(entry, phase=str(phase), report=report, **changes)
        self.record(moved)
        return moved

    def current(self) -> JournalEntry | None:
        """The recorded job, or None when there is none (a torn or foreign file counts as none)."""
        try:
            entry = JournalEntry(**json.loads(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):
            self.clear()
            return None
        if entry.phase not in set(Phase) or not _well_formed(entry):
            self.clear()
            return None
        return entry

    def clear(self) -> None:
        """Forget the job in progress (its report was delivered)."""
        self.path.unlink(missing_ok=True)


def _well_formed(entry: JournalEntry) -> bool:
    """The fields have the types the agent writes (a foreign file must not reach psutil or the server)."""
    return (
        _integer(entry.job_id)
        and _integer(entry.container_id)
        and all(v is None or isinstance(v, dict) for v in (entry.report, entry.order))
        and (entry.pid is None or _integer(entry.pid))
        and (entry.process_start is None or isinstance(entry.process_start, str))
        and (entry.timeout_s is None or _integer(entry.timeout_s))
        and (entry.launched_at is None or _number(entry.launched_at))
    )


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: object) -> bool:
    return _integer(value) or isinstance(value, float)
