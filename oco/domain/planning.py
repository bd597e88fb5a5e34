"""Deployment planning: which jobs a deployment creates on each computer, in which order, and why.

The same planner serves the preview (dry run) and the real creation, so what an admin previews is
what gets created.

Compatibility rule. A package's compatible OS, OS version and architecture are each a list of accepted
values separated by commas or new lines (OCO uses new lines); an empty list accepts every computer.
Matching ignores case and surrounding blanks. An entry accepts a computer value equal to it, or starting
with it at a word boundary: "Windows" accepts "Windows 11 Pro", "10.0" accepts "10.0.22631", "12" accepts
"12.4" but not "120". Architectures know their aliases (amd64 = x64 = x86_64, aarch64 = arm64). A computer
that has not reported a value yet is accepted, as OCO does: the job then runs and reports for itself.

Wake-on-LAN shutdown. The package's post-action is kept on the job; a woken computer's last runnable job
is only flagged `wol_shutdown`, and `effective_post_action` turns that into a shutdown. Removing the flag
(when the computer did not wake in time) thus restores the package's own post-action.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

from oco.domain.errors import InvalidDeployment
from oco.domain.ipranges import IpRangeRule, admits
from oco.domain.states import JobAction, JobState, PostAction, UpgradeBehavior

ALREADY_INSTALLED_REASON = "already installed"
REINSTALL_REASON = "reinstall (forced)"
SKIP_WORDS: Mapping[JobState, str] = {JobState.OS_INCOMPATIBLE: "incompatible"}
"""How the plan's sentence names a skip where the state's label reads badly in lower case."""
ARCHITECTURE_ALIASES: Mapping[str, str] = {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64"}
_ENTRY_SEPARATORS = re.compile(r"[,\n]")
_WORD_CHARACTER = re.compile(r"\w")


@dataclass(frozen=True, slots=True)
class InstalledPackage:
    """An assignment of a target computer, with what is needed to uninstall it.

    `name` is what people read ("Firefox 1.0"): family name and version.
    """

    package_id: int
    family_id: int
    name: str
    uninstall_procedure: str
    uninstall_success_codes: str
    uninstall_post_action: PostAction


@dataclass(frozen=True, slots=True)
class TargetComputer:
    """A computer a deployment aims at, with its inventory, its assignments and whether it is online."""

    id: int
    hostname: str
    os: str = ""
    os_version: str = ""
    architecture: str = ""
    online: bool = True
    installed: tuple[InstalledPackage, ...] = ()
    seen: bool = True
    """Whether it ever checked in (a pre-created computer has not)."""
    mac_known: bool = True
    """Whether its inventory names a MAC address, without which it cannot be woken."""
    address: str = ""
    """The address it last checked in from ("" when unknown)."""


@dataclass(frozen=True, slots=True)
class PackageToDeploy:
    """A package version to install, with its install settings and compatibility lists ("" = any)."""

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
    """One job to create; `state` is WAITING, or a final skip state with `reason` saying why.

    `reason` also explains some waiting jobs ("uninstall of Firefox 1.0 first", "reinstall (forced)").
    `post_action` is the package's; `wol_shutdown` marks a woken computer's last job (see module doc).
    """

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
    """The jobs of one computer in sequence order; `wake` when it gets magic packets at the start;
    `cannot_wake` why an offline computer would not be woken although WOL is on; `held_back` why its
    jobs would wait although it is online (its last address is outside the agent IP ranges)."""

    computer_id: int
    hostname: str
    jobs: tuple[PlannedJob, ...]
    wake: bool = False
    notes: tuple[str, ...] = ()
    cannot_wake: str = ""
    held_back: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    """What a deployment creates: one ComputerPlan per target computer, in the targets' order."""

    computers: tuple[ComputerPlan, ...] = field(default_factory=tuple)

    @property
    def jobs(self) -> list[PlannedJob]:
        """Every planned job, computer by computer, each computer's in sequence order."""
        return [job for computer in self.computers for job in computer.jobs]

    @property
    def woken(self) -> list[ComputerPlan]:
        """Computers that would get magic packets (offline when WOL is on)."""
        return [computer for computer in self.computers if computer.wake]

    @property
    def cannot_wake(self) -> list[ComputerPlan]:
        """Offline computers WOL would not reach (no MAC address known)."""
        return [computer for computer in self.computers if computer.cannot_wake]

    @property
    def held_back(self) -> list[ComputerPlan]:
        """Computers whose last known address the agent IP ranges do not admit."""
        return [computer for computer in self.computers if computer.held_back]

    def sentence(self) -> str:
        """The plan in one sentence: jobs, computers, what is skipped and why, who is woken or held back."""
        skipped = self.skipped()
        runnable, computers = len(self.jobs) - len(skipped), len(self.computers)
        text = f"{_count(runnable, 'job')} to run on {_count(computers, 'computer')}"
        if skipped:
            why = Counter(job.state for job in skipped)
            kinds = ", ".join(
                f"{count:,} {SKIP_WORDS.get(state, state.label.lower())}"
                for state, count in sorted(why.items(), reverse=True)
            )
            text += f", {_count(len(skipped), 'job')} skipped ({kinds})"
        if self.woken:
            text += f"; {_count(len(self.woken), 'offline computer')} will be woken"
        if self.cannot_wake:
            unreachable = _count(len(self.cannot_wake), "offline computer")
            text += f"; {unreachable} cannot be woken (no MAC address known)"
        if self.held_back:
            held = _count(len(self.held_back), "computer")
            text += f"; {held} will wait: last seen from outside the agent IP ranges"
        return text + "."

    def counts(self) -> dict[JobState, int]:
        """How many jobs end up in each state (states without jobs are left out)."""
        return dict(Counter(job.state for job in self.jobs))

    def skipped(self) -> list[PlannedJob]:
        """Jobs created in a final state at once (incompatible, already installed), with their reason."""
        return [job for job in self.jobs if job.state is not JobState.WAITING]


