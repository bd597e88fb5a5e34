"""A computer is online while its last check-in is more recent than the offline threshold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from oco.domain.presence import Presence, is_online, online_since, presence

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_a_computer_never_seen_is_offline() -> None:
    assert not is_online(None, NOW, 300)


def test_the_threshold_itself_is_offline() -> None:
    assert is_online(NOW - timedelta(seconds=299), NOW, 300)
    assert not is_online(NOW - timedelta(seconds=300), NOW, 300)


@given(age_us=st.integers(min_value=0, max_value=10**10), threshold=st.integers(min_value=1, max_value=10**4))
def test_online_exactly_while_younger_than_the_threshold(age_us: int, threshold: int) -> None:
    assert is_online(NOW - timedelta(microseconds=age_us), NOW, threshold) is (age_us < threshold * 10**6)


def test_presence_tells_never_seen_from_offline() -> None:
    assert presence(None, NOW, 300) is Presence.NEVER_SEEN
    assert presence(NOW - timedelta(seconds=10), NOW, 300) is Presence.ONLINE
    assert presence(NOW - timedelta(seconds=300), NOW, 300) is Presence.OFFLINE


@given(age_us=st.integers(min_value=0, max_value=10**10), threshold=st.integers(min_value=1, max_value=10**4))
def test_online_since_is_the_threshold_of_is_online(age_us: int, threshold: int) -> None:
    seen = NOW - timedelta(microseconds=age_us)
    assert (seen > online_since(NOW, threshold)) is is_online(seen, NOW, threshold)
