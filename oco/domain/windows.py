"""Maintenance windows: when a container's waiting jobs may be handed out, in the computer's own time.

A window is `DAYS HH:MM-HH:MM`: `Mon-Fri 18:00-06:00`, `Sat,Sun 00:00-24:00`, `daily 22:00-04:00`.
DAYS are the days the window *opens* on — a range (`Fri-Mon` wraps the weekend: Fri, Sat, Sun, Mon), a
comma list, or `daily`; an end at or before the start closes on the next day (`18:00-06:00` on Friday runs
into Saturday morning). `00:00-24:00` is the whole day. Several windows may be given; a job is handed out
while any is open. A job that already started finishes whatever the window does.

Times are wall-clock times in one zone: the computer's (the zone its agent reports in its inventory — a
name such as Europe/Berlin or an offset such as +01:00; for an agent that reports none, the server's) or
the server's. Across a DST change a window keeps its wall-clock times: `01:00-04:00` on the night clocks
go forward is open two real hours, on the night they go back four; a window inside the skipped hour
(`02:00-03:00` on that night in Europe/Berlin) does not open that night.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone, tzinfo
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from oco.domain.errors import InvalidWindow
from oco.domain.states import Vocabulary, spell

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY = {name.lower(): number for number, name in enumerate(DAY_NAMES)}
_WINDOW = re.compile(
    r"(?P<days>[A-Za-z,\- ]+?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})", re.ASCII
)
_OFFSET = re.compile(r"(?:UTC|GMT)?\s*(?P<sign>[+-])(?P<hours>\d{1,2})(?::?(?P<minutes>\d{2}))?")
WINDOWS_MAX = 20
DAY = timedelta(days=1)


class WindowZone(Vocabulary, StrEnum):
    """Whose clock a container's windows are read on."""

    COMPUTER = "computer"
    SERVER = "server"


spell(
    WindowZone,
    {
        WindowZone.COMPUTER: ("computer", "computer time"),
        WindowZone.SERVER: ("server", "server time"),
    },
)


@dataclass(frozen=True, slots=True)
class Window:
    """Opens on `days` (0 = Monday) at `start` for `length` (up to one day)."""

    days: frozenset[int]
    start: timedelta
    length: timedelta

    @property
    def text(self) -> str:
        end = self.start + self.length
        end_text = "24:00" if end == DAY else _clock(end % DAY)
        return f"{_days_text(self.days)} {_clock(self.start)}-{end_text}"


@dataclass(frozen=True, slots=True)
class Windows:
    """A container's windows and whose clock they are read on."""

    windows: tuple[Window, ...]
    zone: WindowZone = WindowZone.COMPUTER

    @property
    def text(self) -> str:
        """The stored form: `computer|Mon-Fri 18:00-06:00;Sat 00:00-24:00`."""
        return f"{self.zone.text}|" + ";".join(window.text for window in self.windows)


def _clock(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _days_text(days: frozenset[int]) -> str:
    if len(days) == 7:
        return "daily"
    ordered = sorted(days)
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{DAY_NAMES[ordered[0]]}-{DAY_NAMES[ordered[-1]]}"
    return ",".join(DAY_NAMES[day] for day in ordered)


def _parse_time(text: str, entry: str, field: str, *, end: bool) -> timedelta:
    hours, minutes = (int(part) for part in text.split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not end)):
        raise InvalidWindow(f"window {entry!r}: {text} is not a time of day", field=field)
    return timedelta(hours=hours, minutes=minutes)


def _parse_days(text: str, entry: str, field: str) -> frozenset[int]:
    days: set[int] = set()
    for part in (p.strip().lower() for p in text.split(",")):
        if part in ("daily", "every day", "*"):
            days.update(range(7))
            continue
        first, _, last = (s.strip()[:3] for s in part.partition("-"))
        if first not in _DAY or (last and last not in _DAY):
            raise InvalidWindow(
                f"window {entry!r}: {part!r} is not a day or a range of days such as Mon-Fri", field=field
            )
        start = _DAY[first]
        stop = _DAY[last] if last else start
        days.update((start + n) % 7 for n in range((stop - start) % 7 + 1))
    return frozenset(days)


