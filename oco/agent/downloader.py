"""Payload downloads that resume with `Range` after an interruption and are verified before use.

The payload is verified against the SHA-256 and size the job named in the hello answer — which the server
signs with its key — never against the download response's own headers, which nobody signs: a machine in
between could replace the payload and its headers together.

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

from oco.agent.client import AgentClient, ServerRefused, StoreUnreachable
from oco.agent.trust import JobRefused
from oco.domain.dispatch import PayloadDigest
from oco.domain.protocol import SHA256_HEADER

CHUNK = 256 * 1024
PROGRESS_INTERVAL_S = 2.0
PERCENT = 100
ATTEMPTS = 3
"""Tries per job: an interrupted transfer resumes from its partial file before the job is given up."""
RETRY_PAUSE_S = 1.0
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
PAYLOAD_MISMATCH = "payload digest does not match the signed job"
"""The start of the message of a job whose download is not the payload the job named (reported -9999)."""


DOWNLOADS_DIR = "downloads"
"""The sub-directory of the agent's state directory that keeps downloads between tries."""


class DownloadError(Exception):
    """The payload could not be obtained; the job fails with -9999."""


class ChecksumMismatch(DownloadError, JobRefused):
    """The download is not the payload the job named: it is deleted, nothing is unpacked or run."""


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
    *,
    expected: PayloadDigest,
) -> Path:
    """Download package `package_id` into `directory`, resuming a partial file, and verify it against
    `expected` (the SHA-256 and size from the signed job).

    `progress` receives 0..100, at most every few seconds. An interrupted transfer is resumed up to
    `attempts` times; then DownloadInterrupted is raised with the partial file kept. A download that is
    not the expected payload raises ChecksumMismatch, its bytes deleted. Returns the path of the
    complete, verified zip. ServerUnreachable (cannot even connect) propagates to the caller.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        try:
            return _download_once(client, package_id, directory, expected, _Throttle(progress), should_stop)
        except DownloadInterrupted:
            if attempt == attempts or should_stop():
                raise
            time.sleep(retry_pause_s)
    raise AssertionError("unreachable")  # pragma: no cover


def _download_once(
    client: AgentClient,
    package_id: int,
    directory: Path,
    expected: PayloadDigest,
    progress: _Throttle,
    should_stop: Callable[[], bool],
) -> Path:
    partial = directory / f"{package_id}.part"
    digest_file = directory / f"{package_id}.sha256"
    offset = _kept_bytes(partial, digest_file, expected)
    if offset < expected.size or expected.size == 0:
        _fetch(client, package_id, partial, digest_file, expected, offset, progress, should_stop)
    _verify(partial, expected, digest_file)
    complete = directory / f"{package_id}.zip"
    partial.replace(complete)
    digest_file.unlink(missing_ok=True)
    return complete


def _kept_bytes(partial: Path, digest_file: Path, expected: PayloadDigest) -> int:
    """How many bytes of an earlier try can be kept: only those of the same payload, never too many."""
    if not partial.exists():
        return 0
    size = partial.stat().st_size
    same_payload = digest_file.exists() and digest_file.read_text().strip() == expected.sha256
    if same_payload and size <= expected.size:
        return size
    _forget(partial, digest_file)
    return 0


def _fetch(
    client: AgentClient,
    package_id: int,
    partial: Path,
    digest_file: Path,
    expected: PayloadDigest,
    offset: int,
    progress: _Throttle,
    should_stop: Callable[[], bool],
) -> None:
    try:
        response = client.open_download(package_id, offset)
    except StoreUnreachable as exc:  # the server answered; the next try gets a fresh signed URL
        raise DownloadInterrupted(str(exc)) from None
    except ServerRefused as exc:
        if exc.status_code != HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE:
            raise DownloadError(str(exc)) from None
        _forget(partial, digest_file)  # the partial file is longer than what the server has: start over
        raise DownloadInterrupted("the partial download did not fit the payload; starting over") from None
    try:
        _check_announced(response, expected, partial, digest_file)
        offset = _resume_point(response, partial, digest_file, expected, offset)
        _receive(response, partial, digest_file, offset, expected, progress, should_stop)
    finally:
        response.close()


def _check_announced(
    response: httpx.Response, expected: PayloadDigest, partial: Path, digest_file: Path
) -> None:
    """Refuse at once a response that itself announces another payload (a digest or total size that
    differs from the job's). A matching announcement proves nothing: the bytes are verified anyway."""
    header = response.headers.get(SHA256_HEADER, "").strip().lower()
    total = _total_size(response)
    if header and header != expected.sha256:
        _forget(partial, digest_file)
        raise ChecksumMismatch(
            f"{PAYLOAD_MISMATCH} (the download announces SHA-256 {header}, the job names {expected.sha256})"
        )
    if total is not None and total != expected.size:
        _forget(partial, digest_file)
        raise ChecksumMismatch(
            f"{PAYLOAD_MISMATCH} (the download announces {total} bytes, the job names {expected.size})"
        )


def _resume_point(
    response: httpx.Response, partial: Path, digest_file: Path, expected: PayloadDigest, offset: int
) -> int:
    """Keep the partial bytes only for a 206 answer from our offset; else restart from the beginning."""
    if response.status_code == HTTPStatus.PARTIAL_CONTENT:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
        if offset and (match is None or int(match.group(1)) == offset):
            return offset
        _forget(partial, digest_file)
        raise DownloadInterrupted("the server answered another range than asked; starting over")
    _forget(partial, digest_file)
    digest_file.write_text(expected.sha256)
    return 0


def _total_size(response: httpx.Response) -> int | None:
    """The payload's whole size as the response announces it, if it does."""
    match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
    if match:
        return None if match.group(3) == "*" else int(match.group(3))
    length = response.headers.get("content-length", "")
    if response.status_code == HTTPStatus.OK and length.isdigit():
        return int(length)
    return None


def _receive(
    response: httpx.Response,
    partial: Path,
    digest_file: Path,
    offset: int,
    expected: PayloadDigest,
    progress: _Throttle,
    should_stop: Callable[[], bool],
) -> None:
    received, total = offset, expected.size
    try:
        with partial.open("ab") as out:
            for chunk in response.iter_bytes(CHUNK):
                received += len(chunk)
                if received > total:  # more than the job's payload: never written to disk
                    raise _TooLong()
                out.write(chunk)
                if should_stop():
                    raise DownloadAbandoned(f"agent stopping; {received} of {total} bytes kept")
                progress(_percent(received, total))
    except _TooLong:
        _forget(partial, digest_file)
        raise ChecksumMismatch(f"{PAYLOAD_MISMATCH} (the download is longer than {total} bytes)") from None
    except httpx.TransportError as exc:
        raise DownloadInterrupted(f"download interrupted after {received} of {total} bytes: {exc}") from exc
    if received < total:
        raise DownloadInterrupted(f"download interrupted after {received} of {total} bytes")
    progress(PERCENT, force=True)


class _TooLong(Exception):
    pass


def _percent(received: int, total: int) -> int:
    return min(PERCENT, received * PERCENT // total) if total else 0


def _verify(partial: Path, expected: PayloadDigest, digest_file: Path) -> None:
    digest = hashlib.sha256()
    size = 0
    with partial.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    if digest.hexdigest() != expected.sha256 or size != expected.size:
        _forget(partial, digest_file)
        raise ChecksumMismatch(
            f"{PAYLOAD_MISMATCH} (the download has SHA-256 {digest.hexdigest()} and {size} bytes, "
            f"the job names {expected.sha256} and {expected.size} bytes)"
        )


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
