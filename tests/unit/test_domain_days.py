"""Stretches of time cut into local days, daylight saving time included."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from oco.domain.days import day_spans, last_days, local_day_start

BERLIN = ZoneInfo("Europe/Berlin")


def test_a_stretch_is_cut_at_local_midnight() -> None:
    start = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)  # 21:00 in Berlin
    end = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    spans = list(day_spans(start, end, BERLIN))
    assert [(s.day, s.start, s.end) for s in spans] == [
        (date(2026, 3, 1), start, datetime(2026, 3, 1, 23, 0, tzinfo=UTC)),
        (date(2026, 3, 2), datetime(2026, 3, 1, 23, 0, tzinfo=UTC), end),
    ]


def test_days_with_a_clock_change_are_23_and_25_hours_long() -> None:
    spring, autumn = date(2026, 3, 29), date(2026, 10, 25)
    assert local_day_start(spring + timedelta(days=1), BERLIN) - local_day_start(spring, BERLIN) == timedelta(
        hours=23
    )
    assert local_day_start(autumn + timedelta(days=1), BERLIN) - local_day_start(autumn, BERLIN) == timedelta(
        hours=25
    )


def test_nothing_for_an_empty_stretch() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    assert list(day_spans(now, now, BERLIN)) == []


def test_the_last_days_end_today() -> None:
    assert last_days(date(2026, 3, 2), 3) == [date(2026, 2, 28), date(2026, 3, 1), date(2026, 3, 2)]


@given(
    start=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
    hours=st.floats(min_value=0, max_value=24 * 40),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]),
)
def test_the_spans_cover_the_stretch_exactly_each_within_its_day(
    start: datetime, hours: float, zone: str
) -> None:
    tz = ZoneInfo(zone)
    end = start + timedelta(hours=hours)
    spans = list(day_spans(start, end, tz))
    assert (spans[0].start if spans else end) == start
    assert (spans[-1].end if spans else start) == end
    for previous, following in itertools.pairwise(spans):
        assert previous.end == following.start and previous.day < following.day
    for span in spans:
        assert span.start < span.end
        assert span.start.astimezone(tz).date() == span.day
        assert (span.end - timedelta(microseconds=1)).astimezone(tz).date() == span.day
