"""What a job's state and return code mean to an admin, and what to do about them (seed "Special Status
Codes").

The console shows `meaning(…)` beside every finished job that did not succeed, so a failure reads at a
glance without looking the code up.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from oco.domain.returncodes import parse_codes
from oco.domain.states import JobState, PostAction, ReturnCode, Vocabulary, spell

AGENT_ERROR = (
    "Agent error: the download was aborted (the connection was lost), the command could not be started, "
    "or another error of the agent. Renew the job to try again; run the command by hand on the computer "
    "to check it works; if it persists, report it to the agent's maintainers with the output."
)
ABORTED = (
    "Aborted after a failed job: an earlier job of this container failed on this computer and the "
    "container's sequence mode is 'abort after failed job'. Fix the failed job (or set the sequence mode "
    "to 'ignore failed jobs'), then renew."
)
EXPIRED = (
    "Expired: the container's end passed before the job could run (the computer was offline, or outside "
    "the IP ranges). Move the end, or renew the failed jobs into a new container."
)
INCOMPATIBLE = (
    "Not compatible: the package's OS, OS version or architecture does not match this computer; "
    "nothing was run."
)
ALREADY_INSTALLED = (
    "Already installed: this version was installed on the computer; nothing was run. Deploy with "
    "'reinstall' to run it again."
)


@dataclass(frozen=True, slots=True)
class Meaning:
    """A short title ("-9999 agent error") and what it means, with what to do."""

    title: str
    text: str


def meaning(state: JobState, return_code: int | None, success_codes: str = "") -> Meaning | None:
    """What a finished job that did not succeed means; None for jobs still pending or succeeded."""
    if state is JobState.FAILED:
        return _failure(return_code, success_codes)
    if state is JobState.EXPIRED:
        return Meaning("expired", EXPIRED)
    if state is JobState.OS_INCOMPATIBLE:
        return Meaning("incompatible", INCOMPATIBLE)
    if state is JobState.ALREADY_INSTALLED:
        return Meaning("already installed", ALREADY_INSTALLED)
    return None


def _failure(return_code: int | None, success_codes: str) -> Meaning:
    if return_code == ReturnCode.AGENT_ERROR:
        return Meaning(f"{int(ReturnCode.AGENT_ERROR)} agent error", AGENT_ERROR)
    if return_code == ReturnCode.ABORTED_AFTER_FAILED_JOB:
        return Meaning(f"{int(ReturnCode.ABORTED_AFTER_FAILED_JOB)} aborted after failed job", ABORTED)
    if return_code is None:
        return Meaning("failed", "The job failed without a return code.")
    codes = sorted(parse_codes(success_codes))
    accepted = ", ".join(map(str, codes)) if codes else "any"
    return Meaning(
        f"exit code {return_code}",
        f"The procedure ended with code {return_code}, which is not a success code of the package "
        f"({accepted}). Look at its output; if the code means success, add it to the package's success "
        "codes for the next deployments.",
    )


class PostActionFate(Vocabulary, StrEnum):
    """What becomes of a job's post-action, as far as the server can know: agents report the job, not
    the restart or shutdown that follows it."""

    NONE = "none"
    PENDING = "pending"
    ASKED = "asked"
    NOT_AFTER_FAILURE = "not-after-failure"
    DISABLED = "disabled"


spell(
    PostActionFate,
    {
        PostActionFate.NONE: ("none", "no post-action"),
        PostActionFate.PENDING: ("pending", "after the job succeeds"),
        PostActionFate.ASKED: ("asked", "asked of the agent after success"),
        PostActionFate.NOT_AFTER_FAILURE: ("not-after-failure", "not done: the job did not succeed"),
        PostActionFate.DISABLED: ("disabled", "never: the restart timeout is negative"),
    },
)


def post_action_fate(state: JobState, post_action: PostAction, restart_timeout: int) -> PostActionFate:
    """Whether a job's restart, shutdown or agent exit is still to come, was asked for, or will not be."""
    if post_action is PostAction.NONE:
        return PostActionFate.NONE
    if restart_timeout < 0 and post_action in (PostAction.RESTART, PostAction.SHUTDOWN):
        return PostActionFate.DISABLED
    if not state.is_final:
        return PostActionFate.PENDING
    return PostActionFate.ASKED if state is JobState.SUCCEEDED else PostActionFate.NOT_AFTER_FAILURE
