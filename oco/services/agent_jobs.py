"""Use cases of the agent protocol about jobs: what a computer runs now, its reports, its downloads.

Each public function runs inside the caller's transaction; the agent API opens one per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    bindparam,
    delete,
    literal_column,
    select,
    update,
)
from sqlalchemy.orm import Session

from oco.config import Settings
from oco.db.models import Computer, ComputerPackage, Job, JobContainer, Package
from oco.domain.dispatch import (
    SERVER_CLOCK,
    WIRE_ACTION,
    CandidateJob,
    Clocks,
    ContainerWindow,
    jobs_to_hand_out,
    wire_payload,
    wire_post_action,
)
from oco.domain.hostnames import hostname_key
from oco.domain.outcomes import AssignmentChange, JobFacts, Outcome, apply_report, parse_report
from oco.domain.planning import effective_post_action
from oco.domain.signing import WIRE_SIGNATURE, SignedFields, wire_signature
from oco.domain.states import (
    ABORTED_AFTER_FAILED_JOB_MESSAGE,
    PENDING_STATES,
    JobAction,
    JobState,
    PostAction,
    ReturnCode,
    SequenceMode,
    UpgradeBehavior,
)
from oco.errors import InvalidInput, NotFound
from oco.services import rollouts
from oco.services.agents import RECORD_COLUMNS, AuthenticationFailed, ComputerRecord


@dataclass(frozen=True, slots=True)
class DownloadGrant:
    """A payload an agent may download now: the package id (for the file name) and the depot digest."""

    package_id: int
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class PendingJob:
    """A pending job as the check-in reads it: one row of one query, no ORM objects."""

    candidate: CandidateJob
    package_id: int | None
    procedure: str
    post_action: PostAction
    wol_shutdown: bool
    sequence_mode: int
    restart_timeout: int
    has_payload: bool
    action: str = ""
    payload_sha256: str | None = None
    payload_size: int | None = None
    signature: dict[str, Any] | None = None
    """The package's publisher signature as the job carries it on the wire, when it has one."""


@dataclass(frozen=True, slots=True)
class CheckInView:
    """What a check-in reads: the computer and its pending jobs, in one query."""

    computer: ComputerRecord
    pending: list[PendingJob]


# Constants in the SQL text: an IN list of bound parameters would be expanded on every execution.
_PENDING_STATES: list[ColumnElement[Any]] = [
    literal_column(str(int(state))) for state in sorted(PENDING_STATES)
]
_JOB_COLUMNS = (
    Job.id,
    Job.sequence,
    Job.state,
    Job.package_id,
    Job.procedure,
    Job.post_action,
    Job.wol_shutdown,
    JobContainer.id,
    JobContainer.priority,
    JobContainer.created,
    JobContainer.start_time,
    JobContainer.end_time,
    JobContainer.enabled,
    JobContainer.agent_ip_ranges,
    JobContainer.sequence_mode,
    JobContainer.restart_timeout,
    Package.payload_sha256,
    Package.payload_size,
    Job.action,
    Package.signature_key_id,
    Job.phase,
    JobContainer.open_phase,
    JobContainer.windows,
)
"""What a check-in reads of each pending job: few columns (each costs on every check-in); the signed
fields of a signed package are read by `_signed` only when one of the jobs has a signature."""
_SIGNED = select(
    Package.id,
    Package.signature,
    Package.signature_key_id,
    Package.version,
    Package.install_procedure,
    Package.install_success_codes,
    Package.install_post_action,
    Package.uninstall_procedure,
    Package.uninstall_success_codes,
    Package.uninstall_post_action,
    Package.payload_sha256,
).where(Package.id.in_(bindparam("p_packages", expanding=True)))
_PENDING = (
    select(*_JOB_COLUMNS)
    .join(JobContainer, Job.container_id == JobContainer.id)
    .outerjoin(Package, Job.package_id == Package.id)
    .where(Job.computer_id == bindparam("p_computer"), Job.state.in_(_PENDING_STATES))
)


def _check_in_query(condition: ColumnElement[bool]) -> Select[Any]:
    """The computer's columns, repeated beside each of its pending jobs (once, with NULLs, if none)."""
    return (
        select(*RECORD_COLUMNS, *_JOB_COLUMNS)
        .select_from(Computer)
        .outerjoin(Job, and_(Job.computer_id == Computer.id, Job.state.in_(_PENDING_STATES)))
        .outerjoin(JobContainer, Job.container_id == JobContainer.id)
        .outerjoin(Package, Job.package_id == Package.id)
        .where(condition)
    )


