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

from oco.agent.tls import TlsTrust, TlsTrustError, check_ca_file, normalized_fingerprint
from oco.domain.errors import InvalidPublisherKey
from oco.domain.signing import TrustPolicy, parse_key_id, parse_public_key, trust_policy

EXIT_CONFIG_ERROR = 2
"""The agent's exit status for a configuration it cannot use."""

DEFAULT_CONFIG_PATH = Path("/etc/oco-agent.toml")
DEFAULT_STATE_DIR = "/var/lib/oco-agent"
DEFAULT_INTERVAL_S = 60
DEFAULT_JOB_TIMEOUT_S = 3600
SECONDS_PER_MINUTE = 60.0
PRIVATE_FILE_MODE = 0o600
API_PATH = "/api-agent.php"
POWER_BACKENDS = ("system", "record")


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
    state_dir: str = DEFAULT_STATE_DIR
    query_interval: int = DEFAULT_INTERVAL_S
    job_timeout: int = DEFAULT_JOB_TIMEOUT_S
    power_backend: str = "system"
    """"system" powers the computer off for real; "record" only writes power_actions.jsonl (tests)."""
    recorded_users: list[str] = field(default_factory=list)
    """With the "record" backend: the users it reports as logged in."""
    post_action_minute_seconds: float = SECONDS_PER_MINUTE
    """How long a "minute" of the restart timeout lasts; tests shorten it."""
    source_address: str = ""
    """Local address to send from (e.g. 127.0.0.2 in tests); empty: chosen by the system."""
    verify_tls: bool = True
    """False accepts any certificate of an https:// server (tests only: pin it or give a CA file instead)."""
    tls_ca_file: str = ""
    """PEM file of the CA(s) an https:// server's certificate must chain to (instead of the system's)."""
    tls_fingerprint: str = ""
    """SHA-256 fingerprint (AB:CD:…) of the one certificate an https:// server may present (a pin)."""
    trusted_publishers: list[str] = field(default_factory=list)
    """Publisher public keys (`ed25519:…`); when any is set, only jobs signed by one of them run."""
    revoked_publishers: list[str] = field(default_factory=list)
    """Key ids (or public keys) whose signatures are refused even when the key is still trusted."""

    @property
    def trust(self) -> TrustPolicy:
        """The publishers this agent pins (checked when the configuration is loaded)."""
        return trust_policy(self.trusted_publishers, self.revoked_publishers)

    @property
    def effective_hostname(self) -> str:
        """The hostname sent to the server: configured, else the system's, without the domain part."""
        return (self.hostname or socket.gethostname()).split(".", 1)[0]

    @property
    def state_path(self) -> Path:
        """The state directory (downloads, job directories, journal, protocol counters)."""
        return Path(self.state_dir)

    @property
    def endpoint(self) -> str:
        """The one URL of the agent protocol."""
        return self.server_url.rstrip("/") + API_PATH


def load_config(path: Path, *, persist_uid: bool = False) -> AgentConfig:
    """Read and check the configuration; unknown keys and wrong types are errors naming the key.

    A missing `uid` is generated; with `persist_uid` it is written back so that it stays the same.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AgentConfigError(f"configuration file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise AgentConfigError(f"configuration file {str(path)!r}: {exc}") from None
    _check(path, data)
    config = AgentConfig(**data)
    if not config.uid:
        config = replace(config, uid=str(uuid.uuid4()))
        if persist_uid:
            save_config(path, config)
    return config


def _check(path: Path, data: dict[str, Any]) -> None:
    known = {f.name for f in fields(AgentConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise AgentConfigError(f"configuration file {str(path)!r}: unknown setting {unknown[0]!r}")
    if not data.get("server_url"):
        raise AgentConfigError(f"configuration file {str(path)!r}: 'server_url' is required")
    defaults = AgentConfig(server_url="-")
    for key, value in data.items():
        expected = type(getattr(defaults, key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise AgentConfigError(f"setting {key!r} must be of type {expected.__name__}")
    if data.get("power_backend", "system") not in POWER_BACKENDS:
        raise AgentConfigError(f"setting 'power_backend' must be one of {', '.join(POWER_BACKENDS)}")
    for key in ("query_interval", "job_timeout"):
        if data.get(key, 1) <= 0:
            raise AgentConfigError(f"setting {key!r} must be positive, not {data[key]}")
    if data.get("post_action_minute_seconds", 0) < 0:
        raise AgentConfigError("setting 'post_action_minute_seconds' must not be negative")
    _check_publishers(data)
    _check_tls(data)


def _check_tls(data: dict[str, Any]) -> None:
    checks = (("tls_fingerprint", normalized_fingerprint), ("tls_ca_file", check_ca_file))
    for key, check in checks:
        if data.get(key):
            try:
                check(data[key])
            except TlsTrustError as exc:
                raise AgentConfigError(f"setting {key!r}: {exc}") from None


def _check_publishers(data: dict[str, Any]) -> None:
    for key in ("trusted_publishers", "revoked_publishers"):
        if not all(isinstance(item, str) for item in data.get(key, [])):
            raise AgentConfigError(f"setting {key!r} must be a list of texts")
    try:
        trust_policy(data.get("trusted_publishers", []), data.get("revoked_publishers", []))
    except InvalidPublisherKey as exc:
        raise AgentConfigError(f"setting {exc.field!r}: {exc.message}") from None


def save_config(path: Path, config: AgentConfig) -> None:
    """Write the configuration atomically (temporary file + rename) with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{key} = {_toml_value(value)}\n" for key, value in asdict(config).items())
    write_private(path, text.encode())