def parse_window(text: str, *, field: str = "windows") -> Window:
    """One window; InvalidWindow names what does not parse."""
    entry = " ".join(text.split())
    match = _WINDOW.fullmatch(entry)
    if match is None:
        raise InvalidWindow(
            f"window {entry!r} must be days and times, like 'Mon-Fri 18:00-06:00'", field=field
        )
    start = _parse_time(match["start"], entry, field, end=False)
    end = _parse_time(match["end"], entry, field, end=True)
    length = end - start if end > start else end + DAY - start
    return Window(_parse_days(match["days"], entry, field), start, length)


def parse_windows(
    texts: Sequence[str], zone: WindowZone = WindowZone.COMPUTER, *, field: str = "windows"
) -> Windows | None:
    """The windows of these entries (blank ones ignored); None when there are none."""
    windows = tuple(parse_window(text, field=field) for text in texts if text.strip())
    if len(windows) > WINDOWS_MAX:
        raise InvalidWindow(f"at most {WINDOWS_MAX} windows, not {len(windows)}", field=field)
    return Windows(windows, zone) if windows else None


@lru_cache(maxsize=1024)
def stored_windows(text: str) -> Windows | None:
    """The windows of their stored form (`Windows.text`); None for text that no longer parses — which
    then never opens, as a broken IP constraint admits nobody."""
    zone_text, _, entries = text.partition("|")
    try:
        return parse_windows(entries.split(";"), WindowZone.from_text(zone_text))
    except (InvalidWindow, ValueError):
        return None


def _open_at(windows: Sequence[Window], local: datetime) -> bool:
    wall = local.replace(tzinfo=None)
    for window in windows:
        for back in (0, 1):
            day = wall.date() - timedelta(days=back)
            if day.weekday() in window.days:
                opens = datetime.combine(day, time()) + window.start
                if opens <= wall < opens + window.length:
                    return True
    return False


def is_open(windows: Windows | None, now: datetime, zone: tzinfo) -> bool:
    """Whether a window is open at `now` (aware) on the wall clock of `zone` (no windows: always)."""
    if windows is None:
        return True
    return _open_at(windows.windows, now.astimezone(zone))


def next_opening(windows: Windows, now: datetime, zone: tzinfo) -> datetime | None:
    """When a window next opens after `now`, as a wall-clock time of `zone` (naive); None if never."""
    wall = now.astimezone(zone).replace(tzinfo=None)
    candidates = [
        datetime.combine(day, time()) + window.start
        for offset in range(15)  # two weeks: a Sunday window skipped by DST opens a week later
        for window in windows.windows
        if (day := wall.date() + timedelta(days=offset)).weekday() in window.days
    ]
    upcoming = [opens for opens in candidates if opens > wall and _exists(opens, zone)]
    return min(upcoming, default=None)


def _exists(wall: datetime, zone: tzinfo) -> bool:
    """Whether a wall-clock time happens in `zone` (not inside the hour skipped when clocks go forward)."""
    aware = wall.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


def opening_text(opens: datetime, zone: WindowZone) -> str:
    """`Mon 18:00 computer time`."""
    return f"{DAY_NAMES[opens.weekday()]} {opens:%H:%M} {zone.label}"


@lru_cache(maxsize=1024)
def reported_zone(text: str) -> tzinfo | None:
    """The zone an agent reports: an IANA name (Europe/Berlin) or a UTC offset (+01:00, -0530, UTC+2);
    None for nothing or anything else."""
    value = text.strip()
    if not value:
        return None
    match = _OFFSET.fullmatch(value)
    if match is not None:
        hours, minutes = int(match["hours"]), int(match["minutes"] or 0)
        if hours > 14 or minutes > 59:
            return None
        sign = -1 if match["sign"] == "-" else 1
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    if value.upper() in ("UTC", "Z", "GMT"):
        return UTC
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def window_clock(windows: Windows, computer_zone: tzinfo | None, server_zone: tzinfo) -> tzinfo:
    """Whose clock the windows are read on for one computer: the computer's when asked for and known."""
    if windows.zone is WindowZone.COMPUTER and computer_zone is not None:
        return computer_zone
    return server_zone
