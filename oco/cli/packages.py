"""`oco package …`: create, list, show, delete and sign (`oco.cli.signing`) package versions."""

from __future__ import annotations

from pathlib import Path

import typer

from oco.cli.common import (
    JSON,
    actor,
    choice,
    handled_errors,
    print_fields,
    print_json,
    print_table,
    runtime,
)
from oco.cli.signing import sign
from oco.domain.states import PostAction, UpgradeBehavior
from oco.errors import InvalidInput
from oco.services import packages

app = typer.Typer(help="Package families and versions.", no_args_is_help=True)


@app.command("add")
def add(
    family: str = typer.Option(..., help="Package family name, e.g. 'Firefox'."),
    version: str = typer.Option(..., help="Version of this package, unique in its family."),
    install: str = typer.Option(..., help="Install command, run in the unpacked payload directory."),
    uninstall: str = typer.Option("", help="Uninstall command."),
    install_codes: str = typer.Option("0", help="Return codes meaning success, comma separated; '' = any."),
    uninstall_codes: str = typer.Option("0", help="Uninstall return codes meaning success."),
    install_post_action: PostAction = choice(PostAction, PostAction.NONE),
    uninstall_post_action: PostAction = choice(PostAction, PostAction.NONE),
    upgrade_behavior: UpgradeBehavior = choice(UpgradeBehavior, UpgradeBehavior.EXPLICIT_UNINSTALL),
    os: str = typer.Option("", "--os", help="Compatible operating system (empty = any)."),
    os_version: str = typer.Option("", help="Compatible OS versions (empty = any)."),
    arch: str = typer.Option("", "--arch", help="Compatible architecture (empty = any)."),
    notes: str = typer.Option("", help="Description shown in the console."),
    download_for_uninstall: bool = typer.Option(
        False,
        help="Uninstall jobs download the payload first (for uninstall procedures that need its files).",
    ),
    payload: Path | None = typer.Option(None, help="Zip file, other file or directory (zipped)."),
) -> None:
    """Create a package version; prints its id."""
    with handled_errors():
        spec = packages.PackageSpec(
            family=family,
            version=version,
            install_procedure=install,
            uninstall_procedure=uninstall,
            install_success_codes=install_codes,
            uninstall_success_codes=uninstall_codes,
            install_post_action=install_post_action,
            uninstall_post_action=uninstall_post_action,
            upgrade_behavior=upgrade_behavior,
            compatible_os=os,
            compatible_os_version=os_version,
            compatible_architecture=arch,
            notes=notes,
            download_for_uninstall=download_for_uninstall,
        )
        if payload is not None and not payload.exists():
            raise InvalidInput(f"payload {str(payload)!r} does not exist", field="payload")
        store = (lambda depot: depot.put_file(payload)) if payload is not None else None
        typer.echo(packages.create_package(runtime(), spec, store, actor()).id)


@app.command("list")
def list_(family: str | None = typer.Option(None, help="Only this family."), as_json: bool = JSON) -> None:
    """List package versions."""
    with handled_errors():
        rows = packages.list_packages(runtime(), family)
    if as_json:
        print_json(rows)
    else:
        print_table(
            rows,
            ["id", "family", "version", "payload_size", "upgrade_behavior", "signature_status", "created"],
        )


@app.command("show")
def show(package_id: int, as_json: bool = JSON) -> None:
    """Show a package version and the computers that have it installed."""
    with handled_errors():
        view = packages.package_detail(runtime(), package_id)
    if as_json:
        print_json(view)
        return
    print_fields(view)
    typer.echo(f"installed on: {', '.join(a.computer for a in view.installed_on) or '-'}")


@app.command("delete")
def delete(package_id: int) -> None:
    """Delete a package version that is installed nowhere and has no pending jobs."""
    with handled_errors():
        packages.remove_package(runtime(), package_id, actor())
    typer.echo(f"deleted package {package_id}")


app.command("sign")(sign)
