"""Use cases of the agent protocol: authenticate a request, check-in, inventory (PROTOCOL.md).

Each public function runs inside the caller's transaction; the API opens one per request.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, contains_eager

from oco.config import Settings
from oco.db.models import Computer, ComputerNetwork, ComputerPackage, Job, Package
from oco.domain.dispatch import CandidateJob, ContainerWindow, jobs_to_hand_out, wire_post_action
from oco.domain.outcomes import AssignmentChange, JobFacts, Outcome, apply_report, parse_report
from oco.domain.planning import effective_post_action
from oco.domain.protocol import AgentMethod, signature_matches
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
from oco.services.computers import computer_id_by_hostname, normalise_hostname
from oco.services.errors import InvalidInput, NotFound, Unauthorized

KEY_BYTES = 32
"""Agent and server keys: 32 random bytes, 43 URL-safe characters."""
SELF_REGISTRATION_DISABLED = "Client self-registration is disabled"


class AuthenticationFailed(Unauthorized):
    """The request's signature, key or timestamp is not acceptable (401; logged for fail2ban)."""


@dataclass(frozen=True, slots=True)
class AgentRequest:
    """The parts of a JSON-RPC request the services need."""

    method: AgentMethod
    hostname: str
    uid: str
    timestamp: float
    data: dict[str, Any]
    body: bytes
    signature: str | None
    client_address: str


@dataclass(frozen=True, slots=True)
class DownloadGrant:
    """A payload an agent may download now: the package id (for the file name) and the depot digest."""

    package_id: int
    sha256: str
    size: int


@dataclass(slots=True)
class AuthenticatedAgent:
    """A computer whose request passed authentication, with the keys to announce, if new."""

    computer: Computer
    new_agent_key: str | None = None
    new_server_key: str | None = None
    registered: bool = False
    timestamp: float = 0.0
    """The `result.timestamp` of the answer: greater than any this computer was sent before."""


def authenticate(
    session: Session, settings: Settings, request: AgentRequest, now: datetime
) -> AuthenticatedAgent:
    """Check signature and timestamp; register the computer on first use (trust on first use).

    A request signed with the registration key is accepted only from a computer without an agent key,
    and new keys are issued only in answer to `oco.agent.hello`. Nothing is written when this raises.
    """
    hostname = normalise_hostname(request.hostname)
    computer = _locked_computer(session, hostname)
    if computer is None:
        return _self_register(session, settings, request, hostname)
    if computer.agent_key:
        if not signature_matches(computer.agent_key, request.body, request.signature):
            raise AuthenticationFailed("signature does not match the computer's agent key")
        agent = AuthenticatedAgent(computer)
    else:
        _require_registration_signature(settings, request)
        agent = AuthenticatedAgent(computer)
        if request.method is AgentMethod.HELLO:
            agent.new_agent_key = computer.agent_key = _new_key()
    if request.timestamp <= computer.last_agent_timestamp:
        raise AuthenticationFailed(
            f"timestamp {request.timestamp} is not newer than the last one accepted "
            f"({computer.last_agent_timestamp}): replayed request"
        )
    computer.last_agent_timestamp = request.timestamp
    if not computer.server_key and request.method is AgentMethod.HELLO:
        agent.new_server_key = computer.server_key = _new_key()
    if request.uid:
        computer.uid = request.uid[:255]
    computer.last_seen = now
    computer.remote_address = request.client_address
    agent.timestamp = next_server_timestamp(computer)
    return agent


def _locked_computer(session: Session, hostname: str) -> Computer | None:
    """The computer, locked for this transaction: the exact name first (indexed), then ignoring case."""
    query = select(Computer).with_for_update()
    computer = session.scalar(query.where(Computer.hostname == hostname))
    if computer is None:
        computer_id = computer_id_by_hostname(session, hostname)
        computer = session.scalar(query.where(Computer.id == computer_id)) if computer_id else None
    return computer


def _self_register(
    session: Session, settings: Settings, request: AgentRequest, hostname: str
) -> AuthenticatedAgent:
    if not settings.self_registration:
        raise AuthenticationFailed(SELF_REGISTRATION_DISABLED)
    _require_registration_signature(settings, request)
    if request.method is not AgentMethod.HELLO:
        raise AuthenticationFailed("unknown computer: register with oco.agent.hello first")
    computer = Computer(
        hostname=hostname,
        uid=request.uid[:255],
        notes="Self-registered",
        agent_key=_new_key(),
        server_key=_new_key(),
        last_agent_timestamp=request.timestamp,
        last_seen=None,
        remote_address=request.client_address,
    )
    session.add(computer)
    session.flush()
    return AuthenticatedAgent(
        computer,
        new_agent_key=computer.agent_key,
        new_server_key=computer.server_key,
        registered=True,
        timestamp=next_server_timestamp(computer),
    )


def _require_registration_signature(settings: Settings, request: AgentRequest) -> None:
    if not settings.agent_registration_key:
        raise AuthenticationFailed("no agent registration key is configured")
    if not signature_matches(settings.agent_registration_key, request.body, request.signature):
        raise AuthenticationFailed("signature does not match the agent registration key")


def _new_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


def next_server_timestamp(computer: Computer) -> float:
    """A server time strictly greater than the last one this computer was sent."""
    stamp = max(time.time(), computer.last_server_timestamp + 0.001)
    computer.last_server_timestamp = stamp
    return stamp


def wants_inventory(computer: Computer, settings: Settings, now: datetime, registered: bool) -> bool:
    """Ask for a full inventory when the computer is new, forced, or its inventory is old."""
    if registered or computer.force_update or computer.inventory_updated is None:
        return True
    age = now - computer.inventory_updated
    return age > timedelta(seconds=settings.inventory_interval_seconds)


