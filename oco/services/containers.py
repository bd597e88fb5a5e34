"""Use cases of job containers once created: list, show, edit, renew failed jobs, delete."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select
from sqlalchemy.orm import Session, selectinload

from oco.db.models import DownloadSlot, Job, JobContainer
from oco.domain.containers import NAME_MAX, ContainerSettings, shown_time, validate_container
from oco.domain.phases import HALTED, RolloutEdit, duration_text
from oco.domain.retries import RetryPolicy, validate_policy
from oco.domain.slots import container_scope, parse_max_downloads
from oco.domain.states import PENDING_STATES, ContainerStatus, JobState, SequenceMode
from oco.domain.status import container_status, outcome_counts, progress
from oco.domain.windows import Windows, WindowZone, stored_windows
from oco.errors import InvalidInput, NotFound
from oco.services import attempts, audit
from oco.services.listing import PageRequest, chunks, contains, distinct_words, fetch_page
from oco.services.runtime import Runtime
from oco.services.views import ContainerDetailPublic, ContainerPublic, PagePublic, job_view

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ContainerSummary:
    """A container with its status, progress, job counts per state and its last job's finish."""

    container: JobContainer
    status: ContainerStatus
    progress: int
    counts: dict[JobState, int]
    last_finished: datetime | None


@dataclass(frozen=True, slots=True)
class ContainerEdit:
    """Changes to a container; None leaves a field as it is (`clear_end` removes the end)."""

    name: str | None = None
    description: str | None = None
    notes: str | None = None
    enabled: bool | None = None
    start: datetime | None = None
    end: datetime | None = None
    clear_end: bool = False
    priority: int | None = None
    restart_timeout: int | None = None
    sequence_mode: SequenceMode | None = None
    agent_ip_ranges: str | None = None
    wol: bool | None = None
    shutdown_waked: bool | None = None
    max_downloads: int | None = None
    """At most this many of its computers download at once; 0 removes the limit."""
    retries: int | None = None
    retry_delay_seconds: int | None = None
    rollout: RolloutEdit = field(default_factory=RolloutEdit)
    """Changes to the phases plan (`rollouts.replan`)."""
    windows: Windows | None = None
    """New maintenance windows (with their zone); `clear_windows` removes them."""
    clear_windows: bool = False
    window_zone: WindowZone | None = None
    """Read the windows on another clock (without new windows: the current ones)."""


def list_containers(rt: Runtime) -> list[ContainerPublic]:
    """Every job container with its status and progress, newest first."""
    with rt.reading() as session:
        return [container_view(summary) for summary in summaries(session, rt.now())]


@dataclass(frozen=True, slots=True)
class ContainerQuery:
    """Which job containers a list shows: words to search for in name, description and author, a status."""

    search: str = ""
    status: ContainerStatus | None = None


CONTAINER_SORTS = ("created", "name", "priority", "start", "end", "author")


def search_containers(
    rt: Runtime, query: ContainerQuery, request: PageRequest
) -> PagePublic[ContainerPublic]:
    """One page of the job containers that match `query`, newest first unless sorted otherwise; only the
    page's jobs are counted."""
    now = rt.now()
    order = {
        "created": JobContainer.created,
        "name": JobContainer.name,
        "priority": JobContainer.priority,
        "start": JobContainer.start_time,
        "end": JobContainer.end_time,
        "author": JobContainer.author,
    }
    with rt.reading() as session:
        matching = select(JobContainer).where(*_container_conditions(query, now))
        fetched = fetch_page(session, matching, order, JobContainer.id, request, "-created")
        containers = [row[0] for row in fetched.rows]
        return fetched.page([container_view(s) for s in summaries_of(session, containers, now)])


