"""Running a procedure through its wrapper (oco/agent/wrapper.py): output to a file in the job's run
directory, streamed from there, the exit code recorded there too, and a timeout that kills the whole
process tree. A procedure that outlived a crashed agent is followed the same way by the next one."""

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

from oco.agent import wrapper
from oco.agent.wrapper import EXIT_CODE_FILE, GO, OUTPUT_FILE

OUTPUT_INTERVAL_S = 3.0
POLL_S = 0.05
KILL_WAIT_S = 5.0
OUTPUT_TAIL_BYTES = 64 * 1024
"""Output kept (and sent) per job: the tail, like the server keeps it."""
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a procedure ended: its exit code (None when killed by us or unknown) and its output (tail)."""

    exit_code: int | None
    output: str
    timed_out: bool = False
    canceled: bool = False
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """Which process a procedure's wrapper is: its pid and a start mark that a reused pid cannot share."""

    pid: int
    start: str


class CommandFailedToStart(Exception):
    """The wrapper or the shell could not be started at all."""


class UnreadableExitCode(ValueError):
    """The run directory's exit-code file holds something else than an exit code."""


# Which process is which ---------------------------------------------------------------------------


def start_mark(pid: int) -> str | None:
    """A text that identifies the live process `pid` for as long as it lives and never another process
    with the same pid; None when there is no such process or it has ended (a zombie).

    Linux: the boot id and the start time in clock ticks since boot (from /proc: no wall clock, so a
    clock change does not change it). Elsewhere: psutil's creation time, which those systems store.
    """
    if sys.platform.startswith("linux") and _BOOT_ID.exists():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (command) "
            boot_id = _BOOT_ID.read_text(encoding="ascii").strip()
        except (OSError, ValueError):
            return None
        state, start_ticks = fields[0], fields[19]  # fields 3 and 22 of proc_pid_stat(5)
        return None if state in ("Z", "X") else f"linux:{boot_id}:{start_ticks}"
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return f"created:{process.create_time()!r}"
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def is_running(record: ProcessRecord) -> bool:
    """True while the recorded process itself (same pid, same start) is alive."""
    return start_mark(record.pid) == record.start


# The run directory ----------------------------------------------------------------------------------


def read_output(run_dir: Path, limit: int = OUTPUT_TAIL_BYTES) -> str:
    """The procedure's output so far (its last `limit` bytes, with a note of what was left out)."""
    try:
        with (run_dir / OUTPUT_FILE).open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            dropped = max(0, size - limit)
            handle.seek(dropped)
            text = handle.read(limit).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return f"[{dropped} bytes of earlier output omitted]\n{text}" if dropped else text


def read_exit_code(run_dir: Path) -> int | None:
    """The exit code the wrapper recorded, or None when it recorded none.

    Raises UnreadableExitCode when the file holds something else.
    """
    try:
        text = (run_dir / EXIT_CODE_FILE).read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise UnreadableExitCode(f"{EXIT_CODE_FILE} holds {text[:40]!r}, not an exit code") from None


# Running and following ------------------------------------------------------------------------------


def run_procedure(
    procedure: str,
    cwd: Path,
    run_dir: Path,
    timeout_s: float,
    on_output: Callable[[str], None] | None = None,
    output_interval_s: float = OUTPUT_INTERVAL_S,
    cancel: threading.Event | None = None,
    on_start: Callable[[ProcessRecord], None] | None = None,
) -> RunResult:
    """Run `procedure` in `cwd` through the wrapper, in a session (Windows: process group) of its own;
    its output, exit code and start marker go to `run_dir`. Call `on_output` with the output so far
    (its tail) every `output_interval_s` seconds.

    `on_start` gets the wrapper's ProcessRecord before the procedure may start (the agent journals it
    there); if it raises, the procedure never starts. When `timeout_s` passes, or `cancel` is set, the
    process and all its descendants are killed and `timed_out` or `canceled` is set. Raises
    CommandFailedToStart when the wrapper cannot be started.
    """
    started = time.monotonic()
    process = _launch(procedure, cwd, run_dir)
    _release(process, procedure, run_dir, on_start)
    try:
        timed_out, canceled = _wait(
            lambda: process.poll() is None,
            process.pid,
            run_dir,
            timeout_s,
            on_output,
            output_interval_s,
            cancel,
        )
    except BaseException:  # a procedure nobody watches would run on with nobody to report it
        kill_tree(process.pid)
        process.wait()
        raise
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=KILL_WAIT_S)
    killed = timed_out or canceled
    try:
        recorded = read_exit_code(run_dir)
    except UnreadableExitCode:
        recorded = None
    return RunResult(
        exit_code=None if killed else (recorded if recorded is not None else process.returncode),
        output=read_output(run_dir),
        timed_out=timed_out,
        canceled=canceled,
        seconds=time.monotonic() - started,
    )


