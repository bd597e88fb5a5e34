"""Read models: what the use cases answer with, shared by the admin API, the console and `--json`.

Each `*Public` model is built from stored rows inside the use case's unit of work, so an entry point never
holds an ORM object. The admin API declares them as its response models (its OpenAPI document describes
responses); the CLI prints `model_dump(mode="json")`; the console renders their attributes. Enumerations
travel as their `text` (`oco.domain.states`), times as timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from oco.db.models import (
    ApiToken,
    Computer,
    ComputerGroup,
    ComputerPackage,
    ComputerSoftware,
    Job,
    Package,
    PackageFamily,
    PackageGroup,
    User,
)
from oco.domain.dispatch import Hold
from oco.domain.meanings import PostActionFate
from oco.domain.planning import Plan, effective_post_action
from oco.domain.presence import Presence, is_online, presence
from oco.domain.roles import Permission, Role, allowed
from oco.domain.signing import SignatureStatus, signature_status
from oco.domain.states import (
    ContainerStatus,
    JobAction,
    JobState,
    PostAction,
    SequenceMode,
    UpgradeBehavior,
    Vocabulary,
)
from oco.domain.windows import WindowZone
from oco.domain.wol import WakeOutcome
from oco.errors import OcoError
from oco.services.signing import signed_fields


@dataclass(frozen=True, slots=True)
class AsText:
    """Marks a model field of a `Vocabulary` enumeration as written by its `text`.

    `Annotated[PostAction, AsText(PostAction)]`: validation takes a member or its text (any other spelling
    is a validation error naming the choices), serialization writes the text, the JSON schema lists the
    texts.
    """

    enumeration: type[Vocabulary]

    def __get_pydantic_core_schema__(self, source: type[Any], handler: GetCoreSchemaHandler) -> CoreSchema:
        """Validate members and texts; serialize to the text."""
        enumeration = self.enumeration

        def parse(value: Any) -> Any:
            if isinstance(value, enumeration):
                return value
            if not isinstance(value, str):
                raise ValueError(f"must be one of {', '.join(enumeration.texts())}")
            try:
                return enumeration.from_text(value)
            except OcoError as exc:
                raise ValueError(exc.message) from None

        return core_schema.no_info_plain_validator_function(
            parse,
            serialization=core_schema.plain_serializer_function_ser_schema(
                _text, return_schema=core_schema.str_schema()
            ),
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """A string that is one of the texts."""
        return {"type": "string", "enum": list(self.enumeration.texts())}


def _text(member: Vocabulary) -> str:
    return member.text


PostActionText = Annotated[PostAction, AsText(PostAction)]
SequenceModeText = Annotated[SequenceMode, AsText(SequenceMode)]
WindowZoneText = Annotated[WindowZone, AsText(WindowZone)]
UpgradeBehaviorText = Annotated[UpgradeBehavior, AsText(UpgradeBehavior)]
SignatureStatusText = Annotated[SignatureStatus, AsText(SignatureStatus)]
JobStateText = Annotated[JobState, AsText(JobState)]
ContainerStatusText = Annotated[ContainerStatus, AsText(ContainerStatus)]
HoldText = Annotated[Hold, AsText(Hold)]
PresenceText = Annotated[Presence, AsText(Presence)]
PostActionFateText = Annotated[PostActionFate, AsText(PostActionFate)]
WakeOutcomeText = Annotated[WakeOutcome, AsText(WakeOutcome)]
RoleText = Annotated[Role, AsText(Role)]
PermissionText = Annotated[Permission, AsText(Permission)]


T = TypeVar("T")
MAX_ID = 2**31 - 1
"""The greatest id of any stored row (ids are 32-bit integers on every database)."""


class View(BaseModel):
    """A read model: immutable, and no field beyond those declared."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class PagePublic(View, Generic[T]):
    """One page of a list: its rows, and where it stands among all that match (`sort`: "-last_seen")."""

    items: list[T]
    total: int
    page: int
    pages: int
    page_size: int
    sort: str

    @property
    def first(self) -> int:
        """The 1-based number of the page's first row (0 for none)."""
        return min((self.page - 1) * self.page_size + 1, self.total)

    @property
    def last(self) -> int:
        """The 1-based number of the page's last row."""
        return min(self.page * self.page_size, self.total)


