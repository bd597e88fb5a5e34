"""The login history of a computer: what each inventory reports is added to what was stored.

An agent reports the logins since the `logins-since` the server sent it (the newest stored one), so each
report is a delta: kept entries stay, new ones are added, the same login reported twice is kept once, and
the history is capped (newest kept) and aged.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

LOGIN_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
"""How OCO agents write a login's time (UTC), and how `logins-since` is sent."""
EPOCH_TEXT = "1970-01-01 00:00:00"


def login_time(entry: dict[str, Any]) -> datetime | None:
    """When a reported login happened (its `timestamp`, UTC), or None if it does not say so readably."""
    value = entry.get("timestamp")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def merge_logins(
    stored: Iterable[Any], reported: Iterable[Any], now: datetime, max_entries: int, max_age: timedelta
) -> list[dict[str, Any]]:
    """The history after a report: stored and reported logins, each once, newest first, at most
    `max_entries`, none older than `max_age` (nor any whose time cannot be read)."""
    oldest = now - max_age
    seen: dict[tuple[str, str, datetime], dict[str, Any]] = {}
    for entry in [*stored, *reported]:
        if not isinstance(entry, dict):
            continue
        moment = login_time(entry)
        if moment is None or moment < oldest:
            continue
        identity = (str(entry.get("username", "")), str(entry.get("console", "")), moment)
        seen.setdefault(identity, {**entry, "timestamp": moment.strftime(LOGIN_TIME_FORMAT)})
    newest_first = sorted(seen.items(), key=lambda item: (item[0][2], item[0][0], item[0][1]), reverse=True)
    return [entry for _identity, entry in newest_first[:max_entries]]


def newest_login(history: Iterable[dict[str, Any]]) -> datetime | None:
    """The time of the newest login of a history, None if it holds none."""
    times = [moment for moment in map(login_time, history) if moment is not None]
    return max(times, default=None)


def logins_since(newest: datetime | None) -> str:
    """The `logins-since` of a hello answer: the newest stored login's time, or the epoch."""
    return EPOCH_TEXT if newest is None else newest.astimezone(UTC).strftime(LOGIN_TIME_FORMAT)