_CHECK_IN = _check_in_query(Computer.hostname_key == bindparam("p_key"))
_RECORD_WIDTH = len(RECORD_COLUMNS)


def read_check_in(connection: Connection, hostname: str) -> CheckInView | None:
    """The computer named `hostname` (without regard to case) and its pending jobs; one indexed query."""
    rows = connection.execute(_CHECK_IN, {"p_key": hostname_key(hostname)}).all()
    if not rows:
        return None
    pending = [_pending_job(row[_RECORD_WIDTH:]) for row in rows if row[_RECORD_WIDTH] is not None]
    return CheckInView(ComputerRecord(*rows[0][:_RECORD_WIDTH]), _signed(connection, pending))


def pending_jobs(connection: Connection, computer_id: int) -> list[PendingJob]:
    """The computer's pending jobs with their containers and payloads, in one indexed query (two when a
    package is signed)."""
    rows = connection.execute(_PENDING, {"p_computer": computer_id})
    return _signed(connection, [_pending_job(row) for row in rows])


def _pending_job(row: Sequence[Any]) -> PendingJob:
    window = ContainerWindow(
        id=row[7],
        priority=row[8],
        created=row[9],
        start=row[10],
        end=row[11],
        enabled=row[12],
        ip_ranges=row[13],
        open_phase=row[21],
        windows=row[22],
    )
    return PendingJob(
        candidate=CandidateJob(row[0], row[1], JobState(row[2]), window, row[20]),
        package_id=row[3],
        procedure=row[4],
        post_action=PostAction(row[5]),
        wol_shutdown=bool(row[6]),
        sequence_mode=row[14],
        restart_timeout=row[15],
        has_payload=row[16] is not None,
        payload_sha256=row[16],
        payload_size=row[17],
        action=row[18],
        signature={} if row[19] else None,  # filled in by `_signed`
    )


def _signed(connection: Connection, pending: list[PendingJob]) -> list[PendingJob]:
    """The jobs with the publisher signatures of their signed packages, as the wire carries them."""
    signed = {job.package_id for job in pending if job.signature is not None and job.package_id}
    if not signed:
        return pending
    signatures = {
        row[0]: _wire_signature(row) for row in connection.execute(_SIGNED, {"p_packages": sorted(signed)})
    }
    return [
        replace(job, signature=signatures.get(job.package_id)) if job.package_id in signed else job
        for job in pending
    ]


def _wire_signature(row: Sequence[Any]) -> dict[str, Any] | None:
    signature, key_id = row[1], row[2]
    if not signature or not key_id:
        return None
    fields = SignedFields(
        version=row[3],
        install_procedure=row[4],
        install_success_codes=row[5],
        install_post_action=PostAction(row[6]),
        uninstall_procedure=row[7],
        uninstall_success_codes=row[8],
        uninstall_post_action=PostAction(row[9]),
        payload_sha256=row[10] or "",
    )
    return wire_signature(key_id, signature, fields)


def eligible_jobs(
    pending: list[PendingJob], client_address: str, now: datetime, clocks: Clocks = SERVER_CLOCK
) -> list[PendingJob]:
    """Of a computer's pending jobs, those it may run now, in the order it must run them (maintenance
    windows read on `clocks`)."""
    by_id = {job.candidate.id: job for job in pending}
    ordered = jobs_to_hand_out([job.candidate for job in pending], now, client_address, clocks)
    return [by_id[candidate.id] for candidate in ordered]


def software_jobs(
    pending: list[PendingJob], client_address: str, now: datetime, clocks: Clocks = SERVER_CLOCK
) -> list[dict[str, Any]]:
    """The `software-jobs` list of a hello answer: OCO's keys, then ours (OCO agents ignore those)."""
    if not pending:
        return []
    return [_wire_job(job) for job in eligible_jobs(pending, client_address, now, clocks)]


def _wire_job(job: PendingJob) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": job.candidate.id,
        "container-id": job.candidate.container.id,
        "package-id": job.package_id,
        "download": job.has_payload,
        "procedure": job.procedure,
        "sequence-mode": job.sequence_mode,
        **wire_post_action(effective_post_action(job.post_action, job.wol_shutdown), job.restart_timeout),
        WIRE_ACTION: job.action,
        **wire_payload(job.payload_sha256, job.payload_size),
    }
    if job.signature is not None:
        entry[WIRE_SIGNATURE] = job.signature
    return entry


