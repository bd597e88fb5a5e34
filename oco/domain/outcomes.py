"""What an agent's report does to a job (PROTOCOL.md `oco.agent.update_job_state`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from oco.domain.errors import DomainError
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

DEFAULT_OUTPUT_CAP = 65536


class AssignmentChange(Enum):
    NONE = "none"
    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What the server knows of the job a report is about."""

    state: JobState
    action: JobAction
    success_codes: str
    sequence_mode: SequenceMode
    upgrade_behavior: UpgradeBehavior


@dataclass(frozen=True, slots=True)
class Report:
    """One `update_job_state` call."""

    state: AgentJobState
    return_code: int | None
    message: str
    download_progress: int | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The new job fields and the side effects the services apply."""

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


def parse_report(data: dict[str, object]) -> Report:
    """Validate the `data` of an `update_job_state` call; raises DomainError naming the bad field."""
    raw_state = data.get("state")
    if isinstance(raw_state, bool) or not isinstance(raw_state, int):
        raise DomainError(f"'state' must be one of 1, 2, 3, -1, not {raw_state!r}", field="state")
    try:
        state = AgentJobState(raw_state)
    except ValueError:
        raise DomainError(f"'state' must be one of 1, 2, 3, -1, not {raw_state!r}", field="state") from None
    return_code = data.get("return-code")
    if return_code is not None and (isinstance(return_code, bool) or not isinstance(return_code, int)):
        raise DomainError(
            f"'return-code' must be an integer or null, not {return_code!r}", field="return-code"
        )
    message = data.get("message", "")
    if message is None:
        message = ""
    if not isinstance(message, str):
        raise DomainError("'message' must be a string", field="message")
    progress = data.get("download-progress")
    if progress is not None:
        if isinstance(progress, bool) or not isinstance(progress, int | float):
            raise DomainError(
                f"'download-progress' must be a number, not {progress!r}", field="download-progress"
            )
        progress = max(0, min(int(progress), DOWNLOAD_PROGRESS_UNPACKING))
    return Report(state=state, return_code=return_code, message=message, download_progress=progress)


def cap_output(text: str, limit: int = DEFAULT_OUTPUT_CAP) -> str:
    """Keep the tail of long output, with a first line saying how much was cut."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    return f"[… {cut} characters of earlier output cut …]\n{text[cut:]}"


def apply_report(job: JobFacts, report: Report, output_cap: int = DEFAULT_OUTPUT_CAP) -> Outcome:
    """Decide what a report does. A job in a final state is never changed: the report is ignored."""
    if job.state.is_final:
        return Outcome(
            applied=False,
            state=job.state,
            return_code=None,
            message="",
            download_progress=None,
            final=True,
            succeeded=job.state in (JobState.SUCCEEDED, JobState.ALREADY_INSTALLED),
        )
    message = cap_output(report.message, output_cap)
    if report.state is AgentJobState.DOWNLOADING:
        return _running(JobState.DOWNLOADING, report, message, starts_download=True)
    if report.state is AgentJobState.EXECUTING:
        return _running(JobState.EXECUTING, report, message, starts_execution=True)
    if report.state is AgentJobState.ERROR:
        code = report.return_code if report.return_code is not None else int(ReturnCode.AGENT_ERROR)
        return _finished(job, JobState.FAILED, code, message)
    succeeded = is_success(parse_codes(job.success_codes), report.return_code)
    return _finished(job, JobState.SUCCEEDED if succeeded else JobState.FAILED, report.return_code, message)


def _running(state: JobState, report: Report, message: str, **starts: bool) -> Outcome:
    return Outcome(
        applied=True,
        state=state,
        return_code=None,
        message=message,
        download_progress=report.download_progress,
        final=False,
        succeeded=False,
        **starts,
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
            succeeded
            and job.action is JobAction.INSTALL
            and job.upgrade_behavior is UpgradeBehavior.INSTALLER_REMOVES
        ),
        abort_remaining=not succeeded and job.sequence_mode is SequenceMode.ABORT_AFTER_FAILED,
    )
