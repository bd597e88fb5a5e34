"""What every admin command shares: the runtime, the actor, error handling and output."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from sqlalchemy.exc import IntegrityError, OperationalError

from oco.config import ConfigError, load_settings
from oco.depot import DepotError
from oco.domain.errors import DomainError
from oco.services.errors import ServiceError
from oco.services.runtime import Runtime

USAGE_ERROR = 2


class State:
    """Per-invocation state set by the root callback."""

    config: Path | None = None
    runtime: Runtime | None = None


def runtime() -> Runtime:
    """The process runtime, built on first use from `--config` and the environment."""
    if State.runtime is None:
        with handled_errors():
            State.runtime = Runtime.from_settings(load_settings(State.config))
    return State.runtime


def actor() -> str:
    """Who is acting, for the audit log: the operating-system user of the terminal."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(USAGE_ERROR)


@contextmanager
def handled_errors() -> Iterator[None]:
    """Turn refused input into one line on stderr and exit status 2; nothing half-written stays."""
    try:
        yield
    except (ServiceError, DomainError, ConfigError, DepotError) as exc:
        fail(str(exc))
    except IntegrityError as exc:
        fail(f"the database refused the change: {exc.orig}")
    except OperationalError as exc:
        fail(f"database error: {exc.orig} (is the database migrated? run `oco db upgrade`)")


@contextmanager
def use_case() -> Iterator[Any]:
    """One transaction with error handling: `with use_case() as session: …`."""
    with handled_errors(), runtime().transaction() as session:
        yield session


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain aligned table, for people; `--json` is the format for scripts."""
    if not rows:
        typer.echo("(none)")
        return
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    typer.echo("  ".join(column.upper().ljust(widths[i]) for i, column in enumerate(columns)).rstrip())
    for line in cells:
        typer.echo("  ".join(value.ljust(widths[i]) for i, value in enumerate(line)).rstrip())


def print_fields(data: dict[str, Any]) -> None:
    width = max(len(key) for key in data)
    for key, value in data.items():
        if isinstance(value, list | dict):
            continue
        typer.echo(f"{key.ljust(width)}  {_cell(value)}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def read_password_stdin() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        fail("no password on standard input")
    return password
