"""Phased rollouts (`oco.domain.phases`): membership stable and complete, criterion, halt at the threshold."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oco.domain.dispatch import CandidateJob, ContainerWindow, Hold, is_eligible, why_waiting
from oco.domain.errors import InvalidRollout
from oco.domain.phases import (
    ALL,
    HALTED,
    Move,
    PhaseCounts,
    RolloutRules,
    RolloutState,
    Step,
    assign_phases,
    count_states,
    criterion_met,
    duration_text,
    halt_text,
    halts,
    next_move,
    parse_duration,
    parse_phases,
    phase_is_open,
    phase_sizes,
    phases_text,
)
from oco.domain.states import JobState

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)

steps_strategy = st.lists(
    st.one_of(
        st.builds(Step, st.integers(1, 100), st.just(True)),
        st.builds(Step, st.integers(1, 500), st.just(False)),
    ),
    max_size=6,
)
ids = st.sets(st.integers(1, 10**6), max_size=300)


def test_parse_phases_reads_percentages_counts_and_all() -> None:
    assert parse_phases("1%, 10%,50%,100%") == (Step(1, True), Step(10, True), Step(50, True), ALL)
    assert parse_phases("5,50,all") == (Step(5, False), Step(50, False), ALL)
    assert parse_phases("") == ()
    assert phases_text(parse_phases("5,50,all")) == "5,50,100%"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("10%,5%", "must grow"),
        ("0%", "1% to 100%"),
        ("101%", "1% to 100%"),
        ("ten", "'ten'"),
        ("all,50", "last phase"),
        ("5,5", "must grow"),
        (",".join(str(n) for n in range(1, 23)), "at most 20"),
    ],
)
def test_parse_phases_refuses_bad_entries_naming_them(text: str, says: str) -> None:
    with pytest.raises(InvalidRollout, match=says) as caught:
        parse_phases(text)
    assert caught.value.field == "phases"


def test_phase_sizes_round_up_and_add_a_last_phase_for_the_rest() -> None:
    assert phase_sizes(parse_phases("1%,10%,50%,100%"), 1000) == [10, 90, 400, 500]
    assert phase_sizes(parse_phases("1%,10%"), 50) == [1, 4, 45]  # ceil(0.5) = 1, ceil(5) = 5
    assert phase_sizes(parse_phases("5,50,all"), 20) == [5, 15]  # 50 reaches everyone, 'all' adds nobody
    assert phase_sizes((), 7) == [7]
    assert phase_sizes(parse_phases("10%"), 0) == []


@given(steps_strategy, st.integers(0, 2000))
def test_phase_sizes_cover_every_computer_once_and_none_is_empty(steps: list[Step], total: int) -> None:
    sizes = phase_sizes(steps, total)
    assert sum(sizes) == total
    assert all(size > 0 for size in sizes)


@given(steps_strategy, ids, st.text(max_size=20))
@settings(deadline=None)
def test_membership_is_complete_and_follows_the_steps(
    steps: list[Step], computers: set[int], seed: str
) -> None:
    phases = assign_phases(seed, computers, steps)
    assert set(phases) == computers
    sizes = phase_sizes(steps, len(computers))
    assert sorted(set(phases.values())) == list(range(len(sizes)))
    for number, size in enumerate(sizes):
        assert sum(1 for phase in phases.values() if phase == number) == size


@given(steps_strategy, ids, st.text(max_size=20), st.randoms())
@settings(deadline=None)
def test_membership_is_stable_whatever_the_order(
    steps: list[Step], computers: set[int], seed: str, rnd: object
) -> None:
    shuffled = list(computers)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert assign_phases(seed, shuffled, steps) == assign_phases(seed, sorted(computers), steps)


@given(ids, ids, st.text(max_size=10))
@settings(deadline=None)
def test_a_pilot_group_is_phase_zero_and_the_steps_share_the_rest(
    computers: set[int], pilot: set[int], seed: str
) -> None:
    steps = parse_phases("50%")
    phases = assign_phases(seed, computers, steps, pilot)
    assert set(phases) == computers
    in_pilot = computers & pilot
    if not in_pilot:  # no pilot among the targets: the steps alone
        assert phases == assign_phases(seed, computers, steps)
        return
    assert {c for c, p in phases.items() if p == 0} == in_pilot
    rest = len(computers - pilot)
    assert sum(1 for p in phases.values() if p == 1) == math.ceil(rest / 2)
    assert sum(1 for p in phases.values() if p == 2) == rest - math.ceil(rest / 2)


def test_different_containers_pick_different_first_computers() -> None:
    computers = range(1, 1001)
    first_a = {c for c, p in assign_phases("Firefox 128", computers, parse_phases("1%")).items() if p == 0}
    first_b = {c for c, p in assign_phases("Chrome 131", computers, parse_phases("1%")).items() if p == 0}
    assert len(first_a) == len(first_b) == 10
    assert first_a != first_b


@given(st.integers(0, 500), st.integers(0, 500), st.integers(0, 100))
def test_criterion_is_a_share_of_the_jobs_that_count(succeeded: int, failed: int, percent: int) -> None:
    counts = PhaseCounts(succeeded=succeeded, failed=failed, pending=0)
    assert criterion_met(counts, percent) == (succeeded * 100 >= percent * (succeeded + failed))


def test_skipped_jobs_do_not_count() -> None:
    counts = count_states(
        {
            JobState.SUCCEEDED: 19,
            JobState.ALREADY_INSTALLED: 50,
            JobState.OS_INCOMPATIBLE: 3,
            JobState.FAILED: 1,
        }
    )
    assert counts == PhaseCounts(succeeded=19, failed=1, pending=0)
    assert criterion_met(counts, 95)
    assert not criterion_met(count_states({JobState.SUCCEEDED: 18, JobState.WAITING: 2}), 95)


def test_halt_exactly_above_the_threshold() -> None:
    assert not halts(PhaseCounts(succeeded=90, failed=10), 10, 10)  # 10 % is not more than 10 %
    assert halts(PhaseCounts(succeeded=89, failed=11), 10, 10)
    assert not halts(PhaseCounts(succeeded=0, failed=0, pending=5), 0, 1)
    assert halts(PhaseCounts(succeeded=99, failed=1), 0, 1)
    assert not halts(PhaseCounts(succeeded=0, failed=9, pending=1000), None, 1)


def test_halt_waits_for_the_minimum_finished() -> None:
    early = PhaseCounts(succeeded=0, failed=1, pending=999)
    assert not halts(early, 10, 10)  # one early failure of 1,000 does not halt
    assert halts(PhaseCounts(succeeded=0, failed=10, pending=990), 10, 10)
    small = PhaseCounts(succeeded=1, failed=2, pending=0)  # a phase smaller than the minimum: all finished
    assert halts(small, 10, 10)
    assert not halts(PhaseCounts(succeeded=1, failed=1, pending=1), 10, 10)


@given(st.integers(0, 300), st.integers(0, 300), st.integers(0, 300), st.integers(0, 100), st.integers(1, 50))
def test_halt_rule_as_arithmetic(succeeded: int, failed: int, pending: int, rate: int, minimum: int) -> None:
    counts = PhaseCounts(succeeded, failed, pending)
    finished = succeeded + failed
    expected = (
        finished > 0 and finished >= min(minimum, finished + pending) and failed * 100 > rate * finished
    )
    assert halts(counts, rate, minimum) == expected


def test_next_move_opens_phases_after_the_soak_and_completes() -> None:
    rules = RolloutRules(success_percent=95, soak_seconds=1800)
    met = PhaseCounts(succeeded=20)
    state = RolloutState(current=0, phases=3)
    assert next_move(state, PhaseCounts(succeeded=18, pending=2), rules, NOW) is Move.NOTHING
    assert next_move(state, met, rules, NOW) is Move.MARK_MET
    soaking = RolloutState(current=0, phases=3, met_at=NOW)
    assert next_move(soaking, met, rules, NOW + timedelta(minutes=29)) is Move.NOTHING
    assert next_move(soaking, met, rules, NOW + timedelta(minutes=30)) is Move.OPEN_NEXT
    assert next_move(state, met, RolloutRules(), NOW) is Move.OPEN_NEXT  # no soak: at once
    last = RolloutState(current=2, phases=3)
    assert next_move(last, PhaseCounts(succeeded=3, pending=1), rules, NOW) is Move.NOTHING
    assert next_move(last, PhaseCounts(succeeded=3, failed=1), rules, NOW) is Move.COMPLETE
    assert next_move(RolloutState(0, 3, halted=True), met, rules, NOW) is Move.NOTHING


def test_durations() -> None:
    assert parse_duration("30m", field="phase_soak") == 1800
    assert parse_duration(" 2h ", field="phase_soak") == 7200
    assert parse_duration("90", field="phase_soak") == 90
    assert parse_duration("", field="phase_soak") == 0
    assert duration_text(1800) == "30m"
    assert duration_text(90) == "90s"
    with pytest.raises(InvalidRollout, match="like 90s"):
        parse_duration("soon", field="phase_soak")
    with pytest.raises(InvalidRollout, match="30 days"):
        parse_duration("31d", field="phase_soak")


def test_halt_text_gives_the_numbers() -> None:
    details = {"label": "phase 2", "finished": 20, "failed": 3, "rate": 10}
    assert halt_text(details) == "phase 2: 3 of 20 finished jobs failed (15 %, more than 10 %)"
    assert halt_text({"label": "phase 1"}) == "halted by hand during phase 1"


def _window(open_phase: int | None) -> ContainerWindow:
    return ContainerWindow(1, 0, NOW, NOW - timedelta(hours=1), None, True, "", open_phase)


@given(st.one_of(st.none(), st.integers(0, 5)), st.one_of(st.none(), st.integers(-1, 5)))
def test_waiting_jobs_of_closed_phases_are_not_handed_out(phase: int | None, open_phase: int | None) -> None:
    waiting = CandidateJob(1, 1, JobState.WAITING, _window(open_phase), phase)
    assert is_eligible(waiting, NOW, "10.0.0.1") == phase_is_open(phase, open_phase)
    running = CandidateJob(2, 1, JobState.EXECUTING, _window(open_phase), phase)
    assert is_eligible(running, NOW, "10.0.0.1")  # a job already started finishes


def test_why_waiting_names_the_halt_and_the_phase() -> None:
    halted = why_waiting(_window(HALTED), NOW, "10.0.0.1", NOW, 300, phase=0)
    assert halted.hold is Hold.HALTED
    later = why_waiting(_window(0), NOW, "10.0.0.1", NOW, 300, phase=2)
    assert (later.hold, later.phase) == (Hold.LATER_PHASE, 2)
    assert why_waiting(_window(2), NOW, "10.0.0.1", NOW, 300, phase=2).hold is Hold.NEXT_CHECK_IN
