"""What a finished job that did not succeed means, with the seed's explanations of -9999 and -8888."""

from __future__ import annotations

import pytest

from oco.domain.meanings import ABORTED, AGENT_ERROR, meaning
from oco.domain.states import JobState


def test_the_special_codes_say_what_happened_and_what_to_do() -> None:
    agent_error = meaning(JobState.FAILED, -9999)
    aborted = meaning(JobState.FAILED, -8888)
    assert (
        agent_error is not None
        and agent_error.title == "-9999 agent error"
        and agent_error.text == AGENT_ERROR
    )
    assert "download was aborted" in AGENT_ERROR and "command could not be started" in AGENT_ERROR
    assert (
        aborted is not None and aborted.title == "-8888 aborted after failed job" and aborted.text == ABORTED
    )
    assert "ignore failed jobs" in ABORTED


def test_a_procedure_code_names_the_success_codes() -> None:
    failed = meaning(JobState.FAILED, 3, "0,3010")
    assert failed is not None and failed.title == "exit code 3"
    assert "not a success code of the package (0, 3010)" in failed.text


@pytest.mark.parametrize(
    ("state", "title"),
    [
        (JobState.EXPIRED, "expired"),
        (JobState.OS_INCOMPATIBLE, "incompatible"),
        (JobState.ALREADY_INSTALLED, "already installed"),
    ],
)
def test_the_other_final_states(state: JobState, title: str) -> None:
    found = meaning(state, None)
    assert found is not None and found.title == title and found.text


@pytest.mark.parametrize(
    "state", [JobState.WAITING, JobState.DOWNLOADING, JobState.EXECUTING, JobState.SUCCEEDED]
)
def test_pending_and_succeeded_jobs_need_no_explanation(state: JobState) -> None:
    assert meaning(state, 0) is None
