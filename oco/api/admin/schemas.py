"""What the admin API accepts: request bodies and parameters, with the limits the domain declares.

Responses are the read models of `oco.services.views`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from oco.api.auth import api_actor, api_user, get_runtime
from oco.domain.containers import (
    DEFAULT_RESTART_TIMEOUT,
    NAME_MAX,
    PRIORITY_MAX,
    PRIORITY_MIN,
    RESTART_TIMEOUT_MAX,
    RESTART_TIMEOUT_MIN,
)
from oco.domain.hostnames import HOSTNAME_MAX
from oco.domain.listing import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from oco.domain.phases import (
    DEFAULT_HALT_MIN_FINISHED,
    DEFAULT_SUCCESS_PERCENT,
    RolloutEdit,
    RolloutRules,
    parse_duration,
    parse_phases,
)
from oco.domain.presence import Presence
from oco.domain.retries import RETRIES_MAX, RetryPolicy
from oco.domain.slots import MAX_DOWNLOADS_MAX
from oco.domain.states import JobOutcome, PostAction, SequenceMode, UpgradeBehavior
from oco.domain.windows import WindowZone, parse_windows
from oco.services.computers import ComputerQuery, ComputerSelection
from oco.services.containers import ContainerEdit
from oco.services.deployments import ContainerOptions, DeploymentRequest, UninstallRequest
from oco.services.jobs import JobQuery
from oco.services.listing import PageRequest
from oco.services.packages import PackageSpec
from oco.services.runtime import Runtime
from oco.services.targets import Targets
from oco.services.users import MIN_PASSWORD_LENGTH, TokenUser, UserChanges
from oco.services.views import (
    MAX_ID,
    PostActionText,
    RoleText,
    SequenceModeText,
    UpgradeBehaviorText,
    WindowZoneText,
)

Id = Annotated[int, Path(ge=1, le=MAX_ID, description="database id")]
BodyId = Annotated[int, Field(ge=1, le=MAX_ID)]
Actor = Annotated[str, Depends(api_actor)]
Caller = Annotated[TokenUser, Depends(api_user)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
Priority = Annotated[int, Field(ge=PRIORITY_MIN, le=PRIORITY_MAX, description="higher runs first")]
RestartTimeout = Annotated[
    int,
    Field(
        ge=RESTART_TIMEOUT_MIN,
        le=RESTART_TIMEOUT_MAX,
        description="minutes a logged-in user gets before a restart or shutdown; negative: never",
    ),
]


MEMBERS_MAX = 100_000
"""Computer ids one request may add to or remove from a group (more: a `matching` filter)."""
PREVIEW_LIMIT = 100
"""Computers whose planned jobs a preview lists unless asked for more; its summary counts them all."""
PREVIEW_MAX = 10_000


def page_request(
    page: Annotated[int, Query(ge=1, le=MAX_ID, description="1 is the first page")] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="rows a page")] = DEFAULT_PAGE_SIZE,
    sort: Annotated[str, Query(max_length=40, description="a column, '-' first for descending")] = "",
) -> PageRequest:
    """Which page of a list, how big, sorted how."""
    return PageRequest(page, size, sort)


Page = Annotated[PageRequest, Depends(page_request)]


def job_query(
    q: Annotated[str, Query(max_length=200, description="words of the hostname or package")] = "",
    outcome: Annotated[JobOutcome | None, Query(description="a part of the outcome bar")] = None,
    code: Annotated[int | None, Query(ge=-(2**31), le=2**31 - 1, description="a return code")] = None,
) -> JobQuery:
    """Which jobs of a container a list shows."""
    return JobQuery(search=q, outcome=outcome, return_code=code)


JobFilter = Annotated[JobQuery, Depends(job_query)]


class ApiError(BaseModel):
    """A refused request: what is wrong and, where it applies, the field."""

    detail: str
    field: str | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ApiError, "description": "Invalid input"},
    401: {"model": ApiError, "description": "Missing or invalid token"},
    403: {"model": ApiError, "description": "The role of the token's user does not allow this"},
    404: {"model": ApiError, "description": "Not found"},
    409: {"model": ApiError, "description": "Conflict"},
    503: {"model": ApiError, "description": "Database unavailable"},
}


class Body(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class NewPackage(BaseModel):
    """A package version, as form fields beside its payload upload."""

    family: str = Field(min_length=1, max_length=NAME_MAX)
    version: str = Field(min_length=1, max_length=NAME_MAX)
    install_procedure: str = Field(min_length=1)
    uninstall_procedure: str = ""
    install_success_codes: str = Field("0", max_length=NAME_MAX)
    uninstall_success_codes: str = Field("0", max_length=NAME_MAX)
    install_post_action: PostActionText = Field(PostAction.NONE.text, validate_default=True)
    uninstall_post_action: PostActionText = Field(PostAction.NONE.text, validate_default=True)
    upgrade_behavior: UpgradeBehaviorText = Field(
        UpgradeBehavior.EXPLICIT_UNINSTALL.text, validate_default=True
    )
    compatible_os: str = Field("", max_length=NAME_MAX)
    compatible_os_version: str = Field("", max_length=NAME_MAX)
    compatible_architecture: str = Field("", max_length=NAME_MAX)
    notes: str = ""
    download_for_uninstall: bool = Field(
        False, description="Uninstall jobs fetch the payload first (off: as OCO-Server, no download)."
    )

    def spec(self) -> PackageSpec:
        """The use case's view of the fields."""
        return PackageSpec(**{name: getattr(self, name) for name in type(self).model_fields})


