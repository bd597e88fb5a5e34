"""Power actions behind one interface, so that tests record them instead of powering anything off."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import psutil


class PowerBackend(Protocol):
    def logged_in_users(self) -> list[str]: ...
    def notify(self, message: str) -> None: ...
    def restart(self) -> None: ...
    def shutdown(self) -> None: ...


class SystemPowerBackend:
    """The real thing, per platform: Linux `shutdown`, macOS `shutdown`, Windows `shutdown.exe`."""

    def logged_in_users(self) -> list[str]:
        return sorted({user.name for user in psutil.users()})

    def notify(self, message: str) -> None:
        command = ["msg", "*", message] if sys.platform == "win32" else ["wall", message]
        # A warning is best effort; the action still follows the timeout.
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(command, check=False, timeout=10, capture_output=True)

    def restart(self) -> None:
        subprocess.run(self._command(restart=True), check=True)

    def shutdown(self) -> None:
        subprocess.run(self._command(restart=False), check=True)

    @staticmethod
    def _command(restart: bool) -> list[str]:
        if sys.platform == "win32":
            return ["shutdown", "/r" if restart else "/s", "/t", "0"]
        if sys.platform == "darwin":
            return ["shutdown", "-r" if restart else "-h", "now"]
        return ["shutdown", "-r" if restart else "-h", "now"]


class RecordingPowerBackend:
    """Writes each action as a JSON line instead of performing it (for tests and dry runs)."""

    def __init__(self, log: Path, users: list[str]) -> None:
        self.log = log
        self.users = users
        self.started = time.monotonic()

    def logged_in_users(self) -> list[str]:
        return list(self.users)

    def notify(self, message: str) -> None:
        self._record("notify", message=message)

    def restart(self) -> None:
        self._record("restart")

    def shutdown(self) -> None:
        self._record("shutdown")

    def _record(self, action: str, **details: str) -> None:
        entry = {"action": action, "at": datetime.now(UTC).isoformat(), "users": self.users, **details}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
