"""What an agent's report does to a job (PROTOCOL.md `oco.agent.update_job_state`), and job expiry.

Transitions. A job moves forward: waiting → downloading → executing → a final state. Two rules keep it so:
a final job is never changed again (a late or repeated report is answered, not applied), and no report
brings a job back to waiting. One step back among the running states is allowed on purpose: an agent that
crashed is handed its running job again and starts over with the download, so a downloading report after
executing is applied. The first `download_started`/`execution_started` times are kept in any case.

One final state gives way: a job the server failed on its own with -8888 ("abort after failed job") was
never run by the server's decision, but an OCO agent does not skip the rest of a container after an
agent error (-9999) and runs the job anyway. What the computer reports having run wins over that
cascade: such a job accepts its owner's reports like a waiting one (and the assignment follows).

Retries (`oco.domain.retries`): a final -9999 of a job whose container still allows it another attempt
is not final — `retried` turns it into a job waiting again until its retry time, with no assignment
change and no -8888 cascade (the computer's later jobs of the container wait behind it instead,
`oco.domain.dispatch`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum

from oco.domain.errors import InvalidReport
from oco.domain.retries import NO_RETRIES, RetryPolicy, next_attempt
from oco.domain.returncodes import is_success, parse_codes
from oco.domain.states import (
    DOWNLOAD_PROGRESS_UNPACKING,
    AgentJobState,
    JobAction,
    JobState,
    ReturnCode,
    SequenceMode,
    UpgradeBehavior,
)
from oco.domain.status import is_expired

DEFAULT_OUTPUT_CAP = 64 * 1024
"""Characters of job output kept by default (the tail)."""
_CUT_NOTICE = "[… {cut} characters of earlier output cut …]\n"
_STATE_CHOICES = ", ".join(str(int(state)) for state in AgentJobState)


class AssignmentChange(Enum):
    """What a finished job does to the computer's assignment of its package."""

    NONE = "none"
    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What the server knows of the job a report is about.

    `download_started`/`execution_started` are the job's stored times (None while unset); they decide
    whether a report starts a phase. `upgrade_behavior` is the package's (KEEP when it was deleted).
    """

    state: JobState
    action: JobAction
    success_codes: str
    sequence_mode: SequenceMode
    upgrade_behavior: UpgradeBehavior
    download_started: datetime | None = None
    execution_started: datetime | None = None
    return_code: int | None = None
    attempt: int = 1
    """Which run of the job this report is about (1 = the first)."""
    retry: RetryPolicy = NO_RETRIES
    """The container's retries."""

    @property
    def aborted_by_cascade(self) -> bool:
        """Failed by the server's "abort after failed job" (-8888), not by anything the agent reported."""
        return self.state is JobState.FAILED and self.return_code == ReturnCode.ABORTED_AFTER_FAILED_JOB