# Packages -----------------------------------------------------------------------------------------


class PackagePublic(View):
    """A package version with its procedures, settings and payload."""

    id: int
    family_id: int
    family: str
    version: str
    name: str
    notes: str
    install_procedure: str
    install_success_codes: str
    install_post_action: PostActionText
    uninstall_procedure: str
    uninstall_success_codes: str
    uninstall_post_action: PostActionText
    upgrade_behavior: UpgradeBehaviorText
    compatible_os: str
    compatible_os_version: str
    compatible_architecture: str
    download_for_uninstall: bool
    """Uninstall jobs carry `download: true` (the agent fetches the payload first); off by default."""
    payload_sha256: str | None
    payload_size: int | None
    author: str
    created: datetime
    signature_status: SignatureStatusText
    """Whether a publisher signed the package, checked again against its current fields: `invalid`
    when they changed after signing (agents that pin publishers refuse it)."""
    signature_key_id: str | None
    signature_public_key: str | None
    signed_by: str | None
    signed_at: datetime | None


class VersionPublic(View):
    """One version of a family, as lists show it."""

    id: int
    version: str


class FamilyPublic(View):
    """A package family with its versions, oldest first."""

    id: int
    name: str
    notes: str
    versions: list[VersionPublic]


class AssignmentPublic(View):
    """An assignment: a package version installed on a computer."""

    id: int
    computer_id: int
    computer: str
    package_id: int
    package: str
    installed: datetime
    installed_by_job_id: int | None


class PackageDetailPublic(PackagePublic):
    """A package with where it is installed and the family's other versions."""

    installed_on: list[AssignmentPublic]
    other_versions: list[VersionPublic]


class PackagePagePublic(View):
    """A package's page: the package, its family's other versions, a page of where it is installed."""

    package: PackagePublic
    other_versions: list[VersionPublic]
    installed_on: PagePublic[AssignmentPublic]


class FamilyListPublic(View):
    """The packages page: a page of package families with their versions."""

    families: PagePublic[FamilyPublic]


def package_view(package: Package) -> PackagePublic:
    """The read model of a package (its family loaded)."""
    return PackagePublic(**_package_fields(package))


def _package_fields(package: Package) -> dict[str, Any]:
    return {
        "id": package.id,
        "family_id": package.family_id,
        "family": package.family.name,
        "version": package.version,
        "name": package.display_name,
        "notes": package.notes,
        "install_procedure": package.install_procedure,
        "install_success_codes": package.install_success_codes,
        "install_post_action": PostAction(package.install_post_action),
        "uninstall_procedure": package.uninstall_procedure,
        "uninstall_success_codes": package.uninstall_success_codes,
        "uninstall_post_action": PostAction(package.uninstall_post_action),
        "upgrade_behavior": UpgradeBehavior(package.upgrade_behavior),
        "compatible_os": package.compatible_os,
        "compatible_os_version": package.compatible_os_version,
        "compatible_architecture": package.compatible_architecture,
        "download_for_uninstall": package.download_for_uninstall,
        "payload_sha256": package.payload_sha256,
        "payload_size": package.payload_size,
        "author": package.author,
        "created": package.created,
        "signature_status": signature_status(
            signed_fields(package), package.signature, package.signature_public_key
        ),
        "signature_key_id": package.signature_key_id,
        "signature_public_key": package.signature_public_key,
        "signed_by": package.signed_by,
        "signed_at": package.signed_at,
    }


def package_detail_view(package: Package, installed_on: list[ComputerPackage]) -> PackageDetailPublic:
    """A package with its assignments (computers loaded) and its family's other versions."""
    return PackageDetailPublic(
        **_package_fields(package),
        installed_on=[assignment_view(a) for a in installed_on],
        other_versions=[_version(p) for p in package.family.packages if p.id != package.id],
    )


