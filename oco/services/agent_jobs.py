"""Use cases of the agent protocol about jobs: what a computer runs now, its reports, its downloads.

Each public function runs inside the caller's transaction, on a Core connection (the agent endpoint's hot
paths load no ORM objects); the agent API opens one per request.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    Update,
    and_,
    bindparam,
    delete,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.orm import Session

from oco.config import Settings
from oco.db.models import Computer, ComputerPackage, Job, JobAttempt, JobContainer, Package
from oco.db.types import UTCDateTime
from oco.domain.dispatch import (
    SERVER_CLOCK,
    WIRE_ACTION,
    CandidateJob,
    Clocks,
    ContainerWindow,
    jobs_to_hand_out,
    report_refusal,
    wire_payload,
    wire_post_action,
)
from oco.domain.hostnames import hostname_key
from oco.domain.outcomes import AssignmentChange, JobFacts, Outcome, apply_report, parse_report, retried
from oco.domain.planning import effective_post_action
from oco.domain.protocol import MAX_ID
from oco.domain.retries import RetryPolicy, excerpt
from oco.domain.signing import WIRE_SIGNATURE, SignedFields, wire_signature
from oco.domain.slots import (
    DOWNLOADING,
    NOT_NEEDED,
    Decision,
    Limit,
    Limits,
    Occupancy,
    hand_out,
    limits_for,
    may_download,
)
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
from oco.errors import Forbidden, InvalidInput, NotFound
from oco.services import rollouts, wol
from oco.services.agents import RECORD_COLUMNS, AuthenticationFailed, ComputerRecord
from oco.services.listing import chunks


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
    download_for_uninstall: bool = False
    max_downloads: int | None = None
    """The container's download limit (`--max-downloads`); None: none."""

    @property
    def download(self) -> bool:
        """Whether the agent fetches the payload first: installs with a payload; uninstalls only when the
        package says so ("download payload for uninstall", off by default as in OCO-Server)."""
        if not self.has_payload:
            return False
        return self.action != JobAction.UNINSTALL or self.download_for_uninstall


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
    Package.download_for_uninstall,
    JobContainer.max_downloads,
    Job.not_before,
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


# A hello also learns whether the computer is an awaited Wake-on-LAN target (a last column).
_HELLO = _CHECK_IN.add_columns(wol.AWAITED)


def read_hello(connection: Connection, hostname: str) -> tuple[CheckInView | None, bool]:
    """The computer named `hostname` (without regard to case) and its pending jobs, and whether it is an
    awaited Wake-on-LAN target (its hello proves the packets worked); one indexed query."""
    rows = connection.execute(_HELLO, {"p_key": hostname_key(hostname)}).all()
    return (_view(connection, rows), bool(rows[0][-1])) if rows else (None, False)


# Several hellos at once: the computers' key as a last column, to tell their rows apart.
_HELLOS = _check_in_query(Computer.hostname_key.in_(bindparam("p_keys", expanding=True))).add_columns(
    wol.AWAITED, Computer.hostname_key
)


def read_hellos(connection: Connection, hostnames: Sequence[str]) -> dict[str, tuple[CheckInView, bool]]:
    """`read_hello` for several computers in one query: by hostname key, the computers that exist."""
    rows_of: dict[str, list[Any]] = {}
    for part in chunks(sorted({hostname_key(hostname) for hostname in hostnames})):
        for row in connection.execute(_HELLOS, {"p_keys": list(part)}):
            rows_of.setdefault(row[-1], []).append(row)
    pending_of = {
        key: [_pending_job(row[_RECORD_WIDTH:]) for row in rows if row[_RECORD_WIDTH] is not None]
        for key, rows in rows_of.items()
    }
    signatures = _signatures(connection, [job for jobs in pending_of.values() for job in jobs])
    return {
        key: (
            CheckInView(ComputerRecord(*rows[0][:_RECORD_WIDTH]), _with(signatures, pending_of[key])),
            bool(rows[0][-2]),
        )
        for key, rows in rows_of.items()
    }


