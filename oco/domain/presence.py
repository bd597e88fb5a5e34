"""Whether a computer is online: it checked in recently."""

from __future__ import annotations

from datetime import datetime, timedelta


def is_online(last_seen: datetime | None, now: datetime, offline_seconds: int) -> bool:
    """Online while the last check-in is less than `offline_seconds` old; never seen is offline."""
    return last_seen is not None and now - last_seen < timedelta(seconds=offline_seconds)
