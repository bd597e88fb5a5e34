"""Procedures through the platform shell: exit codes, streamed output, a timeout that kills the tree."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil
import pytest

from oco.agent.runner import CommandFailedToStart, OutputTail, run_procedure, shell_command


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_posix_shell_runs_procedures() -> None:
    assert shell_command("echo hi") == ["/bin/sh", "-c", "echo hi"]


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_the_exit_code_and_both_output_streams_are_reported(tmp_path: Path, code: int) -> None:
    result = run_procedure(f"echo out; echo err >&2; exit {code}", tmp_path, timeout_s=10)
    assert (result.exit_code, result.timed_out, result.canceled) == (code, False, False)
    assert "out" in result.output and "err" in result.output


def test_the_procedure_runs_in_its_directory_in_a_session_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "setup.sh").write_text("echo from setup\n")
    result = run_procedure('sh setup.sh; pwd; ps -o sid= -p $$ | tr -d " "; echo $$', tmp_path, timeout_s=10)
    lines = result.output.split()
    assert lines[:3] == ["from", "setup", str(tmp_path.resolve())]
    assert lines[3] == lines[4]  # the shell leads its own session (and process group)


def test_output_is_streamed_while_the_procedure_runs(tmp_path: Path) -> None:
    seen: list[str] = []

    def stream(output: str) -> None:
        if output:  # the runner streams on a timer: before the shell has written, that is nothing
            seen.append(output)
        if "first" in output:
            (tmp_path / "seen").touch()  # only now does the procedure go on

    procedure = "echo first; until [ -e seen ]; do sleep 0.05; done; echo second"
    result = run_procedure(procedure, tmp_path, 10, stream, output_interval_s=0.1)
    assert seen and "first" in seen[0] and "second" not in seen[0]
    assert result.exit_code == 0 and "second" in result.output


def test_a_timeout_kills_the_whole_tree(tmp_path: Path) -> None:
    tree: list[int] = []

    def watch(output: str) -> None:
        if output and not tree:
            shell = psutil.Process(int(output.split()[0]))
            descendants = shell.children(recursive=True)
            if len(descendants) >= 3:  # sh -c, and its two sleeps
                tree.extend([shell.pid, *(p.pid for p in descendants)])

    started = time.monotonic()
    result = run_procedure(
        "echo $$; sh -c 'sleep 100 & sleep 100'",
        tmp_path,
        timeout_s=0.6,
        on_output=watch,
        output_interval_s=0.05,
    )
    assert result.timed_out and result.exit_code is None
    assert time.monotonic() - started < 1.5
    assert len(tree) == 4 and all(gone(pid) for pid in tree)


def test_cancelling_kills_the_tree_too(tmp_path: Path) -> None:
    cancel = threading.Event()
    result = run_procedure(  # canceled while the procedure runs: the runner reports output only then
        "sleep 100 & sleep 100",
        tmp_path,
        timeout_s=30,
        on_output=lambda _output: cancel.set(),
        output_interval_s=0.05,
        cancel=cancel,
    )
    assert result.canceled and not result.timed_out and result.exit_code is None
    assert result.seconds < 1.5


def test_a_shell_that_cannot_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CommandFailedToStart, match="cannot start"):
        run_procedure("true", tmp_path / "missing-directory", timeout_s=5)


def test_only_the_tail_of_long_output_is_kept() -> None:
    tail = OutputTail(limit=10)
    tail.append(b"0123456789")
    tail.append(b"abcde")
    assert tail.text() == "[5 bytes of earlier output omitted]\n56789abcde"


def test_long_output_is_capped_and_says_so(tmp_path: Path) -> None:
    result = run_procedure("head -c 200000 /dev/zero | tr '\\0' x; echo END", tmp_path, timeout_s=10)
    assert result.output.startswith("[") and "bytes of earlier output omitted" in result.output
    assert result.output.rstrip().endswith("END") and len(result.output) < 70_000
