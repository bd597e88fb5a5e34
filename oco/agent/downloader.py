"""Payload downloads that resume with `Range` after an interruption and are verified before use."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from oco.agent.client import AgentClient, ServerUnreachable
from oco.domain.protocol import SHA256_HEADER

CHUNK = 256 * 1024
PROGRESS_INTERVAL_S = 2.0
PERCENT = 100


class ChecksumMismatch(Exception):
    """The downloaded payload's SHA-256 differs from the server's: it is deleted, nothing runs."""


class DownloadInterrupted(Exception):
    """The transfer stopped midway; the partial file is kept so the next try resumes."""


def download_payload(
    client: AgentClient, package_id: int, directory: Path, progress: Callable[[int], None]
) -> Path:
    """Download package `package_id` into `directory`, resuming a partial file, and verify its SHA-256.

    `progress` receives 0..100 every few seconds. Returns the path of the complete, verified zip.
    """
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f"{package_id}.part"
    digest_file = directory / f"{package_id}.sha256"
    offset = partial.stat().st_size if partial.exists() else 0
    response = client.open_download(package_id, offset)
    try:
        expected = _expected_digest(response)
        offset = _resume_point(response, partial, digest_file, expected, offset)
        total = offset + int(response.headers.get("content-length", "0"))
        _receive(response, partial, offset, total, progress)
    finally:
        response.close()
    _verify(partial, expected, digest_file)
    complete = directory / f"{package_id}.zip"
    partial.replace(complete)
    digest_file.unlink(missing_ok=True)
    return complete


def _expected_digest(response: httpx.Response) -> str:
    digest = response.headers.get(SHA256_HEADER) or response.headers.get("etag", "").strip('"')
    if len(digest) != 64:
        raise ChecksumMismatch("the server sent no SHA-256 for the payload; refusing to run it unverified")
    return digest.lower()


def _resume_point(
    response: httpx.Response, partial: Path, digest_file: Path, expected: str, offset: int
) -> int:
    """Keep the partial bytes only for a 206 answer about the same payload; else start over."""
    same_payload = digest_file.exists() and digest_file.read_text().strip() == expected
    if response.status_code == 206 and same_payload:
        return offset
    if response.status_code == 206:
        raise DownloadInterrupted(
            "the payload changed since the interrupted download; starting over next time"
        )
    partial.unlink(missing_ok=True)
    digest_file.write_text(expected)
    return 0


def _receive(
    response: httpx.Response, partial: Path, offset: int, total: int, progress: Callable[[int], None]
) -> None:
    received = offset
    last_report = 0.0
    try:
        with partial.open("ab") as out:
            for chunk in response.iter_bytes(CHUNK):
                out.write(chunk)
                received += len(chunk)
                now = time.monotonic()
                if now - last_report >= PROGRESS_INTERVAL_S:
                    last_report = now
                    progress(received * PERCENT // total if total else 0)
    except (httpx.TransportError, ServerUnreachable) as exc:
        raise DownloadInterrupted(f"download interrupted after {received} of {total} bytes: {exc}") from exc
    if total and received < total:
        raise DownloadInterrupted(f"download interrupted after {received} of {total} bytes")
    progress(PERCENT)


def _verify(partial: Path, expected: str, digest_file: Path) -> None:
    digest = hashlib.sha256()
    with partial.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        partial.unlink(missing_ok=True)
        digest_file.unlink(missing_ok=True)
        raise ChecksumMismatch(f"payload SHA-256 is {digest.hexdigest()}, the server announced {expected}")
