"""Housekeeping tasks: each idempotent, runnable alone, run together by the server's loop.

On PostgreSQL each task takes a transaction-level advisory lock first, so with several replicas only
one runs it at a time; the others skip that round.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from oco.config import Settings
from oco.db.models import Job, JobContainer
from oco.domain.states import JOB_EXPIRED_MESSAGE, PENDING_STATES, JobState
from oco.domain.status import purge_due
from oco.services import audit, deployments, wol
from oco.services.runtime import Runtime

log = logging.getLogger("oco.housekeeping")
ACTOR = "housekeeping"
LOCK_BASE = 0x0C0_0000


def expire_jobs(session: Session, settings: Settings, now: datetime) -> int:
    """Jobs still pending when their container's end has passed become Expired (-2)."""
    ended = select(JobContainer.id).where(JobContainer.end_time.is_not(None), JobContainer.end_time <= now)
    result = session.execute(
        update(Job)
        .where(Job.state.in_([int(s) for s in PENDING_STATES]), Job.container_id.in_(ended))
        .values(
            state=int(JobState.EXPIRED), message=JOB_EXPIRED_MESSAGE, execution_finished=now, last_update=now
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def purge_containers(session: Session, settings: Settings, now: datetime) -> int:
    """Delete succeeded/failed containers older than the configured ages (from their last job's finish)."""
    purged = 0
    for summary in deployments.list_containers(session, now):
        if purge_due(
            summary.status,
            summary.last_finished,
            now,
            settings.purge_succeeded_job_containers_after,
            settings.purge_failed_job_containers_after,
        ):
            deployments.delete_container(session, summary.container.id, ACTOR)
            purged += 1
    return purged


Task = Callable[[Session, Settings, datetime], int]


@dataclass(frozen=True, slots=True)
class NamedTask:
    name: str
    run: Task


TASKS: tuple[NamedTask, ...] = (
    NamedTask("expire-jobs", expire_jobs),
    NamedTask("send-wol", wol.send_due_packets),
    NamedTask("expire-wol-shutdown", wol.expire_wol_shutdowns),
    NamedTask("purge-containers", purge_containers),
)


def run_task(runtime: Runtime, task: NamedTask) -> int | None:
    """Run one task in its own transaction; None when another replica holds its lock."""
    with runtime.transaction() as session:
        if not _lock(session, task):
            return None
        changed = task.run(session, runtime.settings, runtime.now())
        if changed:
            audit.record(session, ACTOR, f"housekeeping.{task.name}", "", None, changed=changed)
        return changed


def run_all(runtime: Runtime) -> dict[str, int | None]:
    """Run every task once; a failing task is logged and does not stop the others."""
    results: dict[str, int | None] = {}
    for task in TASKS:
        try:
            results[task.name] = run_task(runtime, task)
        except Exception:
            log.exception("housekeeping task %s failed", task.name)
            results[task.name] = None
    return results


def _lock(session: Session, task: NamedTask) -> bool:
    if session.get_bind().dialect.name != "postgresql":
        return True
    key = LOCK_BASE + TASKS.index(task)
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}).scalar())
