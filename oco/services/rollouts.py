"""Use cases of phased rollouts: start one with a deployment, halt it on failures, advance its phases
(housekeeping), resume or cancel it (an admin), and tell a webhook what happened.

The rules are `oco.domain.phases`; the check-in only reads `job.phase` and `job_container.open_phase`
(the last open phase, -1 when halted), so a container without a rollout costs it nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from oco.config import Settings
from oco.db.models import Job, JobContainer, Rollout, RolloutEvent
from oco.domain.phases import (
    HALTED,
    Move,
    PhaseCounts,
    RolloutEdit,
    RolloutRules,
    RolloutState,
    Step,
    assign_phases,
    count_states,
    criterion_met,
    duration_text,
    halts,
    next_move,
    parse_phases,
    phase_label,
    phases_text,
    validate_rules,
)
from oco.domain.phases import RolloutEvent as EventKind
from oco.domain.states import PENDING_STATES, JobState
from oco.errors import InvalidInput, NotFound
from oco.services import audit
from oco.services.containers import container_view, find_container, summary_of
from oco.services.listing import chunks
from oco.services.runtime import Runtime
from oco.services.views import ContainerPublic, RolloutPhasePublic, RolloutPublic

_T = TypeVar("_T")
log = logging.getLogger("oco.rollouts")
ACTOR = "housekeeping"
CANCELED_MESSAGE = "canceled with the rollout"
EVENT_ATTEMPTS = 5
EVENT_MAX_AGE = timedelta(days=1)
"""Undelivered events older than this are not sent any more (a webhook configured later gets no flood)."""
WEBHOOK_TIMEOUT = 5.0


# In the caller's transaction ----------------------------------------------------------------------


def start_rollout(
    session: Session,
    container: JobContainer,
    rules: RolloutRules,
    phase_count: int,
    pilot_group: str,
    now: datetime,
) -> Rollout:
    """Attach a rollout to a new container: its first phase opens now."""
    rollout = Rollout(
        container_id=container.id,
        phases=phases_text(rules.steps),
        pilot_group_id=rules.pilot_group_id,
        pilot_group=pilot_group,
        phase_count=max(phase_count, 1),
        success_percent=rules.success_percent,
        soak_seconds=rules.soak_seconds,
        halt_failure_rate=rules.halt_failure_rate,
        halt_min_finished=rules.halt_min_finished,
        current_phase=0,
        phase_opened=now,
        counted_since=now,
        halted_by="",
        canceled_by="",
    )
    session.add(rollout)
    container.open_phase = 0
    _event(session, container, rollout, EventKind.PHASE_OPENED, now)
    return rollout


def check_halt(session: Session, container_id: int, phase: int, now: datetime) -> bool:
    """After a job of `phase` failed: halt the rollout if the phase's failures now exceed its rule."""
    rollout = session.get(Rollout, container_id, with_for_update=True)
    if rollout is None or rollout.halted is not None or rollout.halt_failure_rate is None:
        return False
    counts = _counts(session, container_id, since=rollout.counted_since, phase=phase).get(phase)
    if counts is None or not halts(counts, rollout.halt_failure_rate, rollout.halt_min_finished):
        return False
    _halt(session, session.get_one(JobContainer, container_id), rollout, phase, counts, ACTOR, now)
    return True


def advance_rollouts(session: Session, settings: Settings, now: datetime) -> int:
    """Housekeeping: halt rollouts whose open phases fail too often, open the next phase of those whose
    current phase met its criterion (after the soak), mark finished ones completed. Returns how many
    rollouts moved."""
    moved = 0
    active = select(Rollout).where(Rollout.halted.is_(None), Rollout.completed.is_(None))
    for rollout in session.scalars(active.with_for_update()):
        container = session.get_one(JobContainer, rollout.container_id)
        if _step(session, container, rollout, now):
            moved += 1
    return moved


