"""The shared enumerations: OCO's wire values, and how job states group into pending, final, failure."""

from __future__ import annotations

import pytest

from oco.domain.states import (
    DOWNLOAD_PROGRESS_UNPACKING,
    PENDING_STATES,
    AgentJobState,
    JobState,
    PostAction,
    ReturnCode,
    SequenceMode,
)


def test_job_states_keep_ocos_numbers() -> None:
    assert {state.name: int(state) for state in JobState} == {
        "WAITING": 0,
        "DOWNLOADING": 1,
        "EXECUTING": 2,
        "SUCCEEDED": 3,
        "FAILED": -1,
        "EXPIRED": -2,
        "OS_INCOMPATIBLE": -3,
        "ALREADY_INSTALLED": -5,
    }


def test_wire_values_of_the_small_enumerations() -> None:
    assert [int(s) for s in AgentJobState] == [1, 2, 3, -1]
    assert (ReturnCode.AGENT_ERROR, ReturnCode.ABORTED_AFTER_FAILED_JOB) == (-9999, -8888)
    assert [int(p) for p in PostAction] == [0, 1, 2, 3]
    assert [int(m) for m in SequenceMode] == [0, 1]
    assert DOWNLOAD_PROGRESS_UNPACKING == 101


@pytest.mark.parametrize("state", list(JobState))
def test_a_state_is_either_pending_or_final(state: JobState) -> None:
    assert state.is_final is (state not in PENDING_STATES)
    assert state.is_running is (state in (JobState.DOWNLOADING, JobState.EXECUTING))
    if state.is_failure or state.is_success:
        assert state.is_final


def test_failures_and_successes() -> None:
    failures = {s for s in JobState if s.is_failure}
    successes = {s for s in JobState if s.is_success}
    assert failures == {JobState.FAILED, JobState.EXPIRED, JobState.OS_INCOMPATIBLE}
    assert successes == {JobState.SUCCEEDED, JobState.ALREADY_INSTALLED}
    assert {JobState.WAITING, JobState.DOWNLOADING, JobState.EXECUTING} == PENDING_STATES