def family_view(family: PackageFamily) -> FamilyPublic:
    """A family with its versions (loaded)."""
    return FamilyPublic(
        id=family.id, name=family.name, notes=family.notes, versions=[_version(p) for p in family.packages]
    )


def _version(package: Package) -> VersionPublic:
    return VersionPublic(id=package.id, version=package.version)


def assignment_view(assignment: ComputerPackage) -> AssignmentPublic:
    """An assignment with its computer and package (loaded)."""
    package = assignment.package
    return AssignmentPublic(
        id=assignment.id,
        computer_id=assignment.computer_id,
        computer=assignment.computer.hostname,
        package_id=package.id,
        package=package.display_name,
        installed=assignment.installed,
        installed_by_job_id=assignment.installed_by_job_id,
    )


# Computers ----------------------------------------------------------------------------------------


class ComputerPublic(View):
    """A computer as lists show it; `online` by the server's offline threshold."""

    id: int
    hostname: str
    uid: str
    os: str
    os_version: str
    architecture: str
    agent_version: str
    remote_address: str
    last_seen: datetime | None
    online: bool
    presence: PresenceText
    registered: bool
    notes: str
    created: datetime


class Choice(View):
    """Something a filter or a form offers to choose: its id and name."""

    id: int
    name: str


class FilterChoices(View):
    """What a computer list can be filtered by."""

    groups: list[Choice]
    packages: list[Choice]


class NetworkPublic(View):
    """A network interface the agent reported."""

    interface: str
    address: str
    netmask: str
    broadcast: str
    mac: str


class InstalledPublic(View):
    """A package installed on the computer at hand."""

    assignment_id: int
    package_id: int
    package: str
    installed: datetime


class JobAttemptPublic(View):
    """One earlier attempt of a job: when it ran, how it ended, the tail of its output."""

    attempt: int
    state: JobStateText
    return_code: int | None
    message: str
    started: datetime | None
    finished: datetime


class JobPublic(View):
    """One job: what it does, where it stands and what the agent said."""

    id: int
    container_id: int
    container: str
    computer_id: int
    computer: str
    package_id: int | None
    package: str
    action: JobAction
    sequence: int
    state: JobStateText
    state_code: int
    return_code: int | None
    message: str
    download_progress: int | None
    post_action: PostActionText
    created: datetime
    last_update: datetime | None
    download_started: datetime | None
    execution_started: datetime | None
    execution_finished: datetime | None
    attempt: int = 1
    """Which run of the job this is (2 after its first retry)."""
    not_before: datetime | None = None
    """Waiting for its retry: handed out from then on."""
    attempts: list[JobAttemptPublic] = []
    """The earlier attempts that were retried, oldest first (the job's own fields are its latest)."""


class WaitingPublic(View):
    """Why a waiting job has not run: `hold` (`oco.domain.dispatch.Hold`), since when, from which address."""

    hold: HoldText
    since: datetime | None
    address: str | None
    phase: int | None = None
    """The job's rollout phase, from 1 (halted, later phase)."""
    opens: str | None = None
    """When its maintenance window opens (outside its window): "Mon 18:00 computer time"."""
    slots: str | None = None
    """Waiting for a download slot: "waiting for a download slot (50 of 50 in use)"."""
    retry: int | None = None
    """Waiting for its retry: which one (1 = the first), of `retries`, handed out from `since`."""
    retries: int | None = None


class JobRowPublic(JobPublic):
    """A job as a container's list shows it: with what its end means, why it waits, what becomes of its
    post-action and, with Wake-on-LAN, whether its computer woke."""

    meaning_title: str | None
    meaning: str | None
    waiting: WaitingPublic | None
    post_action_fate: PostActionFateText
    wake: WakeOutcomeText | None


class ComputerInventoryPublic(ComputerPublic):
    """A computer with its inventory and installed packages."""

    kernel_version: str
    networks: list[NetworkPublic]
    logins: list[Any]
    inventory: dict[str, Any]
    inventory_updated: datetime | None
    installed_packages: list[InstalledPublic]