def _step(session: Session, container: JobContainer, rollout: Rollout, now: datetime) -> bool:
    if rollout.halt_failure_rate is not None:
        since = _counts(session, container.id, since=rollout.counted_since)
        for phase in range(rollout.current_phase + 1):
            counts = since.get(phase)
            if counts is not None and halts(counts, rollout.halt_failure_rate, rollout.halt_min_finished):
                _halt(session, container, rollout, phase, counts, ACTOR, now)
                return True
    current = _counts(session, container.id, phase=rollout.current_phase).get(
        rollout.current_phase, PhaseCounts()
    )
    move = next_move(_state(rollout), current, _rules(rollout), now)
    if move is Move.MARK_MET:
        rollout.phase_met = now
    elif move is Move.OPEN_NEXT:
        rollout.current_phase += 1
        rollout.phase_opened, rollout.phase_met = now, None
        container.open_phase = rollout.current_phase
        _event(session, container, rollout, EventKind.PHASE_OPENED, now, previous=_numbers(current))
        audit.record(
            session,
            ACTOR,
            "rollout.phase-open",
            "job_container",
            container.id,
            phase=_label(rollout, rollout.current_phase),
        )
    elif move is Move.COMPLETE:
        rollout.completed = now
        _event(session, container, rollout, EventKind.COMPLETED, now)
    return move is not Move.NOTHING


def _halt(
    session: Session,
    container: JobContainer,
    rollout: Rollout,
    phase: int,
    counts: PhaseCounts | None,
    actor: str,
    now: datetime,
) -> None:
    details: dict[str, Any] = {"phase": phase + 1, "label": _label(rollout, phase)}
    if counts is not None:
        details |= _numbers(counts) | {
            "rate": rollout.halt_failure_rate,
            "min_finished": rollout.halt_min_finished,
        }
    rollout.halted, rollout.halted_by, rollout.halt_details = now, actor, details
    container.open_phase = HALTED
    _event(session, container, rollout, EventKind.HALTED, now, **details)
    audit.record(session, actor, "rollout.halt", "job_container", container.id, **details)


def _numbers(counts: PhaseCounts) -> dict[str, int]:
    return {
        "finished": counts.finished,
        "failed": counts.failed,
        "succeeded": counts.succeeded,
        "pending": counts.pending,
    }


def _counts(
    session: Session, container_id: int, *, since: datetime | None = None, phase: int | None = None
) -> dict[int, PhaseCounts]:
    """Phase → its counts; with `since`, final jobs count only when they finished since then."""
    query = (
        select(Job.phase, Job.state, func.count())
        .where(Job.container_id == container_id, Job.phase.is_not(None))
        .group_by(Job.phase, Job.state)
    )
    if phase is not None:
        query = query.where(Job.phase == phase)
    if since is not None:
        query = query.where(
            or_(Job.state.in_([int(s) for s in PENDING_STATES]), Job.execution_finished >= since)
        )
    by_phase: dict[int, dict[JobState, int]] = defaultdict(dict)
    for number, state, count in session.execute(query):
        if number is not None:
            by_phase[number][JobState(state)] = count
    return {number: count_states(states) for number, states in by_phase.items()}


def _state(rollout: Rollout) -> RolloutState:
    return RolloutState(
        current=rollout.current_phase,
        phases=rollout.phase_count,
        met_at=rollout.phase_met,
        halted=rollout.halted is not None,
        completed=rollout.completed is not None,
    )


def _rules(rollout: Rollout) -> RolloutRules:
    return RolloutRules(
        success_percent=rollout.success_percent,
        soak_seconds=rollout.soak_seconds,
        halt_failure_rate=rollout.halt_failure_rate,
        halt_min_finished=rollout.halt_min_finished,
    )


def _label(rollout: Rollout, phase: int) -> str:
    return phase_label(phase, rollout.pilot_group_id is not None)


def _event(
    session: Session,
    container: JobContainer,
    rollout: Rollout,
    kind: EventKind,
    now: datetime,
    **details: Any,
) -> None:
    payload = {
        "event": kind.text,
        "at": now.isoformat(),
        "container": {"id": container.id, "name": container.name},
        "phase": rollout.current_phase + 1,
        "phase_label": _label(rollout, rollout.current_phase),
        "phases": rollout.phase_count,
        **details,
    }
    session.add(RolloutEvent(container_id=container.id, kind=kind.text, at=now, payload=payload))


