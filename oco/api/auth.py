"""Authentication and permissions of the admin REST API: bearer tokens created with `oco token create`.

A token acts as its user, with the role that user has when the token is used. Every route declares the
permission it needs (`allow`), checked against `oco.domain.roles` before anything else of the request
is read: a token whose role lacks it is answered 403 with a message saying what the role may not do.
"""

from __future__ import annotations

import hmac

from fastapi import Depends, Request, params
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from oco.domain.roles import Permission, require
from oco.errors import Unauthorized
from oco.services import users
from oco.services.runtime import Runtime
from oco.services.users import TokenUser

bearer = HTTPBearer(auto_error=False, description="A token from `oco token create`.")


def get_runtime(request: Request) -> Runtime:
    """The runtime the application was built with."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def api_user(
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    runtime: Runtime = Depends(get_runtime),
) -> TokenUser:
    """The user a valid bearer token acts as, with their role; Unauthorized (401) otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token")
    return users.token_user(runtime, credentials.credentials)


def api_actor(user: TokenUser = Depends(api_user)) -> str:
    """Who acts, for the audit log ("api:<user>")."""
    return user.actor


class Requires:
    """A route's permission: refuses (403) a token whose user's role lacks it."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    def __call__(self, user: TokenUser = Depends(api_user)) -> TokenUser:
        require(user.role, self.permission, user.username)
        return user


def allow(permission: Permission) -> params.Depends:
    """The dependency a route (or a router, for its reads) declares for the permission it needs."""
    dependency: params.Depends = Depends(Requires(permission))
    return dependency


class RequiresOrScrapeToken:
    """`/metrics`: the configured `metrics_token` (what Prometheus is given), or an API token whose user's
    role has the permission; 401 for anything else. Nobody reads it without a token: behind a proxy on the
    same host, every request would come from loopback."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    def __call__(
        self,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
        runtime: Runtime = Depends(get_runtime),
    ) -> None:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthorized("missing bearer token")
        configured = runtime.settings.metrics_token
        if configured and hmac.compare_digest(credentials.credentials.encode(), configured.encode()):
            return
        user = users.token_user(runtime, credentials.credentials)
        require(user.role, self.permission, user.username)


def allow_or_scrape_token(permission: Permission) -> params.Depends:
    """The dependency of `/metrics`: the scrape token, or an API token with `permission`."""
    dependency: params.Depends = Depends(RequiresOrScrapeToken(permission))
    return dependency