def export_containers(rt: Runtime, query: ContainerQuery) -> list[ContainerPublic]:
    """Every job container that matches `query`, newest first (for a CSV download)."""
    now = rt.now()
    with rt.reading() as session:
        matching = (
            select(JobContainer).where(*_container_conditions(query, now)).order_by(JobContainer.id.desc())
        )
        return [container_view(s) for s in summaries_of(session, list(session.scalars(matching)), now)]


def container_summary(rt: Runtime, container_id: int) -> ContainerPublic:
    """A job container with its status, progress and job counts (its jobs: `jobs.search_jobs`)."""
    with rt.reading() as session:
        return container_view(summary_of(session, find_container(session, container_id), rt.now()))


def _container_conditions(query: ContainerQuery, now: datetime) -> list[ColumnElement[bool]]:
    """The SQL form of the query; a status is `oco.domain.status.container_status` over job states."""
    conditions = [
        or_(
            *(
                contains(field, word)
                for field in (JobContainer.name, JobContainer.description, JobContainer.author)
            )
        )
        for word in distinct_words(query.search)
    ]
    if query.status is not None:
        conditions.append(status_condition(query.status, now))
    return conditions


def _has_jobs(states: Iterable[JobState] | None = None) -> ColumnElement[bool]:
    jobs = select(Job.id).where(Job.container_id == JobContainer.id)
    if states is not None:
        jobs = jobs.where(Job.state.in_([int(state) for state in states]))
    return exists(jobs)


def status_condition(status: ContainerStatus, now: datetime) -> ColumnElement[bool]:
    """The containers of this status, in SQL (the same rule as `oco.domain.status.container_status`)."""
    pending = _has_jobs(PENDING_STATES)
    failing = _has_jobs(state for state in JobState if state.is_failure)
    enabled = JobContainer.enabled.is_(True)
    conditions = {
        ContainerStatus.SCHEDULED: and_(pending, enabled, JobContainer.start_time > now),
        ContainerStatus.IN_PROGRESS: and_(pending, enabled, JobContainer.start_time <= now),
        ContainerStatus.DISABLED: and_(pending, ~enabled),
        ContainerStatus.FAILED: and_(~pending, failing),
        ContainerStatus.SUCCEEDED: and_(~pending, ~failing, _has_jobs()),
        ContainerStatus.EMPTY: ~_has_jobs(),
    }
    return conditions[status]


def container_detail(rt: Runtime, container_id: int) -> ContainerDetailPublic:
    """A job container with every job (state, return code, output)."""
    with rt.reading() as session:
        return _detail(session, container_id, rt.now())


class _Preview(Exception):
    """Ends a preview's transaction (rolled back) with the view it computed."""

    def __init__(self, view: ContainerPublic) -> None:
        super().__init__("preview")
        self.view = view


def edit_container(
    rt: Runtime, container_id: int, edit: ContainerEdit, actor: str, *, dry_run: bool = False
) -> ContainerPublic:
    """Change a container's settings, validated together as at creation; answers with the container (and
    its rollout). New phases or windows apply to the jobs still waiting; started ones finish.

    With `dry_run`, the edit is made and rolled back: the answer is what it would do (its phases and
    their computers), nothing is saved or audited."""
    try:
        with rt.transaction() as session:
            view = _edit(session, rt, container_id, edit, actor)
            if dry_run:
                raise _Preview(view)
            return view
    except _Preview as preview:
        return preview.view