def replan(session: Session, container: JobContainer, edit: RolloutEdit, now: datetime) -> dict[str, Any]:
    """Change the phases plan of a container (making it a rollout if it was none); returns what changed,
    for the audit entry.

    Jobs already handed out (or finished) keep their phase; the waiting jobs' computers are ranked again
    (`assign_phases` with the container's name) and take their phase in the new plan. The phases open so
    far stay open (the current phase is the same number, or the new last one); the criterion of the
    current phase is judged afresh by the next housekeeping round.
    """
    if edit.empty:
        return {}
    rollout = session.get(Rollout, container.id, with_for_update=True)
    if rollout is not None and rollout.completed is not None:
        ended = "been canceled" if rollout.canceled_by else "completed"
        raise InvalidInput(
            f"the rollout of {container.name!r} has {ended}; its phases can no longer change", field="phases"
        )
    before = _plan_of(rollout)
    current = _rules(rollout) if rollout is not None else RolloutRules()
    current_with_steps = replace(
        current,
        steps=_steps(rollout),
        pilot_group_id=rollout.pilot_group_id if rollout is not None else None,
    )
    rules = replace(
        current,
        steps=edit.steps if edit.steps is not None else _steps(rollout),
        pilot_group_id=rollout.pilot_group_id if rollout is not None else None,
        success_percent=_or(edit.success_percent, current.success_percent),
        soak_seconds=_or(edit.soak_seconds, current.soak_seconds),
        halt_failure_rate=None
        if edit.clear_halt
        else (edit.halt_failure_rate if edit.halt_failure_rate is not None else current.halt_failure_rate),
        halt_min_finished=_or(edit.halt_min_finished, current.halt_min_finished),
    )
    validate_rules(rules)
    if (rollout is None and not rules.active) or (rollout is not None and rules == current_with_steps):
        return {}
    count = _reassign(session, container, rollout, rules.steps)
    if rollout is None:
        rollout = start_rollout(session, container, rules, count, "", now)
    else:
        rollout.phases = phases_text(rules.steps)
        rollout.phase_count = count
        rollout.success_percent = rules.success_percent
        rollout.soak_seconds = rules.soak_seconds
        rollout.halt_failure_rate = rules.halt_failure_rate
        rollout.halt_min_finished = rules.halt_min_finished
        if rollout.current_phase >= count:
            rollout.current_phase = count - 1
        rollout.phase_met = None
        if rollout.halted is None:
            container.open_phase = rollout.current_phase
    after = _plan_of(rollout)
    return {key: [before.get(key), value] for key, value in after.items() if before.get(key) != value}


def _or(new: _T | None, current: _T) -> _T:
    return current if new is None else new


def _steps(rollout: Rollout | None) -> tuple[Step, ...]:
    return parse_phases(rollout.phases) if rollout is not None and rollout.phases else ()


def _plan_of(rollout: Rollout | None) -> dict[str, Any]:
    if rollout is None:
        return {}
    return {
        "phases": rollout.phases,
        "phase_count": rollout.phase_count,
        "phase_success": rollout.success_percent,
        "phase_soak": duration_text(rollout.soak_seconds),
        "halt_failure_rate": rollout.halt_failure_rate,
        "halt_min_finished": rollout.halt_min_finished,
    }


def _reassign(
    session: Session, container: JobContainer, rollout: Rollout | None, steps: tuple[Step, ...]
) -> int:
    """Give the waiting jobs (every job, for a container becoming a rollout) their phase in the new plan;
    returns how many phases it has. A pilot stays the computers of the first phase."""
    computers = list(
        session.scalars(select(Job.computer_id).where(Job.container_id == container.id).distinct())
    )
    pilots: set[int] = set()
    if rollout is not None and rollout.pilot_group_id is not None:
        pilots = set(
            session.scalars(
                select(Job.computer_id).where(Job.container_id == container.id, Job.phase == 0).distinct()
            )
        )
    phases = assign_phases(container.name, computers, steps, pilots)
    by_phase: dict[int, list[int]] = defaultdict(list)
    for computer_id, number in phases.items():
        by_phase[number].append(computer_id)
    for number, members in by_phase.items():
        for chunk in chunks(members):
            query = update(Job).where(Job.container_id == container.id, Job.computer_id.in_(chunk))
            if rollout is not None:
                query = query.where(Job.state == int(JobState.WAITING))
            session.execute(query.values(phase=number))
    return max(phases.values(), default=0) + 1


# Use cases ------------------------------------------------------------------------------------------