# Compatibility ------------------------------------------------------------------------------------


def _canonical(text: str) -> str:
    return " ".join(text.lower().split())


def _canonical_architecture(text: str) -> str:
    canonical = _canonical(text)
    return ARCHITECTURE_ALIASES.get(canonical, canonical)


@lru_cache(maxsize=1024)
def _entries(requirement: str, architecture: bool) -> tuple[str, ...]:
    canonical = _canonical_architecture if architecture else _canonical
    return tuple(canonical(entry) for entry in _ENTRY_SEPARATORS.split(requirement) if entry.strip())


def _entry_accepts(entry: str, value: str) -> bool:
    if not value.startswith(entry):
        return False
    if len(value) == len(entry):
        return True
    return not (_WORD_CHARACTER.match(entry[-1]) and _WORD_CHARACTER.match(value[len(entry)]))


def accepts(requirement: str, value: str, *, architecture: bool = False) -> bool:
    """Whether a compatibility list accepts a computer's value, by the rule in the module docstring.

    With `architecture`, aliases such as amd64/x86_64 count as the same value.
    """
    entries = _entries(requirement, architecture)
    actual = _canonical_architecture(value) if architecture else _canonical(value)
    if not entries or not actual:
        return True
    return any(_entry_accepts(entry, actual) for entry in entries)


def incompatibility(package: PackageToDeploy, computer: TargetComputer) -> str | None:
    """Why the package cannot run on the computer ("incompatible: needs OS 'Windows', computer has
    'Debian'"), or None when it can."""
    checks = (
        ("OS", package.compatible_os, computer.os, False),
        ("OS version", package.compatible_os_version, computer.os_version, False),
        ("architecture", package.compatible_architecture, computer.architecture, True),
    )
    for label, requirement, actual, architecture in checks:
        if not accepts(requirement, actual, architecture=architecture):
            return f"incompatible: needs {label} {requirement.strip()!r}, computer has {actual.strip()!r}"
    return None


# Planning -----------------------------------------------------------------------------------------


