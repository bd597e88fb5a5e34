"""Console sessions and CSRF protection.

The session cookie carries a random token (the database keeps its SHA-256); every form carries the
session's CSRF token, checked on every POST. The login form, which has no session yet, uses a
double-submit cookie instead.

Every page and form declares the permission it needs (`may`), checked against the viewer's role by
`oco.domain.roles` before the request is read any further: a page or a POST the role does not allow is
answered 403, whatever the browser sent. Pages show only what `Viewer.can` allows.

Every handler is a plain function, which FastAPI runs in its thread pool: the use cases it calls wait for
the database and the depot there, never on the event loop that answers the agents' check-ins. Only what
reads the request body is async — the form of a POST (`Posted`, with its CSRF check), the `action` of a
form that does several things — and the session behind them is looked up once, in the pool (`viewer`).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request, params
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from oco.domain.proxies import client_address, client_used_https
from oco.domain.roles import Permission, Role, can, require
from oco.services import users
from oco.services.runtime import Runtime

SESSION_COOKIE = "oco_session"
LOGIN_CSRF_COOKIE = "oco_login_csrf"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True, slots=True)
class Viewer:
    """The logged-in user as pages need it."""

    user_id: int
    username: str
    full_name: str
    role: Role
    csrf_token: str

    @property
    def actor(self) -> str:
        return f"web:{self.username}"

    def can(self, permission: Permission) -> bool:
        """Whether the viewer's role allows `permission` (what a page shows)."""
        return can(self.role, permission)


class LoginRequired(Exception):
    """No valid session: the console answers with a redirect to the login page."""


class CsrfFailed(Exception):
    """A form came without the session's CSRF token."""


def runtime_of(request: Request) -> Runtime:
    """The runtime the application was built with."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def viewer(request: Request) -> Viewer:
    """The current user; raises LoginRequired without a live session. As a FastAPI dependency it runs in
    the thread pool, once a request: a route's permission and its form's CSRF check share it."""
    current = optional_viewer(request)
    if current is None:
        raise LoginRequired
    return current


def optional_viewer(request: Request) -> Viewer | None:
    """The current user, or None without a live session."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    user = users.session_user(runtime_of(request), token)
    if user is None:
        return None
    return Viewer(user.user_id, user.username, user.full_name, user.role, user.csrf_token)


class Requires:
    """A page's or a form's permission: the viewer, if their role allows it; 403 otherwise."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    def __call__(self, current: Annotated[Viewer, Depends(viewer)]) -> Viewer:
        require(current.role, self.permission)
        return current


def may(permission: Permission) -> params.Depends:
    """The dependency of a route that needs `permission`: gives the viewer."""
    dependency: params.Depends = Depends(Requires(permission))
    return dependency


class RequiresForAction:
    """The permission of a form that does one of several things, by its posted `action` (an unknown
    action needs them all, and is then refused by the route as invalid)."""

    def __init__(self, actions: Mapping[str, Permission]) -> None:
        self.actions = dict(actions)

    async def __call__(self, request: Request, current: Annotated[Viewer, Depends(viewer)]) -> Viewer:
        form = await request.form()  # Starlette keeps it: the route reads the same form again
        action = form.get("action")
        needed = self.actions.get(action) if isinstance(action, str) else None
        for permission in [needed] if needed else sorted(set(self.actions.values())):
            require(current.role, permission)
        return current


def may_act(actions: Mapping[str, Permission]) -> params.Depends:
    """The dependency of a form whose `action` field says what it does, with each action's permission."""
    dependency: params.Depends = Depends(RequiresForAction(actions))
    return dependency


Viewing = Annotated[Viewer, may(Permission.VIEW)]
Deploying = Annotated[Viewer, may(Permission.DEPLOY)]
EditingContainers = Annotated[Viewer, may(Permission.EDIT_CONTAINERS)]
AddingPackages = Annotated[Viewer, may(Permission.ADD_PACKAGES)]
DeletingPackages = Annotated[Viewer, may(Permission.DELETE_PACKAGES)]
EditingComputers = Annotated[Viewer, may(Permission.EDIT_COMPUTERS)]
EditingGroups = Annotated[Viewer, may(Permission.EDIT_GROUPS)]
ManagingUsers = Annotated[Viewer, may(Permission.MANAGE_USERS)]
OwnAccount = Annotated[Viewer, may(Permission.CHANGE_OWN_PASSWORD)]


async def checked_form(request: Request, current: Annotated[Viewer, Depends(viewer)]) -> FormData:
    """The posted form, after checking its CSRF token against the session's (the dependency `Posted`)."""
    form = await request.form()
    sent = str(form.get(CSRF_FIELD, ""))
    if not sent or not hmac.compare_digest(sent.encode(), current.csrf_token.encode()):
        raise CsrfFailed
    return form


Posted = Annotated[FormData, Depends(checked_form)]
"""The form of a console POST, its CSRF token checked: every POST handler takes it after its viewer (so a
role that may not post is refused first), even one that reads no field of it."""


def client_of(request: Request) -> str:
    """The client's address: the peer, or what a trusted proxy forwards (`X-Forwarded-For`)."""
    peer = request.client.host if request.client else ""
    trusted = runtime_of(request).settings.trusted_proxies
    return client_address(peer, request.headers.get("x-forwarded-for"), trusted)


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    """A console cookie: HTTP only, same-site lax, Secure when the client spoke HTTPS (`over_https`)."""
    response.set_cookie(
        name, value, max_age=max_age, httponly=True, samesite="lax", secure=over_https(request)
    )


def over_https(request: Request) -> bool:
    """Whether the browser talks HTTPS: to us, or to a trusted proxy that says so (`X-Forwarded-Proto`)."""
    peer = request.client.host if request.client else ""
    trusted = runtime_of(request).settings.trusted_proxies
    return client_used_https(request.url.scheme, peer, request.headers.get("x-forwarded-proto"), trusted)


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def safe_next(target: str | None) -> str:
    """Only same-site paths may follow a login (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target
