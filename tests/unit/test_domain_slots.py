"""Download slots (`oco.domain.slots`): which limits apply, held and free places, the hand-out rule, and
properties over fleets of computers checking in and reporting in any order."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oco.domain.dispatch import ContainerWindow, Hold, why_waiting
from oco.domain.errors import InvalidDownloadLimit
from oco.domain.slots import (
    SERVER_SCOPE,
    Decision,
    Limit,
    Limits,
    Occupancy,
    Slot,
    Verdict,
    container_scope,
    hand_out,
    limits_for,
    may_download,
    parse_max_downloads,
    parse_network_limits,
    preview_sentence,
    waiting_text,
)
from oco.domain.states import JobState

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=30)


def test_limits_parse_and_apply_by_scope() -> None:
    assert parse_max_downloads(None) is None
    assert parse_max_downloads("") is None
    assert parse_max_downloads(0) is None
    assert parse_max_downloads("50") == 50
    with pytest.raises(InvalidDownloadLimit, match="whole number") as caught:
        parse_max_downloads("many")
    assert caught.value.field == "max_downloads"
    with pytest.raises(InvalidDownloadLimit, match="0 \\(no limit\\) to"):
        parse_max_downloads(-1, "--max-downloads")

    networks = parse_network_limits(["10.1.2.3/16=5", " ", "10.2.0.0/16 = 2", "2001:db8::/32=3"])
    assert [entry.text for entry in networks] == ["10.1.0.0/16=5", "10.2.0.0/16=2", "2001:db8::/32=3"]
    for bad, says in [
        ("10.1.0.0/16", "NETWORK=COUNT"),
        ("=5", "NETWORK=COUNT"),
        ("10.1.0.0/16=0", "must be positive"),
        ("!10.1.0.0/16=3", "one network"),
        ("10.1.0.0/99=3", "prefix length"),
    ]:
        with pytest.raises(InvalidDownloadLimit, match=says):
            parse_network_limits([bad])

    server = Limits(server=200, networks=networks)
    assert limits_for(7, None, Limits(), "10.1.0.9") == ()
    assert limits_for(7, 50, Limits(), "10.1.0.9") == (Limit("container:7", 50),)
    assert limits_for(7, 50, server, "10.1.0.9") == (
        Limit("container:7", 50),
        Limit("network:10.1.0.0/16", 5),
        Limit(SERVER_SCOPE, 200),
    )
    assert limits_for(7, None, server, "10.9.0.1") == (Limit(SERVER_SCOPE, 200),)
    assert limits_for(7, None, server, "::ffff:10.2.3.4") == (
        Limit("network:10.2.0.0/16", 2),
        Limit(SERVER_SCOPE, 200),
    )  # an IPv4-mapped address counts as the IPv4 one
    assert limits_for(7, None, server, "not an address") == (Limit(SERVER_SCOPE, 200),)


def _slot(number: int, job_id: int | None, expires: datetime | None, state: JobState | None) -> Slot:
    return Slot(number, job_id, expires, state)


def test_a_slot_is_held_until_its_job_is_past_downloading_or_its_time_ran_out() -> None:
    later = NOW + TIMEOUT
    assert _slot(0, 1, later, JobState.WAITING).held(NOW)
    assert _slot(0, 1, later, JobState.DOWNLOADING).held(NOW)
    assert not _slot(0, 1, later, JobState.EXECUTING).held(NOW)
    assert not _slot(0, 1, later, JobState.SUCCEEDED).held(NOW)
    assert not _slot(0, 1, later, JobState.FAILED).held(NOW)
    assert not _slot(0, 1, later, None).held(NOW)  # the job is gone
    assert not _slot(0, 1, NOW, JobState.DOWNLOADING).held(NOW)  # ran out
    assert not _slot(0, None, None, None).held(NOW)  # never taken


def test_free_numbers_stop_at_the_limit_and_a_lowered_limit_keeps_its_holders() -> None:
    later = NOW + TIMEOUT
    slots = [_slot(0, 1, later, JobState.WAITING), _slot(1, 2, NOW, JobState.WAITING)]
    occupancy = Occupancy.of(Limit("container:1", 3), slots, NOW)
    assert occupancy.in_use(NOW) == 1 and occupancy.free_numbers(NOW) == [1, 2]
    held = [_slot(n, n + 1, later, JobState.DOWNLOADING) for n in range(5)]
    lowered = Occupancy.of(Limit("container:1", 3), held, NOW)
    assert lowered.in_use(NOW) == 5 and lowered.free_numbers(NOW) == []
    assert may_download(1, JobState.WAITING, True, [lowered], NOW).verdict is Verdict.HOLDS
    full = may_download(99, JobState.WAITING, True, [lowered], NOW)
    assert full == Decision(Verdict.FULL, Limit("container:1", 3), 5)
    assert waiting_text(Limit("container:1", 3), 5) == "waiting for a download slot (5 of 3 in use)"
    assert (
        waiting_text(Limit(SERVER_SCOPE, 9), 9) == "waiting for a download slot of the server (9 of 9 in use)"
    )
    assert (
        waiting_text(Limit("network:10.1.0.0/16", 2), 2)
        == "waiting for a download slot of network 10.1.0.0/16 (2 of 2 in use)"
    )


def test_the_answer_stops_at_the_first_job_without_a_slot_and_takes_one_slot_at_most() -> None:
    verdicts = {1: Verdict.NOT_NEEDED, 2: Verdict.MAY_TAKE, 3: Verdict.NOT_NEEDED, 4: Verdict.MAY_TAKE}
    taken: list[int] = []

    def take(job: int) -> bool:
        taken.append(job)
        return True

    answered = hand_out([1, 2, 3, 4], lambda job: Decision(verdicts[job]), take)
    assert answered == [1, 2, 3] and taken == [2]  # job 4 would be the computer's second download
    assert hand_out([1, 2, 3], lambda job: Decision(verdicts[job]), lambda job: False) == [1]  # lost the race
    downloading = {1: Verdict.DOWNLOADING, 2: Verdict.MAY_TAKE}
    assert hand_out([1, 2], lambda job: Decision(downloading[job]), take) == [1]
    full = {1: Verdict.NOT_NEEDED, 2: Verdict.FULL, 3: Verdict.NOT_NEEDED}
    assert hand_out([1, 2, 3], lambda job: Decision(full[job]), take) == [1]  # order is kept


def test_the_preview_says_how_many_download_at_once() -> None:
    assert preview_sentence(50, None, 1000) == (
        50,
        "At most 50 of the 1,000 computers with a payload to download fetch it at once (this deployment's "
        "limit); the others wait for a download slot and get their jobs at a later check-in.",
    )
    assert preview_sentence(50, 20, 1000)[0] == 20
    assert "the server's limit" in preview_sentence(50, 20, 1000)[1]
    assert preview_sentence(50, None, 3) == (
        3,
        "3 computers with a payload to download: all fetch it at once (limit 50).",
    )
    assert (
        preview_sentence(None, None, 1)[1]
        == "1 computer with a payload to download fetch it at once (no limit)."
    )


def test_why_a_job_waits_names_the_full_slots() -> None:
    container = ContainerWindow(1, 0, NOW, NOW - TIMEOUT, None, True, "")
    full = Decision(Verdict.FULL, Limit("container:1", 50), 50)
    reason = why_waiting(container, NOW, "10.0.0.1", NOW, 300, download=full)
    assert reason.hold is Hold.DOWNLOAD_SLOT
    assert reason.slots == "waiting for a download slot (50 of 50 in use)"
    assert why_waiting(container, NOW, "10.0.0.1", NOW, 300, download=Decision(Verdict.MAY_TAKE)).hold is (
        Hold.NEXT_CHECK_IN
    )
    assert (
        why_waiting(container, NOW - timedelta(hours=1), None, NOW, 300, download=full).hold is Hold.OFFLINE
    )


# Properties: a fleet of computers checking in, downloading and reporting in any order ------------------


@dataclass
class _Place:
    job_id: int | None = None
    expires: datetime | None = None


@dataclass
class _Fleet:
    """The database of places as `oco.services.slots` keeps it, driven by the domain's rules alone."""

    limits: dict[int, tuple[Limit, ...]]
    """The limits of each job (all jobs share scopes)."""
    places: dict[str, dict[int, _Place]] = field(default_factory=dict)
    states: dict[int, JobState] = field(default_factory=dict)

    def occupancy(self, limit: Limit, now: datetime) -> Occupancy:
        stored = self.places.get(limit.scope, {})
        slots = [
            Slot(number, place.job_id, place.expires, self.states.get(place.job_id) if place.job_id else None)
            for number, place in stored.items()
        ]
        return Occupancy.of(limit, slots, now)

    def decide(self, job_id: int, now: datetime) -> Decision:
        state = self.states[job_id]
        occupancies = [self.occupancy(limit, now) for limit in self.limits[job_id]]
        return may_download(job_id, state, True, occupancies, now)

    def take(self, job_id: int, now: datetime) -> bool:
        """What the conditional writes do: a free number below the limit, per scope, all or nothing."""
        chosen: list[tuple[str, int]] = []
        for limit in self.limits[job_id]:
            occupancy = self.occupancy(limit, now)
            if occupancy.holds(job_id, now):
                continue
            free = occupancy.free_numbers(now)
            if not free:
                return False
            chosen.append((limit.scope, free[0]))
        for scope, number in chosen:
            self.places.setdefault(scope, {})[number] = _Place(job_id, now + TIMEOUT)
        return True

    def check_in(self, job_id: int, now: datetime) -> bool:
        """A hello of the computer whose one job this is: handed out or not."""
        if self.states[job_id] not in (JobState.WAITING, JobState.DOWNLOADING):
            return False
        return bool(hand_out([job_id], lambda job: self.decide(job, now), lambda job: self.take(job, now)))

    def held(self, scope: str, now: datetime) -> set[int]:
        limit = next(limit for limits in self.limits.values() for limit in limits if limit.scope == scope)
        return set(self.occupancy(limit, now).holders)


