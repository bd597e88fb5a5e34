"""`oco user …` and `oco token …`: console users and admin API tokens."""

from __future__ import annotations

import getpass

import typer

from oco.cli.common import (
    JSON,
    actor,
    choice,
    fail,
    handled_errors,
    print_json,
    print_table,
    read_password_stdin,
    runtime,
)
from oco.domain.roles import GRANTS, Permission, Role
from oco.services import users
from oco.services.users import UserChanges

user_app = typer.Typer(help="Console users.", no_args_is_help=True)
token_app = typer.Typer(help="Admin API tokens.", no_args_is_help=True)
PASSWORD_STDIN = typer.Option(
    False, "--password-stdin", help="Read the password from standard input (else it is asked for twice)."
)


def _new_password(from_stdin: bool) -> str:
    if from_stdin:
        return read_password_stdin()
    password = getpass.getpass("New password: ")
    if password != getpass.getpass("Repeat it: "):
        fail("the two passwords differ")
    return password


@user_app.command("add")
def user_add(
    name: str,
    password_stdin: bool = PASSWORD_STDIN,
    full_name: str = typer.Option("", help="Shown in the console."),
    role: Role = choice(
        Role, Role.ADMINISTRATOR, "What the user and their API tokens may do (`oco user roles`)."
    ),
) -> None:
    """Create a console user; prints its id."""
    password = _new_password(password_stdin)
    with handled_errors():
        typer.echo(users.add_user(runtime(), name, password, actor(), full_name, role).id)


@user_app.command("role")
def user_role(name: str, role: str = typer.Argument(..., metavar="[" + "|".join(Role.texts()) + "]")) -> None:
    """Give a user another role (never the last active administrator's)."""
    with handled_errors():
        changed = users.change_user(runtime(), name, UserChanges(role=Role.from_text(role)), actor())
    typer.echo(f"{changed.username} is now {changed.role.text}")


@user_app.command("disable")
def user_disable(name: str) -> None:
    """Keep a user from logging in: their console sessions end and their API tokens are revoked."""
    with handled_errors():
        users.change_user(runtime(), name, UserChanges(enabled=False), actor())
    typer.echo(f"disabled {name}: sessions ended, API tokens revoked")


@user_app.command("enable")
def user_enable(name: str) -> None:
    """Let a disabled user log in again (their revoked tokens stay revoked)."""
    with handled_errors():
        users.change_user(runtime(), name, UserChanges(enabled=True), actor())
    typer.echo(f"enabled {name}")


@user_app.command("remove")
def user_remove(name: str) -> None:
    """Remove a user with their sessions and API tokens; the audit log keeps what they did."""
    with handled_errors():
        users.remove_user(runtime(), name, actor())
    typer.echo(f"removed {name}")


@user_app.command("roles")
def user_roles() -> None:
    """What each role may do."""
    width = max(len(p.label) for p in Permission)
    typer.echo("  ".join(["PERMISSION".ljust(width), *(r.text.upper() for r in Role)]))
    for permission in Permission:
        marks = [("yes" if permission in GRANTS[r] else "no").ljust(len(r.text)) for r in Role]
        typer.echo("  ".join([permission.label.ljust(width), *marks]).rstrip())


@user_app.command("passwd")
def user_passwd(name: str, password_stdin: bool = PASSWORD_STDIN) -> None:
    """Set a user's password (asked for, or read from standard input); the user's sessions end."""
    password = _new_password(password_stdin)
    with handled_errors():
        users.set_password(runtime(), name, password, actor())
    typer.echo("password changed")


@user_app.command("list")
def user_list(as_json: bool = JSON) -> None:
    """List console users."""
    with handled_errors():
        rows = users.list_users(runtime())
    if as_json:
        print_json(rows)
    else:
        print_table(rows, ["id", "username", "full_name", "role", "enabled", "last_login"])


@user_app.command("ensure-admin")
def user_ensure_admin() -> None:
    """Create the first admin if there is no user yet, and say how to log in."""
    with handled_errors():
        password = users.ensure_admin(runtime(), actor())
    if password is None:
        typer.echo("Console users exist already; log in with yours (reset with `oco user passwd NAME`).")
        return
    typer.echo(f"Created the first console user: {users.FIRST_ADMIN!r} with password {password!r}")
    typer.echo(f"Change it after logging in with: oco user passwd {users.FIRST_ADMIN}")


@token_app.command("create")
def token_create(
    name: str = typer.Option(..., help="What the token is for."),
    user: str = typer.Option(users.FIRST_ADMIN, help="The user the token acts as."),
) -> None:
    """Create an admin API bearer token and print it (once)."""
    with handled_errors():
        typer.echo(users.create_token(runtime(), user, name, actor()))


@token_app.command("list")
def token_list(as_json: bool = JSON) -> None:
    """List admin API tokens (never their secret)."""
    with handled_errors():
        rows = users.list_tokens(runtime())
    if as_json:
        print_json(rows)
    else:
        print_table(rows, ["id", "name", "user", "created", "last_used", "revoked"])


@token_app.command("revoke")
def token_revoke(token_id: int) -> None:
    """Revoke an admin API token."""
    with handled_errors():
        users.revoke_token(runtime(), token_id, actor())
    typer.echo(f"revoked token {token_id}")
