"""What a server process keeps of the download slots it read (`oco.services.slots.SlotBoard`): trusted
for a moment, and no more check-ins sent to take places than there were free ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from oco.domain.slots import Limit, Occupancy, Slot
from oco.domain.states import JobState
from oco.services.slots import SlotBoard

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
LIMIT = Limit("container:1", 3)


def _occupancy(holders: int) -> Occupancy:
    slots = [Slot(n, 100 + n, NOW + timedelta(minutes=30), JobState.DOWNLOADING) for n in range(holders)]
    return Occupancy.of(LIMIT, slots, NOW)


def test_readings_are_kept_for_their_moment_and_per_limit() -> None:
    board = SlotBoard(refresh_seconds=60)
    assert board.known([LIMIT]) is None
    board.note([_occupancy(1)])
    known = board.known([LIMIT])
    assert known is not None and known[0].in_use(NOW) == 1
    assert board.known([Limit("container:1", 5)]) is None  # the limit changed: read again
    board.forget([LIMIT])
    assert board.known([LIMIT]) is None
    stale = SlotBoard(refresh_seconds=0)
    stale.note([_occupancy(1)])
    assert stale.known([LIMIT]) is None


def test_no_more_check_ins_go_to_take_places_than_are_free() -> None:
    board = SlotBoard(refresh_seconds=60)
    assert not board.reserve([LIMIT], NOW)  # nothing read yet: nothing to go by
    board.note([_occupancy(1)])
    assert board.reserve([LIMIT], NOW) and board.reserve([LIMIT], NOW)
    assert not board.reserve([LIMIT], NOW)  # two free places, two check-ins on their way
    board.note([_occupancy(2).with_holder(7, NOW + timedelta(minutes=30))])  # a take's transaction
    assert not board.reserve([LIMIT], NOW)
    board.note([_occupancy(2)])
    assert board.reserve([LIMIT], NOW)
    assert not board.reserve([LIMIT], NOW)
    assert board.reserve([LIMIT], NOW + timedelta(minutes=31))  # the holders' places ran out


def test_a_scope_of_many_slots_is_trusted_longer() -> None:
    board = SlotBoard(refresh_seconds=0.5)
    many = Limit("server", 5000)
    slots = [Slot(n, 100 + n, NOW + timedelta(minutes=30), JobState.DOWNLOADING) for n in range(5000)]
    board.note([Occupancy.of(many, slots, NOW)])
    reading = board.known([many])
    assert reading is not None
    assert board._trusted_for(reading[0]) == 5.0  # five seconds for 5,000 rows
    assert board._trusted_for(_occupancy(3)) == 0.5
