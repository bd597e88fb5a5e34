"""`oco server`, `oco housekeeping` and `oco db …`: running the server and keeping its database."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import typer

from oco.cli import settings
from oco.cli.common import fail, handled_errors, runtime
from oco.services import housekeeping, registration, schema

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


def server(
    host: str | None = typer.Option(None, help="Listen address (default: settings.host)."),
    port: int | None = typer.Option(None, help="Listen port (default: settings.port)."),
    migrate_first: bool = typer.Option(True, "--migrate/--no-migrate", help="Upgrade the schema first."),
    workers: int = typer.Option(
        1, min=1, help="Server processes sharing the port (PostgreSQL or MariaDB: one per core)."
    ),
    tls_cert: Path | None = typer.Option(
        None, "--tls-cert", help="Serve HTTPS with this PEM certificate (chain) (default: settings)."
    ),
    tls_key: Path | None = typer.Option(
        None, "--tls-key", help="The certificate's PEM private key (default: settings)."
    ),
) -> None:
    """Run the server: agent API, admin API, web console, downloads and housekeeping."""
    from oco.processes import LOG_FORMAT, TlsError, serve, tls_of

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    rt = runtime()
    try:
        tls = tls_of(tls_cert or rt.settings.tls_cert_file, tls_key or rt.settings.tls_key_file)
    except TlsError as exc:
        fail(str(exc))
    if migrate_first:
        with handled_errors():
            schema.upgrade(rt)
    with handled_errors():
        key = registration.adopt_registration_key(rt)
    host, port = host or rt.settings.host, port or rt.settings.port
    url = settings.server_url(host, port, https=tls is not None)
    for line in settings.connect_instructions(rt.settings, url, key):
        typer.echo(line)
    rt.close()
    serve(host, port, workers, tls)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Create or upgrade the database schema."""
    with handled_errors():
        schema.upgrade(runtime(), revision)
        typer.echo(f"database at revision {schema.current_revision(runtime())}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database."""
    with handled_errors():
        typer.echo(schema.current_revision(runtime()) or "(empty database)")


def housekeeping_command(
    once: bool = typer.Option(False, "--once", help="Run every task once and exit (default: keep running)."),
) -> None:
    """Expire jobs, send due WOL packets, remove expired WOL shutdowns, purge old containers.

    The server runs the same tasks itself; this command is for cron or a separate worker.
    """
    rt = runtime()
    if once:  # each task takes its own lock: safe beside running servers
        _print_round(housekeeping.run_all(rt))
        return
    leadership = housekeeping.Leadership(rt)  # kept running, it takes turns with the servers: one leads
    try:
        while True:
            results = housekeeping.run_led_round(rt, leadership)
            if results is not None:
                _print_round(results)
            time.sleep(rt.settings.housekeeping_interval_seconds)
    finally:
        leadership.release()


def _print_round(results: dict[str, int | None]) -> None:
    for name, changed in results.items():
        typer.echo(f"{name}: {'skipped (locked)' if changed is None else changed}")
