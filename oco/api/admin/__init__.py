"""The admin REST API at `/api/v1` (OpenAPI at `/api/v1/openapi.json`), over the same use cases as the
console and the CLI. Every request needs a bearer token from `oco token create`; it acts with the role
of its user, and every route declares the permission it needs (`oco.api.auth.allow`).

Each route parses its input (`schemas`), calls one use case and answers with its read model
(`oco.services.views`), which is also the route's declared response model. Refusals are `OcoError`s,
answered by the status of `oco.errors.OUTCOMES` with `{"detail": message, "field": field}`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from oco.api.admin import computers, deployments, groups, packages, users
from oco.api.admin.schemas import ERROR_RESPONSES
from oco.errors import NotFound, OcoError, Unauthorized, outcome
from oco.services.runtime import Runtime

TITLE = "OCO Deploy admin API"


def create_api(runtime: Runtime) -> FastAPI:
    """The `/api/v1` application, mounted by the server."""
    api = FastAPI(
        title=TITLE,
        version="1",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        responses=ERROR_RESPONSES,
    )
    api.state.runtime = runtime
    for module in (packages, computers, groups, deployments, users):
        api.include_router(module.router)
    api.add_exception_handler(OcoError, _refused)
    api.add_exception_handler(RequestValidationError, _invalid)
    api.openapi = lambda: _referenced_only(FastAPI.openapi(api))  # type: ignore[method-assign]  # FastAPI's hook
    return api


def _referenced_only(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec without component schemas nothing refers to.

    FastAPI lists the enumerations of the read models on their own, by their integer values, although
    their fields are written as text (`oco.services.views.AsText`): such entries only mislead.
    """
    schemas = spec.get("components", {}).get("schemas", {})
    referenced: set[str] = set()
    pending = [json.dumps(spec.get("paths", {}))]
    while pending:
        for name in re.findall(r'"#/components/schemas/([^"]+)"', pending.pop()):
            if name not in referenced and name in schemas:
                referenced.add(name)
                pending.append(json.dumps(schemas[name]))
    for name in set(schemas) - referenced:
        del schemas[name]
    return spec


def _refused(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OcoError)
    status = outcome(exc).status
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return JSONResponse({"detail": exc.message, "field": exc.field}, status_code=status, headers=headers)


async def _invalid(request: Request, exc: Exception) -> Response:
    """A path that names no object (an id out of range, `abc`) does not exist: 404. Other bad input: 422."""
    assert isinstance(exc, RequestValidationError)
    if any(error.get("loc", ("",))[0] == "path" for error in exc.errors()):
        return _refused(request, NotFound(f"{request.url.path} does not exist"))
    return await request_validation_exception_handler(request, exc)
