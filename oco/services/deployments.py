"""Use cases of deployments: create (and preview), uninstall, edit, renew, delete job containers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session, selectinload

from oco.config import Settings
from oco.db.models import (
    Computer,
    ComputerGroup,
    ComputerGroupMember,
    ComputerPackage,
    Job,
    JobContainer,
    Package,
    PackageFamily,
    PackageGroup,
    PackageGroupMember,
    WolTarget,
)
from oco.domain.planning import (
    ContainerSettings,
    InstalledPackage,
    PackageToDeploy,
    Plan,
    TargetComputer,
    plan_deployment,
    plan_uninstall,
    validate_container,
)
from oco.domain.states import ContainerStatus, JobState, PostAction, SequenceMode, UpgradeBehavior
from oco.domain.status import container_status, progress
from oco.services import audit, wol
from oco.services.computers import is_online
from oco.services.errors import InvalidInput, NotFound


@dataclass(frozen=True, slots=True)
class Targets:
    """What a deployment is about: computers and computer groups, packages and package groups."""

    computer_ids: Sequence[int] = ()
    computer_group_ids: Sequence[int] = ()
    package_ids: Sequence[int] = ()
    package_group_ids: Sequence[int] = ()


@dataclass(frozen=True, slots=True)
class ResolvedTargets:
    computers: list[Computer] = field(default_factory=list)
    packages: list[Package] = field(default_factory=list)


def resolve_targets(session: Session, targets: Targets) -> ResolvedTargets:
    """Load the target computers (with their assignments) and packages, groups expanded, order kept.

    Computers come in the order given, group members after; packages likewise, each package group in
    its own order. Duplicates are dropped at their second appearance. Unknown ids are refused.
    """
    computer_ids = _unique(
        [*targets.computer_ids, *_computer_group_members(session, targets.computer_group_ids)]
    )
    package_ids = _unique([*targets.package_ids, *_package_group_members(session, targets.package_group_ids)])
    if not computer_ids:
        raise InvalidInput("choose at least one computer or computer group", field="computers")
    if not package_ids:
        raise InvalidInput("choose at least one package or package group", field="packages")
    computers = _load(
        session,
        Computer,
        computer_ids,
        [
            selectinload(Computer.assignments)
            .selectinload(ComputerPackage.package)
            .selectinload(Package.family),
        ],
        "computer",
    )
    packages = _load(session, Package, package_ids, [selectinload(Package.family)], "package")
    return ResolvedTargets(computers=computers, packages=packages)


def _computer_group_members(session: Session, group_ids: Sequence[int]) -> list[int]:
    _require_all(session, ComputerGroup, group_ids, "computer group")
    member = ComputerGroupMember
    return _members(session, group_ids, member.computer_id, member.group_id, member.id)


def _package_group_members(session: Session, group_ids: Sequence[int]) -> list[int]:
    _require_all(session, PackageGroup, group_ids, "package group")
    member = PackageGroupMember
    return _members(session, group_ids, member.package_id, member.group_id, member.sequence)


def _members(session: Session, group_ids: Sequence[int], member: Any, group: Any, order: Any) -> list[int]:
    """The members of each group in turn, each group in its own order."""
    members: list[int] = []
    for group_id in group_ids:
        members.extend(session.scalars(select(member).where(group == group_id).order_by(order)))
    return members


_Group = TypeVar("_Group", ComputerGroup, PackageGroup)
_Row = TypeVar("_Row", Computer, Package, ComputerPackage)


def _require_all(session: Session, model: type[_Group], ids: Sequence[int], what: str) -> None:
    if not ids:
        return
    found = set(session.scalars(select(model.id).where(model.id.in_(ids))))
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"{what} {missing[0]} does not exist")


def _load(session: Session, model: type[_Row], ids: list[int], options: list[Any], what: str) -> list[_Row]:
    """The rows with these ids, in the order of `ids`; the first missing one is named."""
    rows = {row.id: row for row in session.scalars(select(model).where(model.id.in_(ids)).options(*options))}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise NotFound(f"{what} {missing[0]} does not exist")
    return [rows[i] for i in ids]


def _unique(ids: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(ids))


# Domain views of the loaded rows ------------------------------------------------------------------


def target_computer(computer: Computer, now: datetime, offline_seconds: int) -> TargetComputer:
    return TargetComputer(
        id=computer.id,
        hostname=computer.hostname,
        os=computer.os,
        os_version=computer.os_version,
        architecture=computer.architecture,
        online=is_online(computer, now, offline_seconds),
        installed=tuple(
            InstalledPackage(
                package_id=a.package_id,
                family_id=a.package.family_id,
                name=a.package.display_name,
                uninstall_procedure=a.package.uninstall_procedure,
                uninstall_success_codes=a.package.uninstall_success_codes,
                uninstall_post_action=PostAction(a.package.uninstall_post_action),
            )
            for a in computer.assignments
        ),
    )


def package_to_deploy(package: Package) -> PackageToDeploy:
    return PackageToDeploy(
        id=package.id,
        family_id=package.family_id,
        name=package.display_name,
        install_procedure=package.install_procedure,
        install_success_codes=package.install_success_codes,
        install_post_action=PostAction(package.install_post_action),
        upgrade_behavior=UpgradeBehavior(package.upgrade_behavior),
        compatible_os=package.compatible_os,
        compatible_os_version=package.compatible_os_version,
        compatible_architecture=package.compatible_architecture,
    )


_T = TypeVar("_T")


# Creating deployments -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContainerOptions:
    """What the Deployment Assistant asks besides targets and packages."""

    name: str
    description: str = ""
    start: datetime | None = None
    end: datetime | None = None
    wol: bool = False
    shutdown_waked: bool = False
    priority: int = 0
    restart_timeout: int = 20
    sequence_mode: SequenceMode = SequenceMode.IGNORE_FAILED
    agent_ip_ranges: str = ""
    notes: str = ""


@dataclass(frozen=True, slots=True)
class DeploymentRequest:
    options: ContainerOptions
    targets: Targets
    force: bool = False


def validated_settings(options: ContainerOptions, now: datetime) -> ContainerSettings:
    """The container settings after the domain's checks; no start means now."""
    return validate_container(
        ContainerSettings(
            name=options.name,
            start=options.start or now,
            end=options.end,
            priority=options.priority,
            restart_timeout=options.restart_timeout,
            sequence_mode=options.sequence_mode,
            agent_ip_ranges=options.agent_ip_ranges,
        )
    )


