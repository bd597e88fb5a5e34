"""Login throttling (oco.domain.throttle)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from oco.domain.throttle import (
    FailureCount,
    ThrottlePolicy,
    after_failure,
    lockout_seconds,
    remaining_lockout,
)

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
POLICY = ThrottlePolicy(lockout_after=3, lockout_seconds=2, max_lockout_seconds=60, forget_after_seconds=600)


def test_the_first_failures_are_free_then_the_lockout_doubles_up_to_the_cap() -> None:
    assert [lockout_seconds(n, POLICY) for n in range(1, 10)] == [0, 0, 2, 4, 8, 16, 32, 60, 60]


def test_each_failure_counts_and_locks_from_the_given_one_on() -> None:
    count = None
    for _ in range(3):
        count = after_failure(count, NOW, POLICY)
    assert count is not None and count.failures == 3
    assert count.locked_until == NOW + timedelta(seconds=2)
    assert remaining_lockout(count, NOW) == 2
    assert remaining_lockout(count, NOW + timedelta(seconds=2)) == 0


def test_a_failure_long_after_the_last_one_starts_again() -> None:
    old = FailureCount(failures=9, last_failure=NOW, locked_until=NOW + timedelta(seconds=60))
    later = after_failure(old, NOW + timedelta(seconds=600), POLICY)
    assert later == FailureCount(failures=1, last_failure=NOW + timedelta(seconds=600))


def test_nothing_counted_is_not_locked() -> None:
    assert remaining_lockout(None, NOW) == 0


@given(st.integers(min_value=1, max_value=10**6))
def test_the_lockout_never_exceeds_the_cap_and_never_shrinks(failures: int) -> None:
    seconds = lockout_seconds(failures, POLICY)
    assert 0 <= seconds <= POLICY.max_lockout_seconds
    assert lockout_seconds(failures + 1, POLICY) >= seconds


@given(st.floats(min_value=0, max_value=10**5, allow_nan=False))
def test_the_remaining_lockout_is_whole_seconds_and_ends(elapsed: float) -> None:
    count = FailureCount(failures=5, last_failure=NOW, locked_until=NOW + timedelta(seconds=30))
    remaining = remaining_lockout(count, NOW + timedelta(seconds=elapsed))
    assert remaining == int(remaining) and 0 <= remaining <= 30
    assert (remaining == 0) == (elapsed >= 30)
