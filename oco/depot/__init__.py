"""The depot: content-addressed payload stores behind one small interface (`Depot`).

A payload is named by its SHA-256 and is either complete or absent. `DirectoryDepot` keeps payloads on a
file system (local, or a directory shared by replicas); `S3Depot` (`oco.depot.s3`, the `s3` extra) keeps
them in an S3-compatible object store and can answer downloads with short-lived signed URLs.
`open_depot` builds the one the settings name.
"""

from __future__ import annotations

from pathlib import Path

from oco.depot.base import CHUNK, Depot, StoredPayload
from oco.depot.directory import DirectoryDepot
from oco.domain.depots import parse_s3_url
from oco.errors import DepotError, DepotFull

__all__ = ["CHUNK", "Depot", "DepotError", "DepotFull", "DirectoryDepot", "StoredPayload", "open_depot"]


def open_depot(
    url: str,
    path: Path,
    reserve_bytes: int = 0,
    *,
    spool_dir: Path | None = None,
    s3_endpoint_url: str = "",
    s3_region: str = "",
    max_bytes: int = 0,
) -> Depot:
    """The depot at `url` (`s3://bucket/prefix`), or the directory `path` when `url` is empty.

    An S3 depot spools each upload in `spool_dir` (a local directory) while hashing it.
    """
    if not url:
        return DirectoryDepot(path, reserve_bytes=reserve_bytes)
    from oco.depot.s3 import S3Depot

    bucket, prefix = parse_s3_url(url)
    return S3Depot(
        bucket,
        prefix,
        spool_dir=spool_dir or path,
        endpoint_url=s3_endpoint_url,
        region=s3_region,
        reserve_bytes=reserve_bytes,
        max_bytes=max_bytes,
    )