def store_hello(session: Session, computer: Computer, data: dict[str, Any]) -> None:
    """Keep what a check-in tells us: agent version and network interfaces (with MACs)."""
    version = data.get("agent_version")
    if isinstance(version, str):
        computer.agent_version = version[:255]
    networks = data.get("networks")
    if isinstance(networks, list):
        _replace_networks(session, computer, networks)


def store_inventory(session: Session, computer: Computer, data: dict[str, Any], now: datetime) -> None:
    """Keep a full inventory: the fields we use in columns, the rest as a document to show."""
    for field in ("os", "os_version", "architecture", "kernel_version", "agent_version"):
        value = data.get(field)
        if value is not None:
            setattr(computer, field, str(value)[:255])
    networks = data.get("networks")
    if isinstance(networks, list):
        _replace_networks(session, computer, networks)
    logins = data.get("logins")
    computer.logins = logins if isinstance(logins, list) else []
    computer.inventory = {key: value for key, value in data.items() if key not in {"networks", "logins"}}
    computer.inventory_updated = now
    computer.force_update = False


def _replace_networks(session: Session, computer: Computer, networks: list[Any]) -> None:
    rows = []
    for entry in networks:
        if not isinstance(entry, dict):
            raise InvalidInput("each entry of 'networks' must be an object")
        rows.append(
            ComputerNetwork(
                interface=_text(entry.get("interface"), 255),
                address=_text(entry.get("addr", entry.get("address")), 64),
                netmask=_text(entry.get("netmask"), 64),
                broadcast=_text(entry.get("broadcast"), 64),
                mac=_text(entry.get("mac"), 32),
            )
        )
    current = [(n.interface, n.address, n.netmask, n.broadcast, n.mac) for n in computer.networks]
    if current != [(n.interface, n.address, n.netmask, n.broadcast, n.mac) for n in rows]:
        computer.networks = rows


def _text(value: Any, limit: int) -> str:
    return "" if value is None else str(value)[:limit]


def find_computer_by_hostname(session: Session, hostname: str) -> Computer | None:
    computer_id = computer_id_by_hostname(session, hostname)
    return session.scalar(select(Computer).where(Computer.id == computer_id)) if computer_id else None


LOGINS_SINCE_FORMAT = "%Y-%m-%d %H:%M:%S"
EPOCH_TEXT = "1970-01-01 00:00:00"


def logins_since(computer: Computer, settings: Settings) -> str:
    """The time from which the agent should report logins: the last full inventory (UTC), or the epoch."""
    if computer.inventory_updated is None:
        return EPOCH_TEXT
    return computer.inventory_updated.strftime(LOGINS_SINCE_FORMAT)


# Jobs -----------------------------------------------------------------------------------------------


def _candidates(session: Session, computer_id: int) -> list[tuple[CandidateJob, Job]]:
    """The computer's pending jobs with their containers, in one query (the check-in hot path)."""
    query = (
        select(Job)
        .join(Job.container)
        .options(contains_eager(Job.container))
        .where(Job.computer_id == computer_id, Job.state.in_([int(s) for s in PENDING_STATES]))
    )
    candidates = []
    for job in session.scalars(query):
        container = job.container
        window = ContainerWindow(
            id=container.id,
            priority=container.priority,
            created=container.created,
            start=container.start_time,
            end=container.end_time,
            enabled=container.enabled,
            ip_ranges=container.agent_ip_ranges,
        )
        candidates.append((CandidateJob(job.id, job.sequence, JobState(job.state), window), job))
    return candidates


def eligible_jobs(session: Session, computer: Computer, client_address: str, now: datetime) -> list[Job]:
    """The computer's jobs it may run now, in the order it must run them."""
    candidates = _candidates(session, computer.id)
    by_id = {candidate.id: job for candidate, job in candidates}
    ordered = jobs_to_hand_out([candidate for candidate, _job in candidates], now, client_address)
    return [by_id[candidate.id] for candidate in ordered]


def software_jobs(
    session: Session, settings: Settings, computer: Computer, request: AgentRequest, now: datetime
) -> list[dict[str, Any]]:
    """The `software-jobs` list of a hello answer."""
    jobs = eligible_jobs(session, computer, request.client_address, now)
    payload_ids = _packages_with_payload(session, {job.package_id for job in jobs if job.package_id})
    return [
        {
            "id": job.id,
            "container-id": job.container_id,
            "package-id": job.package_id,
            "download": job.package_id in payload_ids,
            "procedure": job.procedure,
            "sequence-mode": job.container.sequence_mode,
            **wire_post_action(
                effective_post_action(PostAction(job.post_action), job.wol_shutdown),
                job.container.restart_timeout,
            ),
        }
        for job in jobs
    ]


def _packages_with_payload(session: Session, package_ids: set[int]) -> set[int]:
    if not package_ids:
        return set()
    query = select(Package.id).where(Package.id.in_(package_ids), Package.payload_sha256.is_not(None))
    return set(session.scalars(query))


def report_job_state(
    session: Session, settings: Settings, computer: Computer, data: dict[str, Any], now: datetime
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


def authorise_download(
    session: Session,
    settings: Settings,
    computer: Computer,
    package_id: int,
    request: AgentRequest,
    now: datetime,
) -> DownloadGrant:
    """A download is allowed only while the computer has an eligible job for that package."""
    if not any(
        job.package_id == package_id for job in eligible_jobs(session, computer, request.client_address, now)
    ):
        raise AuthenticationFailed(f"computer {computer.hostname!r} has no job for package {package_id} now")
    package = session.get(Package, package_id)
    if package is None or package.payload_sha256 is None or package.payload_size is None:
        raise NotFound(f"package {package_id} has no payload")
    return DownloadGrant(package_id=package.id, sha256=package.payload_sha256, size=package.payload_size)
