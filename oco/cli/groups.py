"""`oco group computer …` and `oco group package …`."""

from __future__ import annotations

import typer

from oco.cli.common import JSON, actor, handled_errors, print_json, print_table, runtime
from oco.services import groups

app = typer.Typer(help="Computer groups and package groups.", no_args_is_help=True)
computer_group_app = typer.Typer(help="Computer groups (deployment targets).", no_args_is_help=True)
package_group_app = typer.Typer(help="Package groups (ordered package sets).", no_args_is_help=True)
app.add_typer(computer_group_app, name="computer")
app.add_typer(package_group_app, name="package")


@computer_group_app.command("create")
def computer_group_create(name: str) -> None:
    """Create a computer group; prints its id."""
    with handled_errors():
        typer.echo(groups.add_computer_group(runtime(), name, actor()).id)


@computer_group_app.command("list")
def computer_group_list(as_json: bool = JSON) -> None:
    """List computer groups with their members."""
    with handled_errors():
        rows = groups.list_computer_groups(runtime())
    if as_json:
        print_json(rows)
        return
    table = [
        {"id": g.id, "name": g.name, "members": ", ".join(c.hostname for c in g.computers)} for g in rows
    ]
    print_table(table, ["id", "name", "members"])


@computer_group_app.command("show")
def computer_group_show(group: str, as_json: bool = JSON) -> None:
    """Show a computer group's members."""
    with handled_errors():
        view = groups.computer_group(runtime(), group)
    if as_json:
        print_json(view)
    else:
        print_table(view.computers, ["id", "hostname"])


@computer_group_app.command("add")
def computer_group_add(
    group: str, members: list[str] = typer.Argument(..., help="Ids or hostnames.")
) -> None:
    """Add computers to a group."""
    with handled_errors():
        groups.add_computers_to_group(runtime(), group, members, actor())


@computer_group_app.command("remove")
def computer_group_remove(
    group: str, members: list[str] = typer.Argument(..., help="Ids or hostnames.")
) -> None:
    """Remove computers from a group."""
    with handled_errors():
        groups.remove_computers_from_group(runtime(), group, members, actor())


@computer_group_app.command("delete")
def computer_group_delete(group: str) -> None:
    """Delete a computer group; its computers stay."""
    with handled_errors():
        groups.delete_computer_group(runtime(), group, actor())


@package_group_app.command("create")
def package_group_create(name: str) -> None:
    """Create a package group; prints its id."""
    with handled_errors():
        typer.echo(groups.add_package_group(runtime(), name, actor()).id)


@package_group_app.command("list")
def package_group_list(as_json: bool = JSON) -> None:
    """List package groups with their members in deployment order."""
    with handled_errors():
        rows = groups.list_package_groups(runtime())
    if as_json:
        print_json(rows)
        return
    table = [{"id": g.id, "name": g.name, "members": ", ".join(p.package for p in g.packages)} for g in rows]
    print_table(table, ["id", "name", "members"])


@package_group_app.command("show")
def package_group_show(group: str, as_json: bool = JSON) -> None:
    """Show a package group's members in deployment order."""
    with handled_errors():
        view = groups.package_group(runtime(), group)
    if as_json:
        print_json(view)
    else:
        print_table(view.packages, ["sequence", "id", "package"])


@package_group_app.command("add")
def package_group_add(
    group: str, package_ids: list[int] = typer.Argument(..., help="In deployment order.")
) -> None:
    """Append packages to a group, in the order given."""
    with handled_errors():
        groups.add_packages_to_group(runtime(), group, package_ids, actor())


@package_group_app.command("remove")
def package_group_remove(group: str, package_ids: list[int] = typer.Argument(...)) -> None:
    """Remove packages from a group."""
    with handled_errors():
        groups.remove_packages_from_group(runtime(), group, package_ids, actor())


@package_group_app.command("order")
def package_group_order(
    group: str,
    package_ids: list[int] = typer.Argument(..., help="Every package of the group, in the new order."),
) -> None:
    """Set the order in which the group's packages are deployed."""
    with handled_errors():
        groups.order_package_group(runtime(), group, package_ids, actor())


@package_group_app.command("delete")
def package_group_delete(group: str) -> None:
    """Delete a package group; its packages stay."""
    with handled_errors():
        groups.delete_package_group(runtime(), group, actor())