def _edit(
    session: Session, rt: Runtime, container_id: int, edit: ContainerEdit, actor: str
) -> ContainerPublic:
    """The edit in the caller's transaction."""
    from oco.services import rollouts  # rollouts builds on this module's read models

    now = rt.now()
    container = _get(session, container_id)
    policy = validate_policy(
        RetryPolicy(
            _pick(edit.retries, container.retries),
            _pick(edit.retry_delay_seconds, container.retry_delay_seconds),
        )
    )
    windows = _edited_windows(container.windows, edit)
    changes = _changed(container, policy, windows)
    changes |= rollouts.replan(session, container, edit.rollout, now)
    end = None if edit.clear_end else (edit.end if edit.end is not None else container.end_time)
    validated = validate_container(
        ContainerSettings(
            name=_pick(edit.name, container.name),
            start=_pick(edit.start, container.start_time),
            end=end,
            priority=_pick(edit.priority, container.priority),
            restart_timeout=_pick(edit.restart_timeout, container.restart_timeout),
            sequence_mode=SequenceMode(_pick(edit.sequence_mode, container.sequence_mode)),
            agent_ip_ranges=_pick(edit.agent_ip_ranges, container.agent_ip_ranges),
        ),
        rt.settings.zone,
    )
    container.name = validated.name
    container.start_time = validated.start
    container.end_time = validated.end
    container.priority = validated.priority
    container.restart_timeout = validated.restart_timeout
    container.sequence_mode = int(validated.sequence_mode)
    container.agent_ip_ranges = validated.agent_ip_ranges
    container.description = _pick(edit.description, container.description)
    container.notes = _pick(edit.notes, container.notes)
    container.enabled = _pick(edit.enabled, container.enabled)
    container.wol = _pick(edit.wol, container.wol)
    container.shutdown_waked = container.wol and _pick(edit.shutdown_waked, container.shutdown_waked)
    container.retries, container.retry_delay_seconds = policy.retries, policy.delay_seconds
    container.windows = windows
    if edit.max_downloads is not None:
        container.max_downloads = parse_max_downloads(edit.max_downloads)
    audit.record(
        session, actor, "container.edit", "job_container", container.id, name=container.name, **changes
    )
    session.flush()
    return rollouts.with_rollout(session, container_view(summary_of(session, container, now)))


def _edited_windows(stored: str | None, edit: ContainerEdit) -> str | None:
    """The stored form of the container's windows after the edit."""
    if edit.clear_windows:
        return None
    windows = edit.windows if edit.windows is not None else (stored_windows(stored) if stored else None)
    if windows is None:
        return stored
    if edit.window_zone is not None:
        windows = Windows(windows.windows, edit.window_zone)
    return windows.text


def _changed(container: JobContainer, policy: RetryPolicy, windows: str | None) -> dict[str, Any]:
    """The retries and windows an edit changes, as [before, after] for the audit entry."""
    changes: dict[str, Any] = {}
    if policy.retries != container.retries:
        changes["retries"] = [container.retries, policy.retries]
    if policy.delay_seconds != container.retry_delay_seconds:
        changes["retry_delay"] = [
            duration_text(container.retry_delay_seconds),
            duration_text(policy.delay_seconds),
        ]
    if windows != container.windows:
        changes["windows"] = [container.windows, windows]
    return changes


def renew_failed(
    rt: Runtime, container_id: int, actor: str, *, into_new_container: bool = False
) -> ContainerPublic:
    """Run failed and expired jobs again: in place, or moved into a new container starting now.

    Answers with the container that now holds the renewed jobs.
    """
    now = rt.now()
    with rt.transaction() as session:
        container = _get(session, container_id)
        failed = [job for job in container.jobs if JobState(job.state).is_renewable]
        if not failed:
            raise InvalidInput(f"job container {container.name!r} has no failed jobs to renew")
        target = renew_in(
            session,
            container,
            failed,
            actor,
            now,
            into_new_container=into_new_container,
            zone=rt.settings.zone,
        )
        return container_view(summary_of(session, target, now))


def delete_container(rt: Runtime, container_id: int, actor: str) -> None:
    """Delete a job container with all its jobs."""
    with rt.transaction() as session:
        delete_container_in(session, container_id, actor)


# In the caller's transaction ----------------------------------------------------------------------


def summarize(
    container: JobContainer, counts: Mapping[JobState, int], last_finished: datetime | None, now: datetime
) -> ContainerSummary:
    """A container's status and progress from how many of its jobs are in each state."""
    return ContainerSummary(
        container=container,
        status=container_status(counts, container.start_time, now, container.enabled),
        progress=progress(counts),
        counts={state: count for state, count in counts.items() if count},
        last_finished=last_finished,
    )


