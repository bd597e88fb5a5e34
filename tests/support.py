"""Helpers shared by the tests: zip payloads, waiting on a condition, a Wake-on-LAN listener on loopback,
a work copy of the migrated SQLite template, the routes of an application. Fixtures built on them live in
tests/conftest.py."""

from __future__ import annotations

import io
import shutil
import socket
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

T = TypeVar("T")

WAIT_TIMEOUT_S = 60.0
"""How long `wait_until` waits by default: generous, for a loaded 2-core machine."""
WAIT_INTERVAL_S = 0.1
SCRIPT_MODE = 0o755
"""The Unix permissions of zip members by default: payload scripts are executable."""
QUIET_S = 0.3
"""How long `WolListener.received` waits for one more packet before it takes the burst as complete."""


# Zip payloads ------------------------------------------------------------------------------------


def zip_bytes(
    files: Mapping[str, str | bytes], mode: int = SCRIPT_MODE, modes: Mapping[str, int] | None = None
) -> bytes:
    """A zip archive of `files` (member name → content), in that order.

    Each member gets the Unix mode `mode`, or the one `modes` gives for its name (file type bits
    included: `stat.S_IFLNK | 0o777` makes a symbolic link whose content is its target).
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (modes or {}).get(name, mode) << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def write_zip(
    path: Path,
    files: Mapping[str, str | bytes],
    mode: int = SCRIPT_MODE,
    modes: Mapping[str, int] | None = None,
) -> Path:
    """Write `zip_bytes(files, mode, modes)` to `path` and return `path`."""
    path.write_bytes(zip_bytes(files, mode, modes))
    return path


# Waiting -------------------------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], T],
    timeout: float = WAIT_TIMEOUT_S,
    interval: float = WAIT_INTERVAL_S,
    message: str = "the condition was not met",
) -> T:
    """Call `condition` every `interval` seconds until it returns a true value, and return that value.

    Fails the test (AssertionError with `message`) when it is still false `timeout` seconds after the
    first call; it is checked once more at the deadline. Exceptions from `condition` propagate.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{message} (waited {timeout:g} s)")
        time.sleep(min(interval, remaining))


# Wake-on-LAN ---------------------------------------------------------------------------------------


class WolListener:
    """A UDP socket bound to a free port on 127.0.0.1 that catches the magic packets a test makes the
    server send (tests configure WOL_ADDRESSES=127.0.0.1 and no subnet broadcasts: nothing leaves
    loopback)."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    def received(self, quiet: float = QUIET_S) -> list[bytes]:
        """The packets that have arrived, and any that follow until none has come for `quiet` seconds.

        For packets sent before the call (the senders in the tests send synchronously): `quiet` only
        says when the burst is over, it is not a wait for them to be sent.
        """
        self.socket.settimeout(quiet)
        packets = []
        try:
            while True:
                packets.append(self.socket.recv(1024))
        except TimeoutError:
            return packets

    def close(self) -> None:
        self.socket.close()

    def __enter__(self) -> WolListener:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# Databases -----------------------------------------------------------------------------------------


def copy_sqlite_template(template: Path, workdir: Path, name: str = "oco.sqlite3") -> str:
    """Copy the migrated SQLite `template` to `workdir / name` and return that database's URL."""
    path = workdir / name
    shutil.copy(template, path)
    return f"sqlite:///{path}"


# Routes --------------------------------------------------------------------------------------------


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute, those of included routers too."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # FastAPI keeps included routers whole
        if included is not None:
            assert not route.include_context.dependencies  # type: ignore[attr-defined]  # none lost here
            yield from api_routes(included.routes)
