"""Server settings: `OCO_*` environment variables over an optional TOML file, one object passed down.

Precedence (highest first): explicit keyword arguments, environment variables, the TOML file, defaults.
Every field is documented in docs/configuration.md.
"""

from __future__ import annotations

import os
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_ENV = "OCO_CONFIG"
DEFAULT_DATA_DIR = Path("var")


class ConfigError(Exception):
    """The configuration file or an environment variable holds an invalid value."""


class Settings(BaseSettings):
    """Everything the server and the admin commands need to know about their environment."""

    model_config = SettingsConfigDict(env_prefix="OCO_", extra="forbid", frozen=True)

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_DATA_DIR / 'oco.sqlite3'}",
        description="SQLAlchemy URL: sqlite:///path, postgresql+psycopg://…, mysql+pymysql://…",
    )
    depot_path: Path = Field(default=DEFAULT_DATA_DIR / "depot", description="Where payloads are stored.")
    depot_reserve_bytes: int = Field(
        default=1024**3,
        ge=0,
        description="Free space an upload must leave on the depot's file system (else 507).",
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
            "(docs/architecture.md). Accepted so settings files that set it still load."
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
    rollout_webhook_url: str = Field(
        default="",
        description="Where phased rollouts POST their events (phase opened, halted…) as JSON; empty: none.",
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

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("wol_addresses", "trusted_proxies", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

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
        config_file = os.environ.get(CONFIG_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


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
