"""Payloads in an S3-compatible object store: `s3://bucket/prefix` holds `<prefix>ab/abcdef…`.

Any server that speaks S3 will do (AWS S3, MinIO, Ceph RGW, Garage…). Credentials come from where every AWS
tool finds them (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE` and `~/.aws/`, an instance
role…), never from OCO's settings.

An upload is spooled in a local directory while its SHA-256 is computed and then put under its digest
(boto3 sends a large one in parts), so an object exists only once complete. Downloads read one byte range
with `GetObject` (`Range`) as they are sent on, or go straight from the store by a presigned URL
(`signed_url`) that is valid for a few minutes.

The lock of `storing`/`removing` is the spool directory's file lock: it holds for the processes of one
machine; replicas on several machines also meet in the database's lock (`oco.services.payloadlock`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from oco.depot.base import CHUNK, Depot, DiskUsage, _Spooled, checked_digest, free_bytes
from oco.errors import DepotError, DepotFull, DepotUnavailable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

NOT_FOUND = ("404", "NoSuchKey", "NotFound")
PAYLOAD_TYPE = "application/zip"


class S3Depot(Depot):
    """Payloads in a bucket of an S3-compatible object store."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        spool_dir: Path,
        *,
        endpoint_url: str = "",
        region: str = "",
        reserve_bytes: int = 0,
        max_bytes: int = 0,
        disk_free: DiskUsage = free_bytes,
    ) -> None:
        super().__init__(spool_dir, reserve_bytes, disk_free)
        self.bucket = bucket
        self.prefix = prefix
        self.max_bytes = max_bytes
        # A server of one's own (MinIO, moto…) is addressed by path; AWS by the bucket's host name.
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            retries={"mode": "standard"},
        )
        self._client: S3Client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config
        )
        self._transfer = TransferConfig(multipart_chunksize=8 * CHUNK, io_chunksize=CHUNK)

    def key(self, sha256: str) -> str:
        """The object key of the payload `sha256`."""
        digest = checked_digest(sha256)
        return f"{self.prefix}{digest[:2]}/{digest}"

    def exists(self, sha256: str) -> bool:
        return self._head(sha256) is not None

    def size(self, sha256: str) -> int:
        head = self._head(sha256)
        if head is None:
            raise DepotError(f"payload {sha256} is missing from the depot")
        return int(head["ContentLength"])

    def iter_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        key = self.key(sha256)
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start or end is not None:
            arguments["Range"] = f"bytes={start}-{'' if end is None else end}"
        with _store_errors(f"payload {sha256}"):
            body = self._client.get_object(**arguments)["Body"]
        try:
            with _store_errors(f"payload {sha256}"):
                yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def delete(self, sha256: str) -> None:
        with _store_errors(f"payload {sha256}"):
            self._client.delete_object(Bucket=self.bucket, Key=self.key(sha256))

    def signed_url(self, sha256: str, ttl_seconds: int, filename: str) -> str | None:
        params = {
            "Bucket": self.bucket,
            "Key": self.key(sha256),
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
        }
        with _store_errors(f"payload {sha256}"):
            return self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl_seconds)

    def free(self) -> int:
        """The spool's free bytes beyond the reserve, and what the quota (`max_bytes`) leaves."""
        spool = self._spool_free()
        if not self.max_bytes:
            return spool
        return min(spool, max(self.max_bytes - self.used_bytes(), 0))

    def used_bytes(self) -> int:
        """The bytes of every object under the prefix (a listing: for quotas and reports, not per request)."""
        total = 0
        with _store_errors("listing the depot"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                total += sum(int(item.get("Size", 0)) for item in page.get("Contents", []))
        return total

    def _keep(self, spooled: _Spooled) -> None:
        head = self._head(spooled.sha256)
        if head is not None and int(head["ContentLength"]) == spooled.size:
            return  # the same bytes are there already
        if self.max_bytes:
            left = max(self.max_bytes - self.used_bytes(), 0)
            if spooled.size > left:
                raise DepotFull(f"depot out of space (needed {spooled.size} bytes, free {left} bytes)")
        with _store_errors(f"payload {spooled.sha256}"):
            self._client.upload_file(
                str(spooled.path),
                self.bucket,
                self.key(spooled.sha256),
                ExtraArgs={"ContentType": PAYLOAD_TYPE, "Metadata": {"sha256": spooled.sha256}},
                Config=self._transfer,
            )

    def _head(self, sha256: str) -> dict[str, Any] | None:
        try:
            return dict(self._client.head_object(Bucket=self.bucket, Key=self.key(sha256)))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in NOT_FOUND:
                return None
            raise _unavailable(f"payload {sha256}", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(f"payload {sha256}", exc) from exc


@contextmanager
def _store_errors(what: str) -> Iterator[None]:
    """The object store's errors as the depot's: a missing key is DepotError, anything else
    DepotUnavailable (the store refused, is unreachable, or the credentials are wrong)."""
    try:
        yield
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) in NOT_FOUND:
            raise DepotError(f"{what} is missing from the depot") from exc
        raise _unavailable(what, exc) from exc
    except (BotoCoreError, Boto3Error) as exc:  # S3UploadFailedError wraps a refused part or PutObject
        raise _unavailable(what, exc) from exc


def _unavailable(what: str, error: Exception) -> DepotUnavailable:
    return DepotUnavailable(f"object store: {what}: {error}")
