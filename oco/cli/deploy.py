"""`oco deploy` and `oco uninstall`: create job containers from a terminal."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from oco.cli.common import JSON, actor, choice, fail, handled_errors, print_json, runtime
from oco.domain.containers import DEFAULT_RESTART_TIMEOUT, PRIORITY_MAX, PRIORITY_MIN
from oco.domain.phases import (
    DEFAULT_HALT_MIN_FINISHED,
    DEFAULT_SUCCESS_PERCENT,
    RolloutRules,
    parse_duration,
    parse_phases,
)
from oco.domain.retries import RetryPolicy
from oco.domain.slots import parse_max_downloads
from oco.domain.states import SequenceMode
from oco.domain.windows import WindowZone, parse_windows
from oco.services import deployments
from oco.services.deployments import ContainerOptions, DeploymentRequest, UninstallRequest
from oco.services.targets import Targets
from oco.services.views import PlanPublic

SEQUENCE_MODE = choice(SequenceMode, SequenceMode.IGNORE_FAILED, help="After a failed job.")
WINDOW_ZONE = choice(
    WindowZone,
    WindowZone.COMPUTER,
    help="Whose clock the windows are read on (computer: as its agent reports).",
)


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
    priority: int = typer.Option(0, help=f"{PRIORITY_MIN}..{PRIORITY_MAX}; higher runs first."),
    restart_timeout: int = typer.Option(
        DEFAULT_RESTART_TIMEOUT, help="Minutes a logged-in user gets before restart; <0 = never."
    ),
    sequence_mode: SequenceMode = SEQUENCE_MODE,
    ip_ranges: str = typer.Option("", help="Agent IP ranges, e.g. '10.0.0.0/8,!10.9.0.0/16'."),
    wol: bool = typer.Option(False, "--wol", help="Wake offline computers at the start."),
    shutdown_waked: bool = typer.Option(False, "--shutdown-waked", help="Shut woken computers down after."),
    force: bool = typer.Option(False, "--force", help="Reinstall versions already installed."),
    auto_uninstall: bool = typer.Option(
        True,
        "--auto-uninstall/--no-auto-uninstall",
        help="Uninstall a family's other installed versions first (packages set to explicit uninstall).",
    ),
    phases: str = typer.Option(
        "", help="Phased rollout: cumulative steps, percentages or counts ('1%,10%,50%,100%', '5,50,all')."
    ),
    pilot_group: str | None = typer.Option(
        None, help="Computer group (id or name) whose targets form the first phase."
    ),
    phase_success: int = typer.Option(
        DEFAULT_SUCCESS_PERCENT, help="% of a phase's jobs that must succeed before the next opens."
    ),
    phase_soak: str = typer.Option("", help="Wait this long after a phase met its criterion (30m, 2h)."),
    halt_failure_rate: int | None = typer.Option(
        None, help="Halt when more than this % of a phase's finished jobs failed."
    ),
    halt_min_finished: int = typer.Option(
        DEFAULT_HALT_MIN_FINISHED, help="Finished jobs of a phase before the halt rule applies."
    ),
    window: list[str] = typer.Option(
        [], "--window", help="Maintenance window, e.g. 'Mon-Fri 18:00-06:00'; repeatable."
    ),
    window_zone: WindowZone = WINDOW_ZONE,
    max_downloads: int | None = typer.Option(
        None, help="At most this many computers download a payload at once (others wait for a slot)."
    ),
    retries: int = typer.Option(0, help="Retry a job its agent could not run (-9999) up to N times."),
    retry_delay: str = typer.Option("", help="Wait this long before each retry (90s, 10m, 2h)."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show the jobs that would be created; write nothing."
    ),
    as_json: bool = JSON,
) -> None:
    """Deploy packages to computers; prints the new container id (or the preview with --dry-run)."""
    with handled_errors():
        rollout = RolloutRules(
            steps=parse_phases(phases),
            success_percent=phase_success,
            soak_seconds=parse_duration(phase_soak, field="phase_soak"),
            halt_failure_rate=halt_failure_rate,
            halt_min_finished=halt_min_finished,
        )
        options = ContainerOptions(
            name=name,
            description=description,
            start=parse_time(start, "--start"),
            end=parse_time(end, "--end"),
            wol=wol,
            shutdown_waked=shutdown_waked,
            priority=priority,
            restart_timeout=restart_timeout,
            sequence_mode=sequence_mode,
            agent_ip_ranges=ip_ranges,
            rollout=rollout,
            pilot_group=pilot_group,
            windows=parse_windows(window, window_zone),
            max_downloads=parse_max_downloads(max_downloads, "--max-downloads"),
            retry=RetryPolicy(retries, parse_duration(retry_delay, field="retry_delay")),
        )
        targets = Targets(
            computers=computer, computer_groups=computer_group, packages=package, package_groups=package_group
        )
        request = DeploymentRequest(
            options=options, targets=targets, force=force, auto_uninstall=auto_uninstall
        )
        if dry_run:
            _print_plan(deployments.preview_deployment(runtime(), request), as_json)
            return
        container = deployments.create_deployment(runtime(), request, actor())
    typer.echo(container.id)


def _print_plan(plan: PlanPublic, as_json: bool) -> None:
    if as_json:
        print_json(plan)
        return
    for computer in plan.computers:
        wake = "  (will be woken)" if computer.wake else ""
        typer.echo(f"{computer.hostname}{wake}")
        for job in computer.jobs:
            reason = f"  -- {job.reason}" if job.reason else ""
            typer.echo(f"  {job.sequence}. {job.action} {job.package} [{job.state.text}]{reason}")
        for note in (computer.cannot_wake, computer.held_back, *computer.notes):
            if note:
                typer.echo(f"  note: {note}")
    if plan.windows is not None:
        typer.echo(
            f"windows: {'; '.join(plan.windows.windows)} ({plan.windows.zone.label}); "
            f"{plan.windows.server_time_computers} computer(s) report no time zone and read them in "
            f"server time ({plan.windows.server_zone})"
        )
    if plan.retries:
        typer.echo(f"retries: {plan.retries}")
    for phase in plan.phases:
        more = phase.computers - len(phase.hostnames)
        listed = ", ".join(phase.hostnames) + (f" and {more} more" if more else "")
        typer.echo(f"{phase.label}: {phase.computers} computer(s): {listed}")
    if plan.downloads is not None:
        typer.echo(f"downloads: {plan.downloads.sentence}")
    typer.echo(plan.summary.sentence)


def uninstall(
    computer: list[str] = typer.Option(..., "--computer", help="Computer (id or hostname); repeatable."),
    package: list[int] = typer.Option(
        ..., "--package", help="Installed package id; repeatable. Each is removed where it is installed."
    ),
    name: str | None = typer.Option(None, help="Container name (default: 'Uninstall <family>')."),
    description: str = typer.Option("", help="Shown in the console."),
    start: str | None = typer.Option(None, help="Start (ISO 8601; without zone: the server's); default now."),
    end: str | None = typer.Option(None, help="End (ISO 8601)."),
    priority: int = typer.Option(0, help=f"{PRIORITY_MIN}..{PRIORITY_MAX}; higher runs first."),
    restart_timeout: int = typer.Option(
        DEFAULT_RESTART_TIMEOUT, help="Minutes a logged-in user gets before restart; <0 = never."
    ),
    sequence_mode: SequenceMode = SEQUENCE_MODE,
    ip_ranges: str = typer.Option("", help="Agent IP ranges, e.g. '10.0.0.0/8,!10.9.0.0/16'."),
    wol: bool = typer.Option(False, "--wol", help="Wake offline computers at the start."),
    shutdown_waked: bool = typer.Option(False, "--shutdown-waked", help="Shut woken computers down after."),
) -> None:
    """Create uninstall jobs for packages installed on computers; prints the container id."""
    with handled_errors():
        options = ContainerOptions(
            name=name or "",
            description=description,
            start=parse_time(start, "--start"),
            end=parse_time(end, "--end"),
            wol=wol,
            shutdown_waked=shutdown_waked,
            priority=priority,
            restart_timeout=restart_timeout,
            sequence_mode=sequence_mode,
            agent_ip_ranges=ip_ranges,
        )
        request = UninstallRequest(options=options, computers=computer, package_ids=package)
        container = deployments.create_uninstall(runtime(), request, actor())
    typer.echo(container.id)
