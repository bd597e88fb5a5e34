"""The agent registration key: configured, or generated on first start and kept in the database.

An unmodified OCO agent keeps the key it registers with in its ini file as `agent-key`, and later
rewrites that line in place with the agent key the server issues, without truncating the file: a
registration key longer than the issued keys leaves bytes of itself behind and the agent's next start
fails to parse its ini. So a generated registration key has exactly the issued keys' length, and a
longer configured one is warned about (docs/configuration.md).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from oco.db.models import ServerSetting
from oco.errors import Conflict
from oco.services.agents import KEY_BYTES, issued_key_length
from oco.services.runtime import Runtime

REGISTRATION_KEY_SETTING = "agent_registration_key"
log = logging.getLogger("oco.server")


@dataclass(frozen=True, slots=True)
class RegistrationKey:
    """The registration key in effect, and where it comes from: `settings` or `database` (generated)."""

    value: str
    source: str

    @property
    def too_long(self) -> bool:
        """Longer than the keys the server issues: an OCO agent's ini would be left corrupt."""
        return len(self.value) > issued_key_length()


def registration_key(rt: Runtime) -> RegistrationKey | None:
    """The key in effect without creating one: the configured one, else the one kept in the database."""
    if rt.settings.agent_registration_key:
        return RegistrationKey(rt.settings.agent_registration_key, "settings")
    with rt.reading() as session:
        stored = session.scalar(
            select(ServerSetting.value).where(ServerSetting.name == REGISTRATION_KEY_SETTING)
        )
    return RegistrationKey(stored, "database") if stored else None


def ensure_registration_key(rt: Runtime) -> RegistrationKey:
    """The key in effect; without a configured one, the one generated on the first start (kept in the
    database, so every server process and command of the installation uses the same)."""
    existing = registration_key(rt)
    if existing is not None:
        return existing
    generated = secrets.token_urlsafe(KEY_BYTES)
    try:
        with rt.transaction() as session:
            session.add(ServerSetting(name=REGISTRATION_KEY_SETTING, value=generated))
    except Conflict:  # another process generated it first
        pass
    stored = registration_key(rt)
    assert stored is not None
    return stored


def adopt_registration_key(rt: Runtime) -> RegistrationKey:
    """Make the key in effect the runtime's `agent_registration_key` (the server does so at start),
    warning when it is longer than the keys the server issues."""
    key = ensure_registration_key(rt)
    if key.too_long:
        log.warning(
            "the agent registration key is %d characters long, longer than the %d of the keys this server "
            "issues: an OCO agent rewrites its ini in place without truncating it, so its next start would "
            "fail (ParsingError). Use a key of at most %d characters (docs/configuration.md).",
            len(key.value),
            issued_key_length(),
            issued_key_length(),
        )
    if key.value != rt.settings.agent_registration_key:
        rt.settings = rt.settings.model_copy(update={"agent_registration_key": key.value})
    return key
