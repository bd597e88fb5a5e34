"""`oco agent …`: run the agent, or enroll it (write its configuration)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from pathlib import Path

import typer

from oco.agent.client import ProtocolError, ServerUnreachable
from oco.agent.config import AgentConfig, AgentConfigError, load_config, save_config
from oco.agent.loop import Agent, install_signal_handlers

DEFAULT_CONFIG = Path("/etc/oco-agent.toml")
agent_app = typer.Typer(help="The managed-computer agent.", invoke_without_command=True)


@agent_app.callback()
def run(
    ctx: typer.Context,
    config: Path = typer.Option(DEFAULT_CONFIG, "--config", help="Agent configuration (TOML)."),
    once: bool = typer.Option(False, "--once", help="Check in once, run the jobs, exit."),
) -> None:
    """Run the agent: poll the server, run jobs, report."""
    if ctx.invoked_subcommand is not None:
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        agent = Agent(config)
    except AgentConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    install_signal_handlers(agent.stop)
    if once:
        try:
            agent.run_once()
        except (ServerUnreachable, ProtocolError) as exc:
            typer.echo(f"error: check-in failed: {exc}", err=True)
            raise typer.Exit(1) from None
        finally:
            agent.client.close()
        return
    raise typer.Exit(agent.run_forever())


@agent_app.command("enroll")
def enroll_command(
    config: Path = typer.Option(DEFAULT_CONFIG, "--config", help="Where to write the configuration."),
    server: str = typer.Option(..., help="Server URL, e.g. https://oco.example.org"),
    registration_key: str = typer.Option(..., help="The server's agent registration key."),
    state_dir: Path = typer.Option(Path("/var/lib/oco-agent"), help="Agent state directory."),
    hostname: str = typer.Option("", help="Hostname to report (default: the system's)."),
    query_interval: int = typer.Option(60, help="Seconds between check-ins."),
    job_timeout: int = typer.Option(3600, help="Seconds a procedure may run before it is killed."),
) -> None:
    """Write the agent's configuration (keys are learned at the first check-in)."""
    enroll(config, server, registration_key, state_dir, hostname, query_interval, job_timeout)
    typer.echo(f"wrote {config}")


def enroll(
    config_path: Path,
    server_url: str,
    registration_key: str,
    state_dir: Path,
    hostname: str = "",
    query_interval: int = 60,
    job_timeout: int = 3600,
) -> AgentConfig:
    """Create (or update) a configuration; existing keys are kept."""
    try:
        current = load_config(config_path)
    except AgentConfigError:
        current = AgentConfig(server_url=server_url)
    config = replace(
        current,
        server_url=server_url,
        registration_key=registration_key,
        state_dir=str(state_dir),
        hostname=hostname or current.hostname,
        query_interval=query_interval,
        job_timeout=job_timeout,
    )
    save_config(config_path, load_or_fill_uid(config))
    return config


def load_or_fill_uid(config: AgentConfig) -> AgentConfig:
    return config if config.uid else replace(config, uid=str(uuid.uuid4()))
