"""Retries: a job the agent could not run (-9999: download lost, command could not start) runs again.

A container may ask for up to `retries` more attempts of such a job, each `delay_seconds` after the failed
one finished. Only -9999 is retried: any other return code is the software's own answer, and running it
again would not change it (a -8888 is the server's cascade, never an attempt of its own). The attempt
that is retried is not the job's outcome: the job is waiting again, so a rollout's halt rule and success
criterion see only final outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from oco.domain.errors import InvalidRetries
from oco.domain.phases import duration_text
from oco.domain.states import ReturnCode

RETRIES_MAX = 10
RETRY_DELAY_MAX = 7 * 86400
"""At most a week between attempts (a container's end still expires a job waiting for its retry)."""
EXCERPT_CHARS = 2000
"""Characters of an attempt's output its history keeps (the tail)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a container retries a job the agent could not run, and how long it waits before each."""

    retries: int = 0
    delay_seconds: int = 0

    @property
    def active(self) -> bool:
        return self.retries > 0


NO_RETRIES = RetryPolicy()


def validate_policy(policy: RetryPolicy) -> RetryPolicy:
    """The policy, or InvalidRetries naming the field out of range."""
    if not 0 <= policy.retries <= RETRIES_MAX:
        raise InvalidRetries(f"retries must be 0 to {RETRIES_MAX}, not {policy.retries}", field="retries")
    if not 0 <= policy.delay_seconds <= RETRY_DELAY_MAX:
        raise InvalidRetries(
            f"retry delay must be 0 to 7 days, not {policy.delay_seconds} seconds", field="retry_delay"
        )
    return policy


def is_retryable(return_code: int | None) -> bool:
    """Only an agent error (-9999) is worth another attempt."""
    return return_code == ReturnCode.AGENT_ERROR


def next_attempt(
    policy: RetryPolicy, attempt: int, return_code: int | None, finished: datetime
) -> datetime | None:
    """When attempt number `attempt` (1 = the first run) failed with `return_code` at `finished`: when the
    next attempt may start, or None when the failure is final (not -9999, or no retries left)."""
    if not is_retryable(return_code) or attempt > policy.retries:
        return None
    return finished + timedelta(seconds=policy.delay_seconds)


def retry_text(attempt: int, retries: int, at: str) -> str:
    """ "retry 2 of 3 at Wed 10:32": attempt `attempt` (2 = the first retry) of the `retries` allowed."""
    return f"retry {attempt - 1} of {retries} at {at}"


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The tail of an attempt's output that its history keeps."""
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def policy_text(policy: RetryPolicy) -> str:
    """The policy in a sentence, as the preview states it ("" without retries)."""
    if not policy.active:
        return ""
    times = "once" if policy.retries == 1 else f"up to {policy.retries} times"
    delay = f"{duration_text(policy.delay_seconds)} after each failure" if policy.delay_seconds else "at once"
    return f"a job its agent could not run (-9999) is retried {times}, {delay}; other failures are final"
