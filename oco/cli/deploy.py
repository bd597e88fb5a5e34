"""`oco deploy`, `oco uninstall`, `oco container …` and `oco housekeeping`."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import typer

from oco.cli.common import actor, fail, print_fields, print_json, print_table, runtime, use_case
from oco.domain.planning import Plan
from oco.domain.states import SequenceMode
from oco.services import assignments, computers, deployments, housekeeping, packages
from oco.services.views import container_view, job_view, plan_view

container_app = typer.Typer(help="Job containers (deployments) and their jobs.", no_args_is_help=True)
JSON = typer.Option(False, "--json", help="Print JSON.")


class SequenceChoice(StrEnum):
    IGNORE = "ignore"
    ABORT = "abort"

    def to_domain(self) -> SequenceMode:
        return SequenceMode.ABORT_AFTER_FAILED if self is SequenceChoice.ABORT else SequenceMode.IGNORE_FAILED


def parse_time(value: str | None, option: str) -> datetime | None:
    """ISO 8601; a time without zone is taken in the server's configured time zone."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not an ISO 8601 date/time such as 2026-12-01T08:00")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=runtime().settings.zone)
    return parsed.astimezone(UTC)


def deploy(
    name: str = typer.Option(..., help="Name of the job container."),
    computer: list[str] = typer.Option(
        [], "--computer", help="Target computer (id or hostname); repeatable."
    ),
    computer_group: list[str] = typer.Option(
        [], "--computer-group", help="Target computer group; repeatable."
    ),
    package: list[int] = typer.Option([], "--package", help="Package id; repeatable, order kept."),
    package_group: list[str] = typer.Option([], "--package-group", help="Package group; repeatable."),
    description: str = typer.Option("", help="Shown in the console."),
    start: str | None = typer.Option(None, help="Start (ISO 8601); default now."),
    end: str | None = typer.Option(None, help="End (ISO 8601); jobs not run by then expire."),
    priority: int = typer.Option(0, help="-100..100; higher runs first."),
    restart_timeout: int = typer.Option(20, help="Minutes a logged-in user gets before restart; <0 = never."),
    sequence_mode: SequenceChoice = typer.Option(SequenceChoice.IGNORE, help="After a failed job."),
    ip_ranges: str = typer.Option("", help="Agent IP ranges, e.g. '10.0.0.0/8,!10.9.0.0/16'."),
    wol: bool = typer.Option(False, "--wol", help="Wake offline computers at the start."),
    shutdown_waked: bool = typer.Option(False, "--shutdown-waked", help="Shut woken computers down after."),
    force: bool = typer.Option(False, "--force", help="Reinstall versions already installed."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show the jobs that would be created; write nothing."
    ),
    as_json: bool = JSON,
) -> None:
    """Deploy packages to computers; prints the new container id (or the preview with --dry-run)."""
    options = deployments.ContainerOptions(
        name=name,
        description=description,
        start=parse_time(start, "--start"),
        end=parse_time(end, "--end"),
        wol=wol,
        shutdown_waked=shutdown_waked,
        priority=priority,
        restart_timeout=restart_timeout,
        sequence_mode=sequence_mode.to_domain(),
        agent_ip_ranges=ip_ranges,
    )
    rt = runtime()
    with use_case() as session:
        targets = deployments.Targets(
            computer_ids=[computers.find_computer(session, c).id for c in computer],
            computer_group_ids=[computers.find_computer_group(session, g).id for g in computer_group],
            package_ids=[packages.get_package(session, p).id for p in package],
            package_group_ids=[computers.find_package_group(session, g).id for g in package_group],
        )
        request = deployments.DeploymentRequest(options=options, targets=targets, force=force)
        if dry_run:
            _print_plan(deployments.preview(session, rt.settings, request, rt.now()), as_json)
            return
        container_id = deployments.create_deployment(session, rt.settings, request, actor(), rt.now()).id
    typer.echo(container_id)


def _print_plan(plan: Plan, as_json: bool) -> None:
    view = plan_view(plan)
    if as_json:
        print_json(view)
        return
    for computer in view["computers"]:
        wake = "  (will be woken)" if computer["wake"] else ""
        typer.echo(f"{computer['hostname']}{wake}")
        for job in computer["jobs"]:
            reason = f"  -- {job['reason']}" if job["reason"] else ""
            typer.echo(f"  {job['sequence']}. {job['action']} {job['package']} [{job['state']}]{reason}")
        for note in computer["notes"]:
            typer.echo(f"  note: {note}")
    typer.echo(
        f"{len(plan.jobs)} job(s), {len(plan.skipped())} skipped, {len(plan.woken)} computer(s) to wake"
    )


