"""Housekeeping tasks: each idempotent, runnable alone, run together by the server's loop.

With several server processes or replicas, each task runs in one of them at a time: on PostgreSQL and
MariaDB it takes a named lock first (advisory lock, `GET_LOCK`), held on a connection of its own until its
transaction has committed; the others skip that round. On SQLite the write lock taken at `BEGIN IMMEDIATE`
serializes them, and each task reads the state only after taking it.

Of several server processes, only the one that holds the lead (`Leadership`: a session lock on a
connection it keeps open, a file lock on SQLite) runs the rounds, so a round runs once across the
replicas; when that process dies, its lock goes with it and another one leads from its next round.
"""

from __future__ import annotations

import fcntl
import logging
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, func, or_, select, text, update
from sqlalchemy.orm import Session

from oco.config import Settings
from oco.db.models import DailyOutcome, Job, JobContainer, Watermark
from oco.domain.days import day_spans
from oco.domain.states import JOB_EXPIRED_MESSAGE, PENDING_STATES, ContainerStatus, JobState
from oco.domain.status import purge_due
from oco.errors import InvalidInput
from oco.services import audit, containers, metrics, rollouts, throttle, wol
from oco.services.runtime import Runtime

log = logging.getLogger("oco.housekeeping")
ACTOR = "housekeeping"
LOCK_BASE = 0x0C0_0000
LOCK_SPAN = 0x1_0000


def expire_jobs(session: Session, settings: Settings, now: datetime) -> int:
    """Jobs still pending when their container's end has passed become Expired (-2)."""
    ended = select(JobContainer.id).where(JobContainer.end_time.is_not(None), JobContainer.end_time <= now)
    result = session.connection().execute(  # Core: a bulk UPDATE, no ORM objects to synchronize
        update(Job)
        .where(Job.state.in_([int(s) for s in PENDING_STATES]), Job.container_id.in_(ended))
        .values(
            state=int(JobState.EXPIRED), message=JOB_EXPIRED_MESSAGE, execution_finished=now, last_update=now
        )
    )
    return result.rowcount


def purge_containers(session: Session, settings: Settings, now: datetime) -> int:
    """Delete succeeded/failed containers older than the configured ages (from their last job's finish),
    and empty ones as succeeded ones (from their creation when no job ever finished in them)."""
    purged = 0
    finished = select(JobContainer).where(
        or_(
            containers.status_condition(ContainerStatus.SUCCEEDED, now),
            containers.status_condition(ContainerStatus.FAILED, now),
            containers.status_condition(ContainerStatus.EMPTY, now),
        )
    )
    for summary in containers.summaries_of(session, list(session.scalars(finished)), now):
        if purge_due(
            summary.status,
            summary.last_finished or summary.container.created,
            now,
            settings.purge_succeeded_job_containers_after,
            settings.purge_failed_job_containers_after,
        ):
            containers.delete_container_in(session, summary.container.id, ACTOR)
            purged += 1
    return purged


OUTCOMES_MARK = "daily-outcomes"
OUTCOME_HISTORY = timedelta(days=31)
"""How far back the first count reaches (the dashboard charts 30 days)."""
COMMIT_MARGIN = timedelta(minutes=1)
"""Jobs are counted once their finish is this old: a report's transaction has committed by then."""
COUNTED = {JobState.SUCCEEDED: "succeeded", JobState.FAILED: "failed", JobState.EXPIRED: "expired"}