def plan_deployment(
    computers: Sequence[TargetComputer],
    packages: Sequence[PackageToDeploy],
    *,
    force: bool = False,
    wol: bool = False,
    shutdown_waked: bool = False,
    auto_uninstall: bool = True,
    ip_ranges: Sequence[IpRangeRule] = (),
) -> Plan:
    """Plan install jobs of `packages` (in order, a repeated package once) on each computer.

    Incompatible packages get state -3, already installed ones -5 unless `force`. With upgrade behavior
    "explicit uninstall" and `auto_uninstall` ("Automatically create uninstall jobs", on unless the
    admin turns it off for this deployment), uninstall jobs for the family's other installed versions
    come before the install.
    With `wol`, offline computers are woken; with `shutdown_waked` too, their last job shuts them down.
    A computer last seen from an address `ip_ranges` do not admit is marked held back.
    """
    distinct: dict[int, PackageToDeploy] = {}
    for package in packages:
        distinct.setdefault(package.id, package)
    fits = _Compatibility()
    plans = []
    for computer in computers:
        jobs, notes = _install_jobs(computer, list(distinct.values()), force, fits, auto_uninstall)
        plans.append(
            _computer_plan(computer, jobs, notes, wol=wol, shutdown_waked=shutdown_waked, ip_ranges=ip_ranges)
        )
    return Plan(tuple(plans))


class _Compatibility:
    """`incompatibility`, worked out once per package and inventory (a fleet has few distinct ones)."""

    def __init__(self) -> None:
        self._known: dict[tuple[int, str, str, str], str | None] = {}

    def __call__(self, package: PackageToDeploy, computer: TargetComputer) -> str | None:
        key = (package.id, computer.os, computer.os_version, computer.architecture)
        if key not in self._known:
            self._known[key] = incompatibility(package, computer)
        return self._known[key]


def _install_jobs(
    computer: TargetComputer,
    packages: Sequence[PackageToDeploy],
    force: bool,
    fits: _Compatibility,
    auto_uninstall: bool,
) -> tuple[list[PlannedJob], list[str]]:
    """A computer's jobs, numbered from 1 in the order they are added."""
    jobs: list[PlannedJob] = []
    notes: list[str] = []
    installed_ids = {assignment.package_id for assignment in computer.installed}
    uninstalling: set[int] = set()
    for package in packages:
        reason = fits(package, computer)
        if reason is not None:
            jobs.append(_install_job(computer.id, package, len(jobs) + 1, JobState.OS_INCOMPATIBLE, reason))
            continue
        if package.id in installed_ids and not force:
            skipped = JobState.ALREADY_INSTALLED
            jobs.append(_install_job(computer.id, package, len(jobs) + 1, skipped, ALREADY_INSTALLED_REASON))
            continue
        if auto_uninstall and package.upgrade_behavior is UpgradeBehavior.EXPLICIT_UNINSTALL:
            others = list(_other_versions(computer, package, uninstalling))
            uninstalling.update(other.package_id for other in others)
            jobs.extend(_uninstall_first(computer.id, others, notes, len(jobs) + 1))
        again = REINSTALL_REASON if package.id in installed_ids else ""
        jobs.append(_install_job(computer.id, package, len(jobs) + 1, JobState.WAITING, again))
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


def _uninstall_first(
    computer_id: int, others: Iterable[InstalledPackage], notes: list[str], sequence: int
) -> list[PlannedJob]:
    jobs: list[PlannedJob] = []
    for other in others:
        if other.uninstall_procedure.strip():
            reason = f"uninstall of {other.name} first"
            jobs.append(_uninstall_job(computer_id, other, sequence + len(jobs), reason))
        else:
            notes.append(f"{other.name} has no uninstall procedure and stays installed")
    return jobs


def _install_job(
    computer_id: int, package: PackageToDeploy, sequence: int, state: JobState, reason: str
) -> PlannedJob:
    return PlannedJob(
        computer_id=computer_id,
        package_id=package.id,
        package_name=package.name,
        action=JobAction.INSTALL,
        sequence=sequence,
        state=state,
        procedure=package.install_procedure,
        success_codes=package.install_success_codes,
        post_action=package.install_post_action,
        reason=reason,
    )


