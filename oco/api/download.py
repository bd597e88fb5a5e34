"""Payload responses: whole or one byte range (206), streamed from the depot with its SHA-256, or a
redirect (302) to a short-lived signed URL of an object-store depot, when the settings say so
(`depot_redirect`, domain/depots.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool

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


def payload_response(
    depot: Depot,
    payload: DownloadGrant,
    range_header: str | None,
    redirect_ttl: int | None = None,
) -> Response:
    """Stream a payload, honouring one `Range`, with the digest in an ETag and `x-oco-payload-sha256`.

    With `redirect_ttl`, a depot that can sign URLs is asked for one valid that many seconds instead, and
    the answer is a 302 to it (a 302, not a 307: an OCO agent then sends no request body to the store).
    """
    filename = f"{payload.package_id}.zip"
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{payload.sha256}"',
        SHA256_HEADER: payload.sha256,
        "Content-Disposition": f'attachment; filename="{filename}"',
    }
    if redirect_ttl is not None:
        url = depot.signed_url(payload.sha256, redirect_ttl, filename)
        if url is not None:
            headers["Cache-Control"] = "no-store"
            return RedirectResponse(url, status_code=302, headers=headers)
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


async def _counted(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The chunks of a download, read in the thread pool and counted in `oco_downloads_in_flight` while
    they are sent. Asynchronous itself, so an agent that goes away ends the count and closes the payload
    at once (a plain generator wrapped by Starlette was closed only when the garbage collector found it)."""
    try:
        with metrics.download_in_flight():
            async for chunk in iterate_in_threadpool(chunks):
                yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
