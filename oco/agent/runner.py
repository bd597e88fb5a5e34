"""Running a procedure through the platform shell, with streamed output and a timeout that kills the
whole process tree."""

from __future__ import annotations

import contextlib
import io
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
POLL_S = 0.05
KILL_WAIT_S = 5.0
READER_JOIN_S = 2.0
READ_CHUNK = 64 * 1024
OUTPUT_TAIL_BYTES = 64 * 1024
"""Output kept (and sent) per job: the tail, like the server keeps it."""


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a procedure ended: its exit code (None when killed by us) and its output (tail)."""

    exit_code: int | None
    output: str
    timed_out: bool = False
    canceled: bool = False
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
    cancel: threading.Event | None = None,
) -> RunResult:
    """Run `procedure` in `cwd` in its own process group; call `on_output` with the output so far
    (its tail) every `output_interval_s` seconds.

    When `timeout_s` passes, or `cancel` is set, the process and all its descendants are killed and
    `timed_out` or `canceled` is set. Raises CommandFailedToStart when the shell cannot be started.
    """
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            shell_command(procedure),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            creationflags=_CREATION_FLAGS,
            start_new_session=_NEW_SESSION,
        )
    except OSError as exc:
        raise CommandFailedToStart(f"cannot start {procedure!r}: {exc}") from exc
    output = OutputTail()
    reader = threading.Thread(target=_read_all, args=(process, output), daemon=True)
    reader.start()
    last_output = started
    timed_out = canceled = False
    while process.poll() is None:
        now = time.monotonic()
        timed_out = now - started > timeout_s
        canceled = cancel is not None and cancel.is_set()
        if timed_out or canceled:
            kill_tree(process.pid)
            break
        if on_output is not None and now - last_output >= output_interval_s:
            last_output = now
            on_output(output.text())
        time.sleep(POLL_S)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=KILL_WAIT_S)
    reader.join(READER_JOIN_S)
    return RunResult(
        exit_code=None if timed_out or canceled else process.returncode,
        output=output.text(),
        timed_out=timed_out,
        canceled=canceled,
        seconds=time.monotonic() - started,
    )


def kill_tree(pid: int) -> None:
    """Kill a process and every descendant, including ones that left for another process group."""
    try:
        parent = psutil.Process(pid)
        family = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    if sys.platform != "win32":
        # The process group also holds orphans reparented away from the tree (`(cmd &)`).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    for process in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    _wait_until_dead(family, KILL_WAIT_S)


def _wait_until_dead(processes: list[psutil.Process], timeout_s: float) -> None:
    """Wait until each process is gone or a zombie (its reaping is its parent's business, not ours)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not all(_dead(p) for p in processes):
        time.sleep(POLL_S)


def _dead(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class OutputTail:
    """The last OUTPUT_TAIL_BYTES bytes of a process's output, counting what was dropped."""

    def __init__(self, limit: int = OUTPUT_TAIL_BYTES) -> None:
        self.limit = limit
        self.dropped = 0
        self._data = bytearray()
        self._lock = threading.Lock()

    def append(self, chunk: bytes) -> None:
        """Add output, dropping the oldest bytes beyond the limit."""
        with self._lock:
            self._data += chunk
            excess = len(self._data) - self.limit
            if excess > 0:
                del self._data[:excess]
                self.dropped += excess

    def text(self) -> str:
        """The kept output as text, prefixed with a note when earlier output was dropped."""
        with self._lock:
            text = bytes(self._data).decode("utf-8", errors="replace")
            dropped = self.dropped
        return f"[{dropped} bytes of earlier output omitted]\n{text}" if dropped else text


# The procedure gets a process group of its own, so a timeout can end it with all its descendants.
if sys.platform == "win32":
    _CREATION_FLAGS, _NEW_SESSION = subprocess.CREATE_NEW_PROCESS_GROUP, False
else:
    _CREATION_FLAGS, _NEW_SESSION = 0, True


def _read_all(process: subprocess.Popen[bytes], output: OutputTail) -> None:
    stream = process.stdout
    assert isinstance(stream, io.BufferedIOBase)  # a pipe opened in binary mode: read1 returns what is there
    with contextlib.suppress(OSError, ValueError):
        while chunk := stream.read1(READ_CHUNK):
            output.append(chunk)
