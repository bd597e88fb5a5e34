"""The login history: reports are deltas, added to what was stored, each login once, capped and aged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from oco.domain.logins import login_time, logins_since, merge_logins, newest_login

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
YEAR = timedelta(days=365)


def login(user: str, moment: str, console: str = "tty1") -> dict[str, str]:
    return {"username": user, "console": console, "timestamp": moment}


LOGINS = st.builds(
    login,
    st.sampled_from(["anna", "bob", "carl"]),
    st.datetimes(min_value=datetime(2025, 6, 2), max_value=datetime(2026, 6, 1)).map(
        lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S")
    ),
    st.sampled_from(["tty1", ":0", "pts/3"]),
)


def test_a_quiet_inventory_keeps_the_history() -> None:
    history = merge_logins(
        [], [login("anna", "2026-05-01 08:00:00"), login("bob", "2026-05-02 09:00:00")], NOW, 100, YEAR
    )
    assert merge_logins(history, [], NOW, 100, YEAR) == history
    assert [entry["username"] for entry in history] == ["bob", "anna"]


def test_a_login_reported_again_is_kept_once() -> None:
    first = merge_logins([], [login("anna", "2026-05-01 08:00:00")], NOW, 100, YEAR)
    again = merge_logins(
        first, [login("anna", "2026-05-01T08:00:00"), login("anna", "2026-05-03 08:00:00")], NOW, 100, YEAR
    )
    assert [entry["timestamp"] for entry in again] == ["2026-05-03 08:00:00", "2026-05-01 08:00:00"]


def test_the_history_is_capped_keeping_the_newest() -> None:
    reported = [login("anna", f"2026-05-{day:02d} 08:00:00") for day in range(1, 11)]
    kept = merge_logins([], reported, NOW, 3, YEAR)
    assert [entry["timestamp"][:10] for entry in kept] == ["2026-05-10", "2026-05-09", "2026-05-08"]


def test_old_and_unreadable_logins_are_dropped() -> None:
    reported = [login("anna", "2024-01-01 08:00:00"), login("bob", "yesterday"), {"username": "x"}, "junk"]
    assert merge_logins([], [*reported, login("carl", "2026-05-30 07:00:00")], NOW, 100, YEAR) == [
        login("carl", "2026-05-30 07:00:00")
    ]


@given(st.lists(LOGINS), st.lists(LOGINS), st.integers(min_value=1, max_value=20))
def test_merging_is_idempotent_ordered_and_bounded(stored: list, reported: list, cap: int) -> None:
    once = merge_logins(stored, reported, NOW, cap, YEAR)
    assert merge_logins(once, reported, NOW, cap, YEAR) == once or len(once) == cap
    assert len(once) <= cap
    times = [login_time(entry) for entry in once]
    assert times == sorted(times, reverse=True)  # type: ignore[type-var]


@given(st.lists(LOGINS, min_size=1))
def test_logins_since_is_the_newest_stored_login(reported: list) -> None:
    history = merge_logins([], reported, NOW, 10_000, YEAR)
    newest = newest_login(history)
    assert logins_since(newest) == max(entry["timestamp"] for entry in history)


def test_without_logins_the_agent_reports_all_since_the_epoch() -> None:
    assert logins_since(newest_login([])) == "1970-01-01 00:00:00"
