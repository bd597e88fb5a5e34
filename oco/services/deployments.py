"""Use cases of deployments: preview and create install jobs, create uninstall jobs.

The same planner (`oco.domain.planning`) serves the preview and the creation, so what an admin previews
is what gets created.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, tzinfo

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, selectinload

from oco.config import Settings
from oco.db.bulk import insert_rows
from oco.db.models import Computer, ComputerPackage, Job, JobContainer, Package, PackageFamily, WolTarget
from oco.domain.containers import DEFAULT_RESTART_TIMEOUT, ContainerSettings, validate_container
from oco.domain.ipranges import parse_ip_ranges
from oco.domain.phases import NO_ROLLOUT, RolloutRules, assign_phases, phase_label, validate_rules
from oco.domain.planning import Plan, PlannedJob, plan_deployment, plan_uninstall
from oco.domain.retries import NO_RETRIES, RetryPolicy, policy_text, validate_policy
from oco.domain.slots import preview_sentence
from oco.domain.states import JobAction, JobState, SequenceMode
from oco.domain.windows import Windows, WindowZone, reported_zone
from oco.errors import InvalidInput, NotFound
from oco.services import audit, rollouts, wol
from oco.services.assignments import InstalledSelection, assignment_ids, selected_assignments
from oco.services.computers import ComputerRef
from oco.services.containers import container_view, summarize
from oco.services.groups import GroupRef, find_computer_group
from oco.services.listing import chunks
from oco.services.runtime import Runtime
from oco.services.targets import (
    ResolvedTargets,
    Targets,
    package_to_deploy,
    resolve_targets,
    target_computers,
)
from oco.services.views import (
    ContainerPublic,
    PlanDownloadsPublic,
    PlanPhasePublic,
    PlanPublic,
    PlanWindowsPublic,
    plan_view,
)


@dataclass(frozen=True, slots=True)
class ContainerOptions:
    """What the Deployment Assistant asks besides targets and packages; no start means now."""

    name: str
    description: str = ""
    start: datetime | None = None
    end: datetime | None = None
    wol: bool = False
    shutdown_waked: bool = False
    priority: int = 0
    restart_timeout: int = DEFAULT_RESTART_TIMEOUT
    sequence_mode: SequenceMode = SequenceMode.IGNORE_FAILED
    agent_ip_ranges: str = ""
    notes: str = ""
    rollout: RolloutRules = NO_ROLLOUT
    """Phases, criterion, soak and halt rule (`oco.domain.phases`); inactive by default."""
    pilot_group: GroupRef | None = None
    """The computer group whose targets form the rollout's first phase."""
    windows: Windows | None = None
    """Maintenance windows: waiting jobs are handed out only while one is open (`oco.domain.windows`)."""
    max_downloads: int | None = None
    """At most this many computers download a payload at once (`oco.domain.slots`); None: any."""
    retry: RetryPolicy = NO_RETRIES
    """Retries of jobs the agent could not run (-9999), `oco.domain.retries`; none by default."""


@dataclass(frozen=True, slots=True)
class _Phasing:
    """Which phase each target computer is in, how many phases there are, the pilot group."""

    rules: RolloutRules
    phases: dict[int, int]
    count: int
    pilot_group: str = ""


@dataclass(frozen=True, slots=True)
class DeploymentRequest:
    """A deployment: the container's options, the targets, whether to reinstall what is installed, and
    whether to uninstall a family's other versions first ("Automatically create uninstall jobs", for the
    packages whose upgrade behavior asks for it)."""

    options: ContainerOptions
    targets: Targets
    force: bool = False
    auto_uninstall: bool = True


@dataclass(frozen=True, slots=True)
class UninstallRequest:
    """Uninstall jobs for selected assignments: by id, or as packages installed on some computers.

    An empty name becomes "Uninstall <families>".
    """

    options: ContainerOptions
    assignment_ids: Sequence[int] = ()
    computers: Sequence[ComputerRef] = ()
    package_ids: Sequence[int] = field(default_factory=tuple)
    """With `computers`: the packages to uninstall from them, each from those of them that have it."""
    installed: InstalledSelection | None = None
    """And the assignments of a package on every computer that matches a filter."""


def preview_deployment(rt: Runtime, request: DeploymentRequest, limit: int | None = None) -> PlanPublic:
    """The jobs a deployment would create, per computer, with the reasons for skips — nothing written.
    With `limit`, only the first `limit` computers are listed; the summary counts all of them."""
    now = rt.now()
    with rt.reading() as session:
        _validated(request.options, now, rt.settings.zone)
        resolved = resolve_targets(session, request.targets, now, rt.settings.computer_offline_seconds)
        plan = _plan(resolved, request)
        phasing = _phasing(session, request.options, plan)
        view = plan_view(plan, limit)
        if phasing is not None:
            view = view.model_copy(update={"phases": _phase_views(plan, phasing, limit)})
        if request.options.windows is not None:
            view = _with_windows(session, view, plan, request.options.windows, rt.settings.time_zone)
        server_limit = rt.settings.max_concurrent_downloads or None
        if request.options.max_downloads or server_limit:
            view = _with_downloads(session, view, plan, request.options.max_downloads, server_limit)
        if request.options.retry.active:
            view = view.model_copy(update={"retries": policy_text(request.options.retry)})
        return view


