"""Server settings: `OCO_*` environment variables over an optional TOML file, one object passed down.

Precedence (highest first): explicit keyword arguments, environment variables, the TOML file given
(`--config` or `OCO_CONFIG`), the data directory's `oco.toml`, defaults. The data directory is found the
same way by every command — `OCO_DATA_DIR`, else `data_dir` of the given file, else the user's data
directory (`~/.local/share/oco` on Linux) — and is absolute, so the server and every admin command use
the same database and depot wherever they are started. Every field is documented in
docs/configuration.md.
"""

from __future__ import annotations

import os
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from oco.domain.depots import DepotRedirect, parse_s3_url
from oco.domain.slots import Limits, parse_network_limits
from oco.errors import ConfigError, DomainError

CONFIG_ENV = "OCO_CONFIG"
DATA_DIR_ENV = "OCO_DATA_DIR"
DATA_DIR_CONFIG = "oco.toml"
MIN_METRICS_TOKEN = 16
"""A settings file in the data directory, read by every command (below `--config` and the environment)."""


def default_data_dir() -> Path:
    """The user's data directory for OCO Deploy (`~/.local/share/oco` on Linux), absolute."""
    return platformdirs.user_data_path("oco").absolute()


def data_dir_of(config_file: Path | None = None) -> Path:
    """The data directory, as every command finds it: `OCO_DATA_DIR`, else `data_dir` of the settings
    file, else the default — made absolute (a relative one counts from the settings file's folder)."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser().absolute()
    file = config_file or _given_config_file()
    if file is not None and file.is_file():
        value = _read_toml(file).get("data_dir")
        if isinstance(value, str) and value:
            path = Path(value).expanduser()
            return (path if path.is_absolute() else file.parent / path).absolute()
    return default_data_dir()


def _given_config_file() -> Path | None:
    value = os.environ.get(CONFIG_ENV)
    return Path(value) if value else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {str(path)!r}: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"configuration file {str(path)!r}: {exc.strerror}") from exc


class Settings(BaseSettings):
    """Everything the server and the admin commands need to know about their environment."""

    model_config = SettingsConfigDict(env_prefix="OCO_", extra="forbid", frozen=True)

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the default database, the depot and the data directory's oco.toml live.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL: sqlite:///path, postgresql+psycopg://…, mysql+pymysql://… "
        "(default: SQLite in the data directory)",
    )
    depot_path: Path = Field(
        default=Path(), description="Where payloads are stored (default: data_dir/depot)."
    )
    depot_reserve_bytes: int = Field(
        default=1024**3,
        ge=0,
        description="Free space an upload must leave on the file system it is written to: the depot "
        "directory, or an object-store depot's spool (else 507).",
    )
    depot_url: str = Field(
        default="",
        description="s3://bucket/prefix: payloads in an S3-compatible object store (the `s3` extra); "
        "empty: in depot_path.",
    )
    depot_s3_endpoint_url: str = Field(
        default="", description="The object store's URL (MinIO, Ceph…); empty: AWS S3."
    )
    depot_s3_region: str = Field(default="", description="The bucket's region; empty: AWS's own lookup.")
    depot_max_bytes: int = Field(
        default=0, ge=0, description="What an object-store depot may hold in all (else 507); 0: no limit."
    )
    depot_redirect: DepotRedirect = Field(
        default=DepotRedirect.NEVER,
        description="Answer agents' downloads from an object-store depot with a redirect to a signed URL: "
        "never (the server streams), ours (agents that ask for it: OCO Deploy's), always (OCO agents too).",
    )
    depot_url_ttl_seconds: int = Field(
        default=300, ge=10, le=7 * 86400, description="How long a download's signed URL is valid."
    )
    agent_registration_key: str = Field(
        default="",
        description="Global key new agents sign their first request with (empty: nobody registers).",
    )
    self_registration: bool = Field(
        default=False, description="Create unknown computers that sign with the registration key."
    )
    computer_offline_seconds: int = Field(default=300, ge=1)
    inventory_interval_seconds: int = Field(default=6 * 3600, ge=0)
    login_history_max: int = Field(default=1000, ge=1, description="Logins kept per computer (newest).")
    login_history_days: int = Field(default=365, ge=1, description="Logins older than this are dropped.")
    wol_addresses: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["255.255.255.255"])
    wol_port: int = Field(default=9, ge=1, le=65535)
    wol_subnet_broadcasts: bool = Field(
        default=True, description="Also send to each computer's subnet broadcast address."
    )
    wol_shutdown_expiry_seconds: int = Field(default=300, ge=0)
    purge_succeeded_job_containers_after: int | None = Field(default=4 * 3600, ge=0)
    purge_failed_job_containers_after: int | None = Field(default=48 * 3600, ge=0)
    housekeeping_interval_seconds: int = Field(default=60, ge=1)
    checkin_flush_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description=(
            "No longer used: plain check-ins are confirmed in the database in batches as they come "
            "(docs/architecture.md). Still accepted, so settings that set it keep loading."
        ),
    )
    checkin_threads: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Threads reading plain check-ins from PostgreSQL or MariaDB (SQLite reads need none).",
    )
    agent_timestamp_max_ahead_seconds: float = Field(
        default=24 * 3600,
        gt=0,
        description="How far ahead of the server's clock an agent request's timestamp may be.",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    metrics_token: str = Field(
        default="",
        description="A bearer token that may read /metrics (give it to Prometheus); empty: only API tokens.",
    )
    rollout_webhook_url: str = Field(
        default="",
        description="Where phased rollouts POST their events (phase opened, halted…) as JSON; empty: none.",
    )
    max_concurrent_downloads: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="At most this many computers download a payload at once, server-wide (0 or unset: any).",
    )
    download_network_limits: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Per-network download limits: NETWORK=COUNT, comma-separated (10.1.0.0/16=5).",
    )
    download_slot_timeout_seconds: int = Field(
        default=1800,
        ge=10,
        le=7 * 86400,
        description="Seconds after which a download slot frees if its job did not move past downloading.",
    )
    time_zone: str = Field(default="UTC")
    session_max_age_seconds: int = Field(default=12 * 3600, ge=60)
    login_lockout_after: int = Field(
        default=5, ge=1, le=1000, description="The failed login (of an account or address) that locks first."
    )
    login_lockout_seconds: float = Field(
        default=5.0, ge=0, le=86400, description="The first lockout; each further failure doubles it."
    )
    login_lockout_max_seconds: float = Field(default=900.0, ge=0, le=7 * 86400)
    login_failures_forgotten_after_seconds: float = Field(
        default=3600.0, gt=0, le=30 * 86400, description="A failure this long after the last starts anew."
    )
    max_job_output_chars: int = Field(default=65536, ge=1024)
    max_request_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    tls_cert_file: Path | None = Field(
        default=None, description="PEM certificate (chain) `oco server` serves HTTPS with."
    )
    tls_key_file: Path | None = Field(default=None, description="The certificate's PEM private key.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    @model_validator(mode="after")
    def _in_data_dir(self) -> Settings:
        """Absolute paths: the data directory, and the database and depot inside it unless set."""
        data_dir = self.data_dir.expanduser()
        data_dir = data_dir if data_dir.is_absolute() else data_dir_of()
        object.__setattr__(self, "data_dir", data_dir)
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{data_dir / 'oco.sqlite3'}")
        if self.depot_path == Path():
            object.__setattr__(self, "depot_path", data_dir / "depot")
        object.__setattr__(self, "depot_path", self.depot_path.expanduser().absolute())
        return self

    @field_validator("depot_url")
    @classmethod
    def _object_store_url(cls, value: str) -> str:
        if value.strip():
            parse_s3_url(value)
        return value.strip()

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("download_network_limits", mode="before")
    @classmethod
    def _network_limits(cls, value: Any) -> Any:
        entries = _comma_list(value)
        if isinstance(entries, list):
            try:
                limits = parse_network_limits(str(entry) for entry in entries)
            except DomainError as exc:
                raise ValueError(str(exc)) from exc
            return [limit.text for limit in limits]
        return entries

    @field_validator("metrics_token")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if value and len(value) < MIN_METRICS_TOKEN:
            raise ValueError(f"must be empty or at least {MIN_METRICS_TOKEN} characters (a random secret)")
        return value

    @field_validator("wol_addresses", "trusted_proxies", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return _comma_list(value)

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @cached_property
    def download_limits(self) -> Limits:
        """The server-wide download limits (`oco.domain.slots`)."""
        return Limits(
            server=self.max_concurrent_downloads or None,
            networks=parse_network_limits(self.download_network_limits),
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        for file in settings_files():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=file))
        return tuple(sources)


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def settings_files() -> list[Path]:
    """The settings files in effect, highest precedence first: the one given (`--config`/`OCO_CONFIG`),
    then the data directory's `oco.toml` when it exists."""
    files = []
    given = _given_config_file()
    if given is not None:
        files.append(given)
    in_data_dir = data_dir_of(given) / DATA_DIR_CONFIG
    if in_data_dir.is_file() and (given is None or in_data_dir.resolve() != given.resolve()):
        files.append(in_data_dir)
    return files


def setting_sources(settings: Settings) -> dict[str, str]:
    """Where each setting's value came from: `environment (OCO_NAME)`, `file PATH`, or `default`."""
    files = [(file, _read_toml(file)) for file in settings_files()]
    sources = {}
    for name in type(settings).model_fields:
        variable = f"OCO_{name.upper()}"
        if variable in os.environ:
            sources[name] = f"environment ({variable})"
            continue
        file = next((path for path, values in files if name in values), None)
        sources[name] = f"file {file}" if file is not None else "default"
    return sources


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the settings; a `config_file` (TOML) sits below the environment, `overrides` above it."""
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"configuration file {str(config_file)!r} does not exist")
        os.environ[CONFIG_ENV] = str(config_file)
    try:
        return Settings(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(_first_error(exc)) from exc


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "settings"
        return f"setting {where!r}: {first.get('msg')}"
    return str(exc)