_STEPS = st.lists(
    st.tuples(
        st.sampled_from(["check-in", "downloading", "executing", "failed", "minutes"]),
        st.integers(0, 11),
        st.integers(1, 40),
    ),
    max_size=120,
)


@settings(max_examples=150)
@given(
    container_limit=st.integers(1, 5),
    server_limit=st.integers(1, 8),
    steps=_STEPS,
)
def test_no_limit_is_ever_exceeded_holders_keep_their_slot_and_slots_run_out(
    container_limit: int, server_limit: int, steps: list[tuple[str, int, int]]
) -> None:
    # Jobs 0-5 in container 1, 6-11 in container 2 (no limit of its own); all count against the server.
    limits = {
        job: (
            (Limit(container_scope(1), container_limit), Limit(SERVER_SCOPE, server_limit))
            if job < 6
            else (Limit(SERVER_SCOPE, server_limit),)
        )
        for job in range(12)
    }
    fleet = _Fleet(limits, states=dict.fromkeys(range(12), JobState.WAITING))
    now = NOW
    handed: set[int] = set()
    for action, job, minutes in steps:
        state = fleet.states[job]
        if action == "check-in":
            holds_before = state is JobState.WAITING and fleet.decide(job, now).verdict is Verdict.HOLDS
            if fleet.check_in(job, now):
                handed.add(job)
            elif holds_before:
                raise AssertionError("a computer holding a slot lost its job")
        elif action == "downloading" and job in handed and state is JobState.WAITING:
            fleet.states[job] = JobState.DOWNLOADING
        elif action == "executing" and state is JobState.DOWNLOADING:
            fleet.states[job] = JobState.EXECUTING
        elif action == "failed" and state in (JobState.WAITING, JobState.DOWNLOADING):
            fleet.states[job] = JobState.FAILED
        elif action == "minutes":
            now += timedelta(minutes=minutes)
        assert len(fleet.held(container_scope(1), now) if container_scope(1) in fleet.places else ()) <= (
            container_limit
        )
        assert len(fleet.held(SERVER_SCOPE, now) if SERVER_SCOPE in fleet.places else ()) <= server_limit
        for scope, places in fleet.places.items():
            limit = next(limit for found in limits.values() for limit in found if limit.scope == scope)
            occupancy = fleet.occupancy(limit, now)
            held_numbers = {slot.number for slot in occupancy.slots if slot.held(now)}
            for number, place in places.items():
                if place.expires is not None and place.expires <= now:
                    assert number not in held_numbers  # run out: held no more, free to take


