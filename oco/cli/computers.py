"""`oco computer …`, `oco group …` and `oco assignment …`."""

from __future__ import annotations

import typer

from oco.cli.common import actor, print_fields, print_json, print_table, runtime, use_case
from oco.services import assignments, computers, packages, wol
from oco.services.views import computer_group_view, computer_view, package_group_view

app = typer.Typer(help="Managed computers.", no_args_is_help=True)
group_app = typer.Typer(help="Computer groups and package groups.", no_args_is_help=True)
computer_group_app = typer.Typer(help="Computer groups (deployment targets).", no_args_is_help=True)
package_group_app = typer.Typer(help="Package groups (ordered package sets).", no_args_is_help=True)
group_app.add_typer(computer_group_app, name="computer")
group_app.add_typer(package_group_app, name="package")
assignment_app = typer.Typer(help="Which packages a computer has installed.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print JSON.")


@app.command("add")
def add(hostname: str, notes: str = typer.Option("", help="Free text.")) -> None:
    """Pre-create a computer so its agent can register; prints its id."""
    with use_case() as session:
        computer_id = computers.add_computer(session, hostname, actor(), notes).id
    typer.echo(computer_id)


@app.command("list")
def list_(as_json: bool = JSON) -> None:
    """List computers."""
    with use_case() as session:
        rows = [computer_view(c) for c in computers.list_computers(session)]
    if as_json:
        print_json(rows)
    else:
        print_table(rows, ["id", "hostname", "os", "os_version", "remote_address", "last_seen"])


@app.command("show")
def show(computer: str = typer.Argument(..., help="Id or hostname."), as_json: bool = JSON) -> None:
    """Show a computer's inventory and installed packages."""
    with use_case() as session:
        view = computer_view(computers.find_computer(session, computer), detail=True)
    if as_json:
        print_json(view)
        return
    print_fields(view)
    typer.echo("installed packages:")
    for row in view["installed_packages"]:
        typer.echo(f"  [{row['assignment_id']}] {row['package']} (package {row['package_id']})")


@app.command("delete")
def delete(computer: str = typer.Argument(..., help="Id or hostname.")) -> None:
    """Forget a computer with its assignments and jobs."""
    with use_case() as session:
        found = computers.find_computer(session, computer)
        computers.delete_computer(session, found.id, actor())
    typer.echo(f"deleted computer {found.hostname}")


@app.command("wake")
def wake(
    computers_: list[str] = typer.Argument(..., metavar="COMPUTER...", help="Ids or hostnames."),
) -> None:
    """Send Wake-on-LAN magic packets to computers now."""
    rt = runtime()
    with use_case() as session:
        ids = [computers.find_computer(session, c).id for c in computers_]
        sent = wol.wake_computers(session, rt.settings, ids)
    typer.echo(f"sent {sent} magic packet(s)")


# Computer groups ----------------------------------------------------------------------------------


@computer_group_app.command("create")
def computer_group_create(name: str) -> None:
    """Create a computer group; prints its id."""
    with use_case() as session:
        typer.echo(computers.add_computer_group(session, name, actor()).id)


@computer_group_app.command("list")
def computer_group_list(as_json: bool = JSON) -> None:
    with use_case() as session:
        rows = [computer_group_view(g) for g in computers.list_computer_groups(session)]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        row["members"] = ", ".join(c["hostname"] for c in row["computers"])
    print_table(rows, ["id", "name", "members"])


@computer_group_app.command("show")
def computer_group_show(group: str, as_json: bool = JSON) -> None:
    with use_case() as session:
        view = computer_group_view(computers.find_computer_group(session, group))
    if as_json:
        print_json(view)
    else:
        print_table(view["computers"], ["id", "hostname"])


@computer_group_app.command("add")
def computer_group_add(
    group: str, members: list[str] = typer.Argument(..., help="Ids or hostnames.")
) -> None:
    """Add computers to a group."""
    with use_case() as session:
        found = computers.find_computer_group(session, group)
        targets = [computers.find_computer(session, m) for m in members]
        computers.add_computers_to_group(session, found, targets, actor())


@computer_group_app.command("remove")
def computer_group_remove(group: str, members: list[str] = typer.Argument(...)) -> None:
    """Remove computers from a group."""
    with use_case() as session:
        found = computers.find_computer_group(session, group)
        targets = [computers.find_computer(session, m) for m in members]
        computers.remove_computers_from_group(session, found, targets, actor())


@computer_group_app.command("delete")
def computer_group_delete(group: str) -> None:
    with use_case() as session:
        computers.delete_computer_group(session, computers.find_computer_group(session, group), actor())


# Package groups -----------------------------------------------------------------------------------


@package_group_app.command("create")
def package_group_create(name: str) -> None:
    """Create a package group; prints its id."""
    with use_case() as session:
        typer.echo(computers.add_package_group(session, name, actor()).id)


@package_group_app.command("list")
def package_group_list(as_json: bool = JSON) -> None:
    with use_case() as session:
        rows = [package_group_view(g) for g in computers.list_package_groups(session)]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        row["members"] = ", ".join(p["package"] for p in row["packages"])
    print_table(rows, ["id", "name", "members"])


@package_group_app.command("show")
def package_group_show(group: str, as_json: bool = JSON) -> None:
    with use_case() as session:
        view = package_group_view(computers.find_package_group(session, group))
    if as_json:
        print_json(view)
    else:
        print_table(view["packages"], ["sequence", "id", "package"])


@package_group_app.command("add")
def package_group_add(
    group: str, package_ids: list[int] = typer.Argument(..., help="In deployment order.")
) -> None:
    """Append packages to a group, in the order given."""
    with use_case() as session:
        found = computers.find_package_group(session, group)
        members = [packages.get_package(session, p) for p in package_ids]
        computers.add_packages_to_group(session, found, members, actor())


@package_group_app.command("remove")
def package_group_remove(group: str, package_ids: list[int] = typer.Argument(...)) -> None:
    with use_case() as session:
        found = computers.find_package_group(session, group)
        members = [packages.get_package(session, p) for p in package_ids]
        computers.remove_packages_from_group(session, found, members, actor())


@package_group_app.command("order")
def package_group_order(
    group: str,
    package_ids: list[int] = typer.Argument(..., help="Every package of the group, in the new order."),
) -> None:
    """Set the order in which the group's packages are deployed."""
    with use_case() as session:
        computers.order_package_group(
            session, computers.find_package_group(session, group), package_ids, actor()
        )


@package_group_app.command("delete")
def package_group_delete(group: str) -> None:
    with use_case() as session:
        computers.delete_package_group(session, computers.find_package_group(session, group), actor())


# Assignments --------------------------------------------------------------------------------------


@assignment_app.command("add")
def assignment_add(
    computer: str = typer.Option(..., help="Id or hostname."),
    package: int = typer.Option(..., help="Package id."),
) -> None:
    """Record that a package is installed on a computer; prints the assignment id."""
    with use_case() as session:
        found = computers.find_computer(session, computer)
        assignment = assignments.add_assignment(
            session, found, packages.get_package(session, package), actor()
        )
        typer.echo(assignment.id)


@assignment_app.command("remove")
def assignment_remove(
    computer: str = typer.Option(..., help="Id or hostname."),
    package: int = typer.Option(..., help="Package id."),
) -> None:
    """Remove an assignment without uninstalling anything."""
    with use_case() as session:
        found = computers.find_computer(session, computer)
        assignment = assignments.find_assignment(session, found, packages.get_package(session, package))
        assignments.remove_assignments(session, [assignment.id], actor())
    typer.echo("assignment removed")