def summaries(session: Session, now: datetime) -> list[ContainerSummary]:
    """Every job container's summary, newest first."""
    containers = list(session.scalars(select(JobContainer).order_by(JobContainer.id.desc())))
    return summaries_of(session, containers, now)


def summaries_of(session: Session, containers: list[JobContainer], now: datetime) -> list[ContainerSummary]:
    """The summaries of these containers, in their order; only their jobs are counted.

    The counts read the (container, state, id) index alone, and each last finish is one seek in the
    (container, finished) index: a container of a million jobs is never read row by row.
    """
    counts: dict[int, Counter[JobState]] = {c.id: Counter() for c in containers}
    finished: dict[int, datetime | None] = {}
    for ids in chunks(list(counts)):
        by_state = (
            select(Job.container_id, Job.state, func.count())
            .where(Job.container_id.in_(ids))
            .group_by(Job.container_id, Job.state)
        )
        for container_id, state, count in session.execute(by_state):
            counts[container_id][JobState(state)] += count
        last = (
            select(func.max(Job.execution_finished))
            .where(Job.container_id == JobContainer.id)
            .scalar_subquery()
        )
        for container_id, finish in session.execute(
            select(JobContainer.id, last).where(JobContainer.id.in_(ids))
        ):
            finished[container_id] = finish
    return [summarize(c, counts[c.id], finished.get(c.id), now) for c in containers]


def summary_of(session: Session, container: JobContainer, now: datetime) -> ContainerSummary:
    """One container's summary, its jobs counted by the database."""
    [summary] = summaries_of(session, [container], now)
    return summary


def find_container(session: Session, container_id: int) -> JobContainer:
    """The job container with this id (jobs not loaded); NotFound otherwise."""
    container = session.get(JobContainer, container_id)
    if container is None:
        raise NotFound(f"job container {container_id} does not exist")
    return container


def renew_in(
    session: Session,
    container: JobContainer,
    jobs: list[Job],
    actor: str,
    now: datetime,
    *,
    into_new_container: bool = False,
    zone: tzinfo = UTC,
) -> JobContainer:
    """Set failed or expired jobs of `container` waiting again, in it or in a new container starting now;
    returns the container that holds them. InvalidInput when a job's package was deleted, or the
    container has ended and they would stay in it."""
    orphaned = [job for job in jobs if job.package_id is None]
    if orphaned:
        raise InvalidInput(f"the package of job {orphaned[0].id} ({orphaned[0].package_name}) was deleted")
    target = container
    if into_new_container:
        target = _copy_container(session, container, actor, now)
    elif container.end_time is not None and container.end_time <= now:
        raise InvalidInput(
            f"job container {container.name!r} ended at {shown_time(container.end_time, zone)}; "
            "move its end or renew into a new container",
            field="end",
        )
    for job in jobs:
        _reset(job, now)
        job.container_id = target.id
    session.flush()
    audit.record(
        session, actor, "container.renew", "job_container", container.id, into=target.id, jobs=len(jobs)
    )
    if target.id != container.id and not session.scalar(
        select(exists().where(Job.container_id == container.id))
    ):
        delete_container_in(session, container.id, actor)  # every job moved on: nothing left to show
    return target


def delete_container_in(session: Session, container_id: int, actor: str) -> None:
    """Delete a job container with all its jobs, in the caller's transaction."""
    container = session.get(JobContainer, container_id)
    if container is None:
        raise NotFound(f"job container {container_id} does not exist")
    name = container.name
    session.execute(delete(Job).where(Job.container_id == container_id))
    session.expunge(container)  # its loaded jobs may have moved to another container: no ORM cascade
    session.execute(delete(JobContainer).where(JobContainer.id == container_id))
    session.execute(delete(DownloadSlot).where(DownloadSlot.scope == container_scope(container_id)))
    audit.record(session, actor, "container.delete", "job_container", container_id, name=name)


