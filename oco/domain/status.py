"""Container status, progress, expiry and purge rules (PROTOCOL.md "Job states", DESIGN.md housekeeping)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from oco.domain.states import OUTCOME_OF, PENDING_STATES, ContainerStatus, JobOutcome, JobState

PERCENT = 100


def container_status(
    counts: Mapping[JobState, int], start: datetime, now: datetime, enabled: bool = True
) -> ContainerStatus:
    """From how many jobs are in each state: anything waiting/running: disabled (the admin switched the
    container off, so nothing is handed out), scheduled (start ahead) or in progress; else any failed,
    expired or incompatible job: failed; else succeeded (already installed counts as success). No jobs:
    empty."""
    present = {state for state, count in counts.items() if count > 0}
    if not present:
        return ContainerStatus.EMPTY
    if present & PENDING_STATES:
        if not enabled:
            return ContainerStatus.DISABLED
        return ContainerStatus.SCHEDULED if start > now else ContainerStatus.IN_PROGRESS
    if any(state.is_failure for state in present):
        return ContainerStatus.FAILED
    return ContainerStatus.SUCCEEDED


def progress(counts: Mapping[JobState, int]) -> int:
    """Percentage (0..100, rounded down) of jobs in a final state; an empty container is complete."""
    total = sum(counts.values())
    if not total:
        return PERCENT
    done = sum(count for state, count in counts.items() if state.is_final)
    return done * PERCENT // total


def outcome_counts(counts: Mapping[JobState, int]) -> dict[JobOutcome, int]:
    """How many jobs are in each part of the outcome bar, every part present, in the bar's order."""
    tally = dict.fromkeys(JobOutcome, 0)
    for state, count in counts.items():
        tally[OUTCOME_OF[state]] += count
    return tally


def is_expired(state: JobState, end: datetime | None, now: datetime) -> bool:
    """A job still pending when its container's end has passed (now >= end) expires (-2)."""
    return state in PENDING_STATES and end is not None and now >= end


def purge_due(
    status: ContainerStatus,
    last_finished: datetime | None,
    now: datetime,
    succeeded_after: int | None,
    failed_after: int | None,
) -> bool:
    """Whether a finished container is old enough to delete: succeeded ones after `succeeded_after`
    seconds, failed ones after `failed_after`, counted from its last job's finish; empty ones (every job
    deleted or moved away) like succeeded ones, counted from `last_finished` as the caller knows it (its
    creation when no job finished in it).

    None, 0 or a negative age disables purging of that kind; other statuses are never purged.
    """
    if last_finished is None:
        return False
    limits = {
        ContainerStatus.SUCCEEDED: succeeded_after,
        ContainerStatus.FAILED: failed_after,
        ContainerStatus.EMPTY: succeeded_after,
    }
    limit = limits.get(status)
    if limit is None or limit <= 0:
        return False
    return now - last_finished >= timedelta(seconds=limit)