def _view(connection: Connection, rows: Sequence[Any]) -> CheckInView:
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
        candidate=CandidateJob(row[0], row[1], JobState(row[2]), window, row[20], row[25]),
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
        download_for_uninstall=bool(row[23]),
        max_downloads=row[24],
    )


def _signed(connection: Connection, pending: list[PendingJob]) -> list[PendingJob]:
    """The jobs with the publisher signatures of their signed packages, as the wire carries them."""
    return _with(_signatures(connection, pending), pending)


def _signatures(connection: Connection, pending: list[PendingJob]) -> dict[int, dict[str, Any] | None]:
    """The wire signatures of the signed packages of `pending`, by package id (read only if there are)."""
    signed = {job.package_id for job in pending if job.signature is not None and job.package_id}
    if not signed:
        return {}
    return {
        row[0]: _wire_signature(row) for row in connection.execute(_SIGNED, {"p_packages": sorted(signed)})
    }


def _with(signatures: dict[int, dict[str, Any] | None], pending: list[PendingJob]) -> list[PendingJob]:
    if not signatures:
        return pending
    return [
        replace(job, signature=signatures.get(job.package_id))
        if job.signature is not None and job.package_id
        else job
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


class SlotToTake(Exception):
    """A check-in's answer would take a download slot: it must go the write path."""


@dataclass(frozen=True, slots=True)
class SlotGate:
    """How a hello answer judges jobs with a payload under download limits (`oco.domain.slots`): the
    server-wide limits, the places as known (`occupancy`), and how a place is taken (`take`: False when
    it could not be; the read-only check-in raises `SlotToTake` instead, for the write path to take it)."""

    limits: Limits
    occupancy: Callable[[Sequence[Limit]], list[Occupancy]]
    take: Callable[[int, Sequence[Limit]], bool]

    def applies(self, jobs: Sequence[PendingJob]) -> bool:
        """Whether any limit can concern these jobs: else the answer costs nothing more."""
        if self.limits.server or self.limits.networks:
            return True
        return any(job.max_downloads for job in jobs)

    def hand_out(self, jobs: list[PendingJob], client_address: str, now: datetime) -> list[PendingJob]:
        def limits_of(job: PendingJob) -> tuple[Limit, ...]:
            container = job.candidate.container
            return limits_for(container.id, job.max_downloads, self.limits, client_address)

        def decide(job: PendingJob) -> Decision:
            state = job.candidate.state
            if (state is not JobState.WAITING and state is not JobState.DOWNLOADING) or not job.download:
                return NOT_NEEDED
            limits = limits_of(job)
            if not limits:
                return NOT_NEEDED
            if state is JobState.DOWNLOADING:
                return DOWNLOADING
            return may_download(job.candidate.id, state, True, self.occupancy(limits), now)

        def take(job: PendingJob) -> bool:
            return self.take(job.candidate.id, limits_of(job))

        return hand_out(jobs, decide, take)


def software_jobs(
    pending: list[PendingJob],
    client_address: str,
    now: datetime,
    clocks: Clocks = SERVER_CLOCK,
    slots: SlotGate | None = None,
) -> list[dict[str, Any]]:
    """The `software-jobs` list of a hello answer: OCO's keys, then ours (OCO agents ignore those).
    Under download limits, a job with a payload is handed out only with its slots (`SlotGate`)."""
    if not pending:
        return []
    eligible = eligible_jobs(pending, client_address, now, clocks)
    if slots is not None and eligible and slots.applies(eligible):
        eligible = slots.hand_out(eligible, client_address, now)
    return [_wire_job(job) for job in eligible]


def _wire_job(job: PendingJob) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": job.candidate.id,
        "container-id": job.candidate.container.id,
        "package-id": job.package_id,
        "download": job.download,
        "procedure": job.procedure,
        "sequence-mode": job.sequence_mode,
        **wire_post_action(effective_post_action(job.post_action, job.wol_shutdown), job.restart_timeout),
        WIRE_ACTION: job.action,
        **wire_payload(job.payload_sha256, job.payload_size),
    }
    if job.signature is not None:
        entry[WIRE_SIGNATURE] = job.signature
    return entry


