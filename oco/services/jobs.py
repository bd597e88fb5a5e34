"""Use cases of the jobs of a container: find them (failures first), read one's output, delete one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from oco.db.models import Computer, Job, JobContainer, Package, WolTarget
from oco.domain.dispatch import Clocks, ContainerWindow, RetryWait, why_waiting
from oco.domain.listing import Sort, page_window, parse_sort
from oco.domain.meanings import meaning, post_action_fate
from oco.domain.planning import effective_post_action
from oco.domain.slots import Decision, Limit, Limits, limits_for, may_download
from oco.domain.states import OUTCOME_OF, JobAction, JobOutcome, JobState, PostAction
from oco.domain.wol import wake_outcome
from oco.errors import InvalidInput, NotFound
from oco.services import attempts, audit, rollouts, slots
from oco.services.containers import container_view, find_container, renew_in, summary_of
from oco.services.listing import (
    AnySelect,
    Fetched,
    PageRequest,
    chunks,
    contains,
    count,
    distinct_words,
    export_batches,
    fetch_page,
)
from oco.services.runtime import Runtime
from oco.services.views import (
    Choice,
    ContainerPagePublic,
    ContainerPublic,
    JobRowPublic,
    PagePublic,
    WaitingPublic,
    job_view,
)


@dataclass(frozen=True, slots=True)
class JobQuery:
    """Which jobs of a container a list shows: words to search for in hostname and package, the part of
    the outcome bar they are in, a return code."""

    search: str = ""
    outcome: JobOutcome | None = None
    return_code: int | None = None


SORTED_IN_MEMORY = 20_000
"""Up to this many jobs, a container's jobs sorted by computer are read and sorted; beyond, the computers'
name index gives the order (measured with 100,000 computers: 8 ms for ten jobs one way, 0.5 to 2.8 s the
other; for a million jobs 1.1 s one way, tens of milliseconds the other)."""
JOB_SORTS = ("attention", "computer", "package", "sequence", "state", "return_code", "finished")
ATTENTION_ORDER = (
    JobState.FAILED,
    JobState.EXPIRED,
    JobState.EXECUTING,
    JobState.DOWNLOADING,
    JobState.WAITING,
    JobState.OS_INCOMPATIBLE,
    JobState.ALREADY_INSTALLED,
    JobState.SUCCEEDED,
)
"""What needs attention comes first: failures, then what runs, waits, was skipped, and what succeeded."""


MOVE_TARGETS = 100
"""The newest containers a container's page offers to move jobs to."""


def container_page(
    rt: Runtime, container_id: int, query: JobQuery, request: PageRequest
) -> ContainerPagePublic:
    """A container with one page of its jobs that match `query` (failures first), and the newest other
    containers its jobs can be moved to."""
    now = rt.now()
    with rt.reading() as session:
        container = find_container(session, container_id)
        summary = summary_of(session, container, now)
        targets = session.execute(
            select(JobContainer.id, JobContainer.name)
            .where(JobContainer.id != container.id)
            .order_by(JobContainer.id.desc())
            .limit(MOVE_TARGETS)
        )
        return ContainerPagePublic(
            container=rollouts.with_rollout(session, container_view(summary)),
            jobs=_search_in(session, rt, container, query, request, summary.counts),
            move_targets=[Choice(id=i, name=name) for i, name in targets],
        )


def search_jobs(
    rt: Runtime, container_id: int, query: JobQuery, request: PageRequest
) -> PagePublic[JobRowPublic]:
    """One page of a container's jobs that match `query`, failures first unless sorted otherwise."""
    with rt.reading() as session:
        return _search_in(session, rt, find_container(session, container_id), query, request)


def _rows(container_id: int, query: JobQuery, *, by_computers: bool = False) -> AnySelect:
    """A container's jobs that match `query`, each with what its row shows of the computer and its wake.

    `by_computers`: found through the computers (in name order, for a large container sorted by them),
    never through the container's index — written `container_id + 0`, which no index matches."""
    container = (Job.container_id + 0) if by_computers else Job.container_id
    return (
        select(
            Job, Computer.hostname, Computer.last_seen, Computer.remote_address, WolTarget, Computer.time_zone
        )
        .join(Computer, Job.computer_id == Computer.id)
        .outerjoin(
            WolTarget,
            and_(WolTarget.container_id == Job.container_id, WolTarget.computer_id == Job.computer_id),
        )
        .where(container == container_id, *_conditions(query))
    )


