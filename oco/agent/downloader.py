"""Payload downloads that resume with `Range` after an interruption and are verified before use.

Files in the download directory, per package id: `<id>.part` (bytes received so far), `<id>.sha256`
(the digest the partial bytes belong to) and, once verified, `<id>.zip`.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path

import httpx

from oco.agent.client import AgentClient, ServerRefused
from oco.domain.protocol import SHA256_HEADER

CHUNK = 256 * 1024
PROGRESS_INTERVAL_S = 2.0
PERCENT = 100
SHA256_HEX_LENGTH = 64
ATTEMPTS = 3
"""Tries per job: an interrupted transfer resumes from its partial file before the job is given up."""
RETRY_PAUSE_S = 1.0
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


DOWNLOADS_DIR = "downloads"
"""The sub-directory of the agent's state directory that keeps downloads between tries."""


class DownloadError(Exception):
    """The payload could not be obtained; the job fails with -9999."""


class ChecksumMismatch(DownloadError):
    """The downloaded payload's SHA-256 differs from the server's: it is deleted, nothing runs."""


class DownloadInterrupted(DownloadError):
    """The transfer stopped midway; the partial file is kept so the next try resumes."""


class DownloadAbandoned(Exception):
    """The agent is stopping: the transfer was left off, its partial file kept for the next start."""


def download_payload(
    client: AgentClient,
    package_id: int,
    directory: Path,
    progress: Callable[[int], None],
    should_stop: Callable[[], bool] = lambda: False,
    attempts: int = ATTEMPTS,
    retry_pause_s: float = RETRY_PAUSE_S,
) -> Path:
    """Download package `package_id` into `directory`, resuming a partial file, and verify its SHA-256.

    `progress` receives 0..100, at most every few seconds. An interrupted transfer is resumed up to
    `attempts` times; then DownloadInterrupted is raised with the partial file kept. Returns the path of
    the complete, verified zip. ServerUnreachable (cannot even connect) propagates to the caller.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        try:
            return _download_once(client, package_id, directory, _Throttle(progress), should_stop)
        except DownloadInterrupted:
            if attempt == attempts or should_stop():
                raise
            time.sleep(retry_pause_s)
    raise AssertionError("unreachable")  # pragma: no cover


def _download_once(
    client: AgentClient,
    package_id: int,
    directory: Path,
    progress: _Throttle,
    should_stop: Callable[[], bool],
) -> Path:
    partial = directory / f"{package_id}.part"
    digest_file = directory / f"{package_id}.sha256"
    offset = partial.stat().st_size if partial.exists() else 0
    try:
        response = client.open_download(package_id, offset)
    except ServerRefused as exc:
        if exc.status_code != HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE:
            raise DownloadError(str(exc)) from None
        _forget(partial, digest_file)  # the partial file is longer than the payload: start over
        raise DownloadInterrupted("the partial download did not fit the payload; starting over") from None
    try:
        expected = _expected_digest(response)
        offset = _resume_point(response, partial, digest_file, expected, offset)
        total = _total_size(response, offset)
        _receive(response, partial, offset, total, progress, should_stop)
    finally:
        response.close()
    _verify(partial, expected, digest_file)
    complete = directory / f"{package_id}.zip"
    partial.replace(complete)
    digest_file.unlink(missing_ok=True)
    return complete


def _expected_digest(response: httpx.Response) -> str:
    header: str = response.headers.get(SHA256_HEADER) or response.headers.get("etag", "").removeprefix("W/")
    digest = header.strip().strip('"').lower()
    if len(digest) != SHA256_HEX_LENGTH or not all(c in "0123456789abcdef" for c in digest):
        raise ChecksumMismatch("the server sent no SHA-256 for the payload; refusing to run it unverified")
    return digest


def _resume_point(
    response: httpx.Response, partial: Path, digest_file: Path, expected: str, offset: int
) -> int:
    """Keep the partial bytes only for a 206 answer from our offset about the same payload; else restart."""
    if response.status_code == HTTPStatus.PARTIAL_CONTENT:
        same_payload = digest_file.exists() and digest_file.read_text().strip() == expected
        match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
        if same_payload and (match is None or int(match.group(1)) == offset):
            return offset
        _forget(partial, digest_file)
        raise DownloadInterrupted("the payload changed since the interrupted download; starting over")
    _forget(partial, digest_file)
    digest_file.write_text(expected)
    return 0


def _total_size(response: httpx.Response, offset: int) -> int:
    match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
    if match and match.group(3) != "*":
        return int(match.group(3))
    length = response.headers.get("content-length", "")
    return offset + int(length) if length.isdigit() else 0


def _receive(
    response: httpx.Response,
    partial: Path,
    offset: int,
    total: int,
    progress: _Throttle,
    should_stop: Callable[[], bool],
) -> None:
    received = offset
    try:
        with partial.open("ab") as out:
            for chunk in response.iter_bytes(CHUNK):
                out.write(chunk)
                received += len(chunk)
                if should_stop():
                    raise DownloadAbandoned(f"agent stopping; {received} of {total} bytes kept")
                progress(_percent(received, total))
    except httpx.TransportError as exc:
        raise DownloadInterrupted(f"download interrupted after {received} of {total} bytes: {exc}") from exc
    if total and received < total:
        raise DownloadInterrupted(f"download interrupted after {received} of {total} bytes")
    progress(PERCENT, force=True)


def _percent(received: int, total: int) -> int:
    return min(PERCENT, received * PERCENT // total) if total else 0


def _verify(partial: Path, expected: str, digest_file: Path) -> None:
    digest = hashlib.sha256()
    with partial.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        _forget(partial, digest_file)
        raise ChecksumMismatch(f"payload SHA-256 is {digest.hexdigest()}, the server announced {expected}")


_DOWNLOAD_FILE = re.compile(r"^(\d+)\.(part|sha256|zip)$")


def prune_downloads(directory: Path, wanted: set[int]) -> list[Path]:
    """Delete what is kept for packages no job wants any more (a job withdrawn, expired or done
    elsewhere while its download was interrupted); returns the files deleted. Other files stay."""
    if not directory.is_dir():
        return []
    deleted = []
    for path in directory.iterdir():
        match = _DOWNLOAD_FILE.match(path.name)
        if match and int(match.group(1)) not in wanted and path.is_file():
            path.unlink(missing_ok=True)
            deleted.append(path)
    return deleted


def _forget(partial: Path, digest_file: Path) -> None:
    partial.unlink(missing_ok=True)
    digest_file.unlink(missing_ok=True)


class _Throttle:
    """Passes a changed percentage on at most every PROGRESS_INTERVAL_S seconds (unless forced).

    The caller reports the start of the download itself.
    """

    def __init__(self, report: Callable[[int], None]) -> None:
        self.report = report
        self.last_percent: int | None = None
        self.last_time = time.monotonic()

    def __call__(self, percent: int, force: bool = False) -> None:
        now = time.monotonic()
        if percent == self.last_percent:
            return
        if force or now - self.last_time >= PROGRESS_INTERVAL_S:
            self.last_percent, self.last_time = percent, now
            self.report(percent)
