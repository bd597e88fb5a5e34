"""`oco agent …`: run the agent (the default), or enroll it (write its configuration).

The main CLI has this as `oco agent` (`oco.cli.COMMANDS`); `python -m oco.agent` runs it alone.
"""

from __future__ import annotations

from pathlib import Path

import typer

from oco.agent.config import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_INTERVAL_S,
    DEFAULT_JOB_TIMEOUT_S,
    DEFAULT_STATE_DIR,
    EXIT_CONFIG_ERROR,
    AgentConfig,
    AgentConfigError,
    change_publishers,
    enroll,
    load_config,
)
from oco.agent.tls import TlsTrust, TlsTrustError, enrollment_trust

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
    from oco.agent.loop import run_agent  # not for `oco --help` and the admin commands: httpx and more

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
    trusted_publisher: list[str] | None = typer.Option(
        None,
        "--trusted-publisher",
        help="Publisher public key (ed25519:…) whose signed packages alone may run; repeatable.",
    ),
    revoked_publisher: list[str] | None = typer.Option(
        None, "--revoked-publisher", help="Key id whose signatures are refused; repeatable."
    ),
    source_address: str | None = typer.Option(
        None, "--source-address", help="Local address to send from (default: chosen by the system)."
    ),
    power_backend: str | None = typer.Option(
        None,
        "--power-backend",
        help="'system' (really restart/shut down) or 'record' (only write them down).",
    ),
    recorded_user: list[str] | None = typer.Option(
        None,
        "--recorded-user",
        help="With --power-backend record: a user it reports as logged in; repeatable.",
    ),
    post_action_minute_seconds: float | None = typer.Option(
        None, "--post-action-minute-seconds", help="How long a minute of the restart timeout lasts."
    ),
    ca_file: str = typer.Option(
        "", "--ca-file", help="https: PEM file of the CA the server's certificate must chain to."
    ),
    tls_fingerprint: str = typer.Option(
        "",
        "--tls-fingerprint",
        help="https: pin this SHA-256 certificate fingerprint (default: fetched and pinned at enrollment,"
        " unless the system's CAs verify the certificate).",
    ),
) -> None:
    """Write the agent's configuration (mode 0600); its keys are learned at the first check-in."""
    try:
        tls = _tls_trust(config, server, ca_file, tls_fingerprint)
        enroll(
            config,
            server,
            registration_key,
            state_dir,
            hostname,
            query_interval,
            job_timeout,
            trusted_publishers=trusted_publisher or None,
            revoked_publishers=revoked_publisher or None,
            tls=tls,
            source_address=source_address,
            power_backend=power_backend,
            recorded_users=recorded_user or None,
            post_action_minute_seconds=post_action_minute_seconds,
        )
    except (AgentConfigError, TlsTrustError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG_ERROR) from None
    if tls is not None and tls.note:
        typer.echo(tls.note)
    typer.echo(f"wrote {config}")


def _tls_trust(config: Path, server: str, ca_file: str, fingerprint: str) -> TlsTrust | None:
    """How the server's certificate will be trusted; None keeps an earlier enrollment's (same server,
    nothing new given), so enrolling again never replaces a pin behind the admin's back."""
    if not ca_file and not fingerprint:
        try:
            current = load_config(config)
        except AgentConfigError:
            current = None
        if current is not None and current.server_url == server:
            return None
    return enrollment_trust(server, ca_file, fingerprint)


publisher_app = typer.Typer(help="The package publishers this agent trusts.", no_args_is_help=True)
agent_app.add_typer(publisher_app, name="publisher")
CONFIG_OPTION = typer.Option(DEFAULT_CONFIG_PATH, "--config", help="Agent configuration (TOML).")


@publisher_app.command("trust")
def trust_command(
    public_key: str = typer.Argument(..., help="The publisher's public key, ed25519:…"),
    config: Path = CONFIG_OPTION,
) -> None:
    """Trust one more publisher key (e.g. a new key during a rotation, next to the old one)."""
    _change(config, trust=public_key)


@publisher_app.command("revoke")
def revoke_command(
    key_id: str = typer.Argument(..., help="The key id (or public key) to refuse from now on."),
    config: Path = CONFIG_OPTION,
) -> None:
    """Refuse every package signed with this key, even while it is still listed as trusted."""
    _change(config, revoke=key_id)


@publisher_app.command("list")
def list_command(config: Path = CONFIG_OPTION) -> None:
    """Show the trusted keys (with their ids) and the revoked key ids."""
    try:
        current = load_config(config)
    except AgentConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG_ERROR) from None
    _print_publishers(current)


def _change(config: Path, trust: str = "", revoke: str = "") -> None:
    try:
        changed = change_publishers(config, trust=trust, revoke=revoke)
    except AgentConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG_ERROR) from None
    _print_publishers(changed)
    typer.echo(f"wrote {config}; the running agent applies it at its next start")


def _print_publishers(config: AgentConfig) -> None:
    policy = config.trust
    if not policy.pins:
        typer.echo("no trusted publishers: packages need no signature")
    for key in policy.trusted:
        state = "revoked" if key.key_id in policy.revoked else "trusted"
        typer.echo(f"{state}  {key.key_id}  {key.text}")
    for key_id in sorted(policy.revoked - {key.key_id for key in policy.trusted}):
        typer.echo(f"revoked  {key_id}")
