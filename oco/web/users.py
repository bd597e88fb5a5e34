"""The console's users: one's own account (password change), and the users an administrator manages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from oco.domain.roles import GRANTS, Role
from oco.errors import InvalidInput, OcoError
from oco.services import users
from oco.services.users import UserChanges
from oco.web import flash
from oco.web.render import ConsoleId, error_page, render, status_of, text
from oco.web.session import SESSION_COOKIE, ManagingUsers, OwnAccount, Posted, Viewer, runtime_of

router = APIRouter(include_in_schema=False)


@router.get("/account")
def account(request: Request, current: OwnAccount) -> HTMLResponse:
    """The viewer's account: their role, what it allows, and the password change form."""
    return _account(request, current)


@router.post("/account/password")
def change_own_password(request: Request, current: OwnAccount, posted: Posted) -> Response:
    """Change one's own password, the current one given; other sessions of the user end."""
    new_password = text(posted, "new_password")
    try:
        if new_password != text(posted, "repeat_password"):
            raise InvalidInput("the two new passwords differ", field="repeat_password")
        users.change_own_password(
            runtime_of(request),
            current.user_id,
            text(posted, "old_password"),
            new_password,
            request.cookies.get(SESSION_COOKIE, ""),
            current.actor,
        )
    except OcoError as exc:
        return _account(request, current, exc)
    return flash.redirect(request, current, "/account", "Password changed; your other sessions ended.")


def _account(request: Request, current: Viewer, error: OcoError | None = None) -> HTMLResponse:
    return render(
        request,
        "account.html",
        current,
        status_of(error),
        grants=GRANTS,
        error=error.message if error else "",
        error_field=error.field if error else None,
    )


@router.get("/users")
def user_list(request: Request, current: ManagingUsers) -> HTMLResponse:
    """Every console user with their role, the form to add one, and what each role may do."""
    return _user_list(request, current)


@router.post("/users")
def user_add(request: Request, current: ManagingUsers, posted: Posted) -> Response:
    """Add a console user; the list again with the error if refused."""
    values = {name: text(posted, name) for name in ("username", "full_name", "role")}
    try:
        role = Role.from_text(values["role"], field="role")
        if text(posted, "password") != text(posted, "repeat_password"):
            raise InvalidInput("the two passwords differ", field="repeat_password")
        user = users.add_user(
            runtime_of(request),
            values["username"],
            text(posted, "password"),
            current.actor,
            values["full_name"],
            role,
        )
    except OcoError as exc:
        return _user_list(request, current, exc, values)
    return flash.redirect(request, current, "/users", f"Added user {user.username}.")


def _user_list(
    request: Request, current: Viewer, error: OcoError | None = None, values: dict[str, str] | None = None
) -> HTMLResponse:
    return render(
        request,
        "users.html",
        current,
        status_of(error),
        users=users.list_users(runtime_of(request)),
        grants=GRANTS,
        values=values or {"role": Role.READ_ONLY.text},
        error=error.message if error else "",
        error_field=error.field if error else None,
    )


@router.get("/users/{user_id}")
def user_page(request: Request, current: ManagingUsers, user_id: ConsoleId) -> HTMLResponse:
    """One user: name, role, enabled, password reset, removal."""
    return _user_page(request, current, user_id)


def _user_page(
    request: Request, current: Viewer, user_id: int, error: OcoError | None = None
) -> HTMLResponse:
    return render(
        request,
        "user.html",
        current,
        status_of(error),
        user=users.show_user(runtime_of(request), user_id),
        error=error.message if error else "",
        error_field=error.field if error else None,
    )


@router.post("/users/{user_id}")
def user_change(request: Request, current: ManagingUsers, user_id: ConsoleId, posted: Posted) -> Response:
    """Change a user's full name and role."""
    try:
        changes = UserChanges(
            full_name=text(posted, "full_name"), role=Role.from_text(text(posted, "role"), field="role")
        )
        user = users.change_user(runtime_of(request), user_id, changes, current.actor)
    except OcoError as exc:
        return _user_page(request, current, user_id, exc)
    return flash.redirect(request, current, f"/users/{user.id}", "Saved.")


@router.post("/users/{user_id}/enabled")
def user_enabled(request: Request, current: ManagingUsers, user_id: ConsoleId, posted: Posted) -> Response:
    """Enable or disable a user; disabling ends their sessions and revokes their API tokens."""
    enabled = text(posted, "enabled") == "1"
    try:
        user = users.change_user(runtime_of(request), user_id, UserChanges(enabled=enabled), current.actor)
    except OcoError as exc:
        return _user_page(request, current, user_id, exc)
    notice = "Enabled." if user.enabled else "Disabled: sessions ended, API tokens revoked."
    return flash.redirect(request, current, f"/users/{user.id}", notice)


@router.post("/users/{user_id}/password")
def user_password(request: Request, current: ManagingUsers, user_id: ConsoleId, posted: Posted) -> Response:
    """Set a user's password; their sessions end."""
    try:
        if text(posted, "password") != text(posted, "repeat_password"):
            raise InvalidInput("the two passwords differ", field="repeat_password")
        users.set_password(runtime_of(request), user_id, text(posted, "password"), current.actor)
    except OcoError as exc:
        return _user_page(request, current, user_id, exc)
    return flash.redirect(request, current, f"/users/{user_id}", "Password set; their sessions ended.")


@router.post("/users/{user_id}/delete")
def user_remove(request: Request, current: ManagingUsers, user_id: ConsoleId, posted: Posted) -> Response:
    """Remove a user with their sessions and tokens."""
    try:
        users.remove_user(runtime_of(request), user_id, current.actor)
    except OcoError as exc:
        return error_page(request, current, exc, back=f"/users/{user_id}")
    return flash.redirect(request, current, "/users", "User removed with their sessions and tokens.")