def report_job_state(
    session: Session, settings: Settings, computer: ComputerRecord, data: dict[str, Any], now: datetime
) -> bool:
    """Apply an agent's job report; returns whether the job succeeded (the `job-succeeded` answer)."""
    job_id = data.get("job-id")
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        raise InvalidInput(f"'job-id' must be an integer, not {job_id!r}")
    report = parse_report(data)
    job = session.get(Job, job_id, with_for_update=True)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    if job.computer_id != computer.id:
        raise AuthenticationFailed(f"job {job_id} does not belong to computer {computer.hostname!r}")
    outcome = apply_report(_facts(job), report, settings.max_job_output_chars)
    if outcome.applied:
        _apply(session, job, outcome, now)
    return outcome.succeeded


def _facts(job: Job) -> JobFacts:
    behavior = UpgradeBehavior(job.package.upgrade_behavior) if job.package else UpgradeBehavior.KEEP
    return JobFacts(
        state=JobState(job.state),
        action=JobAction(job.action),
        success_codes=job.success_codes,
        sequence_mode=SequenceMode(job.container.sequence_mode),
        upgrade_behavior=behavior,
    )


def _apply(session: Session, job: Job, outcome: Outcome, now: datetime) -> None:
    job.state = int(outcome.state)
    job.last_update = now
    if outcome.message or outcome.final:
        job.message = outcome.message
    if outcome.download_progress is not None:
        job.download_progress = outcome.download_progress
    if outcome.starts_download and job.download_started is None:
        job.download_started = now
    if outcome.starts_execution and job.execution_started is None:
        job.execution_started = now
    if not outcome.final:
        return
    job.return_code = outcome.return_code
    job.execution_finished = now
    _change_assignments(session, job, outcome, now)
    if outcome.abort_remaining:
        abort_remaining_jobs(session, job, now)
    if job.phase is not None and outcome.state is JobState.FAILED:
        session.flush()
        rollouts.check_halt(session, job.container_id, job.phase, now)


def _change_assignments(session: Session, job: Job, outcome: Outcome, now: datetime) -> None:
    if job.package_id is None or outcome.assignment is AssignmentChange.NONE:
        return
    current = session.scalar(
        select(ComputerPackage).where(
            ComputerPackage.computer_id == job.computer_id, ComputerPackage.package_id == job.package_id
        )
    )
    if outcome.assignment is AssignmentChange.REMOVE:
        if current is not None:
            session.delete(current)
        return
    if current is None:
        session.add(
            ComputerPackage(
                computer_id=job.computer_id,
                package_id=job.package_id,
                installed=now,
                installed_by_job_id=job.id,
            )
        )
    else:
        current.installed, current.installed_by_job_id = now, job.id
    if outcome.remove_other_family_versions and job.package is not None:
        siblings = select(Package.id).where(
            Package.family_id == job.package.family_id, Package.id != job.package_id
        )
        session.execute(
            delete(ComputerPackage).where(
                ComputerPackage.computer_id == job.computer_id, ComputerPackage.package_id.in_(siblings)
            )
        )


def abort_remaining_jobs(session: Session, failed: Job, now: datetime) -> None:
    """Sequence mode "abort after failed job": this computer's waiting jobs of the container fail -8888."""
    session.execute(
        update(Job)
        .where(
            Job.container_id == failed.container_id,
            Job.computer_id == failed.computer_id,
            Job.state == int(JobState.WAITING),
        )
        .values(
            state=int(JobState.FAILED),
            return_code=int(ReturnCode.ABORTED_AFTER_FAILED_JOB),
            message=ABORTED_AFTER_FAILED_JOB_MESSAGE,
            execution_finished=now,
            last_update=now,
        )
        .execution_options(synchronize_session=False)
    )


def authorize_download(
    session: Session,
    computer: ComputerRecord,
    package_id: int,
    client_address: str,
    now: datetime,
    server_zone: tzinfo = UTC,
) -> DownloadGrant:
    """A download is allowed only while the computer has an eligible job for that package."""
    pending = pending_jobs(session.connection(), computer.id)
    clocks = Clocks(computer.time_zone, server_zone)
    if not any(job.package_id == package_id for job in eligible_jobs(pending, client_address, now, clocks)):
        raise AuthenticationFailed(f"computer {computer.hostname!r} has no job for package {package_id} now")
    package = session.get(Package, package_id)
    if package is None or package.payload_sha256 is None or package.payload_size is None:
        raise NotFound(f"package {package_id} has no payload")
    return DownloadGrant(package_id=package.id, sha256=package.payload_sha256, size=package.payload_size)
