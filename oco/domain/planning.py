"""Deployment planning: which jobs a deployment creates on each computer, in which order, and why.

The same planner serves the preview (dry run) and the real creation, so what an admin previews is
what gets created.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache

from oco.domain.errors import InvalidDeployment
from oco.domain.ipranges import normalize_ip_ranges
from oco.domain.states import JobAction, JobState, PostAction, SequenceMode, UpgradeBehavior

PRIORITY_MIN, PRIORITY_MAX = -100, 100
NAME_MAX = 255


@dataclass(frozen=True, slots=True)
class InstalledPackage:
    """An assignment of a target computer, with what is needed to uninstall it."""

    package_id: int
    family_id: int
    name: str
    uninstall_procedure: str
    uninstall_success_codes: str
    uninstall_post_action: PostAction


@dataclass(frozen=True, slots=True)
class TargetComputer:
    id: int
    hostname: str
    os: str = ""
    os_version: str = ""
    architecture: str = ""
    online: bool = True
    installed: tuple[InstalledPackage, ...] = ()


@dataclass(frozen=True, slots=True)
class PackageToDeploy:
    id: int
    family_id: int
    name: str
    install_procedure: str
    install_success_codes: str = "0"
    install_post_action: PostAction = PostAction.NONE
    upgrade_behavior: UpgradeBehavior = UpgradeBehavior.EXPLICIT_UNINSTALL
    compatible_os: str = ""
    compatible_os_version: str = ""
    compatible_architecture: str = ""


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """One job to create; `state` is WAITING, or a final skip state with `reason` saying why."""

    computer_id: int
    package_id: int
    package_name: str
    action: JobAction
    sequence: int
    state: JobState
    procedure: str
    success_codes: str
    post_action: PostAction
    reason: str = ""
    wol_shutdown: bool = False


@dataclass(frozen=True, slots=True)
class ComputerPlan:
    computer_id: int
    hostname: str
    jobs: tuple[PlannedJob, ...]
    wake: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    computers: tuple[ComputerPlan, ...] = field(default_factory=tuple)

    @property
    def jobs(self) -> list[PlannedJob]:
        return [job for computer in self.computers for job in computer.jobs]

    @property
    def woken(self) -> list[ComputerPlan]:
        """Computers that would get magic packets (offline when WOL is on)."""
        return [computer for computer in self.computers if computer.wake]

    def counts(self) -> dict[JobState, int]:
        """How many jobs end up in each state."""
        return dict(Counter(job.state for job in self.jobs))

    def skipped(self) -> list[PlannedJob]:
        """Jobs created in a final state at once (incompatible, already installed), with their reason."""
        return [job for job in self.jobs if job.state is not JobState.WAITING]


# Compatibility ------------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _entries(requirement: str) -> tuple[str, ...]:
    return tuple(entry.strip().lower() for entry in requirement.split(",") if entry.strip())


def _accepts(requirement: str, value: str) -> bool:
    """An empty requirement accepts anything; otherwise one comma-separated entry must be a
    case-insensitive prefix of the computer's value ("Windows" accepts "Windows 11 Pro", "12" accepts "12.4").
    """
    entries = _entries(requirement)
    if not entries:
        return True
    actual = value.strip().lower()
    return bool(actual) and any(actual.startswith(entry) for entry in entries)


def incompatibility(package: PackageToDeploy, computer: TargetComputer) -> str | None:
    """Why the package cannot run on the computer, or None when it can."""
    checks = (
        ("OS", package.compatible_os, computer.os),
        ("OS version", package.compatible_os_version, computer.os_version),
        ("architecture", package.compatible_architecture, computer.architecture),
    )
    for label, requirement, actual in checks:
        if not _accepts(requirement, actual):
            has = repr(actual) if actual else "not reported yet"
            return f"incompatible: needs {label} {requirement!r}, computer has {has}"
    return None


# Planning -----------------------------------------------------------------------------------------


def plan_deployment(
    computers: Sequence[TargetComputer],
    packages: Sequence[PackageToDeploy],
    *,
    force: bool = False,
    wol: bool = False,
    shutdown_waked: bool = False,
) -> Plan:
    """Plan install jobs of `packages` (in order) on each computer.

    Incompatible packages get state -3, already installed ones -5 unless `force`. With upgrade behaviour
    "explicit uninstall", uninstall jobs for the family's other installed versions come before the install.
    With `wol`, offline computers are woken; with `shutdown_waked` too, their last job shuts them down.
    """
    plans = []
    for computer in computers:
        jobs, notes = _install_jobs(computer, packages, force)
        wake = wol and not computer.online
        if wake and shutdown_waked:
            jobs = _with_wol_shutdown(jobs)
        plans.append(ComputerPlan(computer.id, computer.hostname, tuple(jobs), wake, tuple(notes)))
    return Plan(tuple(plans))


def _install_jobs(
    computer: TargetComputer, packages: Sequence[PackageToDeploy], force: bool
) -> tuple[list[PlannedJob], list[str]]:
    jobs: list[PlannedJob] = []
    notes: list[str] = []
    installed_ids = {assignment.package_id for assignment in computer.installed}
    uninstalling: set[int] = set()

    def add(**fields: object) -> None:
        jobs.append(PlannedJob(computer_id=computer.id, sequence=len(jobs) + 1, **fields))  # type: ignore[arg-type]

    for package in packages:
        install = {
            "package_id": package.id,
            "package_name": package.name,
            "action": JobAction.INSTALL,
            "procedure": package.install_procedure,
            "success_codes": package.install_success_codes,
            "post_action": package.install_post_action,
        }
        reason = incompatibility(package, computer)
        if reason is not None:
            add(**install, state=JobState.OS_INCOMPATIBLE, reason=reason)
            continue
        if package.id in installed_ids and not force:
            add(**install, state=JobState.ALREADY_INSTALLED, reason="already installed")
            continue
        if package.upgrade_behavior is UpgradeBehavior.EXPLICIT_UNINSTALL:
            for other in _other_versions(computer, package, uninstalling):
                uninstalling.add(other.package_id)
                if not other.uninstall_procedure.strip():
                    notes.append(f"{other.name} has no uninstall procedure and stays installed")
                    continue
                add(
                    **_uninstall_fields(other),
                    state=JobState.WAITING,
                    reason=f"uninstall of {other.name} first",
                )
        add(
            **install,
            state=JobState.WAITING,
            reason="reinstall (forced)" if package.id in installed_ids else "",
        )
    return jobs, notes


def _other_versions(
    computer: TargetComputer, package: PackageToDeploy, already: set[int]
) -> Iterable[InstalledPackage]:
    for assignment in computer.installed:
        if (
            assignment.family_id == package.family_id
            and assignment.package_id != package.id
            and assignment.package_id not in already
        ):
            yield assignment


def _uninstall_fields(installed: InstalledPackage) -> dict[str, object]:
    return {
        "package_id": installed.package_id,
        "package_name": installed.name,
        "action": JobAction.UNINSTALL,
        "procedure": installed.uninstall_procedure,
        "success_codes": installed.uninstall_success_codes,
        "post_action": installed.uninstall_post_action,
    }


def _with_wol_shutdown(jobs: list[PlannedJob]) -> list[PlannedJob]:
    """Mark the computer's last runnable job: after it, a woken computer shuts down."""
    runnable = [index for index, job in enumerate(jobs) if job.state is JobState.WAITING]
    if not runnable:
        return jobs
    last = runnable[-1]
    return [*jobs[:last], replace(jobs[last], wol_shutdown=True), *jobs[last + 1 :]]