def _search_in(
    session: Session,
    rt: Runtime,
    container: JobContainer,
    query: JobQuery,
    request: PageRequest,
    counts: Mapping[JobState, int] | None = None,
) -> PagePublic[JobRowPublic]:
    """A page of jobs; `counts`, the container's jobs per state when the caller has counted them."""
    rows = _rows(container.id, query)
    order: dict[str, Any] = {
        "attention": case({int(state): rank for rank, state in enumerate(ATTENTION_ORDER)}, value=Job.state),
        "computer": Computer.hostname,
        "package": Job.package_name,
        "sequence": Job.sequence,
        "state": Job.state,
        "return_code": Job.return_code,
        "finished": Job.execution_finished,
    }
    sort = parse_sort(request.sort, list(order), "attention")
    if sort.key == "attention" and not query.search.strip() and query.return_code is None:
        if counts is None or query.outcome is not None:
            counts = _counts(session, container, query)
        fetched = _by_attention(session, rows, counts, request, sort)
    else:
        counted = select(Job.id).where(Job.container_id == container.id, *_conditions(query))
        if query.search.strip():
            counted = counted.join(Computer, Job.computer_id == Computer.id)
        total = None
        if sort.key == "computer":
            total = count(session, counted)
            # Planners guess how many jobs a container holds (SQLite: the average of all containers), so
            # the count decides: a small container's jobs are read and sorted, a large one's are found by
            # walking the computers in name order until the page is full.
            # (PostgreSQL, planning each statement for its values, picks that walk itself.)
            if total <= SORTED_IN_MEMORY:
                order["computer"] = Computer.hostname.concat("")
            elif session.get_bind().dialect.name == "sqlite":
                rows = _rows(container.id, query, by_computers=True)
        fetched = fetch_page(session, rows, order, Job.id, request, "attention", counted, total)
    return fetched.page(attempts.with_history(session, _row_views(session, fetched.rows, container, rt)))


def _row_views(
    session: Session, rows: Sequence[Any], container: JobContainer | None, rt: Runtime
) -> list[JobRowPublic]:
    if container is None:  # deleted while its jobs were being downloaded
        return []
    window, now, offline = _window(container), rt.now(), rt.settings.computer_offline_seconds
    zone = rt.settings.zone
    barriers = _retry_barriers(session, container, rows, now)
    downloads = _download_decisions(session, rows, container, rt.settings.download_limits, now)
    return [
        _row(
            job,
            container,
            window,
            hostname,
            seen,
            address,
            target,
            now,
            offline,
            Clocks(tz, zone),
            _behind(barriers, job),
            downloads.get(job.id),
        )
        for job, hostname, seen, address, target, tz in rows
    ]


def _download_decisions(
    session: Session, rows: Sequence[Any], container: JobContainer, limits: Limits, now: datetime
) -> dict[int, Decision]:
    """What the download slots say of the page's waiting jobs with a payload, when limits apply: one
    query for their packages, one for the places of the scopes concerned."""
    if not (container.max_downloads or limits.any):
        return {}
    waiting = [
        (row[0], row[3]) for row in rows if row[0].state == int(JobState.WAITING) and row[0].package_id
    ]
    if not waiting:
        return {}
    packages = {
        row[0]: (row[1] is not None, bool(row[2]))
        for row in session.execute(
            select(Package.id, Package.payload_sha256, Package.download_for_uninstall).where(
                Package.id.in_({job.package_id for job, _ in waiting})
            )
        )
    }
    of_job: dict[int, tuple[Limit, ...]] = {}
    for job, address in waiting:
        payload, for_uninstall = packages.get(job.package_id, (False, False))
        if payload and (job.action != JobAction.UNINSTALL or for_uninstall):
            of_job[job.id] = limits_for(container.id, container.max_downloads, limits, address or None)
    scopes = {limit for found in of_job.values() for limit in found}
    if not scopes:
        return {}
    occupancy = {
        found.limit: found for found in slots.read_occupancy(session.connection(), list(scopes), now)
    }
    return {
        job_id: may_download(job_id, JobState.WAITING, True, [occupancy[limit] for limit in found], now)
        for job_id, found in of_job.items()
    }


def _retry_barriers(
    session: Session, container: JobContainer, rows: Sequence[Any], now: datetime
) -> dict[int, tuple[int, datetime]]:
    """Computer id → the sequence and time of its first job of the container waiting for its retry, for
    the computers of these rows that have waiting jobs (read by the (computer, state) index)."""
    computers = sorted({row[0].computer_id for row in rows if row[0].state == int(JobState.WAITING)})
    if container.retries == 0 and not any(row[0].attempt > 1 for row in rows):
        return {}
    barriers: dict[int, tuple[int, datetime]] = {}
    for chunk in chunks(computers):
        held = session.execute(
            select(Job.computer_id, Job.sequence, Job.not_before).where(
                Job.computer_id.in_(chunk),
                Job.state == int(JobState.WAITING),
                Job.container_id == container.id,
                Job.not_before > now,
            )
        )
        for computer_id, sequence, at in held:
            if at is not None and (computer_id not in barriers or sequence < barriers[computer_id][0]):
                barriers[computer_id] = (sequence, at)
    return barriers


