"""`oco container …`: job containers (deployments) and their jobs."""

from __future__ import annotations

import typer

from oco.cli.common import (
    JSON,
    actor,
    choice,
    fail,
    handled_errors,
    print_fields,
    print_json,
    print_table,
    runtime,
    shown_time,
)
from oco.cli.deploy import parse_time
from oco.domain.phases import RolloutEdit, halt_text, parse_duration, parse_phases
from oco.domain.states import SequenceMode
from oco.domain.windows import WindowZone, parse_windows
from oco.services import containers, jobs, rollouts
from oco.services.containers import ContainerEdit
from oco.services.views import ContainerPublic

app = typer.Typer(help="Job containers (deployments) and their jobs.", no_args_is_help=True)


@app.command("list")
def container_list(as_json: bool = JSON) -> None:
    """Job containers with status and progress."""
    with handled_errors():
        rows = containers.list_containers(runtime())
    if as_json:
        print_json(rows)
    else:
        print_table(rows, ["id", "name", "status", "progress", "priority", "start", "end", "author"])


@app.command("show")
def container_show(container_id: int, as_json: bool = JSON) -> None:
    """A job container with every job: state, return code, output tail."""
    with handled_errors():
        view = containers.container_detail(runtime(), container_id)
    if as_json:
        print_json(view)
        return
    print_fields(view)
    for job in view.jobs:
        code = "-" if job.return_code is None else job.return_code
        typer.echo(
            f"  [{job.id}] {job.computer} {job.sequence}. {job.action} {job.package}: "
            f"{job.state.text} (code {code})"
        )
        for line in job.message.strip().splitlines()[-3:]:
            typer.echo(f"      {line}")
        if job.not_before is not None:
            typer.echo(f"      retry {job.attempt - 1} of {view.retries} at {shown_time(job.not_before)}")
        for attempt in job.attempts:
            code = "-" if attempt.return_code is None else attempt.return_code
            finished = shown_time(attempt.finished)
            last = attempt.message.strip().splitlines()[-1:] or [""]
            outcome = f"{attempt.state.text} (code {code}) at {finished}"
            typer.echo(f"      attempt {attempt.attempt}: {outcome}: {last[0]}")
        if job.attempts:
            typer.echo(f"      attempt {job.attempt}: {job.state.text}")


