"""Which jobs an agent gets, in which order: eligibility, ordering, and post-actions on the wire."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.domain.dispatch import (
    CandidateJob,
    ContainerWindow,
    Hold,
    WaitReason,
    container_admits,
    dispatch_order,
    hand_out_hold,
    is_eligible,
    is_open,
    jobs_to_hand_out,
    report_refusal,
    why_waiting,
    wire_post_action,
)
from oco.domain.errors import InvalidIpRange
from oco.domain.ipranges import admits, parse_ip_ranges
from oco.domain.states import JobState, PostAction

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CLIENT = "10.0.0.1"


def window(container_id: int = 1, **changes: object) -> ContainerWindow:
    values: dict[str, object] = {
        "id": container_id,
        "priority": 0,
        "created": NOW - timedelta(hours=1),
        "start": NOW - timedelta(minutes=5),
        "end": None,
        "enabled": True,
        "ip_ranges": "",
    }
    values.update(changes)
    return ContainerWindow(**values)  # type: ignore[arg-type]


def job(
    job_id: int, container: ContainerWindow, sequence: int = 1, state: JobState = JobState.WAITING
) -> CandidateJob:
    return CandidateJob(id=job_id, sequence=sequence, state=state, container=container)


def ids(jobs: list[CandidateJob]) -> list[int]:
    return [j.id for j in jobs]


# Eligibility -----------------------------------------------------------------------------------


def test_start_and_end_bound_the_window() -> None:
    future = window(1, start=NOW + timedelta(seconds=1))
    ended = window(2, end=NOW)
    open_until_later = window(3, end=NOW + timedelta(seconds=1))
    started_now = window(4, start=NOW)
    jobs = [job(1, future), job(2, ended), job(3, open_until_later), job(4, started_now)]
    assert ids(jobs_to_hand_out(jobs, NOW, CLIENT)) == [3, 4]
    assert is_open(window(end=None), NOW + timedelta(days=3650))


def test_disabled_containers_hand_out_nothing() -> None:
    assert not is_open(window(enabled=False), NOW)
    assert jobs_to_hand_out([job(1, window(enabled=False))], NOW, CLIENT) == []


def test_running_jobs_are_sent_again_final_ones_never() -> None:
    container = window()
    jobs = [job(i, container, i, state) for i, state in enumerate(JobState, start=1)]
    handed = {j.state for j in jobs_to_hand_out(jobs, NOW, CLIENT)}
    assert handed == {JobState.WAITING, JobState.DOWNLOADING, JobState.EXECUTING}


def test_ip_constraint_uses_the_client_address() -> None:
    container = window(ip_ranges="127.0.0.2/32")
    assert ids(jobs_to_hand_out([job(1, container)], NOW, "127.0.0.2")) == [1]
    assert jobs_to_hand_out([job(1, container)], NOW, "127.0.0.3") == []


def test_ip_constraint_may_come_parsed() -> None:
    container = window(ip_ranges=parse_ip_ranges("!10.0.0.0/8"))
    assert not is_eligible(job(1, container), NOW, "10.1.1.1")
    assert is_eligible(job(1, container), NOW, "192.168.1.1")


def test_a_stored_constraint_that_no_longer_parses_admits_nobody() -> None:
    broken = window(ip_ranges="10.0.0.0/99")
    assert not container_admits(broken, CLIENT)
    assert jobs_to_hand_out([job(1, broken)], NOW, CLIENT) == []


def test_an_unknown_client_address_gets_only_unconstrained_jobs() -> None:
    free, constrained = window(1), window(2, ip_ranges="!10.0.0.0/8")
    assert ids(jobs_to_hand_out([job(1, free), job(2, constrained)], NOW, "unknown")) == [1]


# Order -----------------------------------------------------------------------------------------


def test_priority_beats_age_and_equal_priorities_do_not_interleave() -> None:
    old = window(1, created=NOW - timedelta(days=2))
    new = window(2, created=NOW - timedelta(days=1))
    urgent = window(3, created=NOW, priority=50)
    jobs = [job(10, new, 1), job(11, old, 2), job(12, urgent, 1), job(13, old, 1), job(14, new, 2)]
    assert ids(jobs_to_hand_out(jobs, NOW, CLIENT)) == [12, 13, 11, 10, 14]


def test_containers_created_in_the_same_instant_come_by_id() -> None:
    first, second = window(7), window(8)
    jobs = [job(1, second, 1), job(2, first, 2), job(3, second, 2), job(4, first, 1)]
    assert ids(jobs_to_hand_out(jobs, NOW, CLIENT)) == [4, 2, 1, 3]


def test_negative_priorities_come_last() -> None:
    low, default = window(1, priority=-100, created=NOW - timedelta(days=9)), window(2)
    assert ids(jobs_to_hand_out([job(1, low), job(2, default)], NOW, CLIENT)) == [2, 1]


# Post-actions on the wire ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("post_action", "timeout", "wire"),
    [
        (PostAction.NONE, 20, {"restart": None, "shutdown": None, "exit": None}),
        (PostAction.RESTART, 20, {"restart": 20, "shutdown": None, "exit": None}),
        (PostAction.SHUTDOWN, -1, {"restart": None, "shutdown": -1, "exit": None}),
        (PostAction.EXIT_AGENT, 5, {"restart": None, "shutdown": None, "exit": 5}),
        (1, 0, {"restart": 0, "shutdown": None, "exit": None}),  # stored integers work too
    ],
)
def test_post_actions_on_the_wire(post_action: PostAction, timeout: int, wire: dict[str, int | None]) -> None:
    assert wire_post_action(post_action, timeout) == wire


# Properties ------------------------------------------------------------------------------------

containers = st.builds(
    window,
    st.integers(1, 6),
    priority=st.integers(-3, 3),
    created=st.integers(0, 3).map(lambda h: NOW - timedelta(hours=h)),
    start=st.integers(-2, 2).map(lambda h: NOW + timedelta(hours=h)),
    end=st.one_of(st.none(), st.integers(-2, 3).map(lambda h: NOW + timedelta(hours=h))),
    enabled=st.booleans(),
    ip_ranges=st.sampled_from(["", "10.0.0.0/8", "!10.0.0.1", "192.168.0.0/16", "10.0.0.0/99"]),
)


@st.composite
def job_lists(draw: st.DrawFn) -> list[CandidateJob]:
    by_id: dict[int, ContainerWindow] = {}
    for container in draw(st.lists(containers, min_size=1, max_size=6)):
        by_id.setdefault(container.id, container)
    pool = list(by_id.values())
    count = draw(st.integers(0, 25))
    return [
        job(i, draw(st.sampled_from(pool)), draw(st.integers(1, 10)), draw(st.sampled_from(list(JobState))))
        for i in range(1, count + 1)
    ]


def expected_eligible(candidate: CandidateJob, address: str) -> bool:
    """PROTOCOL.md's eligibility, written out plainly."""
    container = candidate.container
    try:
        admitted = admits(parse_ip_ranges(str(container.ip_ranges)), address)
    except InvalidIpRange:
        admitted = False
    return (
        candidate.state in (JobState.WAITING, JobState.DOWNLOADING, JobState.EXECUTING)
        and container.enabled
        and container.start <= NOW
        and (container.end is None or container.end > NOW)
        and admitted
    )


