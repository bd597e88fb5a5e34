"""Pages that keep themselves up to date through Server-Sent Events: only what changed travels.

A stream reads what its page shows every `INTERVAL_S` (a page of jobs, the dashboard's parts) and sends
an event only for the parts whose content changed since it last sent them. A stream ends after
`STREAM_S`; the browser's EventSource reconnects by itself (`retry`), which also bounds how long a
stopping server waits for its streams.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from oco.errors import OcoError

INTERVAL_S = 2.0
STREAM_S = 30.0
RETRY_MS = 2000

Parts = Mapping[str, object]
"""Event name → what it carries (JSON-serialisable); an unchanged part is not sent again."""


def event_stream(request: Request, read: Callable[[], Parts]) -> StreamingResponse:
    """A `text/event-stream` of the parts `read` returns (called in a thread), each sent when it changed.

    The first read happens here, before the response starts: what does not exist is answered with the
    usual error page (an OcoError), not with a stream. Call it from a thread (a sync endpoint)."""
    first = read()
    return StreamingResponse(
        _events(request, read, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(request: Request, read: Callable[[], Parts], first: Parts) -> AsyncIterator[str]:
    sent: dict[str, str] = {}
    ends = time.monotonic() + STREAM_S
    yield f"retry: {RETRY_MS}\n\n"
    parts: Parts | None = first
    while time.monotonic() < ends and not await request.is_disconnected():
        try:
            parts = parts if parts is not None else await run_in_threadpool(read)
        except OcoError as exc:
            yield _event("gone", json.dumps({"message": exc.message}))
            return
        for name, value in parts.items():
            data = json.dumps(value, separators=(",", ":"), default=str)
            if sent.get(name) != data:
                sent[name] = data
                yield _event(name, data)
        parts = None
        await asyncio.sleep(INTERVAL_S)


def _event(name: str, data: str) -> str:
    event = name.split(":", 1)[0]
    return f"event: {event}\ndata: {data}\n\n"
