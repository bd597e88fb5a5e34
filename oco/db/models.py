"""SQLAlchemy models of the domain (DESIGN.md "The domain, precisely").

Enumerations are stored as their OCO integer or text values; the enums live in `oco.domain.states`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from oco.db.types import JSONText, LongText, UTCDateTime, binary_string, utcnow
from oco.domain.hostnames import hostname_key
from oco.domain.roles import Role
from oco.domain.versions import VERSION_KEY_MAX

NAME = 255
"""Length of names and other short texts; MariaDB needs a length to index a column."""
ROLE = 32

naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=naming_convention)


class PackageFamily(Base):
    __tablename__ = "package_family"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    notes: Mapped[str] = mapped_column(Text, default="")
    icon: Mapped[str | None] = mapped_column(Text, default=None)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    packages: Mapped[list[Package]] = relationship(back_populates="family", order_by="Package.id")


class Package(Base):
    """One version of a package family: procedures, codes, post-actions, compatibility and payload."""

    __tablename__ = "package"
    __table_args__ = (UniqueConstraint("family_id", "version", name="uq_package_family_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("package_family.id"), index=True)
    version: Mapped[str] = mapped_column(String(NAME))
    notes: Mapped[str] = mapped_column(Text, default="")
    install_procedure: Mapped[str] = mapped_column(Text)
    install_success_codes: Mapped[str] = mapped_column(String(NAME), default="0")
    install_post_action: Mapped[int] = mapped_column(Integer, default=0)
    uninstall_procedure: Mapped[str] = mapped_column(Text, default="")
    uninstall_success_codes: Mapped[str] = mapped_column(String(NAME), default="0")
    uninstall_post_action: Mapped[int] = mapped_column(Integer, default=0)
    upgrade_behavior: Mapped[str] = mapped_column(String(32), default="explicit-uninstall")
    compatible_os: Mapped[str] = mapped_column(String(NAME), default="")
    compatible_os_version: Mapped[str] = mapped_column(String(NAME), default="")
    compatible_architecture: Mapped[str] = mapped_column(String(NAME), default="")
    payload_sha256: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    payload_size: Mapped[int | None] = mapped_column(Integer, default=None)
    author: Mapped[str] = mapped_column(String(NAME), default="")
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    signature: Mapped[str | None] = mapped_column(String(128), default=None)
    """A publisher's Ed25519 signature (base64) of the signed fields (`oco.domain.signing`); the server
    never holds the private key, so it cannot make one — only store one and show whether it still holds."""
    signature_key_id: Mapped[str | None] = mapped_column(String(16), default=None)
    signature_public_key: Mapped[str | None] = mapped_column(String(64), default=None)
    signed_by: Mapped[str | None] = mapped_column(String(NAME), default=None)
    """Who stored the signature (the audit actor), and when."""
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    download_for_uninstall: Mapped[bool] = mapped_column(Boolean, default=False)
    """Uninstall jobs carry `download: true` (the agent fetches the payload first) only when set, as in
    OCO-Server; off by default, because most uninstall procedures need no files."""

    family: Mapped[PackageFamily] = relationship(back_populates="packages")

    @property
    def display_name(self) -> str:
        return f"{self.family.name} {self.version}"


def _hostname_key(context: DefaultExecutionContext) -> str:
    parameters: dict[str, Any] = context.get_current_parameters()  # type: ignore[no-untyped-call]  # untyped in SQLAlchemy
    return hostname_key(parameters["hostname"])


class Computer(Base):
    """A managed computer: identity, agent keys, inventory."""

    __tablename__ = "computer"

    id: Mapped[int] = mapped_column(primary_key=True)
    hostname: Mapped[str] = mapped_column(String(NAME), unique=True)
    hostname_key: Mapped[str] = mapped_column(String(NAME), unique=True, default=_hostname_key)
    """The hostname as compared (`oco.domain.hostnames`): set from `hostname` on insert."""
    uid: Mapped[str] = mapped_column(String(NAME), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    agent_key: Mapped[str] = mapped_column(String(NAME), default="")
    server_key: Mapped[str] = mapped_column(String(NAME), default="")
    last_agent_timestamp: Mapped[float] = mapped_column(Double, default=0.0)
    """The greatest `params.timestamp` accepted from this computer (replay protection)."""
    last_server_timestamp: Mapped[float] = mapped_column(Double, default=0.0)
    """The last `result.timestamp` sent to this computer; the next one must be greater."""
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)
    remote_address: Mapped[str] = mapped_column(String(64), default="")
    agent_version: Mapped[str] = mapped_column(String(NAME), default="")
    os: Mapped[str] = mapped_column(String(NAME), default="")
    os_version: Mapped[str] = mapped_column(String(NAME), default="")
    architecture: Mapped[str] = mapped_column(String(NAME), default="")
    kernel_version: Mapped[str] = mapped_column(String(NAME), default="")
    inventory: Mapped[dict[str, Any] | None] = mapped_column(JSONText, default=None)
    """The rest of the last full inventory (cpu, ram, serial, model, domain, software…), shown as is."""
    logins: Mapped[list[Any] | None] = mapped_column(JSONText, default=None)
    """The login history (newest first, de-duplicated, capped and aged: `oco.domain.logins`)."""
    newest_login: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """The time of the newest stored login: sent as `logins-since`, so an agent reports only newer ones."""
    inventory_updated: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    networks_digest: Mapped[str] = mapped_column(String(64), default="")
    """SHA-256 of the stored network interfaces, so an unchanged check-in need not read them."""
    force_update: Mapped[bool] = mapped_column(Boolean, default=False)
    time_zone: Mapped[str] = mapped_column(String(64), default="")
    """The zone the agent reports in its inventory (an IANA name or a UTC offset; empty: none), which
    maintenance windows in computer time are read on."""
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    networks: Mapped[list[ComputerNetwork]] = relationship(
        back_populates="computer", cascade="all, delete-orphan", order_by="ComputerNetwork.id"
    )
    assignments: Mapped[list[ComputerPackage]] = relationship(
        back_populates="computer", cascade="all, delete-orphan"
    )
    software: Mapped[list[ComputerSoftware]] = relationship(
        back_populates="computer", cascade="all, delete-orphan", passive_deletes=True
    )


class ComputerNetwork(Base):
    __tablename__ = "computer_network"

    id: Mapped[int] = mapped_column(primary_key=True)
    computer_id: Mapped[int] = mapped_column(ForeignKey("computer.id", ondelete="CASCADE"), index=True)
    interface: Mapped[str] = mapped_column(String(NAME), default="")
    address: Mapped[str] = mapped_column(String(64), default="")
    netmask: Mapped[str] = mapped_column(String(64), default="")
    broadcast: Mapped[str] = mapped_column(String(64), default="")
    mac: Mapped[str] = mapped_column(String(32), default="")

    computer: Mapped[Computer] = relationship(back_populates="networks")


class ComputerSoftware(Base):
    """One entry of the software inventory an agent reported (`software` of `oco.agent.update`).

    What is installed on the computer, whoever installed it — not an assignment. Replaced by each full
    inventory; `first_seen` survives while the same name and version stay reported.
    """

    __tablename__ = "computer_software"
    __table_args__ = (
        Index("ix_computer_software_name_computer", "name", "computer_id"),
        Index("ix_computer_software_computer_name", "computer_id", "name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    computer_id: Mapped[int] = mapped_column(ForeignKey("computer.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME))
    version: Mapped[str] = mapped_column(String(NAME), default="")
    version_key: Mapped[str] = mapped_column(binary_string(VERSION_KEY_MAX), default="")
    """`oco.domain.versions.version_key(version)`: compared in SQL for "version < 120"."""
    description: Mapped[str] = mapped_column(Text, default="")
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    """When an inventory first reported this name and version on this computer."""

    computer: Mapped[Computer] = relationship(back_populates="software")


class ComputerPackage(Base):
    """An assignment: this package version is installed on this computer."""

    __tablename__ = "computer_package"
    __table_args__ = (UniqueConstraint("computer_id", "package_id", name="uq_computer_package"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    computer_id: Mapped[int] = mapped_column(ForeignKey("computer.id", ondelete="CASCADE"), index=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("package.id"), index=True)
    installed: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    installed_by_job_id: Mapped[int | None] = mapped_column(Integer, default=None)
    """The job that installed it (kept as a plain number: jobs are purged, the history stays)."""

    computer: Mapped[Computer] = relationship(back_populates="assignments")
    package: Mapped[Package] = relationship()


class ComputerGroup(Base):
    __tablename__ = "computer_group"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    members: Mapped[list[ComputerGroupMember]] = relationship(
        back_populates="group", cascade="all, delete-orphan", order_by="ComputerGroupMember.id"
    )


class ComputerGroupMember(Base):
    __tablename__ = "computer_group_member"
    __table_args__ = (UniqueConstraint("group_id", "computer_id", name="uq_computer_group_member"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("computer_group.id", ondelete="CASCADE"), index=True)
    computer_id: Mapped[int] = mapped_column(ForeignKey("computer.id", ondelete="CASCADE"), index=True)

    group: Mapped[ComputerGroup] = relationship(back_populates="members")
    computer: Mapped[Computer] = relationship()


class PackageGroup(Base):
    __tablename__ = "package_group"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    members: Mapped[list[PackageGroupMember]] = relationship(
        back_populates="group", cascade="all, delete-orphan", order_by="PackageGroupMember.sequence"
    )


class PackageGroupMember(Base):
    """A package in a package group; `sequence` keeps the group's order for deployments."""

    __tablename__ = "package_group_member"
    __table_args__ = (UniqueConstraint("group_id", "package_id", name="uq_package_group_member"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("package_group.id", ondelete="CASCADE"), index=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("package.id", ondelete="CASCADE"), index=True)
    sequence: Mapped[int] = mapped_column(Integer)

    group: Mapped[PackageGroup] = relationship(back_populates="members")
    package: Mapped[Package] = relationship()


class JobContainer(Base):
    """A deployment: metadata shared by its jobs."""

    __tablename__ = "job_container"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    description: Mapped[str] = mapped_column(Text, default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(NAME), default="")
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    start_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    wol: Mapped[bool] = mapped_column(Boolean, default=False)
    shutdown_waked: Mapped[bool] = mapped_column(Boolean, default=False)
    wol_sent: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """When the magic packets went out (once per container)."""
    priority: Mapped[int] = mapped_column(Integer, default=0)
    restart_timeout: Mapped[int] = mapped_column(Integer, default=20)
    """Minutes an agent waits for a logged-in user before a restart/shutdown; negative: never."""
    sequence_mode: Mapped[int] = mapped_column(Integer, default=0)
    agent_ip_ranges: Mapped[str] = mapped_column(Text, default="")
    open_phase: Mapped[int | None] = mapped_column(Integer, default=None)
    """A rollout's last open phase, which the check-in reads (None: no rollout; -1: halted)."""
    windows: Mapped[str | None] = mapped_column(Text, default=None)
    """Maintenance windows in their stored form (`oco.domain.windows.Windows.text`); None: always."""
    max_downloads: Mapped[int | None] = mapped_column(Integer, default=None)
    """At most this many of its computers download a payload at once (`oco.domain.slots`); None: any."""
    retries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """How many more attempts a job the agent could not run (-9999) gets (`oco.domain.retries`)."""
    retry_delay_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    jobs: Mapped[list[Job]] = relationship(
        back_populates="container",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Job.id",
    )


class Job(Base):
    """One computer, one package, one action, with what was copied from the package at creation."""

    __tablename__ = "job"
    __table_args__ = (
        Index("ix_job_computer_state", "computer_id", "state"),
        Index("ix_job_container_state_id", "container_id", "state", "id"),
        Index("ix_job_container_finished", "container_id", "execution_finished"),
        Index("ix_job_state_finished", "state", "execution_finished"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    container_id: Mapped[int] = mapped_column(ForeignKey("job_container.id", ondelete="CASCADE"))
    computer_id: Mapped[int] = mapped_column(ForeignKey("computer.id", ondelete="CASCADE"))
    package_id: Mapped[int | None] = mapped_column(ForeignKey("package.id", ondelete="SET NULL"), index=True)
    """Cleared when the package is deleted; `package_name` keeps what the job was about."""
    package_name: Mapped[str] = mapped_column(String(NAME), default="")
    action: Mapped[str] = mapped_column(String(16))
    sequence: Mapped[int] = mapped_column(Integer)
    state: Mapped[int] = mapped_column(Integer, default=0)
    return_code: Mapped[int | None] = mapped_column(BigInteger, default=None)
    message: Mapped[str] = mapped_column(LongText, default="")
    download_progress: Mapped[int | None] = mapped_column(Integer, default=None)
    procedure: Mapped[str] = mapped_column(Text)
    success_codes: Mapped[str] = mapped_column(String(NAME), default="")
    post_action: Mapped[int] = mapped_column(Integer, default=0)
    wol_shutdown: Mapped[bool] = mapped_column(Boolean, default=False)
    """The shutdown post-action was added because the computer was woken for this container."""
    phase: Mapped[int | None] = mapped_column(Integer, default=None)
    """The rollout phase of the job's computer (0 first; None: no rollout)."""
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    """Which run of the job this is: 1, then 2 after its first retry (`oco.domain.retries`)."""
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """A job waiting for its retry is handed out only from then on; None: whenever it may run."""
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_update: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    download_started: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    execution_started: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    execution_finished: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    container: Mapped[JobContainer] = relationship(back_populates="jobs")
    computer: Mapped[Computer] = relationship()
    package: Mapped[Package | None] = relationship()


class JobAttempt(Base):
    """An earlier run of a job that was retried: when it ran, its return code and the tail of its output.
    The job's own row holds its current (or final) attempt."""

    __tablename__ = "job_attempt"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    state: Mapped[int] = mapped_column(Integer)
    return_code: Mapped[int | None] = mapped_column(BigInteger, default=None)
    message: Mapped[str] = mapped_column(Text, default="")
    """The tail of its output (`oco.domain.retries.excerpt`)."""
    started: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished: Mapped[datetime] = mapped_column(UTCDateTime)


class Rollout(Base):
    """The phased rollout of a container: its rules and where it stands (`oco.domain.phases`)."""

    __tablename__ = "rollout"

    container_id: Mapped[int] = mapped_column(
        ForeignKey("job_container.id", ondelete="CASCADE"), primary_key=True
    )
    phases: Mapped[str] = mapped_column(String(NAME), default="")
    pilot_group_id: Mapped[int | None] = mapped_column(Integer, default=None)
    pilot_group: Mapped[str] = mapped_column(String(NAME), default="")
    """The pilot group's name when the deployment was made (kept: groups are renamed and deleted)."""
    phase_count: Mapped[int] = mapped_column(Integer, default=1)
    success_percent: Mapped[int] = mapped_column(Integer, default=95)
    soak_seconds: Mapped[int] = mapped_column(Integer, default=0)
    halt_failure_rate: Mapped[int | None] = mapped_column(Integer, default=None)
    halt_min_finished: Mapped[int] = mapped_column(Integer, default=10)
    current_phase: Mapped[int] = mapped_column(Integer, default=0)
    phase_opened: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    phase_met: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """When the current phase met its criterion (the soak runs from there)."""
    counted_since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    """Jobs finished since then count for the halt rule (the creation, or the last resume)."""
    halted: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    halted_by: Mapped[str] = mapped_column(String(NAME), default="")
    halt_details: Mapped[dict[str, Any] | None] = mapped_column(JSONText, default=None)
    """The numbers that caused the halt: phase, finished, failed, rate."""
    completed: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """When its last phase finished, or when it was canceled."""
    canceled_by: Mapped[str] = mapped_column(String(NAME), default="")
    """Who canceled it (empty: not canceled)."""


class RolloutEvent(Base):
    """Something a rollout did (phase opened, halted, resumed, canceled, completed), for its history and
    its webhook; `delivered` is set once the webhook took it."""

    __tablename__ = "rollout_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    container_id: Mapped[int] = mapped_column(Integer, index=True)
    """A plain number: the history outlives a purged container until delivered."""
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONText, default=None)
    delivered: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class DownloadSlot(Base):
    """One place of a download limit's scope (`oco.domain.slots`): `container:42`, `server`,
    `network:10.1.0.0/16`, numbered 0 … limit-1. A job takes it with a conditional write; it is free
    again once its time ran out or its job is past downloading (or gone)."""

    __tablename__ = "download_slot"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("job.id", ondelete="SET NULL"), default=None, index=True
    )
    computer_id: Mapped[int | None] = mapped_column(Integer, default=None)
    expires: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class WolTarget(Base):
    """A computer a container's magic packets were sent to, and whether it came up in time."""

    __tablename__ = "wol_target"
    __table_args__ = (UniqueConstraint("container_id", "computer_id", name="uq_wol_target"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    container_id: Mapped[int] = mapped_column(ForeignKey("job_container.id", ondelete="CASCADE"))
    computer_id: Mapped[int] = mapped_column(ForeignKey("computer.id", ondelete="CASCADE"), index=True)
    sent: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """When the magic packets went out; None until the container's start is reached."""
    woken: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    expired: Mapped[bool] = mapped_column(Boolean, default=False)


class User(Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(NAME), unique=True)
    full_name: Mapped[str] = mapped_column(String(NAME), default="")
    password_hash: Mapped[str] = mapped_column(String(NAME))
    role: Mapped[str] = mapped_column(String(ROLE), default=Role.ADMINISTRATOR.text)
    """The text of an `oco.domain.roles.Role`."""
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class UserSession(Base):
    """A console login; the cookie carries a random token, the table only its SHA-256."""

    __tablename__ = "user_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(NAME))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires: Mapped[datetime] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class LoginFailure(Base):
    """The consecutive failed console logins of one account name or client address (login throttling).

    Kept in the database so that every server process sees the same counts; `subject_hash` (SHA-256 of
    the name or address) keys it, `subject` keeps its first characters for people.
    """

    __tablename__ = "login_failure"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    subject_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(NAME))
    failures: Mapped[int] = mapped_column(Integer)
    last_failure: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class ApiToken(Base):
    """A bearer token of the admin API, stored as its SHA-256."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    user: Mapped[User] = relationship()


class AuditLog(Base):
    """Who did what, when: every use case that changes data writes one row."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(NAME), default="")
    username: Mapped[str | None] = mapped_column(String(NAME), default=None, index=True)
    """The console user behind a console or API actor (None for the CLI, agents, housekeeping)."""
    role: Mapped[str | None] = mapped_column(String(ROLE), default=None)
    """That user's role when they acted."""
    action: Mapped[str] = mapped_column(String(NAME))
    object_type: Mapped[str] = mapped_column(String(64), default="")
    object_id: Mapped[int | None] = mapped_column(Integer, default=None)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONText, default=None)


class DailyOutcome(Base):
    """How many jobs succeeded, failed and expired on one day (in the configured time zone).

    Kept by housekeeping from the jobs' finish times, so the history outlives purged containers.
    """

    __tablename__ = "daily_outcome"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    expired: Mapped[int] = mapped_column(Integer, default=0)


class ImportMapping(Base):
    """A row another system's import created here: the source's id of it and ours.

    Kept so that importing the same source again finds what it carried before and changes nothing.
    """

    __tablename__ = "import_mapping"
    __table_args__ = (UniqueConstraint("source", "kind", "source_id", name="uq_import_mapping_source_row"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    """Which system the row came from ("oco-server")."""
    kind: Mapped[str] = mapped_column(String(32))
    """What it is (`oco.domain.ocoimport.ImportKind`)."""
    source_id: Mapped[int] = mapped_column(Integer)
    target_id: Mapped[int] = mapped_column(Integer)


class ServerSetting(Base):
    """A value the server chose itself and keeps (e.g. the generated agent registration key), so that every
    process and command of one installation uses the same one."""

    __tablename__ = "server_setting"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Watermark(Base):
    """How far a housekeeping task that works through time has got."""

    __tablename__ = "watermark"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


for _table in Base.metadata.tables.values():
    # SQLite never reuses an id (a deleted container's id must not name the next one): see migration 0015.
    _table.dialect_options["sqlite"]["autoincrement"] = True
