"""The job in progress, recorded on disk so that a restarted agent reports it instead of re-running it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from oco.agent.config import write_private


@dataclass(frozen=True, slots=True)
class JournalEntry:
    job_id: int
    container_id: int
    phase: str
    """"downloading", "executing" or "finished" (then `report` holds the final report to deliver)."""
    report: dict[str, Any] | None = None


class JobJournal:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "current-job.json"

    def record(self, entry: JournalEntry) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_private(self.path, json.dumps(asdict(entry)).encode())

    def current(self) -> JournalEntry | None:
        try:
            return JournalEntry(**json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            self.clear()  # a torn or foreign file: nothing trustworthy to report
            return None

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