class NewComputer(Body):
    """A computer to pre-create."""

    hostname: str = Field(min_length=1, max_length=HOSTNAME_MAX)
    notes: str = ""


class ComputerIds(Body):
    """Computers to act on."""

    computer_ids: list[BodyId] = Field(min_length=1)


class NewGroup(Body):
    """A group to create."""

    name: str = Field(min_length=1, max_length=NAME_MAX)


class Members(Body):
    """Members to add, or a new order."""

    ids: list[BodyId] = Field(min_length=1, description="Computer ids or package ids, in order.")


class ComputerFilter(Body):
    """Every computer that matches: words of hostname, OS, address, uid or agent version; presence; OS;
    member of a group; with a package installed."""

    search: str = Field("", max_length=200)
    presence: Presence | None = None
    os: str = Field("", max_length=200)
    group_id: BodyId | None = None
    package_id: BodyId | None = None
    software: str = Field("", max_length=255, description="Software its inventory reports (name contains).")
    software_version: str = Field(
        "", max_length=300, description="A version condition on that software, e.g. '< 120'."
    )

    def query(self) -> ComputerQuery:
        """The filter as the use cases take it."""
        return ComputerQuery(
            self.search,
            self.presence,
            self.os,
            self.group_id,
            self.package_id,
            self.software,
            self.software_version,
        )


class ComputerMembers(Body):
    """Computers to add to or remove from a group: ids, and every computer that matches a filter."""

    ids: list[BodyId] = Field(default_factory=list, max_length=MEMBERS_MAX, description="Computer ids.")
    matching: ComputerFilter | None = None

    @model_validator(mode="after")
    def _some(self) -> ComputerMembers:
        if not self.ids and self.matching is None:
            raise ValueError("give ids, a matching filter, or both")
        return self

    def selection(self, within_group: int | None = None) -> ComputerSelection:
        """The computers meant; `within_group` narrows the filter to that group's members."""
        matching = self.matching.query() if self.matching is not None else None
        if matching is not None and within_group is not None:
            matching = replace(matching, group_id=within_group)
        return ComputerSelection(references=list(self.ids), matching=matching)


class NewAssignment(Body):
    """A package to record as installed on a computer."""

    computer_id: BodyId
    package_id: BodyId


class ContainerFields(Body):
    """The settings of a new job container."""

    name: str = Field(min_length=1, max_length=NAME_MAX)
    description: str = ""
    notes: str = ""
    start: datetime | None = Field(None, description="ISO 8601 with time zone; default now")
    end: datetime | None = None
    wol: bool = False
    shutdown_waked: bool = False
    priority: Priority = 0
    restart_timeout: RestartTimeout = DEFAULT_RESTART_TIMEOUT
    sequence_mode: SequenceModeText = Field(SequenceMode.IGNORE_FAILED.text, validate_default=True)
    agent_ip_ranges: str = ""

    def options(self) -> ContainerOptions:
        """The use case's view of these settings; times without zone are UTC."""
        return ContainerOptions(
            name=self.name,
            description=self.description,
            notes=self.notes,
            start=aware(self.start),
            end=aware(self.end),
            wol=self.wol,
            shutdown_waked=self.shutdown_waked,
            priority=self.priority,
            restart_timeout=self.restart_timeout,
            sequence_mode=self.sequence_mode,
            agent_ip_ranges=self.agent_ip_ranges,
        )


