"""The job journal: what a restarted agent finds about the job it was running."""

from __future__ import annotations

import stat
from pathlib import Path

from oco.agent.state import JobJournal, JournalEntry, Phase


def test_the_journal_survives_a_restart_and_clears(tmp_path: Path) -> None:
    journal = JobJournal(tmp_path)
    assert journal.current() is None
    entry = JournalEntry(5, 2, Phase.EXECUTING)
    journal.record(entry)
    assert JobJournal(tmp_path).current() == entry
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600
    journal.clear()
    assert journal.current() is None


def test_the_entry_records_id_container_phase_and_start(tmp_path: Path) -> None:
    journal = JobJournal(tmp_path)
    started = JournalEntry(5, 2, Phase.DOWNLOADING)
    journal.record(started)
    report = {"state": 3, "return-code": 0, "message": "ok"}
    finished = journal.advance(journal.advance(started, Phase.EXECUTING), Phase.FINISHED, report)
    assert JobJournal(tmp_path).current() == finished
    assert (finished.job_id, finished.container_id, finished.phase) == (5, 2, "finished")
    assert finished.started_at == started.started_at and finished.started_at.startswith("20")
    assert finished.report == report


def test_a_torn_or_foreign_journal_counts_as_none(tmp_path: Path) -> None:
    journal = JobJournal(tmp_path)
    for text in ("{torn", "[1, 2]", '{"job_id": 1}', '{"job_id": 1, "container_id": 2, "phase": "dancing"}'):
        journal.path.write_text(text)
        assert journal.current() is None
        assert not journal.path.exists()


def test_recording_replaces_the_file_atomically(tmp_path: Path) -> None:
    journal = JobJournal(tmp_path)
    journal.record(JournalEntry(1, 1, Phase.DOWNLOADING))
    journal.record(JournalEntry(1, 1, Phase.EXECUTING))
    assert list(tmp_path.iterdir()) == [journal.path]
