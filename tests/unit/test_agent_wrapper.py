"""The wrapper program around each procedure, run as the agent runs it: the go handshake, the exit code
recorded in one step, and a group SIGTERM that ends the procedure but not the record of how it ended."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from oco.agent import wrapper
from oco.agent.wrapper import (
    EXIT_CODE_FILE,
    NEVER_STARTED,
    SETUP_FAILED,
    STARTED_FILE,
    write_exit_code,
)
from tests.support import wait_until


def start(procedure: str, run_dir: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-I", wrapper.__file__, procedure, str(run_dir), *extra],
        cwd=run_dir.parent,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def go(process: subprocess.Popen[bytes], line: bytes = b"run\n") -> tuple[int, str]:
    output, _ = process.communicate(line, timeout=60)
    return process.returncode, output.decode()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "job"
    path.mkdir()
    return path


@pytest.mark.parametrize("code", [0, 3, 255])
def test_the_exit_code_is_recorded_and_returned(run_dir: Path, code: int) -> None:
    status, output = go(start(f"echo hello; exit {code}", run_dir))
    assert (status, output) == (code, "hello\n")
    assert (run_dir / EXIT_CODE_FILE).read_text() == f"{code}\n"
    assert (run_dir / STARTED_FILE).exists()


def test_without_its_go_the_procedure_never_starts(run_dir: Path) -> None:
    for line in (b"", b"something else\n"):  # the agent died (stdin closed), or a stray line
        status, _ = go(start('touch "$PWD/ran"', run_dir), line)
        assert status == NEVER_STARTED
        assert not (run_dir.parent / "ran").exists()
        assert not (run_dir / STARTED_FILE).exists() and not (run_dir / EXIT_CODE_FILE).exists()


def test_a_group_sigterm_ends_the_procedure_and_its_code_is_still_recorded(run_dir: Path) -> None:
    process = start("echo waiting; sleep 300", run_dir)
    assert process.stdin is not None
    process.stdin.write(b"run\n")
    process.stdin.close()
    wait_until(lambda: (run_dir / STARTED_FILE).exists(), message="the procedure did not start")
    wait_until(lambda: len(_group(process.pid)) >= 3, message="no procedure under the wrapper")
    os.killpg(process.pid, signal.SIGTERM)  # as `systemctl kill` sends it to every process of the unit
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert (run_dir / EXIT_CODE_FILE).read_text() == f"-{int(signal.SIGTERM)}\n"


def test_a_run_directory_that_cannot_be_written_runs_nothing(tmp_path: Path) -> None:
    status, output = go(start('touch "$PWD/ran"', tmp_path / "missing"))
    assert status == SETUP_FAILED and "cannot start" in output
    assert not (tmp_path / "ran").exists()


def test_wrong_arguments_are_a_setup_failure(run_dir: Path) -> None:
    status, output = go(start("true", run_dir, "extra"))
    assert status == SETUP_FAILED and "usage" in output


def test_the_exit_code_is_replaced_in_one_step(run_dir: Path) -> None:
    write_exit_code(run_dir, 1)
    write_exit_code(run_dir, -9)
    assert [p.name for p in run_dir.iterdir()] == [EXIT_CODE_FILE]
    assert (run_dir / EXIT_CODE_FILE).read_text() == "-9\n"


def _group(pgid: int) -> list[int]:
    pids = []
    for process in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(process.pid) == pgid:
                pids.append(process.pid)
    return pids
