"""What a report does to a job: success codes, final states, assignments, abort, output cap."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.domain.errors import DomainError
from oco.domain.outcomes import AssignmentChange, JobFacts, Report, apply_report, cap_output, parse_report
from oco.domain.states import AgentJobState, JobAction, JobState, ReturnCode, SequenceMode, UpgradeBehavior


def facts(**changes: object) -> JobFacts:
    values: dict[str, object] = {
        "state": JobState.WAITING,
        "action": JobAction.INSTALL,
        "success_codes": "0",
        "sequence_mode": SequenceMode.IGNORE_FAILED,
        "upgrade_behavior": UpgradeBehavior.EXPLICIT_UNINSTALL,
    }
    values.update(changes)
    return JobFacts(**values)  # type: ignore[arg-type]


def finished(code: int | None, message: str = "") -> Report:
    return Report(AgentJobState.FINISHED, code, message)


def test_a_listed_code_succeeds_and_adds_the_assignment() -> None:
    outcome = apply_report(facts(success_codes="0,3010"), finished(3010))
    assert (outcome.state, outcome.succeeded, outcome.final) == (JobState.SUCCEEDED, True, True)
    assert outcome.assignment is AssignmentChange.ADD
    assert not outcome.remove_other_family_versions


def test_an_unlisted_code_fails() -> None:
    outcome = apply_report(facts(), finished(1603))
    assert (outcome.state, outcome.return_code, outcome.assignment) == (
        JobState.FAILED,
        1603,
        AssignmentChange.NONE,
    )


def test_an_empty_code_list_accepts_any_code() -> None:
    assert apply_report(facts(success_codes=""), finished(-42)).succeeded


def test_a_successful_uninstall_removes_the_assignment() -> None:
    assert apply_report(facts(action=JobAction.UNINSTALL), finished(0)).assignment is AssignmentChange.REMOVE


def test_installer_removes_other_versions_on_success_only() -> None:
    behavior = UpgradeBehavior.INSTALLER_REMOVES
    assert apply_report(facts(upgrade_behavior=behavior), finished(0)).remove_other_family_versions
    assert not apply_report(facts(upgrade_behavior=behavior), finished(1)).remove_other_family_versions


def test_abort_mode_asks_to_abort_the_rest_after_a_failure() -> None:
    abort = facts(sequence_mode=SequenceMode.ABORT_AFTER_FAILED)
    assert apply_report(abort, finished(1)).abort_remaining
    assert not apply_report(abort, finished(0)).abort_remaining
    assert not apply_report(facts(), finished(1)).abort_remaining


def test_agent_errors_fail_with_9999_when_no_code_is_given() -> None:
    outcome = apply_report(facts(), Report(AgentJobState.ERROR, None, "download aborted"))
    assert (outcome.state, outcome.return_code, outcome.message) == (
        JobState.FAILED,
        -9999,
        "download aborted",
    )
    assert ReturnCode.AGENT_ERROR == -9999


def test_progress_reports_start_the_timestamps_and_keep_the_job_pending() -> None:
    downloading = apply_report(facts(), Report(AgentJobState.DOWNLOADING, None, "", 40))
    assert (downloading.state, downloading.download_progress, downloading.starts_download) == (
        JobState.DOWNLOADING,
        40,
        True,
    )
    executing = apply_report(facts(state=JobState.DOWNLOADING), Report(AgentJobState.EXECUTING, None, "out"))
    assert (executing.state, executing.starts_execution, executing.final) == (JobState.EXECUTING, True, False)


def test_the_output_keeps_its_tail() -> None:
    text = "".join(f"line {i}\n" for i in range(10_000))
    capped = cap_output(text, 1000)
    assert capped.endswith("line 9999\n")
    assert capped.startswith(f"[… {len(text) - 1000} characters of earlier output cut …]")
    assert cap_output("short", 1000) == "short"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"state": "3"}, "'state' must be one of"),
        ({"state": 7}, "'state' must be one of"),
        ({"state": True}, "'state' must be one of"),
        ({"state": 3, "return-code": "0"}, "'return-code' must be an integer"),
        ({"state": 3, "message": 5}, "'message' must be a string"),
        ({"state": 1, "download-progress": "x"}, "'download-progress' must be a number"),
    ],
)
def test_malformed_reports_are_named(data: dict[str, object], message: str) -> None:
    with pytest.raises(DomainError, match=message):
        parse_report(data)


def test_progress_is_clamped_and_null_message_is_empty() -> None:
    report = parse_report({"state": 1, "return-code": None, "message": None, "download-progress": 250})
    assert (report.download_progress, report.message) == (101, "")


reports = st.builds(
    Report,
    st.sampled_from(list(AgentJobState)),
    st.one_of(st.none(), st.integers(-10_000, 10_000)),
    st.text(max_size=50),
    st.one_of(st.none(), st.integers(0, 101)),
)
final_states = st.sampled_from([s for s in JobState if s.is_final])
ORDER = {JobState.WAITING: 0, JobState.DOWNLOADING: 1, JobState.EXECUTING: 2}


@given(state=final_states, report=reports)
def test_a_final_state_never_changes(state: JobState, report: Report) -> None:
    outcome = apply_report(facts(state=state), report)
    assert not outcome.applied and outcome.state is state and outcome.assignment is AssignmentChange.NONE


@given(state=st.sampled_from([JobState.WAITING, JobState.DOWNLOADING, JobState.EXECUTING]), report=reports)
def test_pending_jobs_move_to_a_state_of_the_report(state: JobState, report: Report) -> None:
    outcome = apply_report(facts(state=state), report)
    assert outcome.applied
    if report.state is AgentJobState.FINISHED:
        assert outcome.state in (JobState.SUCCEEDED, JobState.FAILED) and outcome.final
    elif report.state is AgentJobState.ERROR:
        assert outcome.state is JobState.FAILED and outcome.return_code is not None
    else:
        assert not outcome.final and outcome.state in ORDER
    assert outcome.succeeded == (outcome.state is JobState.SUCCEEDED)
