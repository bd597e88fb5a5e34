"""What a report does to a job: success codes, final states, timestamps, assignments, abort, output
cap, report validation, transitions, and expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.domain.errors import DomainError, InvalidReport
from oco.domain.outcomes import (
    DEFAULT_OUTPUT_CAP,
    AssignmentChange,
    ExpiryCandidate,
    JobFacts,
    Report,
    apply_report,
    cap_output,
    expire,
    parse_report,
)
from oco.domain.states import (
    PENDING_STATES,
    AgentJobState,
    JobAction,
    JobState,
    ReturnCode,
    SequenceMode,
    UpgradeBehavior,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)


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


def downloading(progress: int | None = 0) -> Report:
    return Report(AgentJobState.DOWNLOADING, None, "", progress)


def executing(output: str = "") -> Report:
    return Report(AgentJobState.EXECUTING, None, output)


# Success and failure ---------------------------------------------------------------------------


def test_a_listed_code_succeeds_and_adds_the_assignment() -> None:
    outcome = apply_report(facts(success_codes="0,3010"), finished(3010, "done"))
    assert (outcome.state, outcome.succeeded, outcome.final, outcome.applied) == (
        JobState.SUCCEEDED,
        True,
        True,
        True,
    )
    assert (outcome.return_code, outcome.message) == (3010, "done")
    assert outcome.assignment is AssignmentChange.ADD
    assert not outcome.remove_other_family_versions and not outcome.abort_remaining


def test_an_unlisted_code_fails_and_keeps_its_code() -> None:
    outcome = apply_report(facts(), finished(1603))
    assert (outcome.state, outcome.return_code, outcome.succeeded, outcome.assignment) == (
        JobState.FAILED,
        1603,
        False,
        AssignmentChange.NONE,
    )


def test_an_empty_code_list_accepts_any_code() -> None:
    assert apply_report(facts(success_codes=""), finished(-42)).succeeded


def test_a_missing_code_fails_unless_any_code_succeeds() -> None:
    assert apply_report(facts(success_codes="0"), finished(None)).state is JobState.FAILED
    assert apply_report(facts(success_codes=""), finished(None)).state is JobState.SUCCEEDED


def test_a_successful_uninstall_removes_the_assignment() -> None:
    outcome = apply_report(facts(action=JobAction.UNINSTALL), finished(0))
    assert outcome.assignment is AssignmentChange.REMOVE
    assert apply_report(facts(action=JobAction.UNINSTALL), finished(1)).assignment is AssignmentChange.NONE


def test_installer_removes_other_versions_on_a_successful_install_only() -> None:
    behavior = UpgradeBehavior.INSTALLER_REMOVES
    assert apply_report(facts(upgrade_behavior=behavior), finished(0)).remove_other_family_versions
    assert not apply_report(facts(upgrade_behavior=behavior), finished(1)).remove_other_family_versions
    uninstall = facts(upgrade_behavior=behavior, action=JobAction.UNINSTALL)
    assert not apply_report(uninstall, finished(0)).remove_other_family_versions
    for other in (UpgradeBehavior.EXPLICIT_UNINSTALL, UpgradeBehavior.KEEP):
        assert not apply_report(facts(upgrade_behavior=other), finished(0)).remove_other_family_versions


def test_abort_mode_asks_to_abort_the_rest_after_a_failure() -> None:
    abort = facts(sequence_mode=SequenceMode.ABORT_AFTER_FAILED)
    assert apply_report(abort, finished(1)).abort_remaining
    assert apply_report(abort, Report(AgentJobState.ERROR, None, "lost")).abort_remaining
    assert not apply_report(abort, finished(0)).abort_remaining
    assert not apply_report(facts(), finished(1)).abort_remaining


def test_agent_errors_fail_with_9999_when_no_code_is_given() -> None:
    outcome = apply_report(facts(), Report(AgentJobState.ERROR, None, "download aborted"))
    assert (outcome.state, outcome.return_code, outcome.message, outcome.final) == (
        JobState.FAILED,
        ReturnCode.AGENT_ERROR,
        "download aborted",
        True,
    )


def test_agent_errors_keep_the_code_they_give_even_a_listed_one() -> None:
    outcome = apply_report(facts(success_codes="0"), Report(AgentJobState.ERROR, 0, "could not start"))
    assert (outcome.state, outcome.return_code) == (JobState.FAILED, 0)


# Running reports and timestamps ----------------------------------------------------------------


def test_progress_reports_start_the_phases_and_keep_the_job_pending() -> None:
    first_download = apply_report(facts(), downloading(40))
    assert (first_download.state, first_download.download_progress, first_download.final) == (
        JobState.DOWNLOADING,
        40,
        False,
    )
    assert first_download.starts_download and not first_download.starts_execution
    execution = apply_report(facts(state=JobState.DOWNLOADING, download_started=NOW), executing("out"))
    assert (execution.state, execution.message, execution.starts_execution) == (
        JobState.EXECUTING,
        "out",
        True,
    )
    assert not execution.starts_download and execution.return_code is None


def test_phase_times_are_set_once() -> None:
    again = facts(state=JobState.DOWNLOADING, download_started=NOW)
    assert not apply_report(again, downloading(80)).starts_download
    running = facts(state=JobState.EXECUTING, download_started=NOW, execution_started=NOW)
    assert not apply_report(running, executing("more")).starts_execution


def test_a_restarted_agent_may_download_again_after_executing() -> None:
    running = facts(state=JobState.EXECUTING, download_started=NOW, execution_started=NOW)
    outcome = apply_report(running, downloading(0))
    assert (outcome.applied, outcome.state, outcome.starts_download) == (True, JobState.DOWNLOADING, False)


def test_a_running_job_reports_its_result_as_not_succeeded_yet() -> None:
    assert not apply_report(facts(), executing()).succeeded


# Final jobs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "succeeded"),
    [
        (JobState.SUCCEEDED, True),
        (JobState.ALREADY_INSTALLED, True),
        (JobState.FAILED, False),
        (JobState.EXPIRED, False),
        (JobState.OS_INCOMPATIBLE, False),
    ],
)
def test_a_report_on_a_final_job_is_ignored_and_answered(state: JobState, succeeded: bool) -> None:
    outcome = apply_report(facts(state=state), finished(0, "late"))
    assert outcome.ignored and not outcome.applied
    assert (outcome.state, outcome.succeeded, outcome.assignment, outcome.abort_remaining) == (
        state,
        succeeded,
        AssignmentChange.NONE,
        False,
    )


# Output cap ------------------------------------------------------------------------------------


def test_the_output_keeps_its_tail_and_says_how_much_was_cut() -> None:
    text = "".join(f"line {i}\n" for i in range(10_000))
    capped = cap_output(text, 1000)
    assert capped.endswith("line 9999\n")
    assert len(capped) == 1000
    notice, _, tail = capped.partition("\n")
    cut = len(text) - len(tail)
    assert notice == f"[… {cut} characters of earlier output cut …]"
    assert text.endswith(tail)


def test_short_output_is_kept_whole() -> None:
    assert cap_output("short", 1000) == "short"
    assert cap_output("x" * DEFAULT_OUTPUT_CAP) == "x" * DEFAULT_OUTPUT_CAP
    assert DEFAULT_OUTPUT_CAP == 65536


def test_the_report_message_is_capped() -> None:
    outcome = apply_report(facts(), executing("y" * 5000), output_cap=1024)
    assert len(outcome.message) == 1024 and outcome.message.startswith("[… ")


@given(text=st.text(max_size=3000), limit=st.integers(60, 2500))
def test_capped_output_fits_and_keeps_an_exact_tail(text: str, limit: int) -> None:
    capped = cap_output(text, limit)
    assert len(capped) <= limit
    if len(text) <= limit:
        assert capped == text
    else:
        notice, _, tail = capped.partition("\n")
        assert notice == f"[… {len(text) - len(tail)} characters of earlier output cut …]"
        assert text.endswith(tail)


# Report validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({}, "state", "'state' must be one of 1, 2, 3, -1, not None"),
        ({"state": "3"}, "state", "'state' must be one of 1, 2, 3, -1, not '3'"),
        ({"state": 7}, "state", "not 7"),
        ({"state": 0}, "state", "not 0"),
        ({"state": True}, "state", "not True"),
        ({"state": 3.0}, "state", "not 3.0"),
        (
            {"state": 3, "return-code": "0"},
            "return-code",
            "'return-code' must be an integer or null, not '0'",
        ),
        ({"state": 3, "return-code": False}, "return-code", "'return-code' must be an integer"),
        ({"state": 3, "message": 5}, "message", "'message' must be a string, not int"),
        ({"state": 1, "download-progress": "x"}, "download-progress", "'download-progress' must be a number"),
        ({"state": 1, "download-progress": float("nan")}, "download-progress", "must be a number"),
    ],
)
def test_malformed_reports_are_named(data: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(InvalidReport) as raised:
        parse_report(data)
    assert message in str(raised.value)
    assert raised.value.field == field
    assert isinstance(raised.value, DomainError)


def test_a_well_formed_report() -> None:
    data = {"job-id": 5, "state": 3, "return-code": 3010, "message": "done"}
    assert parse_report(data) == Report(AgentJobState.FINISHED, 3010, "done", None)


def test_progress_is_clamped_and_a_null_message_is_empty() -> None:
    report = parse_report({"state": 1, "return-code": None, "message": None, "download-progress": 250})
    assert (report.download_progress, report.message) == (101, "")
    assert parse_report({"state": 1, "download-progress": -3.7}).download_progress == 0
    assert parse_report({"state": 1, "download-progress": 42.9}).download_progress == 42


# Transitions -----------------------------------------------------------------------------------

reports = st.builds(
    Report,
    st.sampled_from(list(AgentJobState)),
    st.one_of(st.none(), st.integers(-10_000, 10_000)),
    st.text(max_size=50),
    st.one_of(st.none(), st.integers(0, 101)),
)
all_facts = st.builds(
    facts,
    state=st.sampled_from(list(JobState)),
    action=st.sampled_from(list(JobAction)),
    success_codes=st.sampled_from(["", "0", "0,3010", "1"]),
    sequence_mode=st.sampled_from(list(SequenceMode)),
    upgrade_behavior=st.sampled_from(list(UpgradeBehavior)),
)


@given(job=all_facts.filter(lambda f: f.state.is_final), report=reports)
def test_a_final_state_never_changes(job: JobFacts, report: Report) -> None:
    outcome = apply_report(job, report)
    assert not outcome.applied and outcome.state is job.state
    assert outcome.assignment is AssignmentChange.NONE and not outcome.abort_remaining
    assert outcome.succeeded is job.state.is_success


@given(job=all_facts.filter(lambda f: not f.state.is_final), report=reports)
def test_a_pending_job_moves_to_the_state_the_report_says(job: JobFacts, report: Report) -> None:
    outcome = apply_report(job, report)
    assert outcome.applied and outcome.state is not JobState.WAITING
    expected_running = {
        AgentJobState.DOWNLOADING: JobState.DOWNLOADING,
        AgentJobState.EXECUTING: JobState.EXECUTING,
    }
    if report.state in expected_running:
        assert (outcome.state, outcome.final) == (expected_running[report.state], False)
    else:
        assert outcome.final and outcome.state in (JobState.SUCCEEDED, JobState.FAILED)
    assert outcome.succeeded is (outcome.state is JobState.SUCCEEDED)
    assert outcome.abort_remaining is (
        outcome.state is JobState.FAILED and job.sequence_mode is SequenceMode.ABORT_AFTER_FAILED
    )
    assert (outcome.assignment is not AssignmentChange.NONE) is outcome.succeeded


@given(first=st.sampled_from(list(PENDING_STATES)), sequence=st.lists(reports, max_size=8))
def test_a_run_of_reports_goes_forward_and_stops_at_the_first_final_one(
    first: JobState, sequence: list[Report]
) -> None:
    job, finals, starts = facts(state=first), [], {"download": 0, "execution": 0}
    for report in sequence:
        outcome = apply_report(job, report)
        assert outcome.state is not JobState.WAITING
        if finals:
            assert outcome.ignored and outcome.state is finals[0]
            continue
        starts["download"] += outcome.starts_download
        starts["execution"] += outcome.starts_execution
        job = facts(
            state=outcome.state,
            download_started=job.download_started or (NOW if outcome.starts_download else None),
            execution_started=job.execution_started or (NOW if outcome.starts_execution else None),
        )
        if outcome.final:
            finals.append(outcome.state)
    assert starts["download"] <= 1 and starts["execution"] <= 1  # each phase time is set at most once


# Expiry ----------------------------------------------------------------------------------------


def test_pending_jobs_of_an_ended_container_expire() -> None:
    ended, running, open_ = NOW - timedelta(seconds=1), NOW, NOW + timedelta(seconds=1)
    jobs = [
        ExpiryCandidate(1, JobState.WAITING, ended),
        ExpiryCandidate(2, JobState.EXECUTING, running),  # the end is exclusive: at the end, it expires
        ExpiryCandidate(3, JobState.WAITING, open_),
        ExpiryCandidate(4, JobState.WAITING, None),
        ExpiryCandidate(5, JobState.SUCCEEDED, ended),
        ExpiryCandidate(6, JobState.FAILED, ended),
    ]
    assert expire(jobs, NOW) == [1, 2]
    assert expire([], NOW) == []


@given(
    state=st.sampled_from(list(JobState)),
    end_offset=st.one_of(st.none(), st.integers(-100, 100)),
)
def test_only_pending_jobs_past_their_end_expire(state: JobState, end_offset: int | None) -> None:
    end = None if end_offset is None else NOW + timedelta(seconds=end_offset)
    expired = expire([ExpiryCandidate(1, state, end)], NOW) == [1]
    assert expired is (state in PENDING_STATES and end is not None and end <= NOW)