def follow_procedure(
    record: ProcessRecord,
    run_dir: Path,
    remaining_s: float,
    on_output: Callable[[str], None] | None = None,
    output_interval_s: float = OUTPUT_INTERVAL_S,
    cancel: threading.Event | None = None,
) -> RunResult:
    """Wait for a procedure another agent process started (it is not our child), streaming its output
    like `run_procedure`; kill its tree when `remaining_s` passes or `cancel` is set.

    `exit_code` is None unless the wrapper recorded one: the caller decides what an ended procedure
    without a recorded code means.
    """
    started = time.monotonic()
    timed_out, canceled = _wait(
        lambda: is_running(record), record.pid, run_dir, remaining_s, on_output, output_interval_s, cancel
    )
    try:
        recorded = read_exit_code(run_dir)
    except UnreadableExitCode:
        recorded = None
    return RunResult(
        exit_code=None if timed_out or canceled else recorded,
        output=read_output(run_dir),
        timed_out=timed_out,
        canceled=canceled,
        seconds=time.monotonic() - started,
    )


def _launch(procedure: str, cwd: Path, run_dir: Path) -> subprocess.Popen[bytes]:
    run_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-I", wrapper.__file__, procedure, str(run_dir)]
    try:
        with (run_dir / OUTPUT_FILE).open("wb") as output:
            return subprocess.Popen(
                command,
                cwd=cwd,
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=subprocess.STDOUT,
                creationflags=_CREATION_FLAGS,
                start_new_session=_NEW_SESSION,
            )
    except OSError as exc:
        raise CommandFailedToStart(f"cannot start {procedure!r}: {exc}") from exc


def _release(
    process: subprocess.Popen[bytes],
    procedure: str,
    run_dir: Path,
    on_start: Callable[[ProcessRecord], None] | None,
) -> None:
    """Hand the wrapper's record to `on_start`, then send the go line; on any failure the wrapper ends
    without having started the procedure (its stdin closes without the go line)."""
    assert process.stdin is not None
    try:
        mark = start_mark(process.pid)
        if mark is None:
            raise CommandFailedToStart(f"the wrapper of {procedure!r} ended at once: {read_output(run_dir)}")
        if on_start is not None:
            on_start(ProcessRecord(process.pid, mark))
        try:
            process.stdin.write(f"{GO}\n".encode())
            process.stdin.close()
        except OSError as exc:
            raise CommandFailedToStart(
                f"the wrapper of {procedure!r} ended before the procedure: {exc} {read_output(run_dir)}"
            ) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            process.stdin.close()
        process.wait()
        raise


def _wait(
    running: Callable[[], bool],
    pid: int,
    run_dir: Path,
    timeout_s: float,
    on_output: Callable[[str], None] | None,
    output_interval_s: float,
    cancel: threading.Event | None,
) -> tuple[bool, bool]:
    """Poll until the process ends, streaming output; returns (timed out, canceled)."""
    started = last_output = time.monotonic()
    while running():
        now = time.monotonic()
        timed_out = now - started > timeout_s
        canceled = cancel is not None and cancel.is_set()
        if timed_out or canceled:
            kill_tree(pid)
            return timed_out, canceled
        if on_output is not None and now - last_output >= output_interval_s:
            last_output = now
            on_output(read_output(run_dir))
        time.sleep(POLL_S)
    return False, False


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


# The wrapper gets a process group of its own, so a timeout can end it with all its descendants, and
# (POSIX) a session of its own, so that it outlives the agent and no terminal's signals reach it.
if sys.platform == "win32":
    _CREATION_FLAGS, _NEW_SESSION = subprocess.CREATE_NEW_PROCESS_GROUP, False
else:
    _CREATION_FLAGS, _NEW_SESSION = 0, True
