"""Payload responses: whole or one byte range (206), streamed from the depot with its SHA-256."""

from __future__ import annotations

import re
from collections.abc import Iterator

from fastapi.responses import Response, StreamingResponse

from oco.depot import Depot
from oco.domain.protocol import SHA256_HEADER
from oco.services import metrics
from oco.services.agent_jobs import DownloadGrant

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (start, end) of a single `Range: bytes=…` header; None means the whole file.

    Raises ValueError for a range that cannot be satisfied. Several ranges are answered whole.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        length = int(last)
        if length == 0:
            raise ValueError("empty suffix range")
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise ValueError(f"range {header!r} outside a payload of {size} bytes")
    return start, end


def payload_response(depot: Depot, payload: DownloadGrant, range_header: str | None) -> Response:
    """Stream a payload, honouring one `Range`, with the digest in an ETag and `x-oco-payload-sha256`."""
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{payload.sha256}"',
        SHA256_HEADER: payload.sha256,
        "Content-Disposition": f'attachment; filename="{payload.package_id}.zip"',
    }
    try:
        selected = byte_range(range_header, payload.size)
    except ValueError:
        headers["Content-Range"] = f"bytes */{payload.size}"
        return Response(status_code=416, headers=headers)
    if selected is None:
        headers["Content-Length"] = str(payload.size)
        return StreamingResponse(
            _counted(depot.iter_range(payload.sha256)), media_type="application/octet-stream", headers=headers
        )
    start, end = selected
    headers["Content-Length"] = str(end - start + 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{payload.size}"
    return StreamingResponse(
        _counted(depot.iter_range(payload.sha256, start, end)),
        status_code=206,
        media_type="application/octet-stream",
        headers=headers,
    )


def _counted(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The chunks of a download, counted in `oco_downloads_in_flight` while they are sent."""
    with metrics.download_in_flight():
        yield from chunks
