"""`oco container …`: job containers (deployments) and their jobs."""

from __future__ import annotations

import typer

from oco.cli.common import JSON, actor, choice, handled_errors, print_fields, print_json, print_table, runtime
from oco.cli.deploy import parse_time
from oco.domain.phases import halt_text
from oco.domain.states import SequenceMode
from oco.services import containers, jobs, rollouts
from oco.services.containers import ContainerEdit

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
) -> None:
    """Change a job container's settings."""
    clear_end = end is not None and end.lower() == "none"
    with handled_errors():
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
        )
        containers.edit_container(runtime(), container_id, edit, actor())
    typer.echo(f"updated job container {container_id}")


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