class ComputerDetailPublic(ComputerInventoryPublic):
    """A computer with its inventory, installed packages, jobs (newest first) and software (by name)."""

    jobs: list[JobPublic]
    software: list[SoftwarePublic] = []


class SoftwarePublic(View):
    """One entry of a computer's software inventory, as its agent reported it."""

    name: str
    version: str
    description: str
    first_seen: datetime


class ComputerPagePublic(View):
    """A computer's page: its inventory and installed packages, a page of its jobs (newest first) and
    the first page of its software inventory (by name)."""

    computer: ComputerInventoryPublic
    jobs: PagePublic[JobPublic]
    software: PagePublic[SoftwarePublic]


class ComputerSoftwarePublic(View):
    """A page of a computer's software inventory."""

    computer: ComputerPublic
    software: PagePublic[SoftwarePublic]


def computer_view(computer: Computer, now: datetime, offline_seconds: int) -> ComputerPublic:
    """The read model of a computer; online when it checked in less than `offline_seconds` ago."""
    return ComputerPublic(**_computer_fields(computer, now, offline_seconds))


def _computer_fields(computer: Computer, now: datetime, offline_seconds: int) -> dict[str, Any]:
    return {
        "id": computer.id,
        "hostname": computer.hostname,
        "uid": computer.uid,
        "os": computer.os,
        "os_version": computer.os_version,
        "architecture": computer.architecture,
        "agent_version": computer.agent_version,
        "remote_address": computer.remote_address,
        "last_seen": computer.last_seen,
        "online": is_online(computer.last_seen, now, offline_seconds),
        "presence": presence(computer.last_seen, now, offline_seconds),
        "registered": bool(computer.agent_key),
        "notes": computer.notes,
        "created": computer.created,
    }


def computer_inventory_view(
    computer: Computer, now: datetime, offline_seconds: int
) -> ComputerInventoryPublic:
    """A computer with its inventory and installed packages (networks and assignments loaded)."""
    return ComputerInventoryPublic(**_inventory_fields(computer, now, offline_seconds))


def computer_detail_view(
    computer: Computer,
    jobs: list[Job],
    now: datetime,
    offline_seconds: int,
    software: Sequence[ComputerSoftware] = (),
) -> ComputerDetailPublic:
    """A computer (networks and assignments loaded) with its jobs (containers loaded) and software."""
    return ComputerDetailPublic(
        **_inventory_fields(computer, now, offline_seconds),
        jobs=[job_view(job, job.container.name, computer.hostname) for job in jobs],
        software=[software_view(entry) for entry in software],
    )


def _inventory_fields(computer: Computer, now: datetime, offline_seconds: int) -> dict[str, Any]:
    installed = sorted(computer.assignments, key=lambda a: a.package.display_name)
    return {
        **_computer_fields(computer, now, offline_seconds),
        "kernel_version": computer.kernel_version,
        "networks": [
            NetworkPublic(
                interface=n.interface, address=n.address, netmask=n.netmask, broadcast=n.broadcast, mac=n.mac
            )
            for n in computer.networks
        ],
        "logins": computer.logins or [],
        "inventory": computer.inventory or {},
        "inventory_updated": computer.inventory_updated,
        "installed_packages": [
            InstalledPublic(
                assignment_id=a.id,
                package_id=a.package_id,
                package=a.package.display_name,
                installed=a.installed,
            )
            for a in installed
        ],
    }


class ComputerListPublic(View):
    """The computers page: a page of computers, and the choices of its filters."""

    computers: PagePublic[ComputerPublic]
    choices: FilterChoices


# Groups -------------------------------------------------------------------------------------------


class MemberComputerPublic(View):
    """A computer in a computer group."""

    id: int
    hostname: str


class MemberPackagePublic(View):
    """A package in a package group, at its place in the deployment order."""

    id: int
    package: str
    sequence: int


class ComputerGroupPublic(View):
    """A computer group with its members."""

    id: int
    name: str
    computers: list[MemberComputerPublic]


class PackageGroupPublic(View):
    """A package group with its members in deployment order."""

    id: int
    name: str
    packages: list[MemberPackagePublic]


