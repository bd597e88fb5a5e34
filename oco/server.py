"""The ASGI application: agent API, admin API, web console and housekeeping, over one runtime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from oco.api import agent as agent_api
from oco.api.admin import create_api
from oco.config import load_settings
from oco.services import housekeeping
from oco.services.runtime import Runtime
from oco.web.app import install_console

log = logging.getLogger("oco.server")


def create_app(runtime: Runtime | None = None, *, run_housekeeping: bool = True) -> FastAPI:
    """Build the application; without a runtime, one is made from the environment's settings."""
    rt = runtime or Runtime.from_settings(load_settings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.create_task(_housekeeping_loop(rt)) if run_housekeeping else None
        yield
        if loop is not None:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        rt.close()

    app = FastAPI(title="OCO Deploy", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.runtime = rt
    app.include_router(agent_api.router)
    app.mount("/api/v1", create_api(rt))
    install_console(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        try:
            with rt.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:
            return JSONResponse({"status": "error", "database": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    return app


async def _housekeeping_loop(runtime: Runtime) -> None:
    """Run the housekeeping tasks every `housekeeping_interval_seconds`, off the event loop."""
    while True:
        try:
            await asyncio.to_thread(housekeeping.run_all, runtime)
        except Exception:
            log.exception("housekeeping round failed")
        await asyncio.sleep(runtime.settings.housekeeping_interval_seconds)
