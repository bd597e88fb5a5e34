"""Procedures through the wrapper and the platform shell: exit codes, output to the run directory and
streamed from there, a timeout that kills the tree, the go handshake, and following a procedure that
outlived the agent that started it."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import psutil
import pytest

from oco.agent.runner import (
    CommandFailedToStart,
    ProcessRecord,
    UnreadableExitCode,
    follow_procedure,
    is_running,
    read_exit_code,
    read_output,
    run_procedure,
    start_mark,
)
from oco.agent.wrapper import EXIT_CODE_FILE, OUTPUT_FILE, STARTED_FILE, shell_command
from tests.agentcrash import crash_during, end_orphan, kill_group, order, record_of
from tests.support import wait_until


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """(cwd, run directory): the payload directory the procedure runs in, and beside it the wrapper's."""
    cwd, run_dir = tmp_path / "job" / "payload", tmp_path / "job"
    cwd.mkdir(parents=True)
    return cwd, run_dir


def test_the_posix_shell_runs_procedures() -> None:
    assert shell_command("echo hi") == ["/bin/sh", "-c", "echo hi"]


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_the_exit_code_and_both_output_streams_are_reported(dirs: tuple[Path, Path], code: int) -> None:
    cwd, run_dir = dirs
    result = run_procedure(f"echo out; echo err >&2; exit {code}", cwd, run_dir, timeout_s=30)
    assert (result.exit_code, result.timed_out, result.canceled) == (code, False, False)
    assert "out" in result.output and "err" in result.output


def test_the_wrapper_records_code_and_output_in_the_run_directory(dirs: tuple[Path, Path]) -> None:
    cwd, run_dir = dirs
    run_procedure("echo recorded; exit 7", cwd, run_dir, timeout_s=30)
    assert (run_dir / EXIT_CODE_FILE).read_text() == "7\n"
    assert (run_dir / OUTPUT_FILE).read_text() == "recorded\n"
    assert (run_dir / STARTED_FILE).exists()
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        [EXIT_CODE_FILE, OUTPUT_FILE, STARTED_FILE, "payload"]
    )  # the temporary file of the atomic write is gone


def test_a_procedure_killed_by_a_signal_has_the_negative_signal_number(dirs: tuple[Path, Path]) -> None:
    cwd, run_dir = dirs
    result = run_procedure("echo before; kill -TERM $$", cwd, run_dir, timeout_s=30)
    assert result.exit_code == -15 and "before" in result.output


def test_the_procedure_runs_in_its_directory_in_a_session_of_its_own(dirs: tuple[Path, Path]) -> None:
    cwd, run_dir = dirs
    (cwd / "setup.sh").write_text("echo from setup\n")
    result = run_procedure("sh setup.sh; pwd; ls -A | wc -l; ps -o sid= -p $$", cwd, run_dir, timeout_s=30)
    lines = result.output.split()
    assert lines[:3] == ["from", "setup", str(cwd.resolve())]
    assert lines[3] == "1"  # only setup.sh: the wrapper's files are beside the payload, not in it
    assert int(lines[4]) != os.getsid(0)  # not the agent's session: the procedure survives the agent


def test_output_is_streamed_while_the_procedure_runs(dirs: tuple[Path, Path]) -> None:
    cwd, run_dir = dirs
    seen: list[str] = []

    def stream(output: str) -> None:
        if output:  # the runner streams on a timer: before the shell has written, that is nothing
            seen.append(output)
        if "first" in output:
            (cwd / "seen").touch()  # only now does the procedure go on

    procedure = "echo first; until [ -e seen ]; do sleep 0.05; done; echo second"
    result = run_procedure(procedure, cwd, run_dir, 30, stream, output_interval_s=0.1)
    assert seen and "first" in seen[0] and "second" not in seen[0]
    assert result.exit_code == 0 and "second" in result.output


def test_a_timeout_kills_the_whole_tree(dirs: tuple[Path, Path]) -> None:
    cwd, run_dir = dirs
    tree: list[int] = []

    def watch(output: str) -> None:
        if output and not tree:
            shell = psutil.Process(int(output.split()[0]))
            descendants = shell.children(recursive=True)
            if len(descendants) >= 3:  # sh -c, and its two sleeps
                tree.extend([shell.pid, *(p.pid for p in descendants)])

    result = run_procedure(
        "echo $$; sh -c 'sleep 100 & sleep 100'",
        cwd,
        run_dir,
        timeout_s=3,
        on_output=watch,
        output_interval_s=0.05,
    )
    assert result.timed_out and result.exit_code is None
    assert len(tree) == 4 and all(gone(pid) for pid in tree)


def test_cancelling_kills_the_tree_too(dirs: tuple[Path, Path]) -> None:
    cwd, run_dir = dirs
    cancel = threading.Event()
    result = run_procedure(  # canceled while the procedure runs: the runner reports output only then
        "sleep 100 & sleep 100",
        cwd,
        run_dir,
        timeout_s=300,
        on_output=lambda _output: cancel.set(),
        output_interval_s=0.05,
        cancel=cancel,
    )
    assert result.canceled and not result.timed_out and result.exit_code is None


def test_a_shell_that_cannot_start_is_an_error(dirs: tuple[Path, Path]) -> None:
    _, run_dir = dirs
    with pytest.raises(CommandFailedToStart, match="cannot start"):
        run_procedure("true", run_dir / "missing-directory", run_dir, timeout_s=5)