def computer_group_view(group: ComputerGroup) -> ComputerGroupPublic:
    """A computer group (members and their computers loaded)."""
    return ComputerGroupPublic(
        id=group.id,
        name=group.name,
        computers=[
            MemberComputerPublic(id=m.computer_id, hostname=m.computer.hostname) for m in group.members
        ],
    )


def package_group_view(group: PackageGroup) -> PackageGroupPublic:
    """A package group (members, packages and families loaded)."""
    return PackageGroupPublic(
        id=group.id,
        name=group.name,
        packages=[
            MemberPackagePublic(id=m.package_id, package=m.package.display_name, sequence=m.sequence)
            for m in group.members
        ],
    )


class GroupSummaryPublic(View):
    """A group as lists show it: its name and how many members it has."""

    id: int
    name: str
    size: int


class MembershipChangePublic(View):
    """A computer group after computers were added or removed: its size, and how many changed (computers
    already in it, or not in it, count as unchanged)."""

    id: int
    name: str
    size: int
    changed: int


class GroupsPagePublic(View):
    """The groups page: computer groups with their sizes, package groups with their members, and the
    package families whose versions can join a package group."""

    computer_groups: PagePublic[GroupSummaryPublic]
    package_groups: list[PackageGroupPublic]
    families: list[FamilyPublic]


class ComputerGroupPagePublic(View):
    """A computer group's page: a page of its members, and computers found to add."""

    id: int
    name: str
    size: int
    members: PagePublic[ComputerPublic]
    found: PagePublic[ComputerPublic] | None


class TargetChoices(View):
    """What a deployment can aim at: the selected and found computers (`found` match the search in all),
    computer groups, package families and package groups; `matching` counts an "all matching" filter."""

    computers: list[ComputerPublic]
    found: int
    computer_groups: list[GroupSummaryPublic]
    families: list[FamilyPublic]
    package_groups: list[PackageGroupPublic]
    matching: int | None


# Job containers -----------------------------------------------------------------------------------


class ContainerPublic(View):
    """A job container with its settings, status, progress and how many jobs are in each state."""

    id: int
    name: str
    description: str
    notes: str
    author: str
    created: datetime
    enabled: bool
    start: datetime
    end: datetime | None
    wol: bool
    shutdown_waked: bool
    wol_sent: datetime | None
    priority: int
    restart_timeout: int
    sequence_mode: SequenceModeText
    agent_ip_ranges: str
    windows: list[str] = []
    """Maintenance windows ("Mon-Fri 18:00-06:00"); empty: any time."""
    window_zone: WindowZoneText | None = None
    max_downloads: int | None = None
    """At most this many of its computers download a payload at once (`--max-downloads`); None: any."""
    retries: int = 0
    """How many more attempts a job its agent could not run (-9999) gets."""
    retry_delay: str = ""
    """The time between attempts ("10m"); empty without retries."""
    retry_delay_seconds: int = 0
    status: ContainerStatusText
    progress: int
    job_counts: dict[str, int]
    outcomes: dict[str, int]
    """Jobs per part of the outcome bar (`JobOutcome`, in its order): succeeded, failed, … skipped."""
    last_finished: datetime | None
    halted: bool = False
    """A phased rollout of this container halted: nothing more is handed out until resumed."""
    rollout: RolloutPublic | None = None
    """The phased rollout, when the container is one (on a single container's answers)."""


class RolloutPhasePublic(View):
    """One phase of a rollout: its computers and how its jobs stand (skipped ones not counted)."""

    number: int
    label: str
    status: str
    """done, open, halted, waiting or canceled."""
    computers: int
    succeeded: int
    failed: int
    pending: int
    criterion_met: bool


class RolloutPublic(View):
    """A phased rollout: its rules, where it stands, why it halted, and each phase."""

    phases: str
    pilot_group_id: int | None
    pilot_group: str
    phase_count: int
    current_phase: int
    """From 1."""
    success_percent: int
    soak: str
    soak_seconds: int
    halt_failure_rate: int | None
    halt_min_finished: int
    phase_opened: datetime | None
    phase_met: datetime | None
    halted: datetime | None
    halted_by: str
    halt_details: dict[str, Any] | None
    """The numbers that caused the halt: phase, label, finished, failed, succeeded, pending, rate."""
    completed: datetime | None
    """When its last phase finished, or it was canceled."""
    canceled_by: str
    """Who canceled it (empty: not canceled)."""
    phase_list: list[RolloutPhasePublic]


