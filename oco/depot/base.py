"""The depot's interface, and what every depot does the same way: hashing, zipping, room, locking.

A payload is stored from a stream: the bytes go through a temporary file (the spool, beside the payloads
for a directory depot) while their SHA-256 is computed, and only a complete payload is put under its
digest. Any upload that is not a zip archive is wrapped into one, under a name every agent accepts
(`oco.domain.payloads.member_name`).

Before and while a payload is spooled, the spool's file system must keep `reserve_bytes` free beyond it:
otherwise the write stops with `DepotFull` ("depot out of space (needed N, free M)") and nothing of it
stays.

Packages refer to payloads by digest, and two packages may share one. Storing a payload until the package
that refers to it is committed holds the depot's lock shared (`storing`); deciding that a payload is unused
and deleting it holds it exclusively (`removing`). So a payload uploaded again while the last package using
it is deleted is never lost, whichever processes do it. The lock is an advisory file lock (`.lock`), which
holds across the processes that share the lock file's directory.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from oco.domain.payloads import member_name
from oco.errors import DepotError, DepotFull

CHUNK = 1024 * 1024
LOCK_FILE = ".lock"
SPOOL_PREFIX = ".upload-"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
SHA256_HEX_DIGITS = 64

DiskUsage = Callable[[Path], int]
"""The free bytes of the file system holding a path."""
_ZipFiller = Callable[[zipfile.ZipFile], None]


def free_bytes(path: Path) -> int:
    """The bytes an unprivileged process may still write on the file system of `path`."""
    return shutil.disk_usage(path).free


def checked_digest(sha256: str) -> str:
    """`sha256` if it is a lower-case hex SHA-256 digest (a payload's name); DepotError otherwise."""
    if len(sha256) != SHA256_HEX_DIGITS or not all(c in "0123456789abcdef" for c in sha256):
        raise DepotError(f"not a SHA-256 digest: {sha256!r}")
    return sha256


@dataclass(frozen=True, slots=True)
class StoredPayload:
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class _Spooled:
    """A payload written completely to a temporary file, with its digest and size."""

    path: Path
    sha256: str
    size: int


class Depot(ABC):
    """A content-addressed payload store: store from a stream, read a byte range, size, delete, room."""

    def __init__(self, spool_dir: Path, reserve_bytes: int = 0, disk_free: DiskUsage = free_bytes) -> None:
        self.spool_dir = spool_dir
        self.reserve_bytes = reserve_bytes
        self._disk_free = disk_free

    # What each depot does its own way ---------------------------------------------------------------

    @abstractmethod
    def exists(self, sha256: str) -> bool:
        """Whether the payload is stored."""

    @abstractmethod
    def size(self, sha256: str) -> int:
        """The stored payload's size in bytes; DepotError when it is missing."""

    @abstractmethod
    def iter_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield the bytes [start, end] (inclusive, like HTTP ranges) without loading them all; DepotError
        when the payload is missing."""

    @abstractmethod
    def delete(self, sha256: str) -> None:
        """Remove a payload (nothing when absent); callers check first, inside `removing`, that no package
        refers to it."""

    @abstractmethod
    def _keep(self, spooled: _Spooled) -> None:
        """Put a completely spooled payload under its digest (the spool file is removed afterwards)."""

    def signed_url(self, sha256: str, ttl_seconds: int, filename: str) -> str | None:
        """A URL anyone may GET the payload from (with `Range`) for `ttl_seconds`, served as `filename`;
        None when this depot cannot sign one (the server streams the payload itself)."""
        del sha256, ttl_seconds, filename
        return None

    def free(self) -> int:
        """What payloads may still take: the spool's free bytes beyond the reserve."""
        return self._spool_free()

    # The same for every depot -----------------------------------------------------------------------

    def ensure_room(self, needed: int) -> None:
        """DepotFull unless `needed` more bytes fit beside the reserve."""
        free = self.free()
        if needed > free:
            raise DepotFull(f"depot out of space (needed {needed} bytes, free {free} bytes)")

    def put_stream(self, chunks: Iterable[bytes], expected_size: int | None = None) -> StoredPayload:
        """Store the bytes of `chunks` as they come; returns their digest and size.

        With `expected_size`, DepotFull is raised before anything is written when it does not fit; either
        way each chunk must fit as it comes (and a file system that fills up all the same is DepotFull).
        """
        if expected_size is not None:
            self.ensure_room(expected_size)
        spooled = self._spool(chunks, expected_size)
        try:
            self._keep(spooled)
        finally:
            spooled.path.unlink(missing_ok=True)
        return StoredPayload(sha256=spooled.sha256, size=spooled.size)

    def put_file(self, source: Path) -> StoredPayload:
        """Store a payload from disk: a zip as it is, a directory or any other file zipped first."""
        if source.is_dir():
            return self._put_zipped(lambda archive: _zip_directory(archive, source))
        if not source.is_file():
            raise DepotError(f"payload {str(source)!r} does not exist")
        with source.open("rb") as handle:
            if _looks_like_zip(handle):
                return self.put_stream(_read_chunks(handle))
        return self._put_zipped(lambda archive: archive.write(source, arcname=source.name))

    def put_upload(self, handle: BinaryIO, filename: str) -> StoredPayload:
        """Store an uploaded file object; anything that is not a zip is zipped under `filename`, reduced
        to a plain file name every agent accepts (`oco.domain.payloads.member_name`)."""
        size = _remaining(handle)
        if _looks_like_zip(handle):
            return self.put_stream(_read_chunks(handle), size)
        if size is not None:
            self.ensure_room(size)  # stored deflated, so at most about this much
        name = member_name(filename)
        return self._put_zipped(lambda archive: _zip_stream(archive, handle, name))

    @contextmanager
    def storing(self) -> Iterator[None]:
        """Hold from storing a payload until the package referring to it is committed (shared)."""
        with self._locked(fcntl.LOCK_SH):
            yield

    @contextmanager
    def removing(self) -> Iterator[None]:
        """Hold while deciding that a payload is unused and deleting it (exclusive: waits for `storing`)."""
        with self._locked(fcntl.LOCK_EX):
            yield

    # Helpers ----------------------------------------------------------------------------------------

    def _spool_free(self) -> int:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        return max(self._disk_free(self.spool_dir) - self.reserve_bytes, 0)

    def _spool(self, chunks: Iterable[bytes], expected_size: int | None) -> _Spooled:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, name = tempfile.mkstemp(dir=self.spool_dir, prefix=SPOOL_PREFIX)
        try:
            with _out_of_space_is_full(lambda: size), os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    self._room_for(chunk, size, expected_size)
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return _Spooled(Path(name), digest.hexdigest(), size)

    def _room_for(self, chunk: bytes, written: int, expected_size: int | None) -> None:
        """Each chunk must fit as it comes: the file system may fill up while a payload streams in."""
        free = self._spool_free()
        if len(chunk) > free:
            needed = max(expected_size or 0, written + len(chunk)) - written
            raise DepotFull(f"depot out of space (needed {needed} bytes more, free {free} bytes)")

    def _put_zipped(self, fill: _ZipFiller) -> StoredPayload:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=self.spool_dir, prefix=".zip-") as spool:
            with _out_of_space_is_full(lambda: spool.tell()):
                with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                    fill(archive)
                size = spool.tell()
            spool.seek(0)
            # The archive is copied beside its spool: it must fit once more.
            return self.put_stream(_read_chunks(spool), size)

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        with (self.spool_dir / LOCK_FILE).open("a") as lock:
            fcntl.flock(lock, mode)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def _out_of_space_is_full(written: Callable[[], int]) -> Iterator[None]:
    """A file system that filled up under a write (ENOSPC, EDQUOT) is DepotFull, not an I/O error."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise DepotFull(f"depot out of space (needed more than {written()} bytes, free 0 bytes)") from exc


def _remaining(handle: BinaryIO) -> int | None:
    """The bytes from the position to the end of a seekable file object, else None."""
    try:
        position = handle.tell()
        end = handle.seek(0, os.SEEK_END)
        handle.seek(position)
    except (OSError, ValueError, AttributeError):
        return None
    return end - position


def _looks_like_zip(handle: BinaryIO) -> bool:
    position = handle.tell()
    magic = handle.read(4)
    handle.seek(position)
    return magic in ZIP_MAGIC


def _read_chunks(handle: BinaryIO) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK):
        yield chunk


def _zip_directory(archive: zipfile.ZipFile, directory: Path) -> None:
    for path in sorted(directory.rglob("*")):
        archive.write(path, arcname=path.relative_to(directory).as_posix())


def _zip_stream(archive: zipfile.ZipFile, handle: BinaryIO, name: str) -> None:
    with archive.open(name, "w", force_zip64=True) as member:
        shutil.copyfileobj(handle, member, CHUNK)
