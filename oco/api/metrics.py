"""`GET /metrics` (the Prometheus text format) and the measuring of agent requests it reports.

Who may read it: the configured `metrics_token`, or an admin API token of any role (docs/scaling.md).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oco.api.auth import allow_or_scrape_token, get_runtime
from oco.domain.roles import Permission
from oco.services import metrics
from oco.services.metrics import AgentOutcome

router = APIRouter()


@router.get("/metrics", include_in_schema=False, dependencies=[allow_or_scrape_token(Permission.VIEW)])
def metrics_page(request: Request) -> Response:
    return Response(metrics.render(get_runtime(request)), media_type=metrics.CONTENT_TYPE)


class Measured:
    """The agent endpoint, each request counted by outcome and timed to its answer's status line.

    It adds two clock reads and a counter per request to the hot path, and reads nothing of the request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        answered = False

        async def measured(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start" and not answered:
                answered = True
                outcome = AgentOutcome.of_status(message["status"])
                metrics.observe_agent_request(outcome, time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, measured)
        finally:
            if not answered:  # failed before answering: the server's error
                metrics.observe_agent_request(AgentOutcome.ERROR, time.perf_counter() - started)
