"""`oco computer …` and `oco assignment …`."""

from __future__ import annotations

import typer

from oco.cli.common import (
    IN_GROUP,
    JSON,
    OS,
    PRESENCE,
    SEARCH,
    SOFTWARE_VERSION,
    WITH_PACKAGE,
    WITH_SOFTWARE,
    actor,
    handled_errors,
    print_fields,
    print_json,
    print_table,
    runtime,
)
from oco.domain.presence import Presence
from oco.services import assignments, computers, wol
from oco.services.computers import ComputerQuery

app = typer.Typer(help="Managed computers.", no_args_is_help=True)
assignment_app = typer.Typer(help="Which packages a computer has installed.", no_args_is_help=True)


@app.command("add")
def add(hostname: str, notes: str = typer.Option("", help="Free text.")) -> None:
    """Pre-create a computer so its agent can register; prints its id."""
    with handled_errors():
        typer.echo(computers.add_computer(runtime(), hostname, actor(), notes).id)


@app.command("list")
def list_(
    as_json: bool = JSON,
    search: str = SEARCH,
    presence: Presence = PRESENCE,
    os: str = OS,
    in_group: int = IN_GROUP,
    with_package: int = WITH_PACKAGE,
    software: str = WITH_SOFTWARE,
    software_version: str = SOFTWARE_VERSION,
) -> None:
    """List the computers (that match the filter options), by hostname."""
    query = ComputerQuery(search, presence, os, in_group, with_package, software, software_version)
    with handled_errors():
        rows = list(computers.export_computers(runtime(), query))
    if as_json:
        print_json(rows)
    else:
        print_table(rows, ["id", "hostname", "os", "os_version", "remote_address", "last_seen"])


@app.command("show")
def show(computer: str = typer.Argument(..., help="Id or hostname."), as_json: bool = JSON) -> None:
    """Show a computer's inventory and installed packages."""
    with handled_errors():
        view = computers.computer_detail(runtime(), computer)
    if as_json:
        print_json(view)
        return
    print_fields(view)
    typer.echo("installed packages:")
    for row in view.installed_packages:
        typer.echo(f"  [{row.assignment_id}] {row.package} (package {row.package_id})")


@app.command("delete")
def delete(computer: str = typer.Argument(..., help="Id or hostname.")) -> None:
    """Forget a computer with its assignments and jobs."""
    with handled_errors():
        hostname = computers.delete_computer(runtime(), computer, actor())
    typer.echo(f"deleted computer {hostname}")


@app.command("wake")
def wake(
    computers_: list[str] = typer.Argument(..., metavar="COMPUTER...", help="Ids or hostnames."),
) -> None:
    """Send Wake-on-LAN magic packets to computers now."""
    with handled_errors():
        sent = wol.wake_computers(runtime(), computers_)
    typer.echo(f"sent {sent} magic packet(s)")


@assignment_app.command("add")
def assignment_add(
    computer: str = typer.Option(..., help="Id or hostname."),
    package: int = typer.Option(..., help="Package id."),
) -> None:
    """Record that a package is installed on a computer; prints the assignment id."""
    with handled_errors():
        typer.echo(assignments.add_assignment(runtime(), computer, package, actor()).id)


@assignment_app.command("remove")
def assignment_remove(
    computer: str = typer.Option(..., help="Id or hostname."),
    package: int = typer.Option(..., help="Package id."),
) -> None:
    """Remove an assignment without uninstalling anything."""
    with handled_errors():
        assignments.remove_assignment(runtime(), computer, package, actor())
    typer.echo("assignment removed")
