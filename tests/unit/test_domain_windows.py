"""Maintenance windows (`oco.domain.windows`): parsing, midnight and weekend wraps, DST transitions, the
computer's own clock, and the gate where jobs are handed out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oco.domain.dispatch import CandidateJob, Clocks, ContainerWindow, Hold, is_eligible, why_waiting
from oco.domain.errors import InvalidWindow
from oco.domain.states import JobState
from oco.domain.windows import (
    DAY,
    Window,
    Windows,
    WindowZone,
    is_open,
    next_opening,
    parse_window,
    parse_windows,
    reported_zone,
    stored_windows,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
EVENINGS = parse_windows(["Mon-Fri 18:00-06:00"])


def wall(text: str, zone: ZoneInfo | timezone = BERLIN) -> datetime:
    """An aware time from a wall-clock time in `zone`."""
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def test_parsing_and_the_stored_form() -> None:
    window = parse_window("Mon-Fri 18:00-06:00")
    assert window == Window(frozenset(range(5)), timedelta(hours=18), timedelta(hours=12))
    assert window.text == "Mon-Fri 18:00-06:00"
    assert parse_window("sat, sun 00:00-24:00").text == "Sat,Sun 00:00-24:00"
    assert parse_window("daily 22:00-04:00").days == frozenset(range(7))
    assert parse_window("Fri-Mon 20:00-23:30").days == frozenset({4, 5, 6, 0})  # the weekend wrapped
    windows = parse_windows(["Mon-Fri 18:00-06:00", " ", "Sat 00:00-24:00"], WindowZone.SERVER)
    assert windows is not None
    assert windows.text == "server|Mon-Fri 18:00-06:00;Sat 00:00-24:00"
    assert stored_windows(windows.text) == windows
    assert parse_windows(["", "  "]) is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("18:00-06:00", "must be days and times"),
        ("Someday 18:00-06:00", "'someday' is not a day"),
        ("Mon 25:00-06:00", "25:00 is not a time of day"),
        ("Mon 24:00-06:00", "24:00 is not a time of day"),
        ("Mon 18:61-19:00", "18:61 is not a time of day"),
        ("Mon-Fri 18:00", "must be days and times"),
    ],
)
def test_bad_windows_are_refused_naming_them(text: str, says: str) -> None:
    with pytest.raises(InvalidWindow, match=says) as caught:
        parse_window(text)
    assert caught.value.field == "windows"


def test_a_stored_form_that_no_longer_parses_never_opens() -> None:
    assert stored_windows("computer|Mon 99:00-01:00") is None
    container = ContainerWindow(1, 0, NOW, NOW - DAY, None, True, "", None, "computer|Mon 99:00-01:00")
    assert not is_eligible(CandidateJob(1, 1, JobState.WAITING, container), NOW, "10.0.0.1")


NOW = wall("2026-12-02T12:00")  # a Wednesday


def test_wraps_midnight_and_the_weekend() -> None:
    assert not is_open(EVENINGS, wall("2026-12-02T17:59"), BERLIN)
    assert is_open(EVENINGS, wall("2026-12-02T18:00"), BERLIN)
    assert is_open(EVENINGS, wall("2026-12-03T05:59"), BERLIN)  # Wednesday's window, Thursday morning
    assert not is_open(EVENINGS, wall("2026-12-03T06:00"), BERLIN)
    assert is_open(EVENINGS, wall("2026-12-05T05:00"), BERLIN)  # Friday's runs into Saturday
    assert not is_open(EVENINGS, wall("2026-12-05T18:00"), BERLIN)  # no window opens on Saturday
    assert not is_open(EVENINGS, wall("2026-12-07T05:00"), BERLIN)  # nor on Sunday night
    weekend = parse_windows(["Fri-Mon 22:00-02:00"])
    assert is_open(weekend, wall("2026-12-08T01:00"), BERLIN)  # Monday's runs into Tuesday
    assert not is_open(weekend, wall("2026-12-08T22:30"), BERLIN)
    whole = parse_windows(["Sat,Sun 00:00-24:00"])
    assert is_open(whole, wall("2026-12-05T00:00"), BERLIN) and is_open(
        whole, wall("2026-12-06T23:59"), BERLIN
    )
    assert not is_open(whole, wall("2026-12-07T00:00"), BERLIN)


def test_the_computer_clock_decides() -> None:
    # 23:00 UTC on a Wednesday: in Berlin it is midnight (open), in New York 18:00 (just opened),
    # in Tokyo Thursday 08:00 (closed).
    now = datetime(2026, 12, 2, 23, 0, tzinfo=UTC)
    assert is_open(EVENINGS, now, BERLIN)
    assert is_open(EVENINGS, now, NEW_YORK)
    assert not is_open(EVENINGS, now, ZoneInfo("Asia/Tokyo"))
    assert not is_open(EVENINGS, datetime(2026, 12, 2, 22, 0, tzinfo=UTC), NEW_YORK)


def test_dst_spring_forward_keeps_wall_clock_times() -> None:
    night = parse_windows(["Sun 01:00-04:00"])
    # 2026-03-29: Berlin goes from 02:00 to 03:00.
    assert is_open(night, wall("2026-03-29T01:30"), BERLIN)
    assert is_open(night, wall("2026-03-29T03:30"), BERLIN)
    assert not is_open(night, wall("2026-03-29T04:00"), BERLIN)
    opened = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)  # 01:00 CET
    closed = datetime(2026, 3, 29, 2, 0, tzinfo=UTC)  # 04:00 CEST
    assert closed - opened == timedelta(hours=2)  # two real hours that night
    assert is_open(night, closed - timedelta(seconds=1), BERLIN) and not is_open(night, closed, BERLIN)
    skipped = parse_windows(["Sun 02:00-03:00"])
    for minutes in range(0, 24 * 60, 10):  # the skipped hour: never open that night
        assert not is_open(skipped, opened + timedelta(minutes=minutes), BERLIN)
    after = next_opening(skipped, datetime(2026, 3, 28, 12, 0, tzinfo=UTC), BERLIN)
    assert after == datetime(2026, 4, 5, 2, 0)  # not the 02:00 that does not happen


def test_dst_fall_back_keeps_wall_clock_times() -> None:
    night = parse_windows(["Sun 01:00-04:00"])
    # 2026-10-25: Berlin goes from 03:00 CEST back to 02:00 CET.
    opened = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)  # 01:00 CEST
    closed = datetime(2026, 10, 25, 3, 0, tzinfo=UTC)  # 04:00 CET
    assert closed - opened == timedelta(hours=4)
    for minutes in range(0, 240, 5):
        assert is_open(night, opened + timedelta(minutes=minutes), BERLIN)
    assert not is_open(night, closed, BERLIN)
    assert not is_open(night, opened - timedelta(seconds=1), BERLIN)


def test_next_opening_in_wall_clock_time() -> None:
    assert next_opening(EVENINGS, wall("2026-12-02T12:00"), BERLIN) == datetime(2026, 12, 2, 18, 0)
    assert next_opening(EVENINGS, wall("2026-12-05T12:00"), BERLIN) == datetime(2026, 12, 7, 18, 0)  # Monday
    assert next_opening(parse_windows(["daily 00:00-24:00"]), NOW, BERLIN) == datetime(2026, 12, 3, 0, 0)


def test_reported_zones() -> None:
    assert reported_zone("Europe/Berlin") == BERLIN
    assert reported_zone("+01:00") == timezone(timedelta(hours=1))
    assert reported_zone("-0530") == timezone(-timedelta(hours=5, minutes=30))
    assert reported_zone("UTC+2") == timezone(timedelta(hours=2))
    assert reported_zone("UTC") is UTC
    assert reported_zone("") is None
    assert reported_zone("Mars/Olympus") is None
    assert reported_zone("+25:00") is None


@st.composite
def windows_strategy(draw: st.DrawFn) -> Windows:
    count = draw(st.integers(1, 3))
    windows = []
    for _ in range(count):
        days = draw(st.frozensets(st.integers(0, 6), min_size=1))
        start = timedelta(minutes=draw(st.integers(0, 24 * 60 - 1)))
        length = timedelta(minutes=draw(st.integers(1, 24 * 60)))
        windows.append(Window(days, start, length))
    return Windows(tuple(windows))


moments = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
zones = st.sampled_from(
    [BERLIN, NEW_YORK, ZoneInfo("Australia/Lord_Howe"), UTC, timezone(timedelta(hours=-3))]
)


@settings(deadline=None)
@given(windows_strategy(), moments, zones)
def test_open_means_inside_one_window_on_the_wall_clock(
    windows: Windows, now: datetime, zone: object
) -> None:
    local = now.astimezone(zone).replace(tzinfo=None)  # type: ignore[arg-type]
    inside = any(
        opens <= local < opens + window.length
        for window in windows.windows
        for back in range(2)
        if (day := local.date() - timedelta(days=back)).weekday() in window.days
        for opens in [datetime.combine(day, datetime.min.time()) + window.start]
    )
    assert is_open(windows, now, zone) == inside  # type: ignore[arg-type]


@settings(deadline=None)
@given(windows_strategy(), moments, zones)
def test_the_next_opening_is_in_the_future_and_opens(windows: Windows, now: datetime, zone: object) -> None:
    opens = next_opening(windows, now, zone)  # type: ignore[arg-type]
    assert opens is not None
    local = now.astimezone(zone).replace(tzinfo=None)  # type: ignore[arg-type]
    assert local < opens <= local + timedelta(days=15)
    assert opens.time() in {(datetime.min + w.start).time() for w in windows.windows}
    aware = opens.replace(tzinfo=zone).astimezone(UTC)  # type: ignore[arg-type]
    assert is_open(windows, aware, zone) or aware.astimezone(zone).replace(tzinfo=None) != opens  # type: ignore[arg-type]


def _container(stored: str | None) -> ContainerWindow:
    return ContainerWindow(1, 0, NOW, NOW - DAY, None, True, "", None, stored)


def test_waiting_jobs_wait_for_the_window_started_ones_finish() -> None:
    stored = "computer|Mon-Fri 18:00-06:00"
    waiting = CandidateJob(1, 1, JobState.WAITING, _container(stored))
    running = CandidateJob(2, 1, JobState.DOWNLOADING, _container(stored))
    noon, evening = wall("2026-12-02T12:00"), wall("2026-12-02T19:00")
    berlin = Clocks("Europe/Berlin", UTC)
    assert not is_eligible(waiting, noon, "10.0.0.1", berlin)
    assert is_eligible(running, noon, "10.0.0.1", berlin)
    assert is_eligible(waiting, evening, "10.0.0.1", berlin)
    # No reported zone: the server's clock (here New York, where it is 13:00).
    assert not is_eligible(waiting, evening, "10.0.0.1", Clocks("", NEW_YORK))
    server = CandidateJob(3, 1, JobState.WAITING, _container("server|Mon-Fri 18:00-06:00"))
    assert not is_eligible(server, evening, "10.0.0.1", Clocks("Europe/Berlin", NEW_YORK))


def test_why_waiting_says_when_the_window_opens() -> None:
    container = _container("computer|Mon-Fri 18:00-06:00")
    saturday = wall("2026-12-05T12:00")
    reason = why_waiting(container, saturday, "10.0.0.1", saturday, 300, clocks=Clocks("Europe/Berlin", UTC))
    assert (reason.hold, reason.opens) == (Hold.OUTSIDE_WINDOW, "Mon 18:00 computer time")
    server = why_waiting(container, saturday, "10.0.0.1", saturday, 300, clocks=Clocks("", BERLIN))
    assert server.opens == "Mon 18:00 server time"  # the agent reports no zone