class NewDeployment(ContainerFields):
    """A deployment: container settings, targets and packages."""

    computer_ids: list[BodyId] = []
    computer_group_ids: list[BodyId] = []
    package_ids: list[BodyId] = []
    package_group_ids: list[BodyId] = []
    force: bool = Field(False, description="reinstall versions already installed")
    auto_uninstall: bool = Field(
        True,
        description="uninstall the family's other installed versions first, for packages whose upgrade "
        'behavior is explicit_uninstall ("Automatically create uninstall jobs")',
    )
    phases: str = Field(
        "",
        max_length=NAME_MAX,
        description="phased rollout: cumulative steps, percentages or counts ('1%,10%,50%,100%', '5,50,all')",
    )
    pilot_group: int | str | None = Field(
        None, description="computer group (id or name) whose targets form the rollout's first phase"
    )
    phase_success: int = Field(
        DEFAULT_SUCCESS_PERCENT, ge=0, le=100, description="% of a phase's jobs that must succeed"
    )
    phase_soak: str = Field(
        "", max_length=16, description="time after a phase met its criterion before the next opens (30m)"
    )
    halt_failure_rate: int | None = Field(
        None, ge=0, le=100, description="halt when more than this % of a phase's finished jobs failed"
    )
    halt_min_finished: int = Field(
        DEFAULT_HALT_MIN_FINISHED, ge=1, le=MAX_ID, description="finished jobs of a phase before it halts"
    )

    windows: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="maintenance windows ('Mon-Fri 18:00-06:00', 'Sat,Sun 00:00-24:00'); empty: any time",
    )
    window_zone: WindowZoneText = Field(
        WindowZone.COMPUTER.text,
        validate_default=True,
        description="whose clock the windows are read on: computer (as its agent reports; the server's for "
        "an agent that reports none) or server",
    )
    max_downloads: int | None = Field(
        None,
        ge=0,
        le=MAX_DOWNLOADS_MAX,
        description="at most this many computers download a payload at once; the others wait for a slot "
        "(0 or none: no limit)",
    )

    retries: int = Field(
        0,
        ge=0,
        le=RETRIES_MAX,
        description="retry a job its agent could not run (-9999) up to this many times",
    )
    retry_delay: str = Field("", max_length=16, description="time before each retry (90s, 10m, 2h)")

    def rollout(self) -> RolloutRules:
        """The rollout rules of these fields (parsed by the domain, whose errors name the field)."""
        return RolloutRules(
            steps=parse_phases(self.phases),
            success_percent=self.phase_success,
            soak_seconds=parse_duration(self.phase_soak, field="phase_soak"),
            halt_failure_rate=self.halt_failure_rate,
            halt_min_finished=self.halt_min_finished,
        )

    def request(self) -> DeploymentRequest:
        """The use case's request."""
        targets = Targets(
            computers=self.computer_ids,
            computer_groups=self.computer_group_ids,
            packages=self.package_ids,
            package_groups=self.package_group_ids,
        )
        options = replace(
            self.options(),
            rollout=self.rollout(),
            pilot_group=self.pilot_group,
            windows=parse_windows(self.windows, self.window_zone),
            max_downloads=self.max_downloads or None,
            retry=RetryPolicy(self.retries, parse_duration(self.retry_delay, field="retry_delay")),
        )
        return DeploymentRequest(
            options=options, targets=targets, force=self.force, auto_uninstall=self.auto_uninstall
        )


class NewUninstall(ContainerFields):
    """Uninstall jobs for selected assignments."""

    name: str = Field("", max_length=NAME_MAX, description="default: 'Uninstall <family>'")
    assignment_ids: list[BodyId] = Field([], description="assignments to uninstall, by id")
    computer_ids: list[BodyId] = Field([], description="or: computers to uninstall `package_ids` from")
    package_ids: list[BodyId] = Field(
        [], description="with `computer_ids`: packages to uninstall, each from those computers that have it"
    )

    def request(self) -> UninstallRequest:
        """The use case's request."""
        return UninstallRequest(
            options=self.options(),
            assignment_ids=self.assignment_ids,
            computers=self.computer_ids,
            package_ids=self.package_ids,
        )


