"""Calendar days in a time zone: how a stretch of time falls into the days people count by.

Job outcomes are counted per day in the console's time zone (DESIGN.md: times are UTC inside, shown in
the configured zone). A local day is not always 24 hours long: daylight saving time makes some 23 or 25.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo


@dataclass(frozen=True, slots=True)
class DaySpan:
    """The part [start, end) of a stretch of time that lies in the local day `day` (times in UTC)."""

    day: date
    start: datetime
    end: datetime


def local_day_start(day: date, zone: tzinfo) -> datetime:
    """The instant (UTC) a local day begins."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def day_spans(start: datetime, end: datetime, zone: tzinfo) -> Iterator[DaySpan]:
    """The pieces of [start, end) cut at local midnights, each with its local day, in order.

    Together they cover [start, end) exactly, without overlap; nothing for an empty stretch.
    """
    cursor = start
    while cursor < end:
        day = cursor.astimezone(zone).date()
        next_midnight = local_day_start(day + timedelta(days=1), zone)
        piece_end = min(next_midnight, end)
        yield DaySpan(day, cursor, piece_end)
        cursor = piece_end


def last_days(today: date, count: int) -> list[date]:
    """The `count` days up to and including `today`, oldest first."""
    return [today - timedelta(days=back) for back in range(count - 1, -1, -1)]
