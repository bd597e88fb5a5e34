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


def test_the_procedures_process_is_recorded_and_kept_to_the_end(tmp_path: Path) -> None:
    journal = JobJournal(tmp_path)
    order = {"id": 5, "restart": 10}
    starting = journal.advance(
        JournalEntry(5, 2, Phase.DOWNLOADING), Phase.STARTING, order=order, timeout_s=60
    )
    executing = journal.advance(
        starting, Phase.EXECUTING, pid=4321, process_start="linux:boot:99", launched_at=1700000000.5
    )
    assert JobJournal(tmp_path).current() == executing
    assert (executing.order, executing.timeout_s, executing.pid) == (order, 60, 4321)
    finished = journal.advance(executing, Phase.FINISHED, {"state": 3, "return-code": 0, "message": ""})
    assert (finished.order, finished.pid, finished.started_at) == (order, 4321, starting.started_at)


def test_a_journal_written_before_the_wrapper_still_reads(tmp_path: Path) -> None:
    journal = JobJournal(tmp_path)
    journal.path.write_text(
        '{"job_id": 3, "container_id": 1, "phase": "executing", "report": null, "started_at": "2024-01-01"}'
    )
    entry = journal.current()
    assert entry is not None and entry.phase == "executing" and entry.pid is None


def test_a_journal_with_fields_of_the_wrong_type_counts_as_none(tmp_path: Path) -> None:
    journal = JobJournal(tmp_path)
    for fields in (
        '"pid": "4321"',
        '"pid": true',
        '"process_start": 99',
        '"timeout_s": "60"',
        '"launched_at": "yesterday"',
        '"order": [1]',
        '"job_id": 1.5',
    ):
        journal.path.write_text('{"job_id": 1, "container_id": 2, "phase": "executing", ' + fields + "}")
        assert journal.current() is None, fields
        assert not journal.path.exists()
