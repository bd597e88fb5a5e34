"""Payloads in a directory: `<root>/ab/abcdef…` named by the payload's SHA-256.

Uploads spool into a temporary file in the depot itself and are renamed into place, so a payload is either
complete or absent. Replicas may share one directory (NFS, CephFS…): the rename is atomic there too, and
the depot's lock (`.lock`) is an advisory lock every process on the directory takes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from oco.depot.base import CHUNK, Depot, DiskUsage, _Spooled, checked_digest, free_bytes
from oco.errors import DepotError


class DirectoryDepot(Depot):
    """Payloads on a file system, local or shared."""

    def __init__(self, root: Path, reserve_bytes: int = 0, disk_free: DiskUsage = free_bytes) -> None:
        super().__init__(root, reserve_bytes, disk_free)
        self.root = root

    def path(self, sha256: str) -> Path:
        """Where the payload `sha256` lives (whether or not it is there)."""
        digest = checked_digest(sha256)
        return self.root / digest[:2] / digest

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def size(self, sha256: str) -> int:
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError as exc:
            raise DepotError(f"payload {sha256} is missing from the depot") from exc

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self.path(sha256).open("rb")
        except FileNotFoundError as exc:
            raise DepotError(f"payload {sha256} is missing from the depot") from exc

    def iter_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
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
        self.path(sha256).unlink(missing_ok=True)

    def _keep(self, spooled: _Spooled) -> None:
        target = self.path(spooled.sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.replace(spooled.path, target)
