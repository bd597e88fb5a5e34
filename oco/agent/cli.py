"""`oco agent …`: run the agent (the default), or enroll it (write its configuration).

The main CLI mounts this with `app.add_typer(agent_app, name="agent")`; `python -m oco.agent` runs it alone.
"""

from __future__ import annotations

from pathlib import Path

import typer

from oco.agent.config import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_INTERVAL_S,
    DEFAULT_JOB_TIMEOUT_S,
    DEFAULT_STATE_DIR,
    AgentConfigError,
    enroll,
)
from oco.agent.loop import EXIT_CONFIG_ERROR, run_agent

agent_app = typer.Typer(help="The managed-computer agent.", invoke_without_command=True)


@agent_app.callback()
def run(
    ctx: typer.Context,
    config: Path = typer.Option(DEFAULT_CONFIG_PATH, "--config", help="Agent configuration (TOML)."),
    once: bool = typer.Option(False, "--once", help="Check in once, run the jobs handed out, exit."),
) -> None:
    """Run the agent: poll the server, run jobs, report (until SIGTERM, or once with --once)."""
    if ctx.invoked_subcommand is not None:
        return
    status = run_agent(config, once)
    if status:
        raise typer.Exit(status)


@agent_app.command("enroll")
def enroll_command(
    config: Path = typer.Option(DEFAULT_CONFIG_PATH, "--config", help="Where to write the configuration."),
    server: str = typer.Option(..., "--server", help="Server URL, e.g. https://oco.example.org"),
    registration_key: str = typer.Option(
        ..., "--registration-key", help="The server's agent registration key."
    ),
    state_dir: Path = typer.Option(Path(DEFAULT_STATE_DIR), "--state-dir", help="Agent state directory."),
    hostname: str = typer.Option("", "--hostname", help="Hostname to report (default: the system's)."),
    query_interval: int = typer.Option(
        DEFAULT_INTERVAL_S, "--query-interval", help="Seconds between check-ins."
    ),
    job_timeout: int = typer.Option(
        DEFAULT_JOB_TIMEOUT_S, "--job-timeout", help="Seconds a procedure may run before it is killed."
    ),
) -> None:
    """Write the agent's configuration (mode 0600); its keys are learned at the first check-in."""
    try:
        enroll(config, server, registration_key, state_dir, hostname, query_interval, job_timeout)
    except AgentConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG_ERROR) from None
    typer.echo(f"wrote {config}")