def preview(session: Session, settings: Settings, request: DeploymentRequest, now: datetime) -> Plan:
    """The jobs a deployment would create, per computer, with the reasons for skips — nothing written."""
    validated_settings(request.options, now)
    resolved = resolve_targets(session, request.targets)
    return _plan(resolved, settings, request, now)


def _plan(resolved: ResolvedTargets, settings: Settings, request: DeploymentRequest, now: datetime) -> Plan:
    return plan_deployment(
        [target_computer(c, now, settings.computer_offline_seconds) for c in resolved.computers],
        [package_to_deploy(p) for p in resolved.packages],
        force=request.force,
        wol=request.options.wol,
        shutdown_waked=request.options.wol and request.options.shutdown_waked,
    )


def create_deployment(
    session: Session, settings: Settings, request: DeploymentRequest, actor: str, now: datetime
) -> JobContainer:
    """Create a job container with the planned jobs; returns it (its id is set)."""
    container_settings = validated_settings(request.options, now)
    resolved = resolve_targets(session, request.targets)
    plan = _plan(resolved, settings, request, now)
    container = _insert_container(session, request.options, container_settings, actor, now)
    _insert_jobs(session, container.id, plan, now)
    _start_wol(session, settings, container, plan, now)
    audit.record(
        session,
        actor,
        "deployment.create",
        "job_container",
        container.id,
        name=container.name,
        computers=len(resolved.computers),
        packages=[p.id for p in resolved.packages],
        jobs=len(plan.jobs),
    )
    return container


def _insert_container(
    session: Session, options: ContainerOptions, validated: ContainerSettings, actor: str, now: datetime
) -> JobContainer:
    container = JobContainer(
        name=validated.name,
        description=options.description,
        notes=options.notes,
        author=actor,
        created=now,
        enabled=True,
        start_time=validated.start,
        end_time=validated.end,
        wol=options.wol,
        shutdown_waked=options.wol and options.shutdown_waked,
        priority=validated.priority,
        restart_timeout=validated.restart_timeout,
        sequence_mode=int(validated.sequence_mode),
        agent_ip_ranges=validated.agent_ip_ranges,
    )
    session.add(container)
    session.flush()
    return container


