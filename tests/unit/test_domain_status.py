"""Container status and progress from job states, job expiry, and the purge ages."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.domain.states import ContainerStatus, JobOutcome, JobState
from oco.domain.status import container_status, is_expired, outcome_counts, progress, purge_due

NOW = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = 3600
S, F, W, D, X = (
    JobState.SUCCEEDED,
    JobState.FAILED,
    JobState.WAITING,
    JobState.DOWNLOADING,
    JobState.EXECUTING,
)
EXPIRED, INCOMPATIBLE, ALREADY = JobState.EXPIRED, JobState.OS_INCOMPATIBLE, JobState.ALREADY_INSTALLED
LATER = NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    ("states", "start", "status"),
    [
        ([], NOW, ContainerStatus.EMPTY),
        ([W, S], LATER, ContainerStatus.SCHEDULED),  # pending, start ahead
        ([W, S], NOW, ContainerStatus.IN_PROGRESS),  # the start has come
        ([D], NOW - timedelta(days=1), ContainerStatus.IN_PROGRESS),
        ([X, F], NOW, ContainerStatus.IN_PROGRESS),  # a running job outweighs a failure
        ([S, F], NOW, ContainerStatus.FAILED),
        ([S, EXPIRED], NOW, ContainerStatus.FAILED),
        ([S, INCOMPATIBLE], NOW, ContainerStatus.FAILED),
        ([S, ALREADY], NOW, ContainerStatus.SUCCEEDED),  # already installed counts as success
        ([ALREADY], LATER, ContainerStatus.SUCCEEDED),  # nothing pending: the start does not matter
    ],
)
def test_container_status(states: list[JobState], start: datetime, status: ContainerStatus) -> None:
    assert container_status(Counter(states), start, NOW) is status


def test_progress_counts_final_jobs_rounded_down() -> None:
    assert progress(Counter([S, F, W, X])) == 50
    assert progress(Counter([S, W, W])) == 33
    assert progress(Counter([S, EXPIRED, ALREADY])) == 100
    assert progress(Counter([W])) == 0
    assert progress({S: 1, W: 0}) == 100  # states counted zero times are not there


def test_an_empty_container_is_complete() -> None:
    assert progress({}) == 100
    assert container_status({W: 0}, NOW, NOW) is ContainerStatus.EMPTY


job_states = st.lists(st.sampled_from(list(JobState)), max_size=30)


@given(states=job_states, start_offset=st.integers(-2, 2), enabled=st.booleans())
def test_status_follows_the_rule(states: list[JobState], start_offset: int, enabled: bool) -> None:
    start = NOW + timedelta(hours=start_offset)
    status = container_status(Counter(states), start, NOW, enabled)
    if not states:
        expected = ContainerStatus.EMPTY
    elif any(s in (W, D, X) for s in states) and not enabled:
        expected = ContainerStatus.DISABLED  # nothing is handed out, whatever its start
    elif any(s in (W, D, X) for s in states):
        expected = ContainerStatus.SCHEDULED if start > NOW else ContainerStatus.IN_PROGRESS
    elif any(s in (F, EXPIRED, INCOMPATIBLE) for s in states):
        expected = ContainerStatus.FAILED
    else:
        expected = ContainerStatus.SUCCEEDED
    assert status is expected


@given(states=job_states)
def test_progress_is_a_percentage_complete_only_when_nothing_is_pending(states: list[JobState]) -> None:
    value = progress(Counter(states))
    assert 0 <= value <= 100
    pending = any(not s.is_final for s in states)
    assert (value == 100) is (not pending)
    assert (container_status(Counter(states), NOW, NOW) is ContainerStatus.IN_PROGRESS) is pending


def test_expiry_is_for_pending_jobs_at_or_after_the_end() -> None:
    assert is_expired(W, NOW, NOW) and is_expired(X, NOW - timedelta(seconds=1), NOW)
    assert not is_expired(W, None, NOW) and not is_expired(S, NOW, NOW)
    assert not is_expired(W, NOW + timedelta(seconds=1), NOW)
    assert not is_expired(EXPIRED, NOW - timedelta(days=1), NOW)  # running it twice changes nothing


@pytest.mark.parametrize(
    ("status", "age_hours", "succeeded_after", "failed_after", "due"),
    [
        (ContainerStatus.SUCCEEDED, 4, 4 * HOUR, 48 * HOUR, True),
        (ContainerStatus.SUCCEEDED, 3.9, 4 * HOUR, 48 * HOUR, False),
        (ContainerStatus.FAILED, 47, 4 * HOUR, 48 * HOUR, False),
        (ContainerStatus.FAILED, 48, 4 * HOUR, 48 * HOUR, True),
        (ContainerStatus.SUCCEEDED, 1000, 0, 48 * HOUR, False),  # 0 disables
        (ContainerStatus.SUCCEEDED, 1000, None, 48 * HOUR, False),  # unset disables
        (ContainerStatus.SUCCEEDED, 1000, -5, 48 * HOUR, False),  # so does a negative age
        (ContainerStatus.FAILED, 1000, 4 * HOUR, None, False),
        (ContainerStatus.IN_PROGRESS, 1000, 1, 1, False),
        (ContainerStatus.SCHEDULED, 1000, 1, 1, False),
        (ContainerStatus.DISABLED, 1000, 1, 1, False),
        (ContainerStatus.EMPTY, 4, 4 * HOUR, 48 * HOUR, True),  # like a succeeded one
        (ContainerStatus.EMPTY, 3.9, 4 * HOUR, 48 * HOUR, False),
        (ContainerStatus.EMPTY, 1000, None, 1, False),
    ],
)
def test_purge_ages(
    status: ContainerStatus,
    age_hours: float,
    succeeded_after: int | None,
    failed_after: int | None,
    due: bool,
) -> None:
    finished = NOW - timedelta(hours=age_hours)
    assert purge_due(status, finished, NOW, succeeded_after, failed_after) is due


def test_a_container_without_a_finished_job_is_never_purged() -> None:
    assert not purge_due(ContainerStatus.SUCCEEDED, None, NOW, 1, 1)


def test_the_outcome_bar_counts_every_state_in_its_part() -> None:
    counts = {
        JobState.SUCCEEDED: 5,
        JobState.FAILED: 2,
        JobState.DOWNLOADING: 1,
        JobState.EXECUTING: 1,
        JobState.WAITING: 3,
        JobState.EXPIRED: 1,
        JobState.OS_INCOMPATIBLE: 1,
        JobState.ALREADY_INSTALLED: 2,
    }
    assert outcome_counts(counts) == {
        JobOutcome.SUCCEEDED: 5,
        JobOutcome.FAILED: 2,
        JobOutcome.RUNNING: 2,
        JobOutcome.WAITING: 3,
        JobOutcome.EXPIRED: 1,
        JobOutcome.SKIPPED: 3,
    }
    assert list(outcome_counts({})) == list(JobOutcome)  # every part, in the bar's order
    assert sum(outcome_counts(counts).values()) == sum(counts.values())