def halt(rt: Runtime, container_id: int, actor: str) -> ContainerPublic:
    """Halt a rollout by hand: nothing more is handed out until it is resumed."""
    now = rt.now()
    with rt.transaction() as session:
        container, rollout = _find(session, container_id)
        if rollout.halted is not None:
            raise InvalidInput(f"the rollout of {container.name!r} is already halted")
        if rollout.completed is not None:
            raise InvalidInput(f"the rollout of {container.name!r} has completed")
        _halt(session, container, rollout, rollout.current_phase, None, actor, now)
        return _answer(session, container, rollout, now)


def resume(rt: Runtime, container_id: int, actor: str, *, reopen: bool = False) -> ContainerPublic:
    """Resume a halted rollout where it stopped; failures before now no longer count for the halt rule.
    With `reopen`, the failed and expired jobs of the halted phase run again."""
    now = rt.now()
    with rt.transaction() as session:
        container, rollout = _find(session, container_id)
        if rollout.halted is None:
            raise InvalidInput(f"the rollout of {container.name!r} is not halted")
        halted_phase = (rollout.halt_details or {}).get("phase", rollout.current_phase + 1) - 1
        reopened = _reopen(session, container, halted_phase, now) if reopen else 0
        rollout.halted, rollout.halted_by, rollout.halt_details = None, "", None
        rollout.counted_since = now
        container.open_phase = rollout.current_phase
        _event(session, container, rollout, EventKind.RESUMED, now, by=actor, reopened=reopened)
        audit.record(session, actor, "rollout.resume", "job_container", container.id, reopened=reopened)
        return _answer(session, container, rollout, now)


def cancel(rt: Runtime, container_id: int, actor: str) -> ContainerPublic:
    """Cancel a rollout: its waiting jobs expire ("canceled with the rollout"); started ones finish."""
    now = rt.now()
    with rt.transaction() as session:
        container, rollout = _find(session, container_id)
        if rollout.completed is not None:
            raise InvalidInput(f"the rollout of {container.name!r} has completed")
        result = session.connection().execute(
            update(Job)
            .where(Job.container_id == container.id, Job.state == int(JobState.WAITING))
            .values(
                state=int(JobState.EXPIRED),
                message=CANCELED_MESSAGE,
                execution_finished=now,
                last_update=now,
            )
        )
        canceled = int(result.rowcount)
        rollout.completed, rollout.canceled_by = now, actor
        rollout.halted, rollout.halted_by, rollout.halt_details = None, "", None
        container.open_phase = None  # over: what is renewed later runs like any container's jobs
        _event(session, container, rollout, EventKind.CANCELED, now, by=actor, canceled=canceled)
        audit.record(session, actor, "rollout.cancel", "job_container", container.id, canceled=canceled)
        return _answer(session, container, rollout, now)


def _reopen(session: Session, container: JobContainer, phase: int, now: datetime) -> int:
    result = session.connection().execute(
        update(Job)
        .where(
            Job.container_id == container.id,
            Job.phase == phase,
            Job.state.in_([int(JobState.FAILED), int(JobState.EXPIRED)]),
            Job.package_id.is_not(None),
        )
        .values(
            state=int(JobState.WAITING),
            return_code=None,
            message="",
            download_progress=None,
            download_started=None,
            execution_started=None,
            execution_finished=None,
            attempt=1,
            not_before=None,
            last_update=now,
        )
    )
    return int(result.rowcount)


def _find(session: Session, container_id: int) -> tuple[JobContainer, Rollout]:
    container = find_container(session, container_id)
    rollout = session.get(Rollout, container_id, with_for_update=True)
    if rollout is None:
        raise NotFound(f"job container {container.name!r} is not a phased rollout")
    return container, rollout


def _answer(session: Session, container: JobContainer, rollout: Rollout, now: datetime) -> ContainerPublic:
    session.flush()
    view = container_view(summary_of(session, container, now))
    return view.model_copy(update={"rollout": rollout_view(session, rollout)})