def create_deployment(rt: Runtime, request: DeploymentRequest, actor: str) -> ContainerPublic:
    """Create a job container with the planned jobs (waking offline computers if asked); answers with
    the new container (its jobs are read a page at a time with `jobs.search_jobs`)."""
    now = rt.now()
    with rt.transaction() as session:
        settings = _validated(request.options, now, rt.settings.zone)
        resolved = resolve_targets(session, request.targets, now, rt.settings.computer_offline_seconds)
        plan = _plan(resolved, request)
        phasing = _phasing(session, request.options, plan)
        container = _insert_container(session, request.options, settings, actor, now)
        _insert_jobs(session, container.id, plan, now, phasing.phases if phasing else None)
        if phasing is not None:
            rollouts.start_rollout(session, container, phasing.rules, phasing.count, phasing.pilot_group, now)
        _start_wol(session, rt.settings, container, plan, now)
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
            auto_uninstall=request.auto_uninstall,
            phases=phasing.count if phasing else None,
        )
        return _created(container, plan, now)


def create_uninstall(rt: Runtime, request: UninstallRequest, actor: str) -> ContainerPublic:
    """Uninstall jobs for selected assignments ("Uninstall Package" on a computer or package page);
    answers with the new container."""
    now = rt.now()
    with rt.transaction() as session:
        offline = rt.settings.computer_offline_seconds
        selected_ids = selected_assignments(session, request.assignment_ids, request.installed, now, offline)
        if request.computers:
            selected_ids += assignment_ids(session, request.computers, request.package_ids)
        if not selected_ids:
            raise InvalidInput("choose at least one installed package", field="assignments")
        options = request.options
        if not options.name.strip():
            options = replace(options, name=_uninstall_name(session, selected_ids))
        settings = _validated(options, now, rt.settings.zone)
        selected = _selected_packages(session, selected_ids)
        plan = plan_uninstall(
            target_computers(session, list(selected), now, offline),
            selected,
            wol=options.wol,
            shutdown_waked=options.wol and options.shutdown_waked,
            ip_ranges=parse_ip_ranges(settings.agent_ip_ranges),
        )
        container = _insert_container(session, options, settings, actor, now)
        _insert_jobs(session, container.id, plan, now)
        _start_wol(session, rt.settings, container, plan, now)
        audit.record(
            session, actor, "uninstall.create", "job_container", container.id, assignments=selected_ids
        )
        return _created(container, plan, now)


# In the caller's transaction ----------------------------------------------------------------------


def _validated(options: ContainerOptions, now: datetime, zone: tzinfo) -> ContainerSettings:
    validate_policy(options.retry)
    return validate_container(
        ContainerSettings(
            name=options.name,
            start=options.start or now,
            end=options.end,
            priority=options.priority,
            restart_timeout=options.restart_timeout,
            sequence_mode=options.sequence_mode,
            agent_ip_ranges=options.agent_ip_ranges,
        ),
        zone,
    )


def _created(container: JobContainer, plan: Plan, now: datetime) -> ContainerPublic:
    """The new container's summary, counted from the plan it was made of."""
    finished = now if plan.skipped() else None
    return container_view(summarize(container, plan.counts(), finished, now))


def _plan(resolved: ResolvedTargets, request: DeploymentRequest) -> Plan:
    return plan_deployment(
        resolved.computers,
        [package_to_deploy(p) for p in resolved.packages],
        force=request.force,
        auto_uninstall=request.auto_uninstall,
        wol=request.options.wol,
        shutdown_waked=request.options.wol and request.options.shutdown_waked,
        ip_ranges=parse_ip_ranges(request.options.agent_ip_ranges),
    )


def _selected_packages(session: Session, assignment_ids: list[int]) -> dict[int, list[int]]:
    """Computer id → the packages of its selected assignments, in the order selected."""
    unique = list(dict.fromkeys(assignment_ids))
    rows = {
        row.id: row
        for chunk in chunks(unique)
        for row in session.scalars(
            select(ComputerPackage)
            .where(ComputerPackage.id.in_(chunk))
            .options(selectinload(ComputerPackage.package).selectinload(Package.family))
        )
    }
    selected: dict[int, list[int]] = {}
    for assignment_id in unique:
        assignment = rows.get(assignment_id)
        if assignment is None:
            raise NotFound(f"assignment {assignment_id} does not exist")
        if not assignment.package.uninstall_procedure.strip():
            raise InvalidInput(
                f"{assignment.package.display_name} has no uninstall procedure; "
                "remove the assignment instead",
                field="assignments",
            )
        selected.setdefault(assignment.computer_id, []).append(assignment.package_id)
    return selected