@given(st.sampled_from(list(JobState)), st.integers(0, 5))
def test_jobs_without_a_payload_never_need_a_slot(state: JobState, in_use: int) -> None:
    later = NOW + TIMEOUT
    slots = [Slot(n, 100 + n, later, JobState.DOWNLOADING) for n in range(in_use)]
    occupancy = Occupancy.of(Limit("container:1", 1), slots, NOW)
    decision = may_download(1, state, False, [occupancy], NOW)
    assert decision.verdict is Verdict.NOT_NEEDED and decision.hands_out
    assert may_download(1, state, True, [], NOW).verdict is Verdict.NOT_NEEDED


@given(st.integers(1, 20), st.integers(0, 25), st.integers(0, 60))
def test_a_slot_expires_after_the_timeout(limit: int, holders: int, minutes: int) -> None:
    taken = NOW
    slots = [Slot(n, 100 + n, taken + TIMEOUT, JobState.DOWNLOADING) for n in range(min(holders, limit))]
    at = taken + timedelta(minutes=minutes)
    occupancy = Occupancy.of(Limit("server", limit), slots, at)
    if at < taken + TIMEOUT:
        assert occupancy.in_use(at) == len(slots)
        assert all(occupancy.holds(100 + n, at) for n in range(len(slots)))
    else:
        assert occupancy.in_use(at) == 0 and len(occupancy.free_numbers(at)) == limit
        assert may_download(1, JobState.WAITING, True, [occupancy], at).verdict is Verdict.MAY_TAKE