def container_view(summary: ContainerSummary) -> ContainerPublic:
    """The read model of a container summary."""
    return ContainerPublic(**_container_fields(summary))


def _windows_fields(stored: str | None) -> dict[str, Any]:
    windows = stored_windows(stored) if stored else None
    if windows is None:
        return {}
    return {"windows": [window.text for window in windows.windows], "window_zone": windows.zone}


def _container_fields(summary: ContainerSummary) -> dict[str, Any]:
    container = summary.container
    return {
        "id": container.id,
        "name": container.name,
        "description": container.description,
        "notes": container.notes,
        "author": container.author,
        "created": container.created,
        "enabled": container.enabled,
        "start": container.start_time,
        "end": container.end_time,
        "wol": container.wol,
        "shutdown_waked": container.shutdown_waked,
        "wol_sent": container.wol_sent,
        "priority": container.priority,
        "restart_timeout": container.restart_timeout,
        "sequence_mode": SequenceMode(container.sequence_mode),
        "agent_ip_ranges": container.agent_ip_ranges,
        "max_downloads": container.max_downloads,
        "status": summary.status,
        "progress": summary.progress,
        "job_counts": {state.text: count for state, count in summary.counts.items()},
        "outcomes": {outcome.text: count for outcome, count in outcome_counts(summary.counts).items()},
        "last_finished": summary.last_finished,
        "halted": container.open_phase == HALTED,
        **_windows_fields(container.windows),
        "retries": container.retries,
        "retry_delay": duration_text(container.retry_delay_seconds) if container.retries else "",
        "retry_delay_seconds": container.retry_delay_seconds,
    }


def _detail(session: Session, container_id: int, now: datetime) -> ContainerDetailPublic:
    container = _get(session, container_id)
    finished = [job.execution_finished for job in container.jobs if job.execution_finished is not None]
    counts = Counter(JobState(job.state) for job in container.jobs)
    summary = summarize(container, counts, max(finished, default=None), now)
    return ContainerDetailPublic(
        **_container_fields(summary),
        jobs=attempts.with_history(
            session, [job_view(job, container.name, job.computer.hostname) for job in container.jobs]
        ),
    )


def _get(session: Session, container_id: int) -> JobContainer:
    container = session.get(
        JobContainer,
        container_id,
        options=[selectinload(JobContainer.jobs).selectinload(Job.computer)],
    )
    if container is None:
        raise NotFound(f"job container {container_id} does not exist")
    return container


def _pick(new: _T | None, current: _T) -> _T:
    return current if new is None else new


def _copy_container(session: Session, source: JobContainer, actor: str, now: datetime) -> JobContainer:
    copy = JobContainer(
        name=f"{source.name} (renewed)"[:NAME_MAX],
        description=source.description,
        notes=source.notes,
        author=actor,
        created=now,
        enabled=True,
        start_time=now,
        end_time=source.end_time if source.end_time and source.end_time > now else None,
        wol=False,
        shutdown_waked=False,
        priority=source.priority,
        restart_timeout=source.restart_timeout,
        sequence_mode=source.sequence_mode,
        agent_ip_ranges=source.agent_ip_ranges,
        windows=source.windows,
        max_downloads=source.max_downloads,
        retries=source.retries,
        retry_delay_seconds=source.retry_delay_seconds,
    )
    session.add(copy)
    session.flush()
    return copy


def _reset(job: Job, now: datetime) -> None:
    job.state = int(JobState.WAITING)
    job.return_code = None
    job.message = ""
    job.download_progress = None
    job.download_started = job.execution_started = job.execution_finished = None
    job.attempt, job.not_before = 1, None  # a renewed job gets the container's retries again
    job.last_update = now
