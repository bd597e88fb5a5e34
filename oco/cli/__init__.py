"""The `oco` command: server, agent and the admin use cases from a terminal."""

from __future__ import annotations

import secrets
from pathlib import Path

import typer

from oco.agent.cli import agent_app
from oco.cli import computers as computer_commands
from oco.cli import deploy as deploy_commands
from oco.cli import packages as package_commands
from oco.cli.common import (
    State,
    actor,
    fail,
    handled_errors,
    print_json,
    print_table,
    read_password_stdin,
    runtime,
    use_case,
)
from oco.db import migrate
from oco.services import users
from oco.services.views import iso

app = typer.Typer(
    help="OCO Deploy: software deployment server, agent and admin commands.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
user_app = typer.Typer(help="Console users.", no_args_is_help=True)
token_app = typer.Typer(help="Admin API tokens.", no_args_is_help=True)

app.add_typer(package_commands.app, name="package")
app.add_typer(computer_commands.app, name="computer")
app.add_typer(computer_commands.group_app, name="group")
app.add_typer(computer_commands.assignment_app, name="assignment")
app.add_typer(deploy_commands.container_app, name="container")
app.command("deploy")(deploy_commands.deploy)
app.command("uninstall")(deploy_commands.uninstall)
app.command("housekeeping")(deploy_commands.housekeeping_command)
app.add_typer(agent_app, name="agent")
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")

FIRST_ADMIN = "admin"


@app.callback()
def main(
    config: Path | None = typer.Option(
        None, "--config", help="TOML settings file (see docs/configuration.md)."
    ),
) -> None:
    State.config = config
    State.runtime = None


@app.command()
def server(
    host: str | None = typer.Option(None, help="Listen address (default: settings.host)."),
    port: int | None = typer.Option(None, help="Listen port (default: settings.port)."),
    migrate_first: bool = typer.Option(True, "--migrate/--no-migrate", help="Upgrade the schema first."),
    workers: int = typer.Option(
        1, min=1, help="Server processes sharing the port (PostgreSQL or MariaDB: one per core)."
    ),
) -> None:
    """Run the server: agent API, admin API, web console, downloads and housekeeping."""
    import logging

    from oco.serve import LOG_FORMAT, serve

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    rt = runtime()
    if not rt.settings.agent_registration_key:
        logging.getLogger("oco.server").warning(
            "no agent registration key is set: agents cannot register (set OCO_AGENT_REGISTRATION_KEY)"
        )
    if migrate_first:
        with handled_errors():
            migrate.upgrade(rt.engine)
    rt.close()
    serve(host or rt.settings.host, port or rt.settings.port, workers)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Create or upgrade the database schema."""
    with handled_errors():
        migrate.upgrade(runtime().engine, revision)
    typer.echo(f"database at revision {migrate.current_revision(runtime().engine)}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database."""
    with handled_errors():
        typer.echo(migrate.current_revision(runtime().engine) or "(empty database)")


@user_app.command("add")
def user_add(
    name: str,
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    full_name: str = typer.Option("", help="Shown in the console."),
) -> None:
    """Create a console user; prints its id."""
    if not password_stdin:
        fail("give the password on standard input with --password-stdin")
    password = read_password_stdin()
    with use_case() as session:
        typer.echo(users.add_user(session, name, password, actor(), full_name).id)


@user_app.command("passwd")
def user_passwd(name: str) -> None:
    """Set a user's password, read from standard input."""
    password = read_password_stdin()
    with use_case() as session:
        users.set_password(session, users.find_user(session, name), password, actor())
    typer.echo("password changed")


@user_app.command("list")
def user_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List console users."""
    with use_case() as session:
        rows = [
            {
                "id": u.id,
                "username": u.username,
                "full_name": u.full_name,
                "enabled": u.enabled,
                "last_login": iso(u.last_login),
            }
            for u in users.list_users(session)
        ]
    if as_json:
        print_json(rows)
    else:
        print_table(rows, ["id", "username", "enabled", "last_login"])


@user_app.command("ensure-admin")
def user_ensure_admin() -> None:
    """Create the first admin if there is no user yet, and say how to log in."""
    with use_case() as session:
        if users.count_users(session):
            typer.echo("Console users exist already; log in with yours (reset with `oco user passwd NAME`).")
            return
        password = secrets.token_urlsafe(12)
        users.add_user(session, FIRST_ADMIN, password, actor(), "Administrator")
    typer.echo(f"Created the first console user: {FIRST_ADMIN!r} with password {password!r}")
    typer.echo("Change it after logging in with: oco user passwd admin --password-stdin")


@token_app.command("create")
def token_create(
    name: str = typer.Option(..., help="What the token is for."),
    user: str = typer.Option(FIRST_ADMIN, help="The user the token acts as."),
) -> None:
    """Create an admin API bearer token and print it (once)."""
    with use_case() as session:
        token, _row = users.create_token(session, users.find_user(session, user), name, actor())
    typer.echo(token)


@token_app.command("list")
def token_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List admin API tokens (never their secret)."""
    with use_case() as session:
        rows = [
            {
                "id": t.id,
                "name": t.name,
                "user": t.user.username,
                "created": iso(t.created),
                "last_used": iso(t.last_used),
                "revoked": iso(t.revoked),
            }
            for t in users.list_tokens(session)
        ]
    if as_json:
        print_json(rows)
    else:
        print_table(rows, ["id", "name", "user", "created", "last_used", "revoked"])


@token_app.command("revoke")
def token_revoke(token_id: int) -> None:
    with use_case() as session:
        users.revoke_token(session, token_id, actor())
    typer.echo(f"revoked token {token_id}")
