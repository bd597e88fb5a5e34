"""`oco settings show`, and what `oco server` prints at start: its data, how to connect a computer."""

from __future__ import annotations

import socket
from pathlib import Path

import typer

from oco.cli.common import JSON, print_json, runtime
from oco.config import Settings, setting_sources
from oco.domain.depots import DepotRedirect
from oco.errors import OcoError
from oco.services import registration
from oco.services.registration import RegistrationKey

app = typer.Typer(help="The settings in effect.", no_args_is_help=True)


@app.command("show")
def show(as_json: bool = JSON) -> None:
    """Print every setting in effect and where its value came from (default, file, environment)."""
    rt = runtime()
    sources = setting_sources(rt.settings)
    values = rt.settings.model_dump(mode="json")
    try:
        key = registration.registration_key(rt)
    except OcoError:  # no database yet: the server makes it, and the key with it, at its first start
        key = None
    if key is not None and key.source == "database":
        values["agent_registration_key"] = key.value
        sources["agent_registration_key"] = "generated at the first start (kept in the database)"
    elif key is None:
        sources["agent_registration_key"] = "default: generated at the server's first start"
    rows = [{"setting": name, "value": values[name], "source": sources[name]} for name in values]
    if as_json:
        print_json(rows)
        return
    width = max(len(name) for name in values)
    for row in rows:
        typer.echo(f"{row['setting']:<{width}}  {_shown(row['value'])}  ({row['source']})")


def _shown(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "[]"
    if value is None:
        return "(none)"
    return str(value) if value != "" else '""'


def server_url(host: str, port: int, *, https: bool = False) -> str:
    """The address agents and browsers reach the server at: its listen address, or this host's name
    when it listens on every address."""
    name = socket.getfqdn() if host in ("0.0.0.0", "::", "") else host
    return f"{'https' if https else 'http'}://{f'[{name}]' if ':' in name else name}:{port}"


_DOWNLOADS = {
    DepotRedirect.NEVER: "downloads streamed by the server",
    DepotRedirect.OURS: "downloads of OCO Deploy agents redirected to signed URLs, streamed to OCO agents",
    DepotRedirect.ALWAYS: "downloads redirected to signed URLs",
}


def depot_description(settings: Settings) -> str:
    """Where the payloads are, and how downloads reach the agents."""
    if not settings.depot_url:
        return str(settings.depot_path)
    store = settings.depot_s3_endpoint_url or "AWS S3"
    return f"{settings.depot_url} at {store} ({_DOWNLOADS[settings.depot_redirect]})"


def connect_instructions(settings: Settings, url: str, key: RegistrationKey) -> list[str]:
    """The lines `oco server` prints at start: data directory, console, and the two ways to connect
    a computer (our agent's enroll command, an OCO agent's ini)."""
    lines = [
        f"Data directory: {settings.data_dir}",
        f"Database: {settings.database_url}",
        f"Depot: {depot_description(settings)}",
        f"Console: {url}/   (agent API: {url}/api-agent.php)",
        "Connect a computer:",
        f"  - with the OCO Deploy agent:  oco agent enroll --server {url} --registration-key {key.value}",
        "  - with an OCO agent: in its oco-agent.ini",
        "      [agent]",
        f"      agent-key = {key.value}",
        "      [server]",
        f"      api-url = {url}/api-agent.php",
        "      server-key =",
    ]
    if not settings.self_registration:
        lines.append(
            "  Self-registration is off: add each computer first (oco computer add HOSTNAME), or set "
            f"self_registration = true in {Path(settings.data_dir) / 'oco.toml'}."
        )
    return lines