class ContainerChanges(Body):
    """Changes to a job container; a field left out stays as it is."""

    name: str | None = Field(None, max_length=NAME_MAX)
    description: str | None = None
    notes: str | None = None
    enabled: bool | None = None
    start: datetime | None = None
    end: datetime | None = None
    clear_end: bool = False
    priority: Priority | None = None
    restart_timeout: RestartTimeout | None = None
    sequence_mode: SequenceModeText | None = None
    agent_ip_ranges: str | None = None
    wol: bool | None = Field(None, description="send Wake-on-LAN at the start (before it has come)")
    shutdown_waked: bool | None = None
    max_downloads: int | None = Field(
        None, ge=0, le=MAX_DOWNLOADS_MAX, description="download limit of the container; 0 removes it"
    )
    retries: int | None = Field(None, ge=0, le=RETRIES_MAX, description="retries of -9999 failures")
    retry_delay: str | None = Field(None, max_length=16, description="time before each retry (10m)")
    phases: str | None = Field(
        None, max_length=NAME_MAX, description="a new phases plan; the waiting jobs take their phase in it"
    )
    phase_success: int | None = Field(None, ge=0, le=100)
    phase_soak: str | None = Field(None, max_length=16)
    halt_failure_rate: int | None = Field(None, ge=0, le=100)
    clear_halt_failure_rate: bool = Field(False, description="remove the halt rule")
    halt_min_finished: int | None = Field(None, ge=1, le=MAX_ID)
    windows: list[str] | None = Field(
        None, max_length=20, description="new maintenance windows; an empty list removes them"
    )
    window_zone: WindowZoneText | None = None
    dry_run: bool = Field(False, description="answer what the edit would do (its phases), save nothing")

    def edit(self) -> ContainerEdit:
        """The use case's edit."""
        rollout = RolloutEdit(
            steps=None if self.phases is None else parse_phases(self.phases),
            success_percent=self.phase_success,
            soak_seconds=None
            if self.phase_soak is None
            else parse_duration(self.phase_soak, field="phase_soak"),
            halt_failure_rate=self.halt_failure_rate,
            clear_halt=self.clear_halt_failure_rate,
            halt_min_finished=self.halt_min_finished,
        )
        zone = self.window_zone or WindowZone.COMPUTER
        return ContainerEdit(
            **self.model_dump(include=set(_PLAIN_CHANGES)),
            start=aware(self.start),
            end=aware(self.end),
            sequence_mode=self.sequence_mode,
            retry_delay_seconds=(
                None if self.retry_delay is None else parse_duration(self.retry_delay, field="retry_delay")
            ),
            rollout=rollout,
            windows=None if not self.windows else parse_windows(self.windows, zone),
            clear_windows=self.windows == [],
            window_zone=self.window_zone,
        )


_PLAIN_CHANGES = (
    "name",
    "description",
    "notes",
    "enabled",
    "clear_end",
    "priority",
    "restart_timeout",
    "agent_ip_ranges",
    "wol",
    "shutdown_waked",
    "retries",
    "max_downloads",
)


class Resume(Body):
    """How to resume a halted rollout."""

    reopen: bool = Field(False, description="run the failed jobs of the halted phase again")


class Renew(Body):
    """Where to run failed jobs again."""

    new_container: bool = False


class WakeResult(BaseModel):
    """How many magic packets went out."""

    packets_sent: int


def aware(value: datetime | None) -> datetime | None:
    """A time with zone as UTC; one without zone is taken as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class NewUser(Body):
    """A console user to create; their API tokens will act with the same role."""

    username: str = Field(min_length=1, max_length=255, pattern=r"^\S+$")
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=1024)
    full_name: str = Field("", max_length=255)
    role: RoleText


class UserEdit(Body):
    """What to change of a user; a field left out stays as it is. `enabled: false` ends the user's
    console sessions and revokes their API tokens."""

    full_name: str | None = Field(None, max_length=255)
    role: RoleText | None = None
    enabled: bool | None = None

    def changes(self) -> UserChanges:
        """The service's form of the change."""
        return UserChanges(full_name=self.full_name, role=self.role, enabled=self.enabled)


class NewPassword(Body):
    """A password an administrator sets for a user; the user's console sessions end."""

    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=1024)
