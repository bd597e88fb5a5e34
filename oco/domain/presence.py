"""Whether a computer is online: it checked in recently."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from oco.domain.states import Vocabulary, spell


class Presence(Vocabulary, StrEnum):
    """Online, offline, or never seen at all (registered or pre-created, but no agent has checked in)."""

    ONLINE = "online"
    OFFLINE = "offline"
    NEVER_SEEN = "never-seen"


spell(
    Presence,
    {
        Presence.ONLINE: ("online", "Online"),
        Presence.OFFLINE: ("offline", "Offline"),
        Presence.NEVER_SEEN: ("never-seen", "Never seen"),
    },
)


def is_online(last_seen: datetime | None, now: datetime, offline_seconds: int) -> bool:
    """Online while the last check-in is less than `offline_seconds` old; never seen is offline."""
    return last_seen is not None and now - last_seen < timedelta(seconds=offline_seconds)


def presence(last_seen: datetime | None, now: datetime, offline_seconds: int) -> Presence:
    """Online, offline, or never seen, by the last check-in."""
    if last_seen is None:
        return Presence.NEVER_SEEN
    return Presence.ONLINE if is_online(last_seen, now, offline_seconds) else Presence.OFFLINE


def online_since(now: datetime, offline_seconds: int) -> datetime:
    """The oldest check-in that still counts as online (for a query over many computers)."""
    return now - timedelta(seconds=offline_seconds)
