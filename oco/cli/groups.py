"""`oco group computer …` and `oco group package …`."""

from __future__ import annotations

from pathlib import Path

import typer

from oco.cli.common import (
    IN_GROUP,
    JSON,
    OS,
    PRESENCE,
    SEARCH,
    WITH_PACKAGE,
    actor,
    fail,
    handled_errors,
    print_json,
    print_table,
    read_references,
    runtime,
)
from oco.domain.presence import Presence
from oco.services import groups
from oco.services.computers import ComputerQuery, ComputerSelection

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


MEMBERS = typer.Argument(None, help="Ids or hostnames.", show_default=False)
FROM_FILE = typer.Option(
    None, "--from-file", help="A file of ids or hostnames, one a line ('-': standard input).", metavar="FILE"
)
ALL_MATCHING = typer.Option(
    False, "--all-matching", help="Every computer that matches the filter options below, too."
)


def _selection(
    members: list[str] | None,
    from_file: Path | None,
    all_matching: bool,
    query: ComputerQuery,
) -> ComputerSelection:
    references = read_references(members, from_file)
    if not all_matching and query != ComputerQuery():
        fail("the filter options select computers only with --all-matching")
    if not references and not all_matching:
        fail("name computers (ids or hostnames), --from-file FILE, or --all-matching with a filter")
    return ComputerSelection(references=references, matching=query if all_matching else None)


@computer_group_app.command("add")
def computer_group_add(
    group: str,
    members: list[str] = MEMBERS,
    from_file: Path = FROM_FILE,
    all_matching: bool = ALL_MATCHING,
    search: str = SEARCH,
    presence: Presence = PRESENCE,
    os: str = OS,
    in_group: int = IN_GROUP,
    with_package: int = WITH_PACKAGE,
) -> None:
    """Add computers to a group: those named, those of a file, every one that matches a filter."""
    query = ComputerQuery(search, presence, os, in_group, with_package)
    selection = _selection(members, from_file, all_matching, query)
    with handled_errors():
        change = groups.add_computers_to_group(runtime(), group, selection, actor())
    typer.echo(f"added {change.changed} computer(s); {change.name} has {change.size}")


@computer_group_app.command("remove")
def computer_group_remove(
    group: str,
    members: list[str] = MEMBERS,
    from_file: Path = FROM_FILE,
    all_matching: bool = ALL_MATCHING,
    search: str = SEARCH,
    presence: Presence = PRESENCE,
    os: str = OS,
    with_package: int = WITH_PACKAGE,
) -> None:
    """Remove computers from a group: those named, those of a file, every member that matches a filter."""
    query = ComputerQuery(search, presence, os, None, with_package)
    selection = _selection(members, from_file, all_matching, query)
    with handled_errors():
        change = groups.remove_computers_from_group(runtime(), group, selection, actor())
    typer.echo(f"removed {change.changed} computer(s); {change.name} has {change.size}")


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
