"""`/me` and `/users`: who a token acts as, and console users (administrators only)."""

from __future__ import annotations

from fastapi import APIRouter

from oco.api.admin.schemas import Actor, Caller, Id, NewPassword, NewUser, RuntimeDep, UserEdit
from oco.api.auth import allow
from oco.domain.roles import Permission
from oco.services import users
from oco.services.views import CallerPublic, UserPublic, caller_view

router = APIRouter(dependencies=[allow(Permission.VIEW)], tags=["users"])
MANAGE = [allow(Permission.MANAGE_USERS)]


@router.get("/me")
def me(caller: Caller) -> CallerPublic:
    """The user this token acts as, their role and what it allows."""
    return caller_view(caller.username, caller.role)


@router.get("/users", dependencies=MANAGE)
def list_users(runtime: RuntimeDep) -> list[UserPublic]:
    """Every console user, by name."""
    return users.list_users(runtime)


@router.post("/users", status_code=201, dependencies=MANAGE)
def add_user(runtime: RuntimeDep, actor: Actor, body: NewUser) -> UserPublic:
    """Create a console user with a role."""
    return users.add_user(runtime, body.username, body.password, actor, body.full_name, body.role)


@router.get("/users/{user_id}", dependencies=MANAGE)
def show_user(runtime: RuntimeDep, user_id: Id) -> UserPublic:
    """One console user."""
    return users.show_user(runtime, user_id)


@router.patch("/users/{user_id}", dependencies=MANAGE)
def change_user(runtime: RuntimeDep, actor: Actor, user_id: Id, body: UserEdit) -> UserPublic:
    """Change a user's full name, role or whether they may log in (409 for the last active administrator;
    403 for one's own role or account)."""
    return users.change_user(runtime, user_id, body.changes(), actor)


@router.put("/users/{user_id}/password", status_code=204, dependencies=MANAGE)
def set_password(runtime: RuntimeDep, actor: Actor, user_id: Id, body: NewPassword) -> None:
    """Set a user's password; their console sessions end."""
    users.set_password(runtime, user_id, body.password, actor)


@router.delete("/users/{user_id}", status_code=204, dependencies=MANAGE)
def remove_user(runtime: RuntimeDep, actor: Actor, user_id: Id) -> None:
    """Remove a user with their sessions and API tokens (the audit log keeps what they did)."""
    users.remove_user(runtime, user_id, actor)
