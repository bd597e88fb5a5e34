"""Post-actions (restart, shutdown) behind one interface, so that tests record them instead of acting.

Nothing here runs during the test suite except RecordingPowerBackend: the real backends are chosen only
with `power_backend = "system"`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import psutil

from oco.agent.config import SECONDS_PER_MINUTE

log = logging.getLogger("oco.agent")
NOTIFY_TIMEOUT_S = 10
RECORD_FILE = "power_actions.jsonl"


class PowerAction(StrEnum):
    """A post-action that powers the computer off or restarts it."""

    RESTART = "restart"
    SHUTDOWN = "shutdown"


class PowerBackend(Protocol):
    """How the agent sees who is logged in, warns them, and restarts or shuts the computer down."""

    def logged_in_users(self) -> list[str]:
        """Names of the users logged in now (empty: nobody to warn or wait for)."""
        ...

    def notify(self, message: str) -> None:
        """Warn the logged-in users (best effort)."""
        ...

    def restart(self, delay_seconds: float = 0.0) -> None:
        """Restart now; `delay_seconds` says how long the agent waited for the users (for the record)."""
        ...

    def shutdown(self, delay_seconds: float = 0.0) -> None:
        """Power off now; `delay_seconds` as for `restart`."""
        ...


class _CommandPowerBackend:
    """Shared by the real backends: users from psutil, actions by running the platform's commands."""

    notify_command: tuple[str, ...] = ("wall",)
    restart_command: tuple[str, ...] = ()
    shutdown_command: tuple[str, ...] = ()

    def logged_in_users(self) -> list[str]:
        return sorted({user.name for user in psutil.users()})

    def notify(self, message: str) -> None:
        # A warning is best effort; the action still follows the timeout.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [*self.notify_command, message], check=False, timeout=NOTIFY_TIMEOUT_S, capture_output=True
            )

    def restart(self, delay_seconds: float = 0.0) -> None:
        log.warning("restarting the computer (waited %.0f s for logged-in users)", delay_seconds)
        subprocess.run(list(self.restart_command), check=True)

    def shutdown(self, delay_seconds: float = 0.0) -> None:
        log.warning("shutting the computer down (waited %.0f s for logged-in users)", delay_seconds)
        subprocess.run(list(self.shutdown_command), check=True)


class LinuxPowerBackend(_CommandPowerBackend):
    """systemd/SysV `shutdown`; warnings through `wall`."""

    restart_command = ("shutdown", "-r", "now")
    shutdown_command = ("shutdown", "-h", "now")


class MacPowerBackend(_CommandPowerBackend):
    """macOS `shutdown`; warnings through `wall` (terminal sessions)."""

    restart_command = ("shutdown", "-r", "now")
    shutdown_command = ("shutdown", "-h", "now")


class WindowsPowerBackend(_CommandPowerBackend):
    """`shutdown.exe`; warnings through `msg *` to every session."""

    notify_command = ("msg", "*")
    restart_command = ("shutdown", "/r", "/t", "0")
    shutdown_command = ("shutdown", "/s", "/t", "0")


def system_power_backend() -> PowerBackend:
    """The real backend for this platform."""
    if sys.platform == "win32":
        return WindowsPowerBackend()
    if sys.platform == "darwin":
        return MacPowerBackend()
    return LinuxPowerBackend()


class RecordingPowerBackend:
    """Writes each call as a JSON line {action, at, delay_seconds, users} instead of acting.

    `users` simulates who is logged in, so that tests can check that the agent waits for them.
    """

    def __init__(self, log_path: Path, users: list[str] | None = None) -> None:
        self.log_path = log_path
        self.users = list(users or [])

    def logged_in_users(self) -> list[str]:
        return list(self.users)

    def notify(self, message: str) -> None:
        self._record("notify", 0.0, message=message)

    def restart(self, delay_seconds: float = 0.0) -> None:
        self._record(PowerAction.RESTART, delay_seconds)

    def shutdown(self, delay_seconds: float = 0.0) -> None:
        self._record(PowerAction.SHUTDOWN, delay_seconds)

    def entries(self) -> list[dict[str, object]]:
        """Everything recorded so far, oldest first."""
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text(encoding="utf-8").splitlines()]

    def _record(self, action: str, delay_seconds: float, **details: str) -> None:
        entry = {
            "action": str(action),
            "at": datetime.now(UTC).isoformat(),
            "delay_seconds": delay_seconds,
            "users": self.users,
            **details,
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")


@dataclass(frozen=True, slots=True)
class PowerOutcome:
    """What a restart/shutdown post-action did: acted (after `delay_seconds`), or why it did not."""

    acted: bool
    delay_seconds: float = 0.0
    reason: str = ""


def perform_power_action(
    action: PowerAction,
    timeout_minutes: int,
    backend: PowerBackend,
    wait: Callable[[float], bool],
    minute_seconds: float = SECONDS_PER_MINUTE,
) -> PowerOutcome:
    """Restart or shut down after a successful job, as the container's restart timeout says.

    A negative timeout skips the action. With a user logged in, warn and `wait` the timeout (one minute
    lasting `minute_seconds`); with nobody logged in, act at once. `wait(seconds)` returns True when the
    wait was cut short because the agent is stopping: then nothing is done.
    """
    if timeout_minutes < 0:
        return PowerOutcome(False, reason="negative restart timeout: skipped")
    delay = 0.0
    users = backend.logged_in_users()
    if users and timeout_minutes > 0:
        delay = timeout_minutes * minute_seconds
        verb = "restart" if action is PowerAction.RESTART else "shut down"
        backend.notify(
            f"This computer will {verb} in {timeout_minutes} minute(s) to finish a software installation. "
            "Please save your work."
        )
        if wait(delay):
            return PowerOutcome(False, delay, reason="agent stopping: action abandoned")
    if action is PowerAction.RESTART:
        backend.restart(delay_seconds=delay)
    else:
        backend.shutdown(delay_seconds=delay)
    return PowerOutcome(True, delay)
