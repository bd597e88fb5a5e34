"""Authentication of the admin REST API: bearer tokens created with `oco token create`."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from oco.errors import Unauthorized
from oco.services import users
from oco.services.runtime import Runtime

bearer = HTTPBearer(auto_error=False, description="A token from `oco token create`.")


def get_runtime(request: Request) -> Runtime:
    """The runtime the application was built with."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def api_actor(
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    runtime: Runtime = Depends(get_runtime),
) -> str:
    """Who a valid bearer token acts as ("api:<user>"); Unauthorized (401) otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token")
    return users.token_actor(runtime, credentials.credentials)