def count_outcomes(session: Session, settings: Settings, now: datetime) -> int:
    """Add the jobs that succeeded, failed or expired since the last count to their day's totals (days in
    the configured time zone); returns how many were counted. The totals outlive purged containers."""
    mark = session.get(Watermark, OUTCOMES_MARK)
    since = mark.at if mark is not None else now - OUTCOME_HISTORY
    until = now - COMMIT_MARGIN
    if until <= since:
        return 0
    counted = 0
    for span in day_spans(since, until, settings.zone):
        query = (
            select(Job.state, func.count())
            .where(
                Job.state.in_([int(state) for state in COUNTED]),
                Job.execution_finished >= span.start,
                Job.execution_finished < span.end,
            )
            .group_by(Job.state)
        )
        totals = {COUNTED[JobState(state)]: count for state, count in session.execute(query)}
        if totals:
            day = session.get(DailyOutcome, span.day) or DailyOutcome(
                day=span.day, succeeded=0, failed=0, expired=0
            )
            for name, count in totals.items():
                setattr(day, name, getattr(day, name) + count)
            session.add(day)
            counted += sum(totals.values())
    if mark is None:
        session.add(Watermark(name=OUTCOMES_MARK, at=until))
    else:
        mark.at = until
    return counted


STATISTICS_MARK = "statistics"
STATISTICS_AGE = timedelta(days=1)


def refresh_statistics(session: Session, settings: Settings, now: datetime) -> int:
    """On SQLite, let the query planner know the tables' sizes again once a day (`ANALYZE`): without them
    it may walk a million jobs of a container where a thousand computers in hostname order would do.
    PostgreSQL's autovacuum and InnoDB keep their statistics themselves. Returns 0: nothing an admin
    changed."""
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        return 0
    mark = session.get(Watermark, STATISTICS_MARK)
    if mark is not None and now - mark.at < STATISTICS_AGE:
        return 0
    started = time.perf_counter()
    session.execute(text("ANALYZE"))
    log.info("table statistics refreshed in %.1f s", time.perf_counter() - started)
    if mark is None:
        session.add(Watermark(name=STATISTICS_MARK, at=now))
    else:
        mark.at = now
    return 0


Task = Callable[[Session, Settings, datetime], int]


@dataclass(frozen=True, slots=True)
class NamedTask:
    """A housekeeping task and the name it is logged, audited, locked and run alone by."""

    name: str
    run: Task

    @property
    def lock_key(self) -> int:
        """The PostgreSQL advisory lock key of the task, stable across releases and processes."""
        return LOCK_BASE + zlib.crc32(self.name.encode()) % LOCK_SPAN


TASKS: tuple[NamedTask, ...] = (
    NamedTask("expire-jobs", expire_jobs),
    NamedTask("send-wol", wol.send_due_packets),
    NamedTask("expire-wol-shutdown", wol.expire_wol_shutdowns),
    NamedTask("advance-rollouts", rollouts.advance_rollouts),  # after expiry: expired jobs count
    NamedTask("count-outcomes", count_outcomes),  # before the purge deletes what it counts
    NamedTask("purge-containers", purge_containers),
    NamedTask("refresh-statistics", refresh_statistics),
    NamedTask("forget-login-failures", throttle.forget_login_failures),
)


def find_task(name: str) -> NamedTask:
    """The task called `name`; InvalidInput names the tasks there are."""
    for candidate in TASKS:
        if candidate.name == name:
            return candidate
    raise InvalidInput(f"housekeeping task {name!r} must be one of {', '.join(t.name for t in TASKS)}")


def run_task(runtime: Runtime, task: NamedTask) -> int | None:
    """Run one task in its own transaction; None when another process holds its lock."""
    with task_lock(runtime.engine, task) as held:
        if not held:
            return None
        with runtime.transaction() as session:
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
    try:  # outside any transaction: a slow webhook holds no lock
        results["deliver-rollout-events"] = rollouts.deliver_events(runtime)
    except Exception:
        log.exception("delivering rollout events failed")
        results["deliver-rollout-events"] = None
    return results


def run_led_round(runtime: Runtime, leadership: Leadership) -> dict[str, int | None] | None:
    """Run every task once if this process leads housekeeping (see `Leadership`); None when another
    process leads. The server's loop and `oco housekeeping` without `--once` take their turns by it."""
    leads = leadership.held()
    metrics.observe_housekeeping(leads=leads, ran=False)
    if not leads:
        return None
    results = run_all(runtime)
    metrics.observe_housekeeping(leads=True, ran=True)
    return results


_LOCKS = {
    "postgresql": ("SELECT pg_try_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)"),
    "mysql": ("SELECT GET_LOCK(:name, 0)", "SELECT RELEASE_LOCK(:name)"),
}