@app.command("edit")
def container_edit(
    container_id: int,
    name: str | None = typer.Option(None),
    enabled: bool | None = typer.Option(None, "--enable/--disable"),
    start: str | None = typer.Option(None),
    end: str | None = typer.Option(None, help="New end; 'none' removes it."),
    priority: int | None = typer.Option(None),
    restart_timeout: int | None = typer.Option(None),
    sequence_mode: SequenceMode | None = choice(SequenceMode, None),
    ip_ranges: str | None = typer.Option(None),
    notes: str | None = typer.Option(None),
    description: str | None = typer.Option(None),
    wol: bool | None = typer.Option(None, "--wol/--no-wol", help="Wake offline computers at the start."),
    shutdown_waked: bool | None = typer.Option(
        None, "--shutdown-waked/--no-shutdown-waked", help="Shut woken computers down after."
    ),
    max_downloads: int | None = typer.Option(
        None, help="At most this many computers download a payload at once; 0 removes the limit."
    ),
    retries: int | None = typer.Option(
        None, help="Retry a job its agent could not run (-9999) up to N times."
    ),
    retry_delay: str | None = typer.Option(None, help="Wait this long before each retry (90s, 10m, 2h)."),
    phases: str | None = typer.Option(
        None, help="New phases plan ('1%,10%,50%,100%'); waiting jobs take their phase in it."
    ),
    phase_success: int | None = typer.Option(None, help="% of a phase's jobs that must succeed."),
    phase_soak: str | None = typer.Option(None, help="Wait this long after a phase met its criterion."),
    halt_failure_rate: str | None = typer.Option(
        None, help="Halt when more than this % of a phase's finished jobs failed; 'none' removes the rule."
    ),
    halt_min_finished: int | None = typer.Option(None, help="Finished jobs of a phase before it halts."),
    window: list[str] = typer.Option(
        [],
        "--window",
        help="New maintenance windows ('Mon-Fri 18:00-06:00'); repeatable; 'none' removes them.",
    ),
    window_zone: WindowZone | None = choice(WindowZone, None, help="Whose clock the windows are read on."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what the edit would do; save nothing."),
) -> None:
    """Change a job container's settings, its retries, phases plan and maintenance windows."""
    clear_end = end is not None and end.lower() == "none"
    clear_windows = [entry.lower() for entry in window] == ["none"]
    clear_halt = halt_failure_rate is not None and halt_failure_rate.lower() == "none"
    with handled_errors():
        rollout = RolloutEdit(
            steps=None if phases is None else parse_phases(phases),
            success_percent=phase_success,
            soak_seconds=None if phase_soak is None else parse_duration(phase_soak, field="phase_soak"),
            halt_failure_rate=None
            if halt_failure_rate is None or clear_halt
            else _percent(halt_failure_rate),
            clear_halt=clear_halt,
            halt_min_finished=halt_min_finished,
        )
        edit = ContainerEdit(
            name=name,
            description=description,
            notes=notes,
            enabled=enabled,
            start=parse_time(start, "--start"),
            end=None if clear_end else parse_time(end, "--end"),
            clear_end=clear_end,
            priority=priority,
            restart_timeout=restart_timeout,
            sequence_mode=sequence_mode,
            agent_ip_ranges=ip_ranges,
            wol=wol,
            shutdown_waked=shutdown_waked,
            max_downloads=max_downloads,
            retries=retries,
            retry_delay_seconds=None
            if retry_delay is None
            else parse_duration(retry_delay, field="retry_delay"),
            rollout=rollout,
            windows=None if clear_windows else parse_windows(window, window_zone or WindowZone.COMPUTER),
            clear_windows=clear_windows,
            window_zone=window_zone,
        )
        view = containers.edit_container(runtime(), container_id, edit, actor(), dry_run=dry_run)
    typer.echo(f"{'would update' if dry_run else 'updated'} job container {container_id}")
    _print_plan(view)


def _percent(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        fail(f"--halt-failure-rate {text!r} must be a percentage 0..100 or 'none'")


def _print_plan(view: ContainerPublic) -> None:
    """What the container now does: retries, windows, phases."""
    if view.retries:
        typer.echo(f"retries: {view.retries}, {view.retry_delay or 'at once'} apart")
    if view.windows and view.window_zone is not None:
        typer.echo(f"windows: {'; '.join(view.windows)} ({view.window_zone.label})")
    if view.rollout is not None:
        typer.echo(f"phases: {view.rollout.phases or 'all'}, now in phase {view.rollout.current_phase}")
        for phase in view.rollout.phase_list:
            typer.echo(
                f"  {phase.label}: {phase.status}, {phase.computers} computer(s), {phase.pending} pending"
            )


@app.command("renew")
def container_renew(
    container_id: int,
    new_container: bool = typer.Option(
        False, "--new-container", help="Move the failed jobs to a new container."
    ),
) -> None:
    """Run the failed jobs again; prints the id of the container holding them."""
    with handled_errors():
        target = containers.renew_failed(runtime(), container_id, actor(), into_new_container=new_container)
    typer.echo(target.id)


@app.command("rollout")
def container_rollout(container_id: int, as_json: bool = JSON) -> None:
    """A phased rollout: where it stands, why it halted, each phase's counts."""
    with handled_errors():
        view = rollouts.container_summary(runtime(), container_id)
    if as_json:
        print_json(view)
        return
    rollout = view.rollout
    if rollout is None:
        typer.echo(f"job container {container_id} is not a phased rollout")
        return
    typer.echo(f"{view.name}: phase {rollout.current_phase} of {rollout.phase_count}")
    if rollout.halted is not None:
        typer.echo(f"HALTED by {rollout.halted_by}: {halt_text(rollout.halt_details)}")
    for phase in rollout.phase_list:
        typer.echo(
            f"  {phase.label}: {phase.status}, {phase.computers} computer(s), "
            f"{phase.succeeded} succeeded, {phase.failed} failed, {phase.pending} pending"
        )


@app.command("halt")
def container_halt(container_id: int) -> None:
    """Halt a phased rollout: nothing more is handed out until it is resumed."""
    with handled_errors():
        rollouts.halt(runtime(), container_id, actor())
    typer.echo(f"halted the rollout of job container {container_id}")


@app.command("resume")
def container_resume(
    container_id: int,
    reopen: bool = typer.Option(False, "--reopen", help="Run the failed jobs of the halted phase again."),
) -> None:
    """Resume a halted rollout where it stopped."""
    with handled_errors():
        rollouts.resume(runtime(), container_id, actor(), reopen=reopen)
    typer.echo(f"resumed the rollout of job container {container_id}")


@app.command("cancel")
def container_cancel(container_id: int) -> None:
    """Cancel a phased rollout: its waiting jobs expire; started ones finish."""
    with handled_errors():
        rollouts.cancel(runtime(), container_id, actor())
    typer.echo(f"canceled the rollout of job container {container_id}")


@app.command("delete")
def container_delete(container_id: int) -> None:
    """Delete a job container and its jobs."""
    with handled_errors():
        containers.delete_container(runtime(), container_id, actor())
    typer.echo(f"deleted job container {container_id}")


@app.command("delete-job")
def container_delete_job(job_id: int) -> None:
    """Delete one job."""
    with handled_errors():
        jobs.delete_job(runtime(), job_id, actor())
    typer.echo(f"deleted job {job_id}")
