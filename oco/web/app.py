"""The console: login/logout, error pages, and the assembly of its pages into the server."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.routing import Match

from oco.errors import InvalidInput, NotFound, OcoError, TooManyAttempts, Unauthorized
from oco.services import dashboard, users
from oco.web import audit, groups, inventory, jobs
from oco.web import users as user_pages
from oco.web.charts import outcome_chart
from oco.web.headers import SecurityHeaders
from oco.web.live import Parts, event_stream
from oco.web.render import error_page, render, render_parts, status_of, way_back
from oco.web.session import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    CsrfFailed,
    LoginRequired,
    Posted,
    Viewing,
    client_of,
    login_redirect,
    new_login_csrf,
    optional_viewer,
    runtime_of,
    safe_next,
    set_cookie,
)

router = APIRouter(include_in_schema=False)
log = logging.getLogger("oco.console")
LOGGED_NAME = 64
"""How much of a refused user name a log line shows."""
NOT_FOUND = 404
METHOD_NOT_ALLOWED = 405
PATH_PARAMETER = "path"


@router.get("/")
def home(request: Request, current: Viewing) -> HTMLResponse:
    """The dashboard: fleet health, running deployments, the latest failures, 30 days of outcomes."""
    overview = dashboard.overview(runtime_of(request))
    return render(request, "dashboard.html", current, d=overview, outcome_chart=outcome_chart)


@router.get("/events/dashboard")
def dashboard_events(request: Request, current: Viewing) -> Response:
    """The dashboard's parts as Server-Sent Events, each when it changed."""
    runtime = runtime_of(request)

    def read() -> Parts:
        overview = dashboard.overview(runtime)
        return render_parts(
            request, "_dashboard.html", DASHBOARD_PARTS, d=overview, outcome_chart=outcome_chart
        )

    return event_stream(request, read)


DASHBOARD_PARTS = ("fleet", "history", "running", "failures")


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    """Browsers ask for /favicon.ico whatever the page links: the console's icon."""
    return RedirectResponse("/static/favicon.svg", status_code=301)


@router.get("/login")
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    """The login form, with a fresh double-submit token."""
    return _login_form(request, safe_next(next))


@router.post("/login")
def login(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    login_csrf: str = Form(""),
    next: str = Form("/"),
) -> Response:
    """Start a session and go where the user was headed; the form again on failure."""
    runtime = runtime_of(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or cookie != login_csrf:
        raise CsrfFailed
    address = client_of(request)
    try:
        token = users.log_in(runtime, username, password, address)
    except (Unauthorized, TooManyAttempts) as exc:
        # One line per refusal, for fail2ban (docs/security.md); the name is quoted, so it cannot forge one.
        log.warning(
            "oco-console login failure from %s: %s (user %r)", address, exc.message, username[:LOGGED_NAME]
        )
        form = _login_form(request, safe_next(next), error=exc, username=username)
        if isinstance(exc, TooManyAttempts):
            form.headers["retry-after"] = str(exc.retry_after)
        return form
    response = RedirectResponse(safe_next(next), status_code=303)
    set_cookie(request, response, SESSION_COOKIE, token, max_age=runtime.settings.session_max_age_seconds)
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, posted: Posted) -> Response:
    """End the session."""
    users.log_out(runtime_of(request), request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def _login_form(
    request: Request, next_path: str, error: OcoError | None = None, username: str = ""
) -> HTMLResponse:
    token = new_login_csrf()
    message = error.message if error else ""
    response = render(
        request,
        "login.html",
        None,
        status_of(error),
        next=next_path,
        login_csrf=token,
        error=message,
        username=username,
    )
    set_cookie(request, response, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


def install_console(app: FastAPI) -> None:
    """Add the console's pages, static files and error pages to the server application."""
    app.include_router(router)
    app.include_router(jobs.router)
    app.include_router(inventory.router)
    app.include_router(groups.router)
    app.include_router(audit.router)
    app.include_router(user_pages.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(LoginRequired)
    def _login_required(request: Request, _exc: LoginRequired) -> Response:
        return login_redirect(request)

    @app.exception_handler(CsrfFailed)
    def _csrf_failed(request: Request, _exc: CsrfFailed) -> Response:
        return render(
            request,
            "error.html",
            None,
            403,
            title="Form expired",
            message="The form was not accepted (missing or outdated security token). "
            "Reload the page and retry.",
        )

    @app.exception_handler(OcoError)
    def _refused(request: Request, exc: OcoError) -> Response:
        return error_page(request, optional_viewer(request), exc)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # A path that names no object (`/jobs/abc`, an id out of range) is a page that does not exist.
        errors = exc.errors()
        if any(error.get("loc", ("",))[0] == PATH_PARAMETER for error in errors):
            return error_page(
                request, optional_viewer(request), NotFound(f"{request.url.path} does not exist")
            )
        message = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in errors)
        return error_page(request, optional_viewer(request), InvalidInput(message))

    @app.exception_handler(HTTPException)
    def _http(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == METHOD_NOT_ALLOWED and request.method == "GET" and not _is_api(request):
            # An action's address (`/jobs/1/renew`) typed or reloaded: the page the action belongs to.
            page = _page_of(app, request.url.path)
            if page is not None:
                return RedirectResponse(page, status_code=303)
        if exc.status_code == NOT_FOUND:
            return error_page(
                request, optional_viewer(request), NotFound(f"{request.url.path} does not exist")
            )
        return render(
            request,
            "error.html",
            optional_viewer(request),
            exc.status_code,
            title=str(exc.detail),
            message=f"{request.method} {request.url.path}: {exc.detail}",
            back=way_back(request),
        )


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api")


def _page_of(app: FastAPI, path: str) -> str | None:
    """The nearest console page above `path` that answers GET (`/jobs/1` for `/jobs/1/jobs/5/delete`)."""
    parts = path.rstrip("/").split("/")
    while len(parts) > 1:
        parts.pop()
        candidate = "/".join(parts) or "/"
        scope = {"type": "http", "path": candidate, "method": "GET"}
        if any(route.matches(scope)[0] is Match.FULL for route in app.router.routes):
            return candidate
    return None