def plan_uninstall(computers: Sequence[TargetComputer], package_ids: dict[int, Sequence[int]]) -> Plan:
    """Uninstall jobs for selected assignments: `package_ids` maps a computer id to its packages to remove."""
    plans = []
    for computer in computers:
        selected = package_ids.get(computer.id, ())
        by_id = {installed.package_id: installed for installed in computer.installed}
        jobs = [
            PlannedJob(
                computer_id=computer.id,
                sequence=sequence,
                state=JobState.WAITING,
                **_uninstall_fields(by_id[package_id]),  # type: ignore[arg-type]
            )
            for sequence, package_id in enumerate(selected, start=1)
        ]
        plans.append(ComputerPlan(computer.id, computer.hostname, tuple(jobs)))
    return Plan(tuple(plans))


def effective_post_action(post_action: PostAction, wol_shutdown: bool) -> PostAction:
    """What the agent does after a job: shutdown for a woken computer's last job, else the package's."""
    return PostAction.SHUTDOWN if wol_shutdown else post_action


# Container settings -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContainerSettings:
    """The editable settings of a job container, validated together."""

    name: str
    start: datetime
    end: datetime | None = None
    priority: int = 0
    restart_timeout: int = 20
    sequence_mode: SequenceMode = SequenceMode.IGNORE_FAILED
    agent_ip_ranges: str = ""


def validate_container(settings: ContainerSettings) -> ContainerSettings:
    """Check the settings; returns them with name trimmed and IP ranges normalised.

    Raises InvalidDeployment (with `field`) naming the bad value.
    """
    name = settings.name.strip()
    if not name:
        raise InvalidDeployment("name must not be empty", field="name")
    if len(name) > NAME_MAX:
        raise InvalidDeployment(f"name must have at most {NAME_MAX} characters", field="name")
    if not PRIORITY_MIN <= settings.priority <= PRIORITY_MAX:
        raise InvalidDeployment(
            f"priority {settings.priority} must be between {PRIORITY_MIN} and {PRIORITY_MAX}",
            field="priority",
        )
    if settings.end is not None and settings.end <= settings.start:
        raise InvalidDeployment(
            f"end {settings.end.isoformat()} must be after start {settings.start.isoformat()}", field="end"
        )
    return ContainerSettings(
        name=name,
        start=settings.start,
        end=settings.end,
        priority=settings.priority,
        restart_timeout=settings.restart_timeout,
        sequence_mode=SequenceMode(settings.sequence_mode),
        agent_ip_ranges=normalize_ip_ranges(settings.agent_ip_ranges),
    )
