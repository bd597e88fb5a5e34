"""The job in progress, recorded on disk so that a restarted agent reports it instead of re-running it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
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
    EXECUTING = "executing"
    """The procedure may have changed the computer: after a restart the job is reported as failed."""
    FINISHED = "finished"
    """The final report is in `report` and still has to reach the server."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """The job in progress: its id, container, phase, when it started and (when finished) its report."""

    job_id: int
    container_id: int
    phase: str
    report: dict[str, Any] | None = None
    started_at: str = field(default_factory=_now)


class JobJournal:
    """One JSON file in the state directory, replaced atomically at each phase change."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / JOURNAL_FILE

    def record(self, entry: JournalEntry) -> None:
        """Write `entry` as the job in progress (atomic: a crash leaves the old or the new entry)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_private(self.path, json.dumps(asdict(entry)).encode())

    def advance(
        self, entry: JournalEntry, phase: Phase, report: dict[str, Any] | None = None
    ) -> JournalEntry:
        """Record `entry` in a new phase, keeping its start time; returns the new entry."""
        moved = JournalEntry(entry.job_id, entry.container_id, str(phase), report, entry.started_at)
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
        if entry.phase not in set(Phase):
            self.clear()
            return None
        return entry

    def clear(self) -> None:
        """Forget the job in progress (its report was delivered)."""
        self.path.unlink(missing_ok=True)
