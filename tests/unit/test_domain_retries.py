"""Retries (`oco.domain.retries`, `outcomes.retried`, dispatch): only -9999 is retried, at most N times, after
the delay; a retried failure is not final; the computer's later jobs of the container wait behind it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.domain.dispatch import (
    CandidateJob,
    ContainerWindow,
    Hold,
    RetryWait,
    jobs_to_hand_out,
    why_waiting,
)
from oco.domain.errors import InvalidRetries
from oco.domain.outcomes import AssignmentChange, JobFacts, Report, apply_report, retried
from oco.domain.retries import (
    RETRIES_MAX,
    RETRY_DELAY_MAX,
    RetryPolicy,
    excerpt,
    is_retryable,
    next_attempt,
    policy_text,
    retry_text,
    validate_policy,
)
from oco.domain.states import AgentJobState, JobAction, JobState, ReturnCode, SequenceMode, UpgradeBehavior

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
policies = st.builds(RetryPolicy, st.integers(0, RETRIES_MAX), st.integers(0, RETRY_DELAY_MAX))
codes = st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1), st.just(int(ReturnCode.AGENT_ERROR)))


@given(policies, st.integers(1, 20), codes)
def test_only_an_agent_error_is_retried_and_at_most_n_times(
    policy: RetryPolicy, attempt: int, code: int | None
) -> None:
    at = next_attempt(policy, attempt, code, NOW)
    if code != ReturnCode.AGENT_ERROR or attempt > policy.retries:
        assert at is None
    else:
        assert at == NOW + timedelta(seconds=policy.delay_seconds)


@given(policies)
def test_a_job_runs_at_most_retries_plus_one_times(policy: RetryPolicy) -> None:
    attempt, runs = 1, 1
    while next_attempt(policy, attempt, int(ReturnCode.AGENT_ERROR), NOW) is not None:
        attempt, runs = attempt + 1, runs + 1
    assert runs == policy.retries + 1


@given(st.integers(-(2**31), 2**31 - 1))
def test_no_code_but_minus_9999_is_retryable(code: int) -> None:
    assert is_retryable(code) is (code == -9999)
    assert not is_retryable(int(ReturnCode.ABORTED_AFTER_FAILED_JOB))


def test_policies_out_of_range_are_refused_with_their_field() -> None:
    with pytest.raises(InvalidRetries) as too_many:
        validate_policy(RetryPolicy(RETRIES_MAX + 1, 0))
    assert too_many.value.field == "retries"
    with pytest.raises(InvalidRetries) as too_long:
        validate_policy(RetryPolicy(1, RETRY_DELAY_MAX + 1))
    assert too_long.value.field == "retry_delay"
    with pytest.raises(InvalidRetries):
        validate_policy(RetryPolicy(-1, 0))
    assert validate_policy(RetryPolicy(3, 600)) == RetryPolicy(3, 600)


def test_the_texts() -> None:
    assert retry_text(3, 3, "Wed 10:32") == "retry 2 of 3 at Wed 10:32"
    assert policy_text(RetryPolicy()) == ""
    assert policy_text(RetryPolicy(3, 600)).startswith(
        "a job its agent could not run (-9999) is retried up to 3 times, 10m after each failure"
    )
    assert "retried once, at once" in policy_text(RetryPolicy(1, 0))


@given(st.text(max_size=5000))
def test_an_excerpt_keeps_the_tail_and_never_grows_past_its_limit(text: str) -> None:
    kept = excerpt(text, 100)
    assert len(kept) <= 100
    assert kept == text or text.endswith(kept[1:])


def _facts(
    attempt: int, policy: RetryPolicy, mode: SequenceMode = SequenceMode.ABORT_AFTER_FAILED
) -> JobFacts:
    return JobFacts(
        state=JobState.EXECUTING,
        action=JobAction.INSTALL,
        success_codes="0",
        sequence_mode=mode,
        upgrade_behavior=UpgradeBehavior.KEEP,
        attempt=attempt,
        retry=policy,
    )


@given(policies, st.integers(1, 12), codes, st.sampled_from([AgentJobState.FINISHED, AgentJobState.ERROR]))
def test_a_retried_failure_is_not_final_and_changes_nothing_else(
    policy: RetryPolicy, attempt: int, code: int | None, state: AgentJobState
) -> None:
    facts = _facts(attempt, policy)
    plain = apply_report(facts, Report(state, code, "boom"))
    outcome = retried(facts, plain, NOW)
    if outcome.retry_at is None:
        assert outcome == plain
        return
    assert plain.state is JobState.FAILED and plain.return_code == ReturnCode.AGENT_ERROR
    assert attempt <= policy.retries
    assert outcome.state is JobState.WAITING and not outcome.final and not outcome.succeeded
    assert not outcome.abort_remaining  # the -8888 cascade waits for the last attempt
    assert outcome.assignment is AssignmentChange.NONE
    assert outcome.return_code == ReturnCode.AGENT_ERROR and outcome.message == "boom"  # for the history


def test_the_last_attempt_fails_for_good_and_cascades() -> None:
    policy = RetryPolicy(2, 60)
    error = Report(AgentJobState.ERROR, None, "download lost")
    assert retried(_facts(2, policy), apply_report(_facts(2, policy), error), NOW).retry_at is not None
    last = retried(_facts(3, policy), apply_report(_facts(3, policy), error), NOW)
    assert last.final and last.state is JobState.FAILED and last.abort_remaining
    assert last.return_code == ReturnCode.AGENT_ERROR


def _container() -> ContainerWindow:
    return ContainerWindow(
        id=7, priority=0, created=NOW, start=NOW - timedelta(hours=1), end=None, enabled=True, ip_ranges=""
    )


def test_a_job_waiting_for_its_retry_is_handed_out_only_from_its_time_and_holds_back_later_jobs() -> None:
    at = NOW + timedelta(minutes=10)
    other = ContainerWindow(id=8, priority=0, created=NOW, start=NOW, end=None, enabled=True, ip_ranges="")
    jobs = [
        CandidateJob(1, 1, JobState.SUCCEEDED, _container()),
        CandidateJob(2, 2, JobState.WAITING, _container(), not_before=at),
        CandidateJob(3, 3, JobState.WAITING, _container()),
        CandidateJob(4, 1, JobState.WAITING, other),
    ]
    assert [job.id for job in jobs_to_hand_out(jobs, NOW, "10.0.0.1")] == [4]
    assert [job.id for job in jobs_to_hand_out(jobs, at, "10.0.0.1")] == [2, 3, 4]
    started = [*jobs[:2], CandidateJob(3, 3, JobState.EXECUTING, _container()), jobs[3]]
    assert [job.id for job in jobs_to_hand_out(started, NOW, "10.0.0.1")] == [3, 4]  # it finishes


@given(
    st.lists(st.tuples(st.integers(1, 6), st.booleans()), min_size=1, max_size=8, unique_by=lambda t: t[0])
)
def test_no_job_after_one_waiting_for_its_retry_is_handed_out(entries: list[tuple[int, bool]]) -> None:
    jobs = [
        CandidateJob(
            n,
            sequence,
            JobState.WAITING,
            _container(),
            not_before=NOW + timedelta(minutes=1) if held else None,
        )
        for n, (sequence, held) in enumerate(entries, start=1)
    ]
    held = [job.sequence for job in jobs if job.not_before is not None]
    handed = jobs_to_hand_out(jobs, NOW, "10.0.0.1")
    assert all(job.not_before is None for job in handed)
    if held:
        assert all(job.sequence < min(held) for job in handed)
    else:
        assert len(handed) == len(jobs)


def test_why_waiting_names_the_retry_and_its_time() -> None:
    at = NOW + timedelta(minutes=10)
    reason = why_waiting(_container(), NOW, "10.0.0.1", NOW, 300, retry=RetryWait(3, 3, at))
    assert reason.hold is Hold.RETRY and reason.since == at and reason.retry == RetryWait(3, 3, at)
    after = why_waiting(_container(), at, "10.0.0.1", at, 300, retry=RetryWait(3, 3, at))
    assert after.hold is Hold.NEXT_CHECK_IN


def test_why_waiting_names_an_earlier_job_of_the_container_being_retried() -> None:
    at = NOW + timedelta(minutes=10)
    reason = why_waiting(_container(), NOW, "10.0.0.1", NOW, 300, behind_retry=at)
    assert reason.hold is Hold.BEHIND_RETRY and reason.since == at
    assert why_waiting(_container(), at, "10.0.0.1", at, 300, behind_retry=at).hold is Hold.NEXT_CHECK_IN