def enroll(
    config_path: Path,
    server_url: str,
    registration_key: str,
    state_dir: Path = Path(DEFAULT_STATE_DIR),
    hostname: str = "",
    query_interval: int = DEFAULT_INTERVAL_S,
    job_timeout: int = DEFAULT_JOB_TIMEOUT_S,
    trusted_publishers: list[str] | None = None,
    revoked_publishers: list[str] | None = None,
    tls: TlsTrust | None = None,
    **options: Any,
) -> None:
    """Create or update the configuration at `config_path`; keys already learned and the uid are kept.

    `trusted_publishers`/`revoked_publishers` replace the lists when given; None keeps them as they are,
    so enrolling again never drops a pin. `tls` (see `oco.agent.tls.enrollment_trust`) replaces how the
    server's certificate is trusted; None keeps it. `options` set other settings (`source_address`,
    `power_backend`, …); one that is None keeps its value. An existing configuration that cannot be read
    is refused, not replaced: it holds the keys this computer learned. Raises AgentConfigError for a bad
    value (nothing is written then).
    """
    if config_path.exists():
        try:
            current = load_config(config_path)
        except AgentConfigError as exc:
            raise AgentConfigError(
                f"{exc} — not replacing it, because it may hold the keys and uid this computer registered "
                "with (the server would refuse a new registration); correct it, or move it away to enroll "
                "afresh"
            ) from None
    else:
        current = AgentConfig(server_url=server_url, uid=str(uuid.uuid4()))
    known = {f.name for f in fields(AgentConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise AgentConfigError(f"unknown setting {unknown[0]!r}")
    current = replace(current, **{key: value for key, value in options.items() if value is not None})
    config = replace(
        current,
        server_url=server_url,
        registration_key=registration_key,
        state_dir=str(state_dir),
        hostname=hostname or current.hostname,
        query_interval=query_interval,
        job_timeout=job_timeout,
        trusted_publishers=_stripped(trusted_publishers, current.trusted_publishers),
        revoked_publishers=_stripped(revoked_publishers, current.revoked_publishers),
    )
    if tls is not None:
        config = replace(config, tls_ca_file=tls.ca_file, tls_fingerprint=tls.fingerprint)
    _check(config_path, asdict(config))
    save_config(config_path, config)


def _stripped(given: list[str] | None, current: list[str]) -> list[str]:
    return current if given is None else [item.strip() for item in given]


def change_publishers(config_path: Path, *, trust: str = "", revoke: str = "") -> AgentConfig:
    """Trust one more publisher key, or revoke a key id, in the configuration at `config_path`.

    A key already listed is not listed twice. Returns the new configuration; AgentConfigError for a bad
    key or configuration (nothing is written then).
    """
    config = load_config(config_path)
    trusted, revoked = list(config.trusted_publishers), list(config.revoked_publishers)
    try:
        if trust:
            key = parse_public_key(trust, field="trusted_publishers")
            if key.text not in {parse_public_key(text).text for text in trusted}:
                trusted.append(key.text)
        if revoke:
            key_id = parse_key_id(revoke, field="revoked_publishers")
            if key_id not in {parse_key_id(text) for text in revoked}:
                revoked.append(key_id)
    except InvalidPublisherKey as exc:
        raise AgentConfigError(f"setting {exc.field!r}: {exc.message}") from None
    config = replace(config, trusted_publishers=trusted, revoked_publishers=revoked)
    save_config(config_path, config)
    return config


def write_private(path: Path, content: bytes) -> None:
    """Replace `path` with `content` in one step (temporary file + os.replace), readable by its owner only."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        if hasattr(os, "fchmod"):  # POSIX; on Windows the ACL of the directory applies
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
    return '"' + "".join(_toml_char(c) for c in str(value)) + '"'


def _toml_char(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    if ord(char) < 0x20 or ord(char) == 0x7F:  # control characters must be escaped in TOML strings
        return f"\\u{ord(char):04x}"
    return char
