"""The console's home page: the fleet's health, the deployments running, the latest failures, and 30
days of job outcomes — each a query of its own that reads only what it shows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from oco.db.models import Computer, DailyOutcome, Job, JobContainer
from oco.domain.days import last_days
from oco.domain.meanings import meaning
from oco.domain.presence import online_since
from oco.domain.states import ContainerStatus, JobState
from oco.services.containers import container_view, status_condition, summaries_of
from oco.services.runtime import Runtime
from oco.services.views import (
    ContainerPublic,
    CountPublic,
    DashboardPublic,
    DayPublic,
    FailurePublic,
    FleetPublic,
)

RUNNING_SHOWN = 8
FAILURES_SHOWN = 15
VERSIONS_SHOWN = 8
DAYS_SHOWN = 30
FAILED_STATES = (JobState.FAILED, JobState.EXPIRED)


def overview(rt: Runtime) -> DashboardPublic:
    """What the home page shows."""
    now = rt.now()
    with rt.reading() as session:
        return DashboardPublic(
            fleet=_fleet(session, now, rt.settings.computer_offline_seconds),
            running=_running(session, now),
            failures=_failures(session),
            days=_days(session, now, rt),
        )


def _fleet(session: Session, now: datetime, offline_seconds: int) -> FleetPublic:
    threshold = online_since(now, offline_seconds)
    total = session.scalar(select(func.count()).select_from(Computer)) or 0
    online = session.scalar(select(func.count()).where(Computer.last_seen > threshold)) or 0
    never = session.scalar(select(func.count()).where(Computer.last_seen.is_(None))) or 0
    versions = session.execute(
        select(Computer.agent_version, func.count())
        .where(Computer.agent_version != "")
        .group_by(Computer.agent_version)
        .order_by(func.count().desc(), Computer.agent_version)
        .limit(VERSIONS_SHOWN)
    )
    return FleetPublic(
        total=total,
        online=online,
        offline=total - online - never,
        never_seen=never,
        agent_versions=[CountPublic(value=version, count=count) for version, count in versions],
    )


def _running(session: Session, now: datetime) -> list[ContainerPublic]:
    running = or_(
        status_condition(ContainerStatus.IN_PROGRESS, now), status_condition(ContainerStatus.SCHEDULED, now)
    )
    newest = session.scalars(
        select(JobContainer).where(running).order_by(JobContainer.id.desc()).limit(RUNNING_SHOWN)
    )
    return [container_view(s) for s in summaries_of(session, list(newest), now)]


def _failures(session: Session) -> list[FailurePublic]:
    latest = (
        select(Job, JobContainer.name, Computer.hostname)
        .join(JobContainer, Job.container_id == JobContainer.id)
        .join(Computer, Job.computer_id == Computer.id)
        .where(Job.state.in_([int(state) for state in FAILED_STATES]))
        .order_by(Job.execution_finished.desc(), Job.id.desc())
        .limit(FAILURES_SHOWN)
    )
    failures = []
    for job, container, hostname in session.execute(latest):
        explained = meaning(JobState(job.state), job.return_code, job.success_codes)
        failures.append(
            FailurePublic(
                job_id=job.id,
                container_id=job.container_id,
                container=container,
                computer_id=job.computer_id,
                computer=hostname,
                package=job.package_name,
                state=JobState(job.state),
                return_code=job.return_code,
                meaning=explained.title if explained else None,
                finished=job.execution_finished,
            )
        )
    return failures


def _days(session: Session, now: datetime, rt: Runtime) -> list[DayPublic]:
    days = last_days(now.astimezone(rt.settings.zone).date(), DAYS_SHOWN)
    stored = {
        row.day: row for row in session.scalars(select(DailyOutcome).where(DailyOutcome.day >= days[0]))
    }
    return [
        DayPublic(
            day=day,
            succeeded=stored[day].succeeded if day in stored else 0,
            failed=stored[day].failed if day in stored else 0,
            expired=stored[day].expired if day in stored else 0,
        )
        for day in days
    ]
