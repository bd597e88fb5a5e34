"""`oco user …` and `oco token …`: console users and admin API tokens."""

from __future__ import annotations

import getpass

import typer

from oco.cli.common import (
    JSON,
    actor,
    fail,
    handled_errors,
    print_json,
    print_table,
    read_password_stdin,
    runtime,
)
from oco.services import users

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
) -> None:
    """Create a console user; prints its id."""
    password = _new_password(password_stdin)
    with handled_errors():
        typer.echo(users.add_user(runtime(), name, password, actor(), full_name).id)


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
        print_table(rows, ["id", "username", "enabled", "last_login"])


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
