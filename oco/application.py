"""The ASGI application of `oco server`: agent API, admin API, web console and the background loops
(housekeeping), over one runtime. The composition root: it alone imports both the API
and the console."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from oco.api import agent as agent_api
from oco.api import metrics as metrics_api
from oco.api.admin import create_api
from oco.config import load_settings
from oco.errors import OcoError
from oco.services import health, housekeeping, registration
from oco.services.runtime import Runtime
from oco.web import apidocs
from oco.web.app import install_console

log = logging.getLogger("oco.server")


class OcoServer(FastAPI):
    """The console and admin API, with the agent endpoint served ahead of them.

    Agents are the bulk of the traffic: their requests skip the framework's middleware and routing.
    """

    def __init__(self, agent: ASGIApp, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.agent_api = agent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in agent_api.PATHS:
            await self.agent_api(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(runtime: Runtime | None = None, *, run_housekeeping: bool = True) -> FastAPI:
    """Build the application; without a runtime, one is made from the environment's settings."""
    rt = runtime or Runtime.from_settings(load_settings())

    agent = agent_api.AgentApi(rt)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if not rt.settings.agent_registration_key:
            try:
                registration.adopt_registration_key(rt)
            except OcoError as exc:  # e.g. a schema not migrated yet: agents cannot register until it is
                logging.getLogger("oco.server").warning("no agent registration key: %s", exc.message)
        loops = [asyncio.create_task(_housekeeping_loop(rt))] if run_housekeeping else []
        yield
        for loop in loops:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        await agent.aclose()
        rt.close()

    app = OcoServer(
        metrics_api.Measured(agent),
        title="OCO Deploy",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.runtime = rt
    admin_api = create_api(rt)
    app.include_router(apidocs.router(admin_api))  # ahead of the mount, which takes all of /api/v1
    app.mount("/api/v1", admin_api)
    app.include_router(metrics_api.router)
    install_console(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        problem = health.database_problem(rt)
        if problem is not None:  # why goes to the log: the driver's text may name hosts and users
            log.warning("health check: the database does not answer: %s", problem)
            return JSONResponse({"status": "error", "database": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    return app


async def _housekeeping_loop(runtime: Runtime) -> None:
    """Run the housekeeping tasks every `housekeeping_interval_seconds`, off the event loop, while this
    process leads housekeeping among the server processes sharing the database."""
    leadership = housekeeping.Leadership(runtime)
    try:
        while True:
            try:
                await asyncio.to_thread(housekeeping.run_led_round, runtime, leadership)
            except Exception:
                log.exception("housekeeping round failed")
            await asyncio.sleep(runtime.settings.housekeeping_interval_seconds)
    finally:
        leadership.release()