addresses = st.sampled_from(["10.0.0.1", "10.9.9.9", "192.168.1.1", "::1", "garbage"])


@given(jobs=job_lists(), address=addresses)
def test_exactly_the_eligible_jobs_are_handed_out(jobs: list[CandidateJob], address: str) -> None:
    handed = jobs_to_hand_out(jobs, NOW, address)
    assert len(set(ids(handed))) == len(handed)
    assert set(ids(handed)) == {c.id for c in jobs if expected_eligible(c, address)}


@given(jobs=job_lists(), address=addresses)
def test_the_order_is_priority_then_container_then_sequence(jobs: list[CandidateJob], address: str) -> None:
    handed = jobs_to_hand_out(jobs, NOW, address)
    assert handed == sorted(handed, key=dispatch_order)
    for earlier, later in itertools.pairwise(handed):
        assert earlier.container.priority >= later.container.priority  # lower priority never first
        if earlier.container.id == later.container.id:
            assert earlier.sequence <= later.sequence


@given(jobs=job_lists(), address=addresses)
def test_each_container_comes_as_one_block(jobs: list[CandidateJob], address: str) -> None:
    handed = jobs_to_hand_out(jobs, NOW, address)
    blocks = [container_id for container_id, _ in itertools.groupby(c.container.id for c in handed)]
    assert len(blocks) == len(set(blocks))


@given(jobs=job_lists(), address=addresses)
def test_the_order_does_not_depend_on_the_input_order(jobs: list[CandidateJob], address: str) -> None:
    assert ids(jobs_to_hand_out(jobs, NOW, address)) == ids(jobs_to_hand_out(jobs[::-1], NOW, address))


# Why a waiting job waits --------------------------------------------------------------------------

SEEN = NOW - timedelta(seconds=30)


