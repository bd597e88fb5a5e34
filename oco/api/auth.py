"""Authentication of the admin REST API: bearer tokens created with `oco token create`."""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from oco.services import users
from oco.services.errors import Unauthorized
from oco.services.runtime import Runtime

bearer = HTTPBearer(auto_error=False, description="A token from `oco token create`.")


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def api_actor(
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    runtime: Runtime = Depends(get_runtime),
) -> str:
    """The user name a valid bearer token acts as; 401 otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    try:
        with runtime.transaction() as session:
            token = users.resolve_token(session, credentials.credentials)
            return f"api:{token.user.username}"
    except Unauthorized as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
