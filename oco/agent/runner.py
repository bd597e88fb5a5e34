"""Running a procedure through the platform shell, with streamed output and a timeout that kills the
whole process tree."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

OUTPUT_INTERVAL_S = 3.0
POLL_S = 0.1
KILL_WAIT_S = 5.0
READER_JOIN_S = 2.0


@dataclass(frozen=True, slots=True)
class RunResult:
    exit_code: int | None
    output: str
    timed_out: bool = False
    seconds: float = 0.0


class CommandFailedToStart(Exception):
    """The shell could not be started at all."""


def shell_command(procedure: str) -> list[str]:
    """The platform shell for a procedure: `cmd /c` on Windows, `/bin/sh -c` elsewhere."""
    if sys.platform == "win32":
        return ["cmd", "/c", procedure]
    return ["/bin/sh", "-c", procedure]


def run_procedure(
    procedure: str,
    cwd: Path,
    timeout_s: float,
    on_output: Callable[[str], None] | None = None,
    output_interval_s: float = OUTPUT_INTERVAL_S,
) -> RunResult:
    """Run `procedure` in `cwd`; call `on_output` with the output so far every few seconds.

    When `timeout_s` passes, the process and all its descendants are killed and `timed_out` is set.
    """
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            shell_command(procedure),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            **_new_group(),
        )
    except OSError as exc:
        raise CommandFailedToStart(f"cannot start {procedure!r}: {exc}") from exc
    chunks: list[bytes] = []
    reader = threading.Thread(target=_read_all, args=(process, chunks), daemon=True)
    reader.start()
    last_output = started
    timed_out = False
    while process.poll() is None:
        now = time.monotonic()
        if now - started > timeout_s:
            kill_tree(process.pid)
            timed_out = True
            break
        if on_output is not None and now - last_output >= output_interval_s:
            last_output = now
            on_output(_text(chunks))
        time.sleep(POLL_S)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=KILL_WAIT_S)
    reader.join(READER_JOIN_S)
    return RunResult(
        exit_code=None if timed_out else process.returncode,
        output=_text(chunks),
        timed_out=timed_out,
        seconds=time.monotonic() - started,
    )


def kill_tree(pid: int) -> None:
    """Kill a process and every descendant, including ones that left its process group."""
    try:
        parent = psutil.Process(pid)
        family = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    if sys.platform != "win32":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    for process in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(family, timeout=KILL_WAIT_S)


def _new_group() -> dict[str, object]:
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined]
    return {"start_new_session": True}


def _read_all(process: subprocess.Popen[bytes], chunks: list[bytes]) -> None:
    assert process.stdout is not None
    for line in iter(process.stdout.readline, b""):
        chunks.append(line)


def _text(chunks: list[bytes]) -> str:
    return b"".join(chunks).decode("utf-8", errors="replace")