def _behind(barriers: Mapping[int, tuple[int, datetime]], job: Job) -> datetime | None:
    barrier = barriers.get(job.computer_id)
    return barrier[1] if barrier is not None and job.sequence > barrier[0] else None


def _counts(session: Session, container: JobContainer, query: JobQuery) -> dict[JobState, int]:
    """How many of a container's jobs that match `query` are in each state (from the index alone)."""
    counting = (
        select(Job.state, func.count())
        .where(Job.container_id == container.id, *_conditions(query))
        .group_by(Job.state)
    )
    return {JobState(state): count for state, count in session.execute(counting)}


def _by_attention(
    session: Session, rows: AnySelect, counts: Mapping[JobState, int], request: PageRequest, sort: Sort
) -> Fetched[Any]:
    """A page in the attention order without sorting the whole container: with the jobs of each state
    counted, they are read in id order through the (container, state, id) index, state after state."""
    states = [state for state in ATTENTION_ORDER if counts.get(state)]
    if sort.descending:
        states.reverse()
    window = page_window(request.page, request.page_size, sum(counts.values()))
    skip, wanted = window.offset, window.size
    found: list[Any] = []
    for state in states:
        count = counts[state]
        if skip >= count:
            skip -= count
            continue
        order = Job.id.desc() if sort.descending else Job.id
        page = session.execute(
            rows.where(Job.state == int(state)).order_by(order).offset(skip).limit(wanted)
        ).all()
        found += page
        wanted -= len(page)
        skip = 0
        if wanted <= 0:
            break
    return Fetched(rows=found, window=window, sort=sort)


def export_jobs(rt: Runtime, container_id: int, query: JobQuery) -> Iterator[JobRowPublic]:
    """Every job of a container that matches `query`, failures first, for a CSV download: the container
    is found now (NotFound before anything is sent), its jobs read state by state in batches."""
    with rt.reading() as session:
        find_container(session, container_id)
    return chain.from_iterable(
        export_batches(
            rt,
            _rows(container_id, query).where(Job.state == int(state)),
            (Job.id,),
            lambda session, rows: _row_views(session, rows, session.get(JobContainer, container_id), rt),
        )
        for state in ATTENTION_ORDER
    )


@dataclass(frozen=True, slots=True)
class JobSelection:
    """Jobs of one container to act on: these ids, and, with `matching`, every job of it that matches."""

    ids: Sequence[int] = ()
    matching: JobQuery | None = None


def renew_jobs(
    rt: Runtime, container_id: int, selection: JobSelection, actor: str, *, into_new_container: bool = False
) -> ContainerPublic:
    """Run the selected failed and expired jobs again, in place or moved into a new container starting
    now; answers with the container that holds them. Selected jobs of other states stay as they are."""
    now = rt.now()
    with rt.transaction() as session:
        container = find_container(session, container_id)
        chosen = _selected(session, container, selection)
        renewable = [job for job in chosen if JobState(job.state).is_renewable]
        if not renewable:
            raise InvalidInput(f"none of the {len(chosen)} selected jobs failed or expired: nothing to renew")
        target = renew_in(
            session,
            container,
            renewable,
            actor,
            now,
            into_new_container=into_new_container,
            zone=rt.settings.zone,
        )
        return container_view(summary_of(session, target, now))


def delete_jobs(rt: Runtime, container_id: int, selection: JobSelection, actor: str) -> int:
    """Delete the selected jobs of a container; how many."""
    with rt.transaction() as session:
        container = find_container(session, container_id)
        chosen = _selected(session, container, selection)
        for job in chosen:
            session.delete(job)
        audit.record(session, actor, "job.delete", "job_container", container.id, jobs=[j.id for j in chosen])
        return len(chosen)


def move_jobs(
    rt: Runtime, container_id: int, selection: JobSelection, target_id: int | None, actor: str
) -> ContainerPublic:
    """Move the selected jobs into another container (its settings apply to them from now on); answers
    with that container. Jobs an agent is running stay where they are: NotFound or InvalidInput otherwise."""
    now = rt.now()
    with rt.transaction() as session:
        container = find_container(session, container_id)
        if target_id is None:
            raise InvalidInput("choose the job container to move the jobs to", field="target")
        target = find_container(session, target_id)
        if target.id == container.id:
            raise InvalidInput("choose another job container to move the jobs to", field="target")
        chosen = _selected(session, container, selection)
        running = [job for job in chosen if JobState(job.state).is_running]
        if running:
            raise InvalidInput(f"job {running[0].id} is running on its computer: move it once it has ended")
        for job in chosen:
            job.container_id = target.id
            job.wol_shutdown = False  # the shutdown belonged to the old container's Wake-on-LAN
            job.last_update = now
        audit.record(
            session,
            actor,
            "job.move",
            "job_container",
            container.id,
            into=target.id,
            jobs=[j.id for j in chosen],
        )
        session.flush()
        return container_view(summary_of(session, target, now))


