"""`oco import …`: carry another system's data over (today: a running OCO-Server)."""

from __future__ import annotations

from pathlib import Path

import typer

from oco.cli.common import JSON, actor, handled_errors, print_json, runtime
from oco.domain.ocoimport import ImportKind, ImportReport
from oco.services import ocoimport

app = typer.Typer(help="Import from another deployment server.", no_args_is_help=True)

SKIPS_SHOWN = 20
"""Skipped rows listed per kind; `--json` lists them all."""


@app.command("oco-server")
def oco_server(
    database: str = typer.Option(
        ...,
        "--database",
        help="OCO-Server's database, e.g. mysql+pymysql://oco:secret@127.0.0.1/oco (read only).",
    ),
    payloads: Path | None = typer.Option(
        None, "--payloads", help="OCO-Server's package directory (one <id>.zip per package)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Say what would be imported and skipped, and change nothing."
    ),
    time_zone: str | None = typer.Option(
        None, "--time-zone", help="The time zone OCO-Server stored its times in (default: time_zone)."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress lines."),
    as_json: bool = JSON,
) -> None:
    """Import computers (with their keys), groups, packages and payloads, assignments and deployments
    from a running OCO-Server; safe to run again (what was imported is not imported twice)."""
    request = ocoimport.OcoImportRequest(
        database_url=database, payloads=payloads, dry_run=dry_run, time_zone=time_zone
    )
    with handled_errors():
        report = ocoimport.import_oco_server(
            runtime(), request, actor(), None if quiet or as_json else _progress
        )
    if as_json:
        print_json(report_document(report))
    else:
        _print(report)


def _progress(kind: str, done: int, total: int) -> None:
    typer.echo(f"{kind}: {done}/{total}", err=True)


def report_document(report: ImportReport) -> dict[str, object]:
    """The report as plain data (`--json`)."""
    return {
        "dry_run": report.dry_run,
        "kinds": {
            kind: {
                "imported": r.imported,
                "already_imported": r.already_imported,
                "updated": r.updated,
                "skipped": [
                    {"source_id": s.source_id, "name": s.name, "reason": s.reason} for s in r.skipped
                ],
            }
            for kind, r in report.kinds.items()
        },
        "notes": report.notes,
    }


def _print(report: ImportReport) -> None:
    verb = "would import" if report.dry_run else "imported"
    typer.echo("Dry run: nothing was changed." if report.dry_run else "Import finished.")
    width = max(len(str(kind)) for kind in ImportKind)
    for kind in ImportKind:
        r = report.kinds.get(str(kind))
        if r is None:
            continue
        typer.echo(
            f"{str(kind).ljust(width)}  {verb} {r.imported}, already imported {r.already_imported} "
            f"({'would be ' if report.dry_run else ''}updated {r.updated}), skipped {len(r.skipped)}"
        )
    for kind in ImportKind:
        r = report.kinds.get(str(kind))
        if r is None or not r.skipped:
            continue
        typer.echo(f"skipped {kind}:")
        for skip in r.skipped[:SKIPS_SHOWN]:
            typer.echo(f"  OCO id {skip.source_id} {skip.name}: {skip.reason}")
        if len(r.skipped) > SKIPS_SHOWN:
            typer.echo(f"  … and {len(r.skipped) - SKIPS_SHOWN} more (--json lists them all)")
    for note in report.notes:
        typer.echo(f"note: {note}")