class ContainerPagePublic(View):
    """A container's page: the container, a page of its jobs, and the containers its jobs can move to."""

    container: ContainerPublic
    jobs: PagePublic[JobRowPublic]
    move_targets: list[Choice]


class ContainerDetailPublic(ContainerPublic):
    """A job container with every job, in creation order."""

    jobs: list[JobPublic]


def job_view(job: Job, container: str, computer: str) -> JobPublic:
    """The read model of a job, given its container's name and its computer's hostname."""
    return JobPublic(
        id=job.id,
        container_id=job.container_id,
        container=container,
        computer_id=job.computer_id,
        computer=computer,
        package_id=job.package_id,
        package=job.package_name,
        action=JobAction(job.action),
        sequence=job.sequence,
        state=JobState(job.state),
        state_code=job.state,
        return_code=job.return_code,
        message=job.message,
        download_progress=job.download_progress,
        post_action=effective_post_action(PostAction(job.post_action), job.wol_shutdown),
        created=job.created,
        last_update=job.last_update,
        download_started=job.download_started,
        execution_started=job.execution_started,
        execution_finished=job.execution_finished,
        attempt=job.attempt,
        not_before=job.not_before if JobState(job.state) is JobState.WAITING else None,
    )


# Plans --------------------------------------------------------------------------------------------


class PlannedJobPublic(View):
    """A job a deployment would create."""

    sequence: int
    package_id: int
    package: str
    action: JobAction
    state: JobStateText
    reason: str
    post_action: PostActionText


class ComputerPlanPublic(View):
    """The jobs one computer would get, and whether it would be woken."""

    computer_id: int
    hostname: str
    wake: bool
    cannot_wake: str = Field(description='why an offline computer would not be woken ("" when it would)')
    held_back: str = Field(description='why its jobs would wait for its address ("" when they would not)')
    notes: list[str]
    jobs: list[PlannedJobPublic]


class PlanSummaryPublic(View):
    """How many computers a deployment aims at and how many jobs it would create, how many of them are
    skipped (`states`: per state, e.g. os_incompatible, already_installed), how many computers would be
    woken."""

    computers: int
    jobs: int
    skipped: int
    woken: int
    cannot_wake: int
    held_back: int
    states: dict[str, int]
    sentence: str = Field(description="the whole plan in one sentence, as the console shows it")


class PlanPhasePublic(View):
    """A phase of a rollout as the preview shows it: how many computers, and the first of them."""

    number: int
    label: str
    computers: int
    hostnames: list[str]


class PlanWindowsPublic(View):
    """A deployment's maintenance windows as the preview shows them: whose clock, and how many computers
    read them in server time because their agent reports no time zone."""

    windows: list[str]
    zone: WindowZoneText
    server_zone: str
    server_time_computers: int


class PlanDownloadsPublic(View):
    """A deployment's download limits as the preview shows them: how many of its computers have a
    payload to download, how many fetch it at once, and the sentence that says so."""

    max_downloads: int | None
    server_limit: int | None
    computers_downloading: int
    at_once: int
    sentence: str


class PlanPublic(View):
    """What a deployment would create (the preview): the summary of all of it, and the first computers
    with their jobs (all of them unless limited); for a phased rollout, its phases."""

    computers: list[ComputerPlanPublic]
    summary: PlanSummaryPublic
    phases: list[PlanPhasePublic] = []
    windows: PlanWindowsPublic | None = None
    downloads: PlanDownloadsPublic | None = None
    retries: str = ""
    """The retries in a sentence (`oco.domain.retries.policy_text`); empty without."""