@contextmanager
def task_lock(engine: Engine, task: NamedTask) -> Iterator[bool]:
    """Whether this process may run `task` now; the lock is held until the block ends."""
    statements = _LOCKS.get(engine.dialect.name)
    if statements is None:
        yield True
        return
    take, release = statements
    parameters = {"key": task.lock_key, "name": f"oco-housekeeping-{task.name}"}
    with engine.connect() as connection:
        held = bool(connection.execute(text(take), parameters).scalar())
        connection.commit()
        try:
            yield held
        finally:
            if held:
                connection.execute(text(release), parameters)
                connection.commit()


LEADER_LOCK_KEY = LOCK_BASE - 1
"""The PostgreSQL advisory lock of the process that runs the rounds (outside the tasks' span of keys)."""
LEADER_LOCK_NAME = "oco-housekeeping-leader"
_LEADER_PARAMETERS = {"key": LEADER_LOCK_KEY, "name": LEADER_LOCK_NAME}
_LEADER_LOCKS = {  # take it; is it still this session's?
    "postgresql": (
        "SELECT pg_try_advisory_lock(:key)",
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        " AND classid = 0 AND objid = :key AND objsubid = 1 AND granted",
    ),
    "mysql": ("SELECT GET_LOCK(:name, 0)", "SELECT IS_USED_LOCK(:name) = CONNECTION_ID()"),
}


class Leadership:
    """Which of several server processes (replicas) runs the housekeeping rounds: the one holding a session
    lock — a PostgreSQL advisory lock, a MariaDB `GET_LOCK` — on a connection it keeps open.

    The database releases the lock when that connection ends, so when the leading process dies (or loses
    its database), another one takes the lead at its next round. On SQLite, whose processes share one
    host, the lock is a file lock (`flock`) on `<database file>-housekeeping.lock`, which the kernel
    releases when the process ends; an in-memory database has one process, which leads.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.engine = runtime.engine
        self._connection: Connection | None = None
        self._lock_file: IO[bytes] | None = None

    def held(self) -> bool:
        """Whether this process leads now: it keeps the lock it holds, or tries to take it."""
        if self.engine.dialect.name == "sqlite":
            return self._file_lock_held()
        statements = _LEADER_LOCKS.get(self.engine.dialect.name)
        if statements is None:
            return True
        take, check = statements
        if self._connection is not None:
            if self._still_held(check):
                return True
            log.warning("this server process lost the housekeeping lead (its database session ended)")
            self._drop()
        connection = self.engine.connect()
        try:
            held = bool(connection.execute(text(take), _LEADER_PARAMETERS).scalar())
            connection.commit()
        except Exception:
            connection.close()
            raise
        if not held:
            connection.close()
            return False
        self._connection = connection
        log.info("this server process leads housekeeping")
        return True

    def release(self) -> None:
        """Give the lead up (the process stops): another process takes it at its next round."""
        if self._connection is not None or self._lock_file is not None:
            log.info("this server process no longer leads housekeeping")
            self._drop()
            metrics.observe_housekeeping(leads=False, ran=False)

    def _file_lock_held(self) -> bool:
        if self._lock_file is not None:
            return True
        database = self.engine.url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return True
        lock_file = Path(database + "-housekeeping.lock").open("ab")  # noqa: SIM115  # kept open: the lock
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            return False
        self._lock_file = lock_file
        log.info("this server process leads housekeeping")
        return True

    def _still_held(self, check: str) -> bool:
        assert self._connection is not None
        try:
            still = bool(self._connection.execute(text(check), _LEADER_PARAMETERS).scalar())
            self._connection.commit()
        except Exception:  # the connection is gone: so is the session and its lock
            return False
        return still

    def _drop(self) -> None:
        lock_file, self._lock_file = self._lock_file, None
        if lock_file is not None:
            lock_file.close()  # the file lock goes with it
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.invalidate()  # the session ends, and the lock with it
            finally:
                connection.close()