_REPORTED = (
    select(
        Job.computer_id,
        Job.state,
        Job.action,
        Job.success_codes,
        Job.package_id,
        Job.container_id,
        Job.download_started,
        Job.execution_started,
        JobContainer.sequence_mode,
        Package.upgrade_behavior,
        Package.family_id,
        Job.sequence,
        Job.return_code,
        Job.phase,
        JobContainer.priority,
        JobContainer.created,
        JobContainer.start_time,
        JobContainer.end_time,
        JobContainer.enabled,
        JobContainer.agent_ip_ranges,
        Job.attempt,
        JobContainer.retries,
        JobContainer.retry_delay_seconds,
    )
    .join(JobContainer, Job.container_id == JobContainer.id)
    .outerjoin(Package, Job.package_id == Package.id)
    .where(Job.id == bindparam("p_job"))
    .with_for_update(of=Job)
)
"""What a report needs of its job, the job's row locked until the report's transaction ends."""


@dataclass(frozen=True, slots=True)
class _ReportedJob:
    id: int
    computer_id: int
    package_id: int | None
    container_id: int
    family_id: int | None
    facts: JobFacts
    phase: int | None = None


def report_job_state(
    connection: Connection,
    settings: Settings,
    computer: ComputerRecord,
    data: dict[str, Any],
    now: datetime,
    client_address: str,
) -> bool:
    """Apply an agent's job report; returns whether the job succeeded (the `job-succeeded` answer).

    Only a job the computer could have received is reported on (`report_refusal`); any other report is
    refused with nothing changed.
    """
    job_id = data.get("job-id")
    if isinstance(job_id, bool) or not isinstance(job_id, int) or not 0 < job_id <= MAX_ID:
        raise InvalidInput(f"'job-id' must be a job id, not {job_id!r}")
    report = parse_report(data)
    row = connection.execute(_REPORTED, {"p_job": job_id}).first()
    if row is None:
        raise NotFound(f"job {job_id} does not exist")
    if row.computer_id != computer.id:
        raise AuthenticationFailed(f"job {job_id} does not belong to computer {computer.hostname!r}")
    behavior = UpgradeBehavior(row.upgrade_behavior) if row.upgrade_behavior else UpgradeBehavior.KEEP
    job = _ReportedJob(
        id=job_id,
        computer_id=row.computer_id,
        package_id=row.package_id,
        container_id=row.container_id,
        family_id=row.family_id,
        phase=row.phase,
        facts=JobFacts(
            state=JobState(row.state),
            action=JobAction(row.action),
            success_codes=row.success_codes,
            sequence_mode=SequenceMode(row.sequence_mode),
            upgrade_behavior=behavior,
            download_started=row.download_started,
            execution_started=row.execution_started,
            return_code=row.return_code,
            attempt=row.attempt,
            retry=RetryPolicy(row.retries, row.retry_delay_seconds),
        ),
    )
    hold = report_refusal(_candidate(job_id, row), now, client_address)
    if hold is not None:
        raise Forbidden(f"job {job_id} is not handed out to {computer.hostname!r} now: {hold.label}")
    outcome = retried(job.facts, apply_report(job.facts, report, settings.max_job_output_chars), now)
    if outcome.retry_at is not None:
        _retry(connection, job, outcome, outcome.retry_at, now)
    elif outcome.applied:
        _apply(connection, job, outcome, now)
    return outcome.succeeded