def _insert_jobs(session: Session, container_id: int, plan: Plan, now: datetime) -> None:
    rows = [
        {
            "container_id": container_id,
            "computer_id": job.computer_id,
            "package_id": job.package_id,
            "package_name": job.package_name,
            "action": str(job.action),
            "sequence": job.sequence,
            "state": int(job.state),
            "message": job.reason if job.state is not JobState.WAITING else "",
            "procedure": job.procedure,
            "success_codes": job.success_codes,
            "post_action": int(job.post_action),
            "wol_shutdown": job.wol_shutdown,
            "created": now,
            "execution_finished": None if job.state is JobState.WAITING else now,
        }
        for job in plan.jobs
    ]
    if rows:  # Core executemany: tens of thousands of rows need no ORM bookkeeping
        session.connection().execute(insert(Job.__table__), rows)


def _start_wol(
    session: Session, settings: Settings, container: JobContainer, plan: Plan, now: datetime
) -> None:
    """Remember every target for WOL; at the start (now, or later from housekeeping) the offline ones
    are woken and marked for shutdown, the online ones left alone."""
    if not container.wol:
        return
    rows = [
        {"container_id": container.id, "computer_id": c.computer_id, "sent": None} for c in plan.computers
    ]
    if rows:
        session.execute(insert(WolTarget), rows)
    if container.enabled and container.start_time <= now:
        wol.send_container_packets(session, settings, container, now)


@dataclass(frozen=True, slots=True)
class UninstallRequest:
    options: ContainerOptions
    assignment_ids: Sequence[int]


def create_uninstall(
    session: Session, settings: Settings, request: UninstallRequest, actor: str, now: datetime
) -> JobContainer:
    """Uninstall jobs for selected assignments ("Uninstall Package" on a computer or package page)."""
    if not request.assignment_ids:
        raise InvalidInput("choose at least one installed package", field="assignments")
    container_settings = validated_settings(request.options, now)
    assignments = _load(
        session,
        ComputerPackage,
        _unique(request.assignment_ids),
        [selectinload(ComputerPackage.package).selectinload(Package.family)],
        "assignment",
    )
    selected: dict[int, list[int]] = {}
    for assignment in assignments:
        if not assignment.package.uninstall_procedure.strip():
            raise InvalidInput(
                f"{assignment.package.display_name} has no uninstall procedure; "
                "remove the assignment instead",
                field="assignments",
            )
        selected.setdefault(assignment.computer_id, []).append(assignment.package_id)
    computers = resolve_targets(
        session, Targets(computer_ids=list(selected), package_ids=[assignments[0].package_id])
    ).computers
    plan = plan_uninstall(
        [target_computer(c, now, settings.computer_offline_seconds) for c in computers], selected
    )
    container = _insert_container(session, request.options, container_settings, actor, now)
    _insert_jobs(session, container.id, plan, now)
    _start_wol(session, settings, container, plan, now)
    audit.record(
        session,
        actor,
        "uninstall.create",
        "job_container",
        container.id,
        assignments=list(request.assignment_ids),
    )
    return container


def default_uninstall_name(session: Session, assignment_ids: Sequence[int]) -> str:
    names = sorted(
        set(
            session.scalars(
                select(PackageFamily.name)
                .join(Package, Package.family_id == PackageFamily.id)
                .join(ComputerPackage, ComputerPackage.package_id == Package.id)
                .where(ComputerPackage.id.in_(list(assignment_ids)))
            )
        )
    )
    return "Uninstall " + ", ".join(names) if names else "Uninstall"


# Containers ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContainerSummary:
    container: JobContainer
    status: ContainerStatus
    progress: int
    counts: dict[JobState, int]
    last_finished: datetime | None


