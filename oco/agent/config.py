"""The agent's configuration file (TOML), written atomically with mode 0600 because it holds keys."""

from __future__ import annotations

import os
import socket
import tempfile
import tomllib
import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_INTERVAL_S = 60
DEFAULT_JOB_TIMEOUT_S = 3600
PRIVATE_FILE_MODE = 0o600


class AgentConfigError(Exception):
    """The configuration file is missing, unreadable or holds a bad value."""


@dataclass(frozen=True)
class AgentConfig:
    """Everything `oco agent` needs; `agent_key`/`server_key` are learned from the server on first use."""

    server_url: str
    registration_key: str = ""
    agent_key: str = ""
    server_key: str = ""
    hostname: str = ""
    uid: str = ""
    state_dir: str = "/var/lib/oco-agent"
    query_interval: int = DEFAULT_INTERVAL_S
    job_timeout: int = DEFAULT_JOB_TIMEOUT_S
    power_backend: str = "system"
    """"system" powers the computer off for real; "record" only writes power_actions.jsonl (tests)."""
    recorded_users: list[str] = field(default_factory=list)
    """With the "record" backend: the users it reports as logged in."""
    post_action_minute_seconds: float = 60.0
    """How long a "minute" of the restart timeout lasts; tests shorten it."""
    source_address: str = ""
    """Local address to send from (e.g. 127.0.0.2 in tests); empty: chosen by the system."""
    verify_tls: bool = True

    @property
    def effective_hostname(self) -> str:
        """The hostname sent to the server: configured, else the system's, without the domain part."""
        return (self.hostname or socket.gethostname()).split(".", 1)[0]

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    @property
    def endpoint(self) -> str:
        return self.server_url.rstrip("/") + "/api-agent.php"


def load_config(path: Path) -> AgentConfig:
    """Read the configuration; unknown keys and wrong types are errors naming the key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AgentConfigError(f"configuration file {str(path)!r} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AgentConfigError(f"configuration file {str(path)!r}: {exc}") from None
    known = {f.name: f for f in fields(AgentConfig)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise AgentConfigError(f"configuration file {str(path)!r}: unknown setting {unknown[0]!r}")
    if not data.get("server_url"):
        raise AgentConfigError(f"configuration file {str(path)!r}: 'server_url' is required")
    defaults = AgentConfig(server_url="x")
    for key, value in data.items():
        expected = type(getattr(defaults, key))
        if expected is float and isinstance(value, int):
            continue
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise AgentConfigError(f"setting {key!r} must be of type {expected.__name__}")
    config = AgentConfig(**data)
    if not config.uid:
        config = replace(config, uid=str(uuid.uuid4()))
    return config


def save_config(path: Path, config: AgentConfig) -> None:
    """Write the configuration atomically (temporary file + rename) with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{key} = {_toml_value(value)}\n" for key, value in asdict(config).items())
    write_private(path, text.encode())


def write_private(path: Path, content: bytes) -> None:
    """Replace `path` with `content` in one step, readable by its owner only."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
