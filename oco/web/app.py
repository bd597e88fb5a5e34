"""The console: login/logout, error pages, and the assembly of its pages into the server."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from oco.services import users
from oco.services.errors import Unauthorized
from oco.web import groups, inventory, jobs
from oco.web.render import render
from oco.web.session import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    CsrfFailed,
    LoginRequired,
    checked_form,
    login_redirect,
    new_login_csrf,
    runtime_of,
    safe_next,
    viewer,
)

router = APIRouter(include_in_schema=False)


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/jobs", status_code=303)


@router.get("/login")
def login_page(request: Request, next: str = "/jobs") -> HTMLResponse:
    token = new_login_csrf()
    response = render(request, "login.html", None, next=safe_next(next), login_csrf=token, error="")
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.post("/login")
def login(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    login_csrf: str = Form(""),
    next: str = Form("/jobs"),
) -> Response:
    runtime = runtime_of(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or cookie != login_csrf:
        raise CsrfFailed
    try:
        with runtime.transaction() as session:
            user = users.authenticate(session, username, password)
            token, _row = users.start_session(session, user, runtime.settings.session_max_age_seconds)
    except Unauthorized as exc:
        fresh = new_login_csrf()
        response = render(
            request,
            "login.html",
            None,
            401,
            next=safe_next(next),
            login_csrf=fresh,
            error=str(exc),
            username=username,
        )
        _set_cookie(request, response, LOGIN_CSRF_COOKIE, fresh, max_age=3600)
        return response
    response = RedirectResponse(safe_next(next), status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, token, max_age=runtime.settings.session_max_age_seconds)
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    current = viewer(request)
    await checked_form(request, current)
    token = request.cookies.get(SESSION_COOKIE, "")
    with runtime_of(request).transaction() as session:
        users.end_session(session, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def install_console(app: FastAPI) -> None:
    """Add the console's pages, static files and error handling to the server application."""
    app.include_router(router)
    app.include_router(jobs.router)
    app.include_router(inventory.router)
    app.include_router(groups.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")

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
