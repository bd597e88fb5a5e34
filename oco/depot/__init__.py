"""Content-addressed payload store: `<root>/ab/abcdef…` named by the payload's SHA-256.

Writes stream through a temporary file in the depot and are renamed into place, so a payload
is either complete or absent. Any upload that is not a zip archive is wrapped into one.

Packages refer to payloads by digest, and two packages may share one. Storing a payload until the package
that refers to it is committed holds the depot's lock shared (`storing`); deciding that a payload is unused
and deleting it holds it exclusively (`removing`). So a payload uploaded again while the last package using
it is deleted is never lost, whichever processes do it. The lock is an advisory file lock (`.lock`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from oco.errors import DepotError

__all__ = ["Depot", "DepotError", "StoredPayload"]

CHUNK = 1024 * 1024
LOCK_FILE = ".lock"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


_ZipFiller = Callable[[zipfile.ZipFile], None]


@dataclass(frozen=True, slots=True)
class StoredPayload:
    sha256: str
    size: int


class Depot:
    """Payloads on the local file system."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise DepotError(f"not a SHA-256 digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def size(self, sha256: str) -> int:
        return self.path(sha256).stat().st_size

    def put_stream(self, chunks: Iterable[bytes]) -> StoredPayload:
        """Store the bytes of `chunks` as they come; returns their digest and size."""
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            return self._move_into_place(Path(tmp_name), digest.hexdigest(), size)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

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
        """Store an uploaded file object; anything that is not a zip is zipped under `filename`."""
        if _looks_like_zip(handle):
            return self.put_stream(_read_chunks(handle))
        name = Path(filename).name or "payload"
        return self._put_zipped(lambda archive: _zip_stream(archive, handle, name))

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self.path(sha256).open("rb")
        except FileNotFoundError as exc:
            raise DepotError(f"payload {sha256} is missing from the depot") from exc

    def iter_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield the bytes [start, end] (inclusive, like HTTP ranges) without loading them all."""
        with self.open(sha256) as handle:
            handle.seek(start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                chunk = handle.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def delete(self, sha256: str) -> None:
        """Remove a payload; callers check first, inside `removing`, that no package refers to it."""
        self.path(sha256).unlink(missing_ok=True)

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

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK_FILE).open("a") as lock:
            fcntl.flock(lock, mode)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _put_zipped(self, fill: _ZipFiller) -> StoredPayload:
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=self.root, prefix=".zip-") as spool:
            with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                fill(archive)
            spool.seek(0)
            return self.put_stream(_read_chunks(spool))

    def _move_into_place(self, tmp: Path, sha256: str, size: int) -> StoredPayload:
        target = self.path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            tmp.unlink()
        else:
            os.replace(tmp, target)
        return StoredPayload(sha256=sha256, size=size)


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