def _candidate(job_id: int, row: Row[*tuple[Any, ...]]) -> CandidateJob:
    window = ContainerWindow(
        id=row.container_id,
        priority=row.priority,
        created=row.created,
        start=row.start_time,
        end=row.end_time,
        enabled=row.enabled,
        ip_ranges=row.agent_ip_ranges,
    )
    return CandidateJob(job_id, row.sequence, JobState(row.state), window)


def _apply(connection: Connection, job: _ReportedJob, outcome: Outcome, now: datetime) -> None:
    changes: dict[str, Any] = {"state": int(outcome.state), "last_update": now}
    if outcome.message or outcome.final:
        changes["message"] = outcome.message
    if outcome.download_progress is not None:
        changes["download_progress"] = outcome.download_progress
    if outcome.starts_download and job.facts.download_started is None:
        changes["download_started"] = now
    if outcome.starts_execution and job.facts.execution_started is None:
        changes["execution_started"] = now
    if outcome.reopens:  # failed by the cascade, run anyway by its agent: running again
        changes["return_code"], changes["execution_finished"] = None, None
    if outcome.final:
        changes["return_code"] = outcome.return_code
        changes["execution_finished"] = now
    connection.execute(_job_update(tuple(sorted(changes))), {"p_id": job.id, **changes})
    if not outcome.final:
        return
    _change_assignments(connection, job, outcome, now)
    if outcome.abort_remaining:
        abort_remaining_jobs(connection, job.container_id, job.computer_id, now)
    if job.phase is not None and outcome.state is JobState.FAILED:
        with Session(bind=connection) as session:  # joins this transaction; the rollout rules use the ORM
            rollouts.check_halt(session, job.container_id, job.phase, now)
            session.flush()


def _retry(connection: Connection, job: _ReportedJob, outcome: Outcome, at: datetime, now: datetime) -> None:
    """Keep the failed attempt in the job's history and set the job waiting for its next attempt at `at`.
    Nothing else happens: no assignment change, no cascade, no halt check (the failure is not final)."""
    facts = job.facts
    connection.execute(
        insert(JobAttempt).values(
            job_id=job.id,
            attempt=facts.attempt,
            state=int(JobState.FAILED),
            return_code=outcome.return_code,
            message=excerpt(outcome.message),
            started=facts.download_started or facts.execution_started,
            finished=now,
        )
    )
    changes: dict[str, Any] = {
        "state": int(JobState.WAITING),
        "attempt": facts.attempt + 1,
        "not_before": at,
        "return_code": None,
        "message": "",
        "download_progress": None,
        "download_started": None,
        "execution_started": None,
        "execution_finished": None,
        "last_update": now,
    }
    connection.execute(_job_update(tuple(sorted(changes))), {"p_id": job.id, **changes})


@functools.cache
def _job_update(columns: tuple[str, ...]) -> Update:
    """UPDATE job SET `columns` (bound by their names) WHERE id = :p_id; built once per set of columns."""
    table = Job.__table__
    return (
        update(Job)
        .where(Job.id == bindparam("p_id"))
        .values({name: bindparam(name, type_=table.c[name].type) for name in columns})
    )


_ASSIGNED = (ComputerPackage.computer_id == bindparam("p_computer")) & (
    ComputerPackage.package_id == bindparam("p_package")
)
_UNASSIGN = delete(ComputerPackage).where(_ASSIGNED)
_REASSIGN = (
    update(ComputerPackage)
    .where(_ASSIGNED)
    .values(installed=bindparam("p_now", type_=UTCDateTime()), installed_by_job_id=bindparam("p_job"))
)
_ASSIGN = insert(ComputerPackage).values(
    computer_id=bindparam("p_computer"),
    package_id=bindparam("p_package"),
    installed=bindparam("p_now", type_=UTCDateTime()),
    installed_by_job_id=bindparam("p_job"),
)
_UNASSIGN_SIBLINGS = delete(ComputerPackage).where(
    ComputerPackage.computer_id == bindparam("p_computer"),
    ComputerPackage.package_id.in_(
        select(Package.id).where(
            Package.family_id == bindparam("p_family"), Package.id != bindparam("p_package")
        )
    ),
)