def plan_view(plan: Plan, limit: int | None = None) -> PlanPublic:
    """The read model of a plan; with `limit`, only the first `limit` computers are listed."""
    listed = plan.computers if limit is None else plan.computers[:limit]
    return PlanPublic(
        computers=[
            ComputerPlanPublic(
                computer_id=computer.computer_id,
                hostname=computer.hostname,
                wake=computer.wake,
                cannot_wake=computer.cannot_wake,
                held_back=computer.held_back,
                notes=list(computer.notes),
                jobs=[
                    PlannedJobPublic(
                        sequence=job.sequence,
                        package_id=job.package_id,
                        package=job.package_name,
                        action=job.action,
                        state=job.state,
                        reason=job.reason,
                        post_action=effective_post_action(job.post_action, job.wol_shutdown),
                    )
                    for job in computer.jobs
                ],
            )
            for computer in listed
        ],
        summary=PlanSummaryPublic(
            computers=len(plan.computers),
            jobs=len(plan.jobs),
            skipped=len(plan.skipped()),
            woken=len(plan.woken),
            cannot_wake=len(plan.cannot_wake),
            held_back=len(plan.held_back),
            states={state.text: count for state, count in plan.counts().items()},
            sentence=plan.sentence(),
        ),
    )


# Users and tokens ---------------------------------------------------------------------------------


class UserPublic(View):
    """A console user (never the password hash)."""

    id: int
    username: str
    full_name: str
    role: RoleText
    enabled: bool
    created: datetime
    last_login: datetime | None


class TokenPublic(View):
    """An admin API token (never its secret)."""

    id: int
    name: str
    user: str
    created: datetime
    last_used: datetime | None
    revoked: datetime | None


class CallerPublic(View):
    """Who an API token acts as: the user, their role and what it allows."""

    username: str
    role: RoleText
    permissions: list[PermissionText]


def caller_view(username: str, role: Role) -> CallerPublic:
    """The read model of a token's user (`oco.domain.roles.allowed`)."""
    return CallerPublic(username=username, role=role, permissions=list(allowed(role)))


def user_view(user: User) -> UserPublic:
    """The read model of a console user."""
    return UserPublic(
        id=user.id,
        username=user.username,
        full_name=user.full_name,
        role=Role(user.role),
        enabled=user.enabled,
        created=user.created,
        last_login=user.last_login,
    )


def token_view(token: ApiToken) -> TokenPublic:
    """The read model of an API token (its user loaded)."""
    return TokenPublic(
        id=token.id,
        name=token.name,
        user=token.user.username,
        created=token.created,
        last_used=token.last_used,
        revoked=token.revoked,
    )


# The dashboard ------------------------------------------------------------------------------------


class CountPublic(View):
    """How many have one value (an agent version)."""

    value: str
    count: int


class FleetPublic(View):
    """The fleet at a glance: how many computers are online, offline, never seen; agent versions."""

    total: int
    online: int
    offline: int
    never_seen: int
    agent_versions: list[CountPublic]


class FailurePublic(View):
    """A job that failed or expired, as the dashboard lists the latest ones."""

    job_id: int
    container_id: int
    container: str
    computer_id: int
    computer: str
    package: str
    state: JobStateText
    return_code: int | None
    meaning: str | None
    finished: datetime | None


class DayPublic(View):
    """A day's job outcomes (in the configured time zone)."""

    day: date
    succeeded: int
    failed: int
    expired: int


class DashboardPublic(View):
    """The home page: fleet health, deployments running, the latest failures, 30 days of outcomes."""

    fleet: FleetPublic
    running: list[ContainerPublic]
    failures: list[FailurePublic]
    days: list[DayPublic]


# The audit log ------------------------------------------------------------------------------------


class AuditEntryPublic(View):
    """One change: who did what to which object, when, with its details."""

    id: int
    at: datetime
    actor: str
    username: str | None
    role: RoleText | None
    action: str
    object_type: str
    object_id: int | None
    details: dict[str, Any] | None


def software_view(entry: ComputerSoftware) -> SoftwarePublic:
    """The read model of a software inventory entry."""
    return SoftwarePublic(
        name=entry.name, version=entry.version, description=entry.description, first_seen=entry.first_seen
    )