def _uninstall_name(session: Session, assignment_ids: Sequence[int]) -> str:
    names = sorted(
        {
            name
            for chunk in chunks(list(assignment_ids))
            for name in session.scalars(
                select(PackageFamily.name)
                .join(Package, Package.family_id == PackageFamily.id)
                .join(ComputerPackage, ComputerPackage.package_id == Package.id)
                .where(ComputerPackage.id.in_(chunk))
            )
        }
    )
    return "Uninstall " + ", ".join(names) if names else "Uninstall"


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
        windows=options.windows.text if options.windows is not None else None,
        max_downloads=options.max_downloads or None,
        retries=options.retry.retries,
        retry_delay_seconds=options.retry.delay_seconds,
    )
    session.add(container)
    session.flush()
    return container


def _phasing(session: Session, options: ContainerOptions, plan: Plan) -> _Phasing | None:
    """The phases of a rollout over the plan's computers (None when the deployment is not one)."""
    rules = options.rollout
    pilot_name, pilot_members = "", set[int]()
    if options.pilot_group is not None and str(options.pilot_group).strip():
        group = find_computer_group(session, options.pilot_group)
        pilot_name, pilot_members = group.name, {member.computer_id for member in group.members}
        rules = replace(rules, pilot_group_id=group.id)
    if not rules.active:
        return None
    validate_rules(rules)
    targets = [computer.computer_id for computer in plan.computers]
    if rules.pilot_group_id is not None and not pilot_members & set(targets):
        raise InvalidInput(
            f"no computer of the pilot group {pilot_name!r} is among the targets", field="pilot_group"
        )
    phases = assign_phases(options.name, targets, rules.steps, pilot_members)
    return _Phasing(rules, phases, max(phases.values(), default=0) + 1, pilot_name)


def _phase_views(plan: Plan, phasing: _Phasing, limit: int | None) -> list[PlanPhasePublic]:
    hostnames: dict[int, list[str]] = {number: [] for number in range(phasing.count)}
    for computer in plan.computers:
        hostnames[phasing.phases[computer.computer_id]].append(computer.hostname)
    pilot = phasing.rules.pilot_group_id is not None
    return [
        PlanPhasePublic(
            number=number + 1,
            label=phase_label(number, pilot),
            computers=len(names),
            hostnames=sorted(names)[:limit] if limit is not None else sorted(names),
        )
        for number, names in hostnames.items()
    ]


def _with_windows(
    session: Session, view: PlanPublic, plan: Plan, windows: Windows, server_zone: str
) -> PlanPublic:
    """The preview with its windows, and which computers read them in server time: those whose agent
    reports no (usable) time zone, when the windows are in computer time."""
    ids = [computer.computer_id for computer in plan.computers]
    zones: dict[int, str] = {}
    for chunk in chunks(ids):
        rows = session.execute(select(Computer.id, Computer.time_zone).where(Computer.id.in_(chunk)))
        zones.update({computer_id: zone for computer_id, zone in rows})
    server_time = set()
    if windows.zone is WindowZone.COMPUTER:
        server_time = {
            computer_id for computer_id in ids if reported_zone(zones.get(computer_id, "")) is None
        }
    note = f"its window is read in server time ({server_zone}): its agent reports no time zone"
    computers = [
        computer.model_copy(update={"notes": [*computer.notes, note]})
        if computer.computer_id in server_time
        else computer
        for computer in view.computers
    ]
    summary = PlanWindowsPublic(
        windows=[window.text for window in windows.windows],
        zone=windows.zone,
        server_zone=server_zone,
        server_time_computers=len(server_time),
    )
    return view.model_copy(update={"computers": computers, "windows": summary})


def _with_downloads(
    session: Session, view: PlanPublic, plan: Plan, max_downloads: int | None, server_limit: int | None
) -> PlanPublic:
    """The preview with its download limits: how many computers have a payload to fetch, and how many
    fetch it at once."""
    waiting = [job for job in plan.jobs if job.state is JobState.WAITING]
    packages: dict[int, tuple[bool, bool]] = {}
    for chunk in chunks(sorted({job.package_id for job in waiting})):
        rows = session.execute(
            select(Package.id, Package.payload_sha256, Package.download_for_uninstall).where(
                Package.id.in_(chunk)
            )
        )
        packages.update({row[0]: (row[1] is not None, bool(row[2])) for row in rows})

    def downloads(job: PlannedJob) -> bool:
        payload, for_uninstall = packages.get(job.package_id, (False, False))
        return payload and (job.action is not JobAction.UNINSTALL or for_uninstall)

    downloading = len({job.computer_id for job in waiting if downloads(job)})
    at_once, sentence = preview_sentence(max_downloads, server_limit, downloading)
    summary = PlanDownloadsPublic(
        max_downloads=max_downloads,
        server_limit=server_limit,
        computers_downloading=downloading,
        at_once=at_once,
        sentence=sentence,
    )
    return view.model_copy(update={"downloads": summary})


def _insert_jobs(
    session: Session, container_id: int, plan: Plan, now: datetime, phases: dict[int, int] | None = None
) -> None:
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
            "phase": phases[job.computer_id] if phases is not None else None,
        }
        for job in plan.jobs
    ]
    # Tens of thousands of rows: no ORM bookkeeping, no per-row type machinery.
    insert_rows(session.connection(), Job, rows)


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
