"""Which jobs an agent gets, in which order: eligibility and ordering properties."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from oco.domain.dispatch import (
    CandidateJob,
    ContainerWindow,
    dispatch_order,
    jobs_to_hand_out,
    wire_post_action,
)
from oco.domain.ipranges import admits, parse_ip_ranges
from oco.domain.states import JobState, PostAction

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


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


def test_start_and_end_bound_the_window() -> None:
    future = window(1, start=NOW + timedelta(seconds=1))
    ended = window(2, end=NOW)
    open_until_later = window(3, end=NOW + timedelta(seconds=1))
    started_now = window(4, start=NOW)
    jobs = [job(1, future), job(2, ended), job(3, open_until_later), job(4, started_now)]
    assert ids(jobs_to_hand_out(jobs, NOW, "10.0.0.1")) == [3, 4]


def test_disabled_containers_hand_out_nothing() -> None:
    assert jobs_to_hand_out([job(1, window(enabled=False))], NOW, "10.0.0.1") == []


def test_running_jobs_are_sent_again_final_ones_never() -> None:
    container = window()
    jobs = [job(i, container, i, state) for i, state in enumerate(JobState, start=1)]
    handed = {j.state for j in jobs_to_hand_out(jobs, NOW, "10.0.0.1")}
    assert handed == {JobState.WAITING, JobState.DOWNLOADING, JobState.EXECUTING}


def test_ip_constraint_uses_the_client_address() -> None:
    container = window(ip_ranges="127.0.0.2/32")
    assert ids(jobs_to_hand_out([job(1, container)], NOW, "127.0.0.2")) == [1]
    assert jobs_to_hand_out([job(1, container)], NOW, "127.0.0.3") == []


def test_priority_beats_age_and_equal_priorities_do_not_interleave() -> None:
    old = window(1, created=NOW - timedelta(days=2))
    new = window(2, created=NOW - timedelta(days=1))
    urgent = window(3, created=NOW, priority=50)
    jobs = [job(10, new, 1), job(11, old, 2), job(12, urgent, 1), job(13, old, 1), job(14, new, 2)]
    assert ids(jobs_to_hand_out(jobs, NOW, "10.0.0.1")) == [12, 13, 11, 10, 14]


def test_post_actions_on_the_wire() -> None:
    assert wire_post_action(PostAction.NONE, 20) == {"restart": None, "shutdown": None, "exit": None}
    assert wire_post_action(PostAction.RESTART, 20) == {"restart": 20, "shutdown": None, "exit": None}
    assert wire_post_action(PostAction.SHUTDOWN, -1) == {"restart": None, "shutdown": -1, "exit": None}
    assert wire_post_action(PostAction.EXIT_AGENT, 5) == {"restart": None, "shutdown": None, "exit": 5}


containers = st.builds(
    window,
    st.integers(1, 6),
    priority=st.integers(-100, 100),
    created=st.integers(0, 5).map(lambda h: NOW - timedelta(hours=h)),
    start=st.integers(-2, 2).map(lambda h: NOW + timedelta(hours=h)),
    end=st.one_of(st.none(), st.integers(-2, 3).map(lambda h: NOW + timedelta(hours=h))),
    enabled=st.booleans(),
    ip_ranges=st.sampled_from(["", "10.0.0.0/8", "!10.0.0.1", "192.168.0.0/16"]),
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


@given(jobs=job_lists(), address=st.sampled_from(["10.0.0.1", "10.9.9.9", "192.168.1.1", "::1"]))
def test_dispatch_properties(jobs: list[CandidateJob], address: str) -> None:
    handed = jobs_to_hand_out(jobs, NOW, address)
    handed_ids = set(ids(handed))
    for candidate in jobs:
        container = candidate.container
        eligible = (
            candidate.state in (JobState.WAITING, JobState.DOWNLOADING, JobState.EXECUTING)
            and container.enabled
            and container.start <= NOW
            and (container.end is None or container.end > NOW)
        )
        admitted = admits(parse_ip_ranges(container.ip_ranges), address)
        assert (candidate.id in handed_ids) == (eligible and admitted)  # nothing wrong in, nothing right out
    assert handed == sorted(handed, key=dispatch_order)
    for earlier, later in itertools.pairwise(handed):
        assert earlier.container.priority >= later.container.priority
    seen: list[int] = []
    for candidate in handed:  # each container's jobs come as one block
        if not seen or seen[-1] != candidate.container.id:
            assert candidate.container.id not in seen
            seen.append(candidate.container.id)
    assert len(handed_ids) == len(handed)
