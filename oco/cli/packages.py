"""`oco package …`: create, list, show and delete package versions."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from oco.cli.common import actor, handled_errors, print_fields, print_json, print_table, runtime, use_case
from oco.domain.states import PostAction, UpgradeBehavior
from oco.services import packages
from oco.services.errors import InvalidInput
from oco.services.views import assignment_view, package_view

app = typer.Typer(help="Package families and versions.", no_args_is_help=True)


class PostActionChoice(StrEnum):
    NONE = "none"
    RESTART = "restart"
    SHUTDOWN = "shutdown"
    EXIT = "exit"

    def to_domain(self) -> PostAction:
        return {
            "none": PostAction.NONE,
            "restart": PostAction.RESTART,
            "shutdown": PostAction.SHUTDOWN,
            "exit": PostAction.EXIT_AGENT,
        }[self.value]


@app.command("add")
def add(
    family: str = typer.Option(..., help="Package family name, e.g. 'Firefox'."),
    version: str = typer.Option(..., help="Version of this package, unique in its family."),
    install: str = typer.Option(..., help="Install command, run in the unpacked payload directory."),
    uninstall: str = typer.Option("", help="Uninstall command."),
    install_codes: str = typer.Option("0", help="Return codes meaning success, comma separated; '' = any."),
    uninstall_codes: str = typer.Option("0", help="Uninstall return codes meaning success."),
    install_post_action: PostActionChoice = typer.Option(PostActionChoice.NONE),
    uninstall_post_action: PostActionChoice = typer.Option(PostActionChoice.NONE),
    upgrade_behavior: UpgradeBehavior = typer.Option(UpgradeBehavior.EXPLICIT_UNINSTALL),
    os: str = typer.Option("", "--os", help="Compatible operating system (empty = any)."),
    os_version: str = typer.Option("", help="Compatible OS versions (empty = any)."),
    arch: str = typer.Option("", "--arch", help="Compatible architecture (empty = any)."),
    notes: str = typer.Option("", help="Description shown in the console."),
    payload: Path | None = typer.Option(None, help="Zip file, other file or directory (zipped)."),
) -> None:
    """Create a package version; prints its id."""
    spec = packages.PackageSpec(
        family=family,
        version=version,
        install_procedure=install,
        uninstall_procedure=uninstall,
        install_success_codes=install_codes,
        uninstall_success_codes=uninstall_codes,
        install_post_action=install_post_action.to_domain(),
        uninstall_post_action=uninstall_post_action.to_domain(),
        upgrade_behavior=upgrade_behavior,
        compatible_os=os,
        compatible_os_version=os_version,
        compatible_architecture=arch,
        notes=notes,
    )
    if payload is not None and not payload.exists():
        with handled_errors():
            raise InvalidInput(f"payload {str(payload)!r} does not exist", field="payload")
    store = (lambda depot: depot.put_file(payload)) if payload is not None else None
    with handled_errors():
        package_id = packages.create_package(runtime(), spec, store, actor())
    typer.echo(package_id)


@app.command("list")
def list_(
    family: str | None = typer.Option(None, help="Only this family."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List package versions."""
    with use_case() as session:
        rows = [package_view(p) for p in packages.list_packages(session, family)]
    if as_json:
        print_json(rows)
    else:
        print_table(rows, ["id", "family", "version", "payload_size", "upgrade_behavior", "created"])


@app.command("show")
def show(package_id: int, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show a package version and the computers that have it installed."""
    with use_case() as session:
        view = package_view(packages.get_package(session, package_id))
        view["installed_on"] = [assignment_view(a) for a in packages.installed_on(session, package_id)]
    if as_json:
        print_json(view)
        return
    print_fields(view)
    typer.echo(f"installed on: {', '.join(a['computer'] for a in view['installed_on']) or '-'}")


@app.command("delete")
def delete(package_id: int) -> None:
    """Delete a package version that is installed nowhere and has no pending jobs."""
    with handled_errors():
        packages.remove_package(runtime(), package_id, actor())
    typer.echo(f"deleted package {package_id}")