def test_the_procedure_waits_until_its_wrapper_is_recorded(dirs: tuple[Path, Path]) -> None:
    cwd, run_dir = dirs
    seen: list[tuple[ProcessRecord, bool, bool]] = []

    def record(process: ProcessRecord) -> None:
        seen.append((process, is_running(process), (run_dir / STARTED_FILE).exists()))

    result = run_procedure("touch ran", cwd, run_dir, timeout_s=30, on_start=record)
    [(process, running, started)] = seen
    assert running and not started  # alive, and held back until the record was taken
    assert result.exit_code == 0 and (cwd / "ran").exists()
    assert not is_running(process)


def test_when_recording_the_wrapper_fails_the_procedure_never_starts(dirs: tuple[Path, Path]) -> None:
    cwd, run_dir = dirs
    records: list[ProcessRecord] = []

    def fail(process: ProcessRecord) -> None:
        records.append(process)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        run_procedure("touch ran", cwd, run_dir, timeout_s=30, on_start=fail)
    assert not is_running(records[0])
    assert not (cwd / "ran").exists() and not (run_dir / STARTED_FILE).exists()


def test_long_output_is_capped_and_says_so(dirs: tuple[Path, Path]) -> None:
    cwd, run_dir = dirs
    result = run_procedure("head -c 200000 /dev/zero | tr '\\0' x; echo END", cwd, run_dir, timeout_s=30)
    assert result.output.startswith("[") and "bytes of earlier output omitted" in result.output
    assert result.output.rstrip().endswith("END") and len(result.output) < 70_000


# The run directory ------------------------------------------------------------------------------


def test_only_the_tail_of_the_output_file_is_read(tmp_path: Path) -> None:
    assert read_output(tmp_path) == ""
    (tmp_path / OUTPUT_FILE).write_bytes(b"0123456789abcde")
    assert read_output(tmp_path, limit=10) == "[5 bytes of earlier output omitted]\n56789abcde"
    assert read_output(tmp_path, limit=15) == "0123456789abcde"


@pytest.mark.parametrize(("text", "code"), [("0\n", 0), ("3\n", 3), ("-9\n", -9), ("3010", 3010)])
def test_a_recorded_exit_code_is_read(tmp_path: Path, text: str, code: int) -> None:
    (tmp_path / EXIT_CODE_FILE).write_text(text)
    assert read_exit_code(tmp_path) == code


def test_no_exit_code_file_is_none_and_garbage_is_refused(tmp_path: Path) -> None:
    assert read_exit_code(tmp_path) is None
    for garbage in ("", "three\n", "3 4"):
        (tmp_path / EXIT_CODE_FILE).write_text(garbage)
        with pytest.raises(UnreadableExitCode, match="not an exit code"):
            read_exit_code(tmp_path)


# Which process is which --------------------------------------------------------------------------


def test_a_start_mark_is_stable_and_tells_a_reused_pid_apart() -> None:
    mine = start_mark(os.getpid())
    assert mine and start_mark(os.getpid()) == mine
    assert is_running(ProcessRecord(os.getpid(), mine))
    assert not is_running(ProcessRecord(os.getpid(), mine + "0"))  # same pid, another process


def test_an_ended_process_has_no_start_mark(dirs: tuple[Path, Path]) -> None:
    cwd, run_dir = dirs
    records: list[ProcessRecord] = []
    run_procedure("true", cwd, run_dir, timeout_s=30, on_start=records.append)
    assert start_mark(records[0].pid) is None or start_mark(records[0].pid) != records[0].start


# Following an orphan -----------------------------------------------------------------------------


def test_a_procedure_that_outlived_its_agent_is_followed_to_its_recorded_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKERS", str(tmp_path))
    job = order(1, 'echo begun; until [ -e "$MARKERS/go" ]; do sleep 0.05; done; echo ended; exit 3')
    entry = crash_during(tmp_path / "state", job)
    run_dir = tmp_path / "state" / "jobs" / "1"
    streamed: list[str] = []

    def stream(output: str) -> None:
        streamed.append(output)
        (tmp_path / "go").touch()  # the follower streams first, then the procedure may end

    try:
        assert is_running(record_of(entry))
        result = follow_procedure(record_of(entry), run_dir, 120, stream, output_interval_s=0.05)
    finally:
        end_orphan(entry)
    assert streamed and "begun" in streamed[0]
    assert (result.exit_code, result.timed_out, result.canceled) == (3, False, False)
    assert result.output == "begun\nended\n"


def test_following_an_orphan_kills_its_tree_at_the_deadline_or_when_canceled(
    tmp_path: Path,
) -> None:
    entries = [crash_during(tmp_path / f"state{n}", order(n, "sleep 300 & sleep 300")) for n in (1, 2)]
    try:
        late = follow_procedure(record_of(entries[0]), tmp_path / "state1" / "jobs" / "1", remaining_s=-1)
        cancel = threading.Event()
        cancel.set()
        stopped = follow_procedure(
            record_of(entries[1]), tmp_path / "state2" / "jobs" / "2", remaining_s=300, cancel=cancel
        )
    finally:
        for entry in entries:
            end_orphan(entry)
    assert late.timed_out and late.exit_code is None
    assert stopped.canceled and stopped.exit_code is None
    assert all(not is_running(record_of(entry)) for entry in entries)


def test_an_orphan_killed_before_it_ended_leaves_no_exit_code(tmp_path: Path) -> None:
    entry = crash_during(tmp_path / "state", order(1, "sleep 300"))
    kill_group(entry)
    try:
        wait_until(lambda: not is_running(record_of(entry)), message="the wrapper did not die")
        result = follow_procedure(record_of(entry), tmp_path / "state" / "jobs" / "1", 120)
    finally:
        end_orphan(entry)
    assert result.exit_code is None and not (result.timed_out or result.canceled)