def _selected(session: Session, container: JobContainer, selection: JobSelection) -> list[Job]:
    """The selected jobs of the container, oldest first; NotFound names an id that is not one of them."""
    conditions: list[ColumnElement[bool]] = [Job.id.in_(list(selection.ids))]
    if selection.matching is not None:
        matching = (
            select(Job.id)
            .join(Computer, Job.computer_id == Computer.id)
            .where(Job.container_id == container.id, *_conditions(selection.matching))
        )
        conditions.append(Job.id.in_(matching))
    jobs = list(
        session.scalars(
            select(Job).where(Job.container_id == container.id, or_(*conditions)).order_by(Job.id)
        )
    )
    missing = sorted(set(selection.ids) - {job.id for job in jobs})
    if missing:
        raise NotFound(f"job {missing[0]} of job container {container.id} does not exist")
    if not jobs:
        raise InvalidInput("choose at least one job")
    return jobs


def job_output(rt: Runtime, container_id: int, job_id: int) -> str:
    """The whole output of one job of a container."""
    with rt.reading() as session:
        job = session.get(Job, job_id)
        if job is None or job.container_id != container_id:
            raise NotFound(f"job {job_id} of job container {container_id} does not exist")
        return job.message


def delete_job(rt: Runtime, job_id: int, actor: str, *, container_id: int | None = None) -> None:
    """Delete one job; with `container_id`, only if the job belongs to that container."""
    with rt.transaction() as session:
        job = session.get(Job, job_id)
        if job is None or (container_id is not None and job.container_id != container_id):
            raise NotFound(f"job {job_id} does not exist")
        session.delete(job)
        audit.record(session, actor, "job.delete", "job", job_id, container=job.container_id)


def _conditions(query: JobQuery) -> list[ColumnElement[bool]]:
    conditions = [
        or_(contains(Computer.hostname, word), contains(Job.package_name, word))
        for word in distinct_words(query.search)
    ]
    if query.outcome is not None:
        states = [int(state) for state, outcome in OUTCOME_OF.items() if outcome is query.outcome]
        conditions.append(Job.state.in_(states))
    if query.return_code is not None:
        conditions.append(Job.return_code == query.return_code)
    return conditions


def _window(container: JobContainer) -> ContainerWindow:
    return ContainerWindow(
        id=container.id,
        priority=container.priority,
        created=container.created,
        start=container.start_time,
        end=container.end_time,
        enabled=container.enabled,
        ip_ranges=container.agent_ip_ranges,
        open_phase=container.open_phase,
        windows=container.windows,
    )


def _row(
    job: Job,
    container: JobContainer,
    window: ContainerWindow,
    hostname: str,
    last_seen: datetime | None,
    address: str,
    target: WolTarget | None,
    now: datetime,
    offline_seconds: int,
    clocks: Clocks,
    behind_retry: datetime | None = None,
    download: Decision | None = None,
) -> JobRowPublic:
    state = JobState(job.state)
    explained = meaning(state, job.return_code, job.success_codes)
    waiting = None
    if state is JobState.WAITING:
        retry = None
        if job.not_before is not None and job.attempt > 1:  # retries lowered meanwhile: this one was due
            retry = RetryWait(job.attempt, max(container.retries, job.attempt - 1), job.not_before)
        reason = why_waiting(
            window,
            last_seen,
            address or None,
            now,
            offline_seconds,
            job.phase,
            clocks,
            retry,
            behind_retry,
            download,
        )
        waiting = WaitingPublic(
            hold=reason.hold,
            since=reason.since,
            address=reason.address,
            opens=reason.opens,
            slots=reason.slots,
            phase=None if reason.phase is None else reason.phase + 1,
            retry=None if reason.retry is None else reason.retry.attempt - 1,
            retries=None if reason.retry is None else reason.retry.retries,
        )
    post_action = effective_post_action(PostAction(job.post_action), job.wol_shutdown)
    return JobRowPublic(
        **job_view(job, container.name, hostname).model_dump(),
        meaning_title=explained.title if explained else None,
        meaning=explained.text if explained else None,
        waiting=waiting,
        post_action_fate=post_action_fate(state, post_action, container.restart_timeout),
        wake=wake_outcome(target.sent, target.woken, target.expired) if target is not None else None,
    )