def _uninstall_job(
    computer_id: int, installed: InstalledPackage, sequence: int, reason: str = ""
) -> PlannedJob:
    return PlannedJob(
        computer_id=computer_id,
        package_id=installed.package_id,
        package_name=installed.name,
        action=JobAction.UNINSTALL,
        sequence=sequence,
        state=JobState.WAITING,
        procedure=installed.uninstall_procedure,
        success_codes=installed.uninstall_success_codes,
        post_action=installed.uninstall_post_action,
        reason=reason,
    )


def _computer_plan(
    computer: TargetComputer,
    jobs: Sequence[PlannedJob],
    notes: Sequence[str] = (),
    *,
    wol: bool,
    shutdown_waked: bool,
    ip_ranges: Sequence[IpRangeRule] = (),
) -> ComputerPlan:
    """Apply the WOL rule to a computer's numbered jobs: only offline computers whose MAC address is known
    are woken and shut down; and say whether the IP ranges hold it back."""
    wanted = wol and not computer.online
    wake = wanted and computer.mac_known
    cannot_wake = ""
    if wanted and not wake:
        cannot_wake = "cannot be woken: no MAC address known" + (
            "" if computer.seen else " (never checked in)"
        )
    held_back = ""
    if ip_ranges and computer.address and not admits(ip_ranges, computer.address):
        held_back = f"will wait: last seen from {computer.address}, outside the agent IP ranges"
    if wake and shutdown_waked:
        jobs = mark_wol_shutdown(jobs)
    return ComputerPlan(
        computer.id, computer.hostname, tuple(jobs), wake, tuple(notes), cannot_wake, held_back
    )


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def wol_shutdown_carrier(states: Sequence[JobState]) -> int | None:
    """Which of one computer's jobs (in sequence order, by state) carries the WOL shutdown: the last
    waiting one. Jobs in a final state never run, so they cannot carry it; with none waiting, none does."""
    waiting = [index for index, state in enumerate(states) if state is JobState.WAITING]
    return waiting[-1] if waiting else None


def mark_wol_shutdown(jobs: Sequence[PlannedJob]) -> list[PlannedJob]:
    """Flag the job that carries the WOL shutdown (see `wol_shutdown_carrier`), and no other."""
    carrier = wol_shutdown_carrier([job.state for job in jobs])
    return [replace(job, wol_shutdown=index == carrier) for index, job in enumerate(jobs)]


def plan_uninstall(
    computers: Sequence[TargetComputer],
    package_ids: Mapping[int, Sequence[int]],
    *,
    wol: bool = False,
    shutdown_waked: bool = False,
    ip_ranges: Sequence[IpRangeRule] = (),
) -> Plan:
    """Uninstall jobs for selected assignments: `package_ids` maps a computer id to its packages to remove,
    in the order to remove them (a repeated id once).

    Raises InvalidDeployment (field "assignments") when a package is not installed on that computer or
    has no uninstall procedure. WOL works as in `plan_deployment`.
    """
    plans = []
    for computer in computers:
        jobs = _selected_uninstalls(computer, package_ids.get(computer.id, ()))
        plans.append(
            _computer_plan(computer, jobs, wol=wol, shutdown_waked=shutdown_waked, ip_ranges=ip_ranges)
        )
    return Plan(tuple(plans))


def _selected_uninstalls(computer: TargetComputer, package_ids: Iterable[int]) -> list[PlannedJob]:
    by_id = {installed.package_id: installed for installed in computer.installed}
    jobs: list[PlannedJob] = []
    for package_id in dict.fromkeys(package_ids):
        installed = by_id.get(package_id)
        if installed is None:
            raise InvalidDeployment(
                f"package {package_id} is not installed on {computer.hostname!r}", field="assignments"
            )
        if not installed.uninstall_procedure.strip():
            raise InvalidDeployment(
                f"{installed.name} has no uninstall procedure; remove the assignment instead",
                field="assignments",
            )
        jobs.append(_uninstall_job(computer.id, installed, len(jobs) + 1))
    return jobs


def effective_post_action(post_action: PostAction, wol_shutdown: bool) -> PostAction:
    """What the agent does after a job: shutdown for a woken computer's last job, else the package's."""
    return PostAction.SHUTDOWN if wol_shutdown else post_action
