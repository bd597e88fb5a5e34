"""The attempt history of retried jobs (`oco.domain.retries`): read in the caller's transaction.

A job's own row is its latest attempt; `job_attempt` keeps the earlier ones that were retried, so only jobs
with `attempt > 1` have any and a page of jobs costs one more query only when it shows such a job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from oco.db.models import JobAttempt
from oco.domain.states import JobState
from oco.services.listing import chunks
from oco.services.views import JobAttemptPublic, JobPublic

_J = TypeVar("_J", bound=JobPublic)


def history(session: Session, job_ids: Sequence[int]) -> dict[int, list[JobAttemptPublic]]:
    """Job id → its earlier attempts, oldest first."""
    found: dict[int, list[JobAttemptPublic]] = defaultdict(list)
    for chunk in chunks(list(job_ids)):
        rows = session.scalars(
            select(JobAttempt).where(JobAttempt.job_id.in_(chunk)).order_by(JobAttempt.job_id, JobAttempt.id)
        )
        for row in rows:
            found[row.job_id].append(
                JobAttemptPublic(
                    attempt=row.attempt,
                    state=JobState(row.state),
                    return_code=row.return_code,
                    message=row.message,
                    started=row.started,
                    finished=row.finished,
                )
            )
    return found


def with_history(session: Session, jobs: list[_J]) -> list[_J]:
    """The jobs' read models with their earlier attempts (only retried jobs have any)."""
    retried = [job.id for job in jobs if job.attempt > 1]
    if not retried:
        return jobs
    found = history(session, retried)
    return [job.model_copy(update={"attempts": found[job.id]}) if job.id in found else job for job in jobs]