def uninstall(
    computer: str = typer.Option(..., help="Computer (id or hostname)."),
    package: list[int] = typer.Option(..., "--package", help="Installed package id; repeatable."),
    name: str | None = typer.Option(None, help="Container name (default: 'Uninstall <family>')."),
    start: str | None = typer.Option(None, help="Start (ISO 8601); default now."),
    end: str | None = typer.Option(None, help="End (ISO 8601)."),
    priority: int = typer.Option(0),
    restart_timeout: int = typer.Option(20),
    sequence_mode: SequenceChoice = typer.Option(SequenceChoice.IGNORE),
) -> None:
    """Create uninstall jobs for packages installed on a computer; prints the container id."""
    rt = runtime()
    with use_case() as session:
        found = computers.find_computer(session, computer)
        selected = [
            assignments.find_assignment(session, found, packages.get_package(session, p)).id for p in package
        ]
        options = deployments.ContainerOptions(
            name=name or deployments.default_uninstall_name(session, selected),
            start=parse_time(start, "--start"),
            end=parse_time(end, "--end"),
            priority=priority,
            restart_timeout=restart_timeout,
            sequence_mode=sequence_mode.to_domain(),
        )
        request = deployments.UninstallRequest(options=options, assignment_ids=selected)
        container_id = deployments.create_uninstall(session, rt.settings, request, actor(), rt.now()).id
    typer.echo(container_id)


@container_app.command("list")
def container_list(as_json: bool = JSON) -> None:
    """Job containers with status and progress."""
    rt = runtime()
    with use_case() as session:
        rows = [container_view(s, rt.settings) for s in deployments.list_containers(session, rt.now())]
    if as_json:
        print_json(rows)
    else:
        print_table(rows, ["id", "name", "status", "progress", "priority", "start", "end", "author"])


@container_app.command("show")
def container_show(container_id: int, as_json: bool = JSON) -> None:
    """A job container with every job: state, return code, output tail."""
    rt = runtime()
    with use_case() as session:
        summary = deployments.container_summary(session, container_id, rt.now())
        view = container_view(summary, rt.settings)
        view["jobs"] = [job_view(job) for job in summary.container.jobs]
    if as_json:
        print_json(view)
        return
    print_fields(view)
    for job in view["jobs"]:
        code = "-" if job["return_code"] is None else job["return_code"]
        typer.echo(
            f"  [{job['id']}] {job['computer']} {job['sequence']}. {job['action']} {job['package']}: "
            f"{job['state']} (code {code})"
        )
        tail = job["message"].strip().splitlines()[-3:]
        for line in tail:
            typer.echo(f"      {line}")


@container_app.command("edit")
def container_edit(
    container_id: int,
    name: str | None = typer.Option(None),
    enabled: bool | None = typer.Option(None, "--enable/--disable"),
    start: str | None = typer.Option(None),
    end: str | None = typer.Option(None, help="New end; 'none' removes it."),
    priority: int | None = typer.Option(None),
    restart_timeout: int | None = typer.Option(None),
    sequence_mode: SequenceChoice | None = typer.Option(None),
    ip_ranges: str | None = typer.Option(None),
    notes: str | None = typer.Option(None),
    description: str | None = typer.Option(None),
) -> None:
    """Change a job container's settings."""
    clear_end = end is not None and end.lower() == "none"
    edit = deployments.ContainerEdit(
        name=name,
        description=description,
        notes=notes,
        enabled=enabled,
        start=parse_time(start, "--start"),
        end=None if clear_end else parse_time(end, "--end"),
        clear_end=clear_end,
        priority=priority,
        restart_timeout=restart_timeout,
        sequence_mode=sequence_mode.to_domain() if sequence_mode else None,
        agent_ip_ranges=ip_ranges,
    )
    with use_case() as session:
        deployments.edit_container(session, container_id, edit, actor())
    typer.echo(f"updated job container {container_id}")


@container_app.command("renew")
def container_renew(
    container_id: int,
    new_container: bool = typer.Option(
        False, "--new-container", help="Move the failed jobs to a new container."
    ),
) -> None:
    """Run the failed jobs again; prints the id of the container holding them."""
    rt = runtime()
    with use_case() as session:
        target = deployments.renew_failed(
            session, container_id, actor(), rt.now(), into_new_container=new_container
        )
        typer.echo(target.id)


@container_app.command("delete")
def container_delete(container_id: int) -> None:
    """Delete a job container and its jobs."""
    with use_case() as session:
        deployments.delete_container(session, container_id, actor())
    typer.echo(f"deleted job container {container_id}")


@container_app.command("delete-job")
def container_delete_job(job_id: int) -> None:
    """Delete one job."""
    with use_case() as session:
        deployments.delete_job(session, job_id, actor())
    typer.echo(f"deleted job {job_id}")


def housekeeping_command(
    once: bool = typer.Option(False, "--once", help="Run every task once and exit (default: keep running)."),
) -> None:
    """Expire jobs, send due WOL packets, remove expired WOL shutdowns, purge old containers.

    The server runs the same tasks itself; this command is for cron or a separate worker.
    """
    rt = runtime()
    while True:
        results: dict[str, Any] = housekeeping.run_all(rt)
        for name, changed in results.items():
            typer.echo(f"{name}: {'skipped (locked)' if changed is None else changed}")
        if once:
            return
        time.sleep(rt.settings.housekeeping_interval_seconds)