def summarise(
    container: JobContainer, counts: Mapping[JobState, int], last_finished: datetime | None, now: datetime
) -> ContainerSummary:
    """A container's status and progress from how many of its jobs are in each state."""
    return ContainerSummary(
        container=container,
        status=container_status(counts, container.start_time, now),
        progress=progress(counts),
        counts={state: count for state, count in counts.items() if count},
        last_finished=last_finished,
    )


def list_containers(session: Session, now: datetime) -> list[ContainerSummary]:
    """Every job container with its status and progress, newest first (one query counts all the jobs)."""
    containers = list(session.scalars(select(JobContainer).order_by(JobContainer.id.desc())))
    counts: dict[int, Counter[JobState]] = {c.id: Counter() for c in containers}
    finished: dict[int, datetime | None] = {}
    query = select(Job.container_id, Job.state, func.count(), func.max(Job.execution_finished)).group_by(
        Job.container_id, Job.state
    )
    for container_id, state, count, last in session.execute(query):
        counts.setdefault(container_id, Counter())[JobState(state)] += count
        if last is not None:
            current = finished.get(container_id)
            finished[container_id] = last if current is None or last > current else current
    return [summarise(c, counts[c.id], finished.get(c.id), now) for c in containers]


def get_container(session: Session, container_id: int) -> JobContainer:
    container = session.get(
        JobContainer,
        container_id,
        options=[selectinload(JobContainer.jobs).selectinload(Job.computer)],
    )
    if container is None:
        raise NotFound(f"job container {container_id} does not exist")
    return container


def container_summary(session: Session, container_id: int, now: datetime) -> ContainerSummary:
    container = get_container(session, container_id)
    finished = [job.execution_finished for job in container.jobs if job.execution_finished is not None]
    counts = Counter(JobState(job.state) for job in container.jobs)
    return summarise(container, counts, max(finished, default=None), now)


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


def edit_container(session: Session, container_id: int, edit: ContainerEdit, actor: str) -> JobContainer:
    """Change a container's settings, validated together as at creation."""
    container = get_container(session, container_id)
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
        )
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
    audit.record(session, actor, "container.edit", "job_container", container.id, name=container.name)
    return container


def _pick(new: _T | None, current: _T) -> _T:
    return current if new is None else new


RENEWABLE_STATES = (JobState.FAILED, JobState.EXPIRED)


def renew_failed(
    session: Session, container_id: int, actor: str, now: datetime, *, into_new_container: bool = False
) -> JobContainer:
    """Run failed and expired jobs again: in place, or moved into a new container starting now.

    Returns the container that now holds the renewed jobs.
    """
    container = get_container(session, container_id)
    failed = [job for job in container.jobs if JobState(job.state) in RENEWABLE_STATES]
    if not failed:
        raise InvalidInput(f"job container {container.name!r} has no failed jobs to renew")
    orphaned = [job for job in failed if job.package_id is None]
    if orphaned:
        raise InvalidInput(f"the package of job {orphaned[0].id} ({orphaned[0].package_name}) was deleted")
    target = container
    if into_new_container:
        target = _copy_container(session, container, actor, now)
    elif container.end_time is not None and container.end_time <= now:
        raise InvalidInput(
            f"job container {container.name!r} ended at {container.end_time.isoformat()}; "
            "move its end or renew into a new container",
            field="end",
        )
    for job in failed:
        _reset(job, now)
        job.container_id = target.id
    session.flush()
    audit.record(
        session, actor, "container.renew", "job_container", container.id, into=target.id, jobs=len(failed)
    )
    return target


def _copy_container(session: Session, source: JobContainer, actor: str, now: datetime) -> JobContainer:
    copy = JobContainer(
        name=f"{source.name} (renewed)"[:255],
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
    job.last_update = now


def delete_container(session: Session, container_id: int, actor: str) -> None:
    """Delete a job container with all its jobs."""
    container = session.get(JobContainer, container_id)
    if container is None:
        raise NotFound(f"job container {container_id} does not exist")
    session.execute(delete(Job).where(Job.container_id == container_id))
    session.delete(container)
    audit.record(session, actor, "container.delete", "job_container", container_id, name=container.name)


def delete_job(session: Session, job_id: int, actor: str) -> None:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    session.delete(job)
    audit.record(session, actor, "job.delete", "job", job_id, container=job.container_id)