def rollout_view(session: Session, rollout: Rollout) -> RolloutPublic:
    """A rollout's rules, where it stands and each phase's counts."""
    counts = _counts(session, rollout.container_id)
    jobs = dict(
        session.execute(
            select(Job.phase, func.count(func.distinct(Job.computer_id)))
            .where(Job.container_id == rollout.container_id, Job.phase.is_not(None))
            .group_by(Job.phase)
        ).all()
    )
    return RolloutPublic(
        phases=rollout.phases,
        pilot_group_id=rollout.pilot_group_id,
        pilot_group=rollout.pilot_group,
        phase_count=rollout.phase_count,
        current_phase=rollout.current_phase + 1,
        success_percent=rollout.success_percent,
        soak=duration_text(rollout.soak_seconds),
        soak_seconds=rollout.soak_seconds,
        halt_failure_rate=rollout.halt_failure_rate,
        halt_min_finished=rollout.halt_min_finished,
        phase_opened=rollout.phase_opened,
        phase_met=rollout.phase_met,
        halted=rollout.halted,
        halted_by=rollout.halted_by,
        canceled_by=rollout.canceled_by,
        halt_details=rollout.halt_details,
        completed=rollout.completed,
        phase_list=[
            _phase_view(rollout, number, counts.get(number, PhaseCounts()), jobs.get(number, 0))
            for number in range(rollout.phase_count)
        ],
    )


def _phase_view(rollout: Rollout, number: int, counts: PhaseCounts, computers: int) -> RolloutPhasePublic:
    if number < rollout.current_phase or (number == rollout.current_phase and rollout.completed):
        status = "done"
    elif number == rollout.current_phase:
        status = "halted" if rollout.halted is not None else "open"
    else:
        status = "canceled" if rollout.completed is not None else "waiting"
    return RolloutPhasePublic(
        number=number + 1,
        label=_label(rollout, number),
        status=status,
        computers=computers,
        succeeded=counts.succeeded,
        failed=counts.failed,
        pending=counts.pending,
        criterion_met=criterion_met(counts, rollout.success_percent),
    )


def with_rollout(session: Session, view: ContainerPublic) -> ContainerPublic:
    """A container's read model with its rollout, when it is one."""
    rollout = session.get(Rollout, view.id)
    if rollout is None:
        return view
    return view.model_copy(update={"rollout": rollout_view(session, rollout)})


def container_summary(rt: Runtime, container_id: int) -> ContainerPublic:
    """A job container with its status, progress, job counts and, for a phased rollout, its phases."""
    with rt.reading() as session:
        container = find_container(session, container_id)
        return with_rollout(session, container_view(summary_of(session, container, rt.now())))


# Webhook --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pending:
    id: int
    payload: dict[str, Any]


def deliver_events(rt: Runtime, client: httpx.Client | None = None) -> int:
    """POST each undelivered rollout event to `rollout_webhook_url` as JSON, oldest first, outside any
    transaction; an event the webhook refuses is tried again next round, up to EVENT_ATTEMPTS times.
    Returns how many were delivered."""
    url = rt.settings.rollout_webhook_url
    if not url:
        return 0
    now = rt.now()
    with rt.reading() as session:
        pending = [
            _Pending(event.id, event.payload or {})
            for event in session.scalars(
                select(RolloutEvent)
                .where(
                    RolloutEvent.delivered.is_(None),
                    RolloutEvent.attempts < EVENT_ATTEMPTS,
                    RolloutEvent.at >= now - EVENT_MAX_AGE,
                )
                .order_by(RolloutEvent.id)
                .limit(100)
            )
        ]
    if not pending:
        return 0
    delivered: list[int] = []
    failed: list[int] = []
    owned = client is None
    http = client or httpx.Client(timeout=WEBHOOK_TIMEOUT)
    try:
        for event in pending:
            try:
                response = http.post(url, json=event.payload)
                response.raise_for_status()
                delivered.append(event.id)
            except httpx.HTTPError as exc:
                log.warning("rollout webhook refused event %s: %s", event.id, exc)
                failed.append(event.id)
    finally:
        if owned:
            http.close()
    with rt.transaction() as session:
        if delivered:
            session.execute(
                update(RolloutEvent).where(RolloutEvent.id.in_(delivered)).values(delivered=rt.now())
            )
        if failed:
            session.execute(
                update(RolloutEvent)
                .where(RolloutEvent.id.in_(failed))
                .values(attempts=RolloutEvent.attempts + 1)
            )
    return len(delivered)