@dataclass(frozen=True, slots=True)
class Report:
    """One `update_job_state` call, validated by `parse_report`."""

    state: AgentJobState
    return_code: int | None
    message: str
    download_progress: int | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The new job fields and the side effects the services apply.

    Not `applied`: the job was already final; change nothing and answer `succeeded`.
    Applied: set `state`; set the output to `message` when it is not empty or the job is `final`; set
    `download_progress` when not None; set `download_started` when `starts_download`, `execution_started`
    when `starts_execution`; when `final`, set `return_code` and `execution_finished`, apply `assignment`
    (and drop the family's other assignments of that computer when `remove_other_family_versions`), and
    when `abort_remaining`, fail that computer's waiting jobs of the container with -8888.
    """

    applied: bool
    state: JobState
    return_code: int | None
    message: str
    download_progress: int | None
    final: bool
    succeeded: bool
    starts_download: bool = False
    starts_execution: bool = False
    assignment: AssignmentChange = AssignmentChange.NONE
    remove_other_family_versions: bool = False
    abort_remaining: bool = False
    reopens: bool = False
    """The job was failed by the cascade and its owner reports it running: clear its return code and
    finish time."""
    retry_at: datetime | None = None
    """The attempt failed with -9999 and the job runs again from then on: keep the attempt in the job's
    history (with `return_code` and `message`), then set the job waiting with its next attempt number."""

    @property
    def ignored(self) -> bool:
        """The report came after the job had ended and changes nothing."""
        return not self.applied


def parse_report(data: Mapping[str, object]) -> Report:
    """Validate the `data` of an `update_job_state` call; raises InvalidReport naming the bad field.

    A missing or null message is empty; download progress is clamped to 0..101 (101 = unpacking).
    """
    raw_state = data.get("state")
    if isinstance(raw_state, bool) or not isinstance(raw_state, int) or raw_state not in set(AgentJobState):
        raise InvalidReport(f"'state' must be one of {_STATE_CHOICES}, not {raw_state!r}", field="state")
    return_code = data.get("return-code")
    if return_code is not None and (isinstance(return_code, bool) or not isinstance(return_code, int)):
        raise InvalidReport(
            f"'return-code' must be an integer or null, not {return_code!r}", field="return-code"
        )
    message = data.get("message")
    if message is None:
        message = ""
    if not isinstance(message, str):
        raise InvalidReport(f"'message' must be a string, not {type(message).__name__}", field="message")
    return Report(
        state=AgentJobState(raw_state),
        return_code=return_code,
        message=message,
        download_progress=_progress(data.get("download-progress")),
    )


def _progress(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:  # NaN
        raise InvalidReport(f"'download-progress' must be a number, not {value!r}", field="download-progress")
    return max(0, min(int(value), DOWNLOAD_PROGRESS_UNPACKING))


def cap_output(text: str, limit: int = DEFAULT_OUTPUT_CAP) -> str:
    """Keep the tail of long output, with a first line saying how many characters were cut.

    The result is never longer than `limit`, unless `limit` is too small to hold the notice itself.
    """
    limit = max(limit, 0)
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    while True:  # the notice grows with the number it shows; settles in a step or two
        notice = _CUT_NOTICE.format(cut=cut)
        needed = len(text) - max(limit - len(notice), 0)
        if needed <= cut:
            return notice + text[cut:]
        cut = needed


def apply_report(job: JobFacts, report: Report, output_cap: int = DEFAULT_OUTPUT_CAP) -> Outcome:
    """Decide what a report does to a job. A job in a final state is never changed: the report is
    ignored and `succeeded` tells the stored result — except a job failed only by the -8888 cascade, which
    takes its owner's report."""
    if job.state.is_final and not job.aborted_by_cascade:
        return _ignored(job)
    message = cap_output(report.message, output_cap)
    reopens = job.state.is_final
    if report.state is AgentJobState.DOWNLOADING:
        return _running(
            JobState.DOWNLOADING,
            report,
            message,
            starts_download=job.download_started is None,
            reopens=reopens,
        )
    if report.state is AgentJobState.EXECUTING:
        return _running(
            JobState.EXECUTING,
            report,
            message,
            starts_execution=job.execution_started is None,
            reopens=reopens,
        )
    if report.state is AgentJobState.ERROR:
        code = report.return_code if report.return_code is not None else int(ReturnCode.AGENT_ERROR)
        return _finished(job, JobState.FAILED, code, message)
    succeeded = is_success(parse_codes(job.success_codes), report.return_code)
    return _finished(job, JobState.SUCCEEDED if succeeded else JobState.FAILED, report.return_code, message)


def retried(job: JobFacts, outcome: Outcome, now: datetime) -> Outcome:
    """The outcome, or — for a -9999 failure the container retries — the job waiting again until its
    retry time: not final, so no assignment change, no cascade and nothing counted by a rollout."""
    if not (outcome.applied and outcome.final) or outcome.state is not JobState.FAILED:
        return outcome
    at = next_attempt(job.retry, job.attempt, outcome.return_code, now)
    if at is None:
        return outcome
    return replace(
        outcome,
        state=JobState.WAITING,
        final=False,
        succeeded=False,
        assignment=AssignmentChange.NONE,
        remove_other_family_versions=False,
        abort_remaining=False,
        retry_at=at,
    )


def _ignored(job: JobFacts) -> Outcome:
    return Outcome(
        applied=False,
        state=job.state,
        return_code=None,
        message="",
        download_progress=None,
        final=True,
        succeeded=job.state.is_success,
    )


def _running(
    state: JobState,
    report: Report,
    message: str,
    *,
    starts_download: bool = False,
    starts_execution: bool = False,
    reopens: bool = False,
) -> Outcome:
    return Outcome(
        applied=True,
        state=state,
        return_code=None,
        message=message,
        download_progress=report.download_progress,
        final=False,
        succeeded=False,
        starts_download=starts_download,
        starts_execution=starts_execution,
        reopens=reopens,
    )


def _finished(job: JobFacts, state: JobState, return_code: int | None, message: str) -> Outcome:
    succeeded = state is JobState.SUCCEEDED
    assignment = AssignmentChange.NONE
    if succeeded:
        assignment = AssignmentChange.ADD if job.action is JobAction.INSTALL else AssignmentChange.REMOVE
    return Outcome(
        applied=True,
        state=state,
        return_code=return_code,
        message=message,
        download_progress=None,
        final=True,
        succeeded=succeeded,
        assignment=assignment,
        remove_other_family_versions=(
            assignment is AssignmentChange.ADD and job.upgrade_behavior is UpgradeBehavior.INSTALLER_REMOVES
        ),
        abort_remaining=not succeeded and job.sequence_mode is SequenceMode.ABORT_AFTER_FAILED,
    )


@dataclass(frozen=True, slots=True)
class ExpiryCandidate:
    """A job and the end of its container, for the expiry rule."""

    id: int
    state: JobState
    container_end: datetime | None


def expire(jobs: Iterable[ExpiryCandidate], now: datetime) -> list[int]:
    """The ids of the jobs that become EXPIRED (-2) now: still pending when their container's end has
    passed. Services set their message to JOB_EXPIRED_MESSAGE and their finish time to now."""
    return [job.id for job in jobs if is_expired(job.state, job.container_end, now)]