@pytest.mark.parametrize(
    ("changes", "last_seen", "address", "expected"),
    [
        ({"enabled": False, "start": NOW + timedelta(hours=1)}, SEEN, CLIENT, WaitReason(Hold.DISABLED)),
        (
            {"start": NOW + timedelta(hours=1)},
            SEEN,
            CLIENT,
            WaitReason(Hold.SCHEDULED, NOW + timedelta(hours=1)),
        ),
        ({"end": NOW}, SEEN, CLIENT, WaitReason(Hold.ENDED, NOW)),
        ({"ip_ranges": "192.0.2.0/24"}, SEEN, CLIENT, WaitReason(Hold.OUTSIDE_IP_RANGES, address=CLIENT)),
        ({}, NOW - timedelta(hours=2), CLIENT, WaitReason(Hold.OFFLINE, NOW - timedelta(hours=2))),
        ({}, None, None, WaitReason(Hold.OFFLINE)),
        ({"ip_ranges": "192.0.2.0/24"}, None, None, WaitReason(Hold.OFFLINE)),  # no address known yet
        ({}, SEEN, CLIENT, WaitReason(Hold.NEXT_CHECK_IN, SEEN)),
    ],
)
def test_a_waiting_job_says_why_it_waits(
    changes: dict[str, object], last_seen: datetime | None, address: str | None, expected: WaitReason
) -> None:
    assert why_waiting(window(**changes), last_seen, address, NOW, offline_seconds=300) == expected


@given(
    enabled=st.booleans(),
    start_offset=st.integers(-100, 100),
    seen_offset=st.one_of(st.none(), st.integers(-1000, 0)),
)
def test_a_job_eligible_now_waits_only_for_the_next_check_in_or_an_offline_computer(
    enabled: bool, start_offset: int, seen_offset: int | None
) -> None:
    container = window(enabled=enabled, start=NOW + timedelta(minutes=start_offset))
    last_seen = None if seen_offset is None else NOW + timedelta(seconds=seen_offset)
    reason = why_waiting(container, last_seen, CLIENT, NOW, offline_seconds=300)
    eligible = is_eligible(job(1, container), NOW, CLIENT)
    assert (reason.hold in (Hold.NEXT_CHECK_IN, Hold.OFFLINE)) is eligible


# Which reports a computer may send: only on jobs it could have received -------------------------


@pytest.mark.parametrize(
    ("container", "address", "hold"),
    [
        (window(enabled=False), CLIENT, Hold.DISABLED),
        (window(start=NOW + timedelta(minutes=1)), CLIENT, Hold.SCHEDULED),
        (window(end=NOW), CLIENT, Hold.ENDED),
        (window(end=NOW - timedelta(seconds=1)), CLIENT, Hold.ENDED),
        (window(ip_ranges="192.168.0.0/16"), CLIENT, Hold.OUTSIDE_IP_RANGES),
        (window(ip_ranges="!10.0.0.0/8"), CLIENT, Hold.OUTSIDE_IP_RANGES),
        (window(ip_ranges="10.0.0.0/99"), CLIENT, Hold.OUTSIDE_IP_RANGES),
        (window(), CLIENT, None),
        (window(end=NOW + timedelta(seconds=1), ip_ranges="10.0.0.0/8"), CLIENT, None),
    ],
)
def test_a_waiting_job_is_reportable_exactly_while_it_would_be_handed_out(
    container: ContainerWindow, address: str, hold: Hold | None
) -> None:
    assert report_refusal(job(1, container), NOW, address) is hold
    assert hand_out_hold(container, NOW, address) is hold
    assert is_eligible(job(1, container), NOW, address) is (hold is None)


@pytest.mark.parametrize("state", [JobState.DOWNLOADING, JobState.EXECUTING])
@pytest.mark.parametrize(
    "container",
    [window(enabled=False), window(end=NOW - timedelta(minutes=1)), window(ip_ranges="192.168.0.0/16")],
)
def test_a_started_job_stays_reportable_to_its_end(state: JobState, container: ContainerWindow) -> None:
    assert report_refusal(job(1, container, state=state), NOW, CLIENT) is None
    assert not is_eligible(job(1, container, state=state), NOW, CLIENT)  # but not handed out again


@given(jobs=job_lists(), address=addresses)
def test_every_job_handed_out_is_reportable_and_a_refused_one_says_why(
    jobs: list[CandidateJob], address: str
) -> None:
    for candidate in jobs:
        refusal = report_refusal(candidate, NOW, address)
        if is_eligible(candidate, NOW, address):
            assert refusal is None
        if candidate.state is JobState.WAITING:
            assert (refusal is None) is expected_eligible(candidate, address)
        else:
            assert refusal is None
        if refusal is not None:
            assert refusal is why_waiting(candidate.container, NOW, address, NOW, 300).hold