def _change_assignments(connection: Connection, job: _ReportedJob, outcome: Outcome, now: datetime) -> None:
    if job.package_id is None or outcome.assignment is AssignmentChange.NONE:
        return
    key = {"p_computer": job.computer_id, "p_package": job.package_id}
    if outcome.assignment is AssignmentChange.REMOVE:
        connection.execute(_UNASSIGN, key)
        return
    assigned = {**key, "p_now": now, "p_job": job.id}
    if connection.execute(_REASSIGN, assigned).rowcount == 0:
        connection.execute(_ASSIGN, assigned)
    if outcome.remove_other_family_versions and job.family_id is not None:
        connection.execute(_UNASSIGN_SIBLINGS, {**key, "p_family": job.family_id})


_ABORT_REMAINING = (
    update(Job)
    .where(
        Job.container_id == bindparam("p_container"),
        Job.computer_id == bindparam("p_computer"),
        Job.state == int(JobState.WAITING),
    )
    .values(
        state=int(JobState.FAILED),
        return_code=int(ReturnCode.ABORTED_AFTER_FAILED_JOB),
        message=ABORTED_AFTER_FAILED_JOB_MESSAGE,
        execution_finished=bindparam("p_now", type_=UTCDateTime()),
        last_update=bindparam("p_now", type_=UTCDateTime()),
    )
)


def abort_remaining_jobs(connection: Connection, container_id: int, computer_id: int, now: datetime) -> None:
    """Sequence mode "abort after failed job": this computer's waiting jobs of the container fail -8888."""
    connection.execute(
        _ABORT_REMAINING, {"p_container": container_id, "p_computer": computer_id, "p_now": now}
    )


def _aborted_by_cascade(connection: Connection, computer_id: int, package_id: int) -> bool:
    cascaded = select(Job.id).where(
        Job.computer_id == computer_id,
        Job.package_id == package_id,
        Job.state == int(JobState.FAILED),
        Job.return_code == int(ReturnCode.ABORTED_AFTER_FAILED_JOB),
    )
    return connection.scalar(cascaded.limit(1)) is not None


def _grant_of_package(connection: Connection, package_id: int) -> DownloadGrant:
    row = connection.execute(
        select(Package.payload_sha256, Package.payload_size).where(Package.id == package_id)
    ).first()
    if row is None or row.payload_sha256 is None or row.payload_size is None:
        raise NotFound(f"package {package_id} has no payload")
    return DownloadGrant(package_id=package_id, sha256=row.payload_sha256, size=row.payload_size)


def authorize_download(
    connection: Connection,
    computer: ComputerRecord,
    package_id: int,
    client_address: str,
    now: datetime,
    server_zone: tzinfo = UTC,
) -> DownloadGrant:
    """A download is allowed only while the computer has an eligible job for that package, or one the
    -8888 cascade failed (an OCO agent runs it anyway, and its report is accepted)."""
    clocks = Clocks(computer.time_zone, server_zone)
    jobs = [
        job
        for job in eligible_jobs(pending_jobs(connection, computer.id), client_address, now, clocks)
        if job.package_id == package_id
    ]
    if not jobs and _aborted_by_cascade(connection, computer.id, package_id):
        return _grant_of_package(connection, package_id)
    if not jobs:
        raise AuthenticationFailed(f"computer {computer.hostname!r} has no job for package {package_id} now")
    job = jobs[0]  # the check-in's read carries the package's payload digest and size
    if job.payload_sha256 is None or job.payload_size is None:
        raise NotFound(f"package {package_id} has no payload")
    return DownloadGrant(package_id=package_id, sha256=job.payload_sha256, size=job.payload_size)
