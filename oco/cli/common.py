"""What every admin command shares: the runtime, the actor, error handling and output."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel

from oco.config import load_settings
from oco.domain.presence import Presence
from oco.domain.states import Vocabulary
from oco.errors import CLI_EXIT_STATUS, OcoError
from oco.services.runtime import Runtime

JSON = typer.Option(False, "--json", help="Print JSON.")
V = TypeVar("V", bound=Vocabulary)


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
    """Print one line on stderr and exit with status 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(CLI_EXIT_STATUS)


@contextmanager
def handled_errors() -> Iterator[None]:
    """Turn refused input into one line on stderr and exit status 2; nothing half-written stays."""
    try:
        yield
    except OcoError as exc:
        fail(exc.message)


def choice(enumeration: type[V], default: V | None, help: str = "") -> Any:
    """An option taking one of the enumeration's texts (`oco.domain.states`), parsed to the member."""

    def parse(value: V | str) -> V:
        if isinstance(value, enumeration):
            return value
        try:
            return enumeration.from_text(str(value))
        except OcoError as exc:
            raise typer.BadParameter(exc.message) from None

    return typer.Option(
        default.text if default is not None else None,
        parser=parse,
        metavar=f"[{'|'.join(enumeration.texts())}]",
        help=help,
    )


def print_json(data: Any) -> None:
    """Print read models (or plain data) as indented JSON."""
    typer.echo(json.dumps(_plain(data), indent=2, ensure_ascii=False, default=str))


def _plain(data: Any) -> Any:
    """Read models as plain data: choices as their text, times in the configured zone to the second."""
    if isinstance(data, BaseModel):
        return _plain(data.model_dump(mode="python"))
    if isinstance(data, dict):
        return {key: _plain(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_plain(item) for item in data]
    if isinstance(data, datetime):
        return shown_time(data)
    if isinstance(data, Vocabulary):
        return data.text
    if isinstance(data, Enum):
        return data.value
    return data


def shown_time(moment: datetime) -> str:
    """A time as the CLI shows it: ISO 8601 in the configured time zone, to the second, with its offset."""
    return moment.astimezone(runtime().settings.zone).isoformat(timespec="seconds")


def print_table(rows: Sequence[BaseModel | dict[str, Any]], columns: list[str]) -> None:
    """A plain aligned table, for people; `--json` is the format for scripts."""
    if not rows:
        typer.echo("(none)")
        return
    cells = [[_cell(_plain(row).get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    typer.echo("  ".join(column.upper().ljust(widths[i]) for i, column in enumerate(columns)).rstrip())
    for line in cells:
        typer.echo("  ".join(value.ljust(widths[i]) for i, value in enumerate(line)).rstrip())


def print_fields(data: BaseModel | dict[str, Any]) -> None:
    """One `key  value` line per plain field (lists and documents are left to `--json`)."""
    fields = _plain(data)
    width = max(len(key) for key in fields)
    for key, value in fields.items():
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
    """The first line of standard input; exits with status 2 when it is empty."""
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        fail("no password on standard input")
    return password


def read_references(members: Sequence[str] | None, from_file: Path | None) -> list[str]:
    """Computer ids or hostnames given as arguments, then those of a file (one a line, `-` for stdin;
    blank lines and `#` comments are skipped)."""
    references = list(members or [])
    if from_file is not None:
        try:
            text = sys.stdin.read() if str(from_file) == "-" else from_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read {from_file}: {exc}")
        for line in text.splitlines():
            entry = line.split("#", 1)[0].strip()
            if entry:
                references.append(entry)
    return references


# The filter of a computer list, as options (`oco computer list`, `oco group computer add --all-matching`).
SEARCH = typer.Option("", "--search", help="Words of hostname, OS, address, uid or agent version.")
PRESENCE = choice(Presence, None, "Online, offline or never seen.")
OS = typer.Option("", "--os", help="Part of the OS name.")
IN_GROUP = typer.Option(None, "--in-group", help="Members of this computer group (id).", metavar="ID")
WITH_PACKAGE = typer.Option(None, "--with-package", help="With this package installed (id).", metavar="ID")
WITH_SOFTWARE = typer.Option(
    "", "--software", help="Whose inventory reports this software (name contains).", metavar="NAME"
)
SOFTWARE_VERSION = typer.Option(
    "", "--software-version", help="In a version like '< 120' (with --software).", metavar="CONDITION"
)
