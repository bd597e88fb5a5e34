"""Use case `oco import oco-server`: carry a running OCO-Server's data over, once, resumably safe.

What it carries (in this order, later kinds refer to earlier ones): computers with their agent and
server keys, uid, last agent timestamp and inventory (OS, version, architecture, networks with MACs,
logins, software); computer groups and their members; package families; packages with their payloads
(`--payloads`: OCO-Server's package directory, `<id>.zip` per package) hashed into our depot; package
groups with their order; assignments; job containers with their jobs (pending ones stay pending and run
here, finished ones are history). The values are turned into ours by `oco.domain.ocoimport`.

Idempotent: every row carried is remembered in `import_mapping` (source "oco-server", kind, OCO's id,
ours), so a second run finds it and changes nothing; rows new at the source are added. A row that
clashes with one of ours (a hostname, a package version, a group name that exists here already) is
skipped with its reason, as is one that refers to a row not carried.

One transaction: the database part commits whole or not at all. Payloads are stored in the depot before
(they are large and streamed) and removed again if the transaction fails, unless a package uses them.
A dry run does all of it in a transaction that is rolled back, and stores no payload (it reads and hashes
the files), so what it reports is what a real run would do.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from oco.db.models import (
    Computer,
    ComputerGroup,
    ComputerGroupMember,
    ComputerNetwork,
    ComputerPackage,
    ComputerSoftware,
    ImportMapping,
    Job,
    JobContainer,
    Package,
    PackageFamily,
    PackageGroup,
    PackageGroupMember,
    WolTarget,
)
from oco.depot import StoredPayload
from oco.domain import ocoimport as rules
from oco.domain.hostnames import hostname_key, normalize_hostname
from oco.domain.ocoimport import ImportKind, ImportReport
from oco.domain.states import PENDING_STATES, JobAction, JobState, PostAction
from oco.errors import InvalidInput, OcoError
from oco.services import audit
from oco.services.listing import chunks
from oco.services.oco_source import NOT_CARRIED, OcoSource, Row, open_source
from oco.services.packages import remove_unused_payload
from oco.services.runtime import Runtime

SOURCE = "oco-server"
"""The `import_mapping.source` of what this use case carries."""
FLUSH_EVERY = 500
"""Rows added between flushes (and progress reports)."""
LOGINS_KEPT = 100
"""The newest logins of a computer that are carried."""

Progress = Callable[[str, int, int], None]
"""Called as rows are carried: kind, rows done, rows of that kind at the source."""


@dataclass(frozen=True, slots=True)
class OcoImportRequest:
    """What to import and how: the source database, OCO's package directory, its time zone."""

    database_url: str
    payloads: Path | None = None
    dry_run: bool = False
    time_zone: str | None = None
    """The zone OCO-Server wrote its (naive) times in; default: our configured `time_zone`."""


class _DryRun(Exception):
    """Rolls the dry run's transaction back."""


def import_oco_server(
    rt: Runtime, request: OcoImportRequest, actor: str, progress: Progress | None = None
) -> ImportReport:
    """Carry an OCO-Server database's data over (see the module's text); answers with what was done,
    or with a dry run, what would be."""
    zone = _zone(request.time_zone, rt)
    if request.payloads is not None and not request.payloads.is_dir():
        raise InvalidInput(f"payload directory {str(request.payloads)!r} does not exist", field="payloads")
    report = ImportReport(dry_run=request.dry_run)
    stored: list[str] = []
    with open_source(request.database_url) as source:
        try:
            with rt.depot.storing():
                payloads = _payloads(rt, source, request, report, stored, progress)
                try:
                    with rt.transaction() as session:
                        _Importer(session, source, report, zone, rt.now(), payloads, progress).run()
                        if request.dry_run:
                            raise _DryRun
                        audit.record(session, actor, "import.oco-server", "import", None, **_summary(report))
                except _DryRun:
                    pass
        except BaseException:
            for digest in stored:
                remove_unused_payload(rt, digest)
            raise
    return report


def _zone(name: str | None, rt: Runtime) -> ZoneInfo:
    if name is None:
        return rt.settings.zone
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r}", field="time_zone") from None


def _summary(report: ImportReport) -> dict[str, Any]:
    return {
        kind: {
            "imported": r.imported,
            "already_imported": r.already_imported,
            "updated": r.updated,
            "skipped": len(r.skipped),
        }
        for kind, r in report.kinds.items()
    }


def _mapping(session: Session, kind: ImportKind) -> dict[int, int]:
    rows = session.execute(
        select(ImportMapping.source_id, ImportMapping.target_id).where(
            ImportMapping.source == SOURCE, ImportMapping.kind == str(kind)
        )
    )
    return {source_id: target_id for source_id, target_id in rows}


def _payloads(
    rt: Runtime,
    source: OcoSource,
    request: OcoImportRequest,
    report: ImportReport,
    stored: list[str],
    progress: Progress | None,
) -> dict[int, StoredPayload]:
    """The payload of every package not carried yet (or carried without one) whose file is in OCO's
    package directory: stored in the depot (a dry run only hashes it)."""
    if request.payloads is None:
        return {}
    with rt.reading() as session:
        carried = _mapping(session, ImportKind.PACKAGE)
        without = set(session.scalars(select(Package.id).where(Package.payload_sha256.is_(None))))
    found: dict[int, StoredPayload] = {}
    package_ids = [
        row["id"]
        for row in source.rows("package", [])
        if row["id"] not in carried or carried[row["id"]] in without
    ]
    for done, package_id in enumerate(package_ids, start=1):
        path = request.payloads / f"{int(package_id)}.zip"
        if path.is_file():
            if request.dry_run:
                found[package_id] = _hashed(path)
            else:
                payload = rt.depot.put_file(path)
                stored.append(payload.sha256)
                found[package_id] = payload
        if progress is not None and (done % FLUSH_EVERY == 0 or done == len(package_ids)):
            progress("payload", done, len(package_ids))
    return found


def _hashed(path: Path) -> StoredPayload:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return StoredPayload(digest.hexdigest(), size)


def _text(value: Any, limit: int | None = 255) -> str:
    text = "" if value is None else str(value)
    return text[:limit] if limit is not None else text


@dataclass(frozen=True, slots=True)
class _Logins:
    entries: list[dict[str, str]]
    newest: datetime | None


@dataclass(frozen=True, slots=True)
class _Software:
    name: str
    version: str
    description: str
    seen: datetime


@dataclass(frozen=True, slots=True)
class _Children:
    """What OCO keeps of a batch of computers in tables of their own, by OCO's computer id."""

    networks: dict[int, list[Row]]
    logins: dict[int, _Logins]
    software: dict[int, list[_Software]]


def _trace(computer: Computer) -> rules.AgentTrace:
    return rules.AgentTrace(
        agent_key=computer.agent_key,
        server_key=computer.server_key,
        agent_timestamp=computer.last_agent_timestamp,
        last_seen=computer.last_seen,
        inventory_updated=computer.inventory_updated,
    )


@dataclass(frozen=True, slots=True)
class _PackageInfo:
    name: str
    install_post_action: PostAction
    uninstall_post_action: PostAction


class _Importer:
    """One import run inside the caller's transaction."""

    def __init__(
        self,
        session: Session,
        source: OcoSource,
        report: ImportReport,
        zone: ZoneInfo,
        now: datetime,
        payloads: dict[int, StoredPayload],
        progress: Progress | None,
    ) -> None:
        self.session = session
        self.source = source
        self.report = report
        self.zone = zone
        self.now = now
        self.payloads = payloads
        self.progress = progress
        self.users = self._system_users()
        self.without_payload: list[str] = []
        self._catalog: dict[int, Row] | None = None
        self._users_by_id: dict[int, str] | None = None

    def run(self) -> None:
        self.computers()
        self.computer_groups()
        self.families()
        self.packages()
        self.package_groups()
        self.assignments()
        self.containers()
        self.jobs()
        self.not_carried()

    # Helpers ---------------------------------------------------------------------------------------

    def _utc(self, value: datetime | None) -> datetime | None:
        return rules.utc(value, self.zone)

    def _remember(self, kind: ImportKind, pairs: Sequence[tuple[int, int]]) -> None:
        if pairs:
            self.session.execute(
                insert(ImportMapping),
                [{"source": SOURCE, "kind": str(kind), "source_id": s, "target_id": t} for s, t in pairs],
            )
        self.report.kind(kind).imported += len(pairs)

    def _tick(self, kind: ImportKind, done: int, total: int) -> None:
        if self.progress is not None and (done % FLUSH_EVERY == 0 or done == total):
            self.progress(str(kind), done, total)

    def _system_users(self) -> dict[int, str]:
        if not self.source.has("system_user"):
            return {}
        return {row["id"]: _text(row["username"]) for row in self.source.rows("system_user", ["username"])}

    def _author(self, row: Row) -> str:
        user_id = row.get("created_by_system_user_id")
        if user_id is not None and user_id in self.users:
            return self.users[user_id]
        return _text(row.get("author"))

    def _grouped(
        self, table: str, columns: Sequence[str], by: str, ids: Sequence[int], *aliases: tuple[str, ...]
    ) -> dict[int, list[Row]]:
        """The rows of `table` whose column `by` holds one of `ids`, by that column."""
        grouped: dict[int, list[Row]] = defaultdict(list)
        if self.source.has(table) and ids:
            for row in self.source.rows(table, [*columns, by], *aliases, where=(by, ids)):
                grouped[row[by]].append(row)
        return grouped

    # Computers -------------------------------------------------------------------------------------

    def computers(self) -> None:
        """Computers a batch at a time, each batch with its networks, logins and software; those imported
        before catch up with what their agent did at the source since."""
        kind = ImportKind.COMPUTER
        mapped = _mapping(self.session, kind)
        taken = set(self.session.scalars(select(Computer.hostname_key)))
        total = self.source.count("computer")
        batch: list[Row] = []
        known: list[Row] = []
        for done, row in enumerate(self.source.rows("computer", _COMPUTER_COLUMNS), start=1):
            if row["id"] in mapped:
                self.report.kind(kind).already_imported += 1
                known.append(row)
            else:
                batch.append(row)
            if len(batch) >= FLUSH_EVERY:
                self._computer_batch(batch, taken)
            if len(known) >= FLUSH_EVERY:
                self._catch_up_computers(known, mapped)
            self._tick(kind, done, total)
        self._computer_batch(batch, taken)
        self._catch_up_computers(known, mapped)

    def _computer_batch(self, rows: list[Row], taken: set[str]) -> None:
        children = self._children([row["id"] for row in rows])
        pending: list[tuple[int, Computer]] = []
        for row in rows:
            computer = self._computer(row, taken)
            if computer is not None:
                self._inventory(computer, row, children)
                self.session.add(computer)
                pending.append((row["id"], computer))
        self.session.flush()
        self._remember(ImportKind.COMPUTER, [(source_id, c.id) for source_id, c in pending])
        for _, computer in pending:
            self.session.expunge(computer)
        rows.clear()

    def _catch_up_computers(self, rows: list[Row], mapped: dict[int, int]) -> None:
        """Keys the agent got at the source after the first run, its newer timestamps, a newer inventory."""
        by_ours = {mapped[row["id"]]: row for row in rows}
        ours = {
            c.id: c
            for chunk in chunks(list(by_ours))
            for c in self.session.scalars(select(Computer).where(Computer.id.in_(chunk)))
        }
        newer: list[tuple[Row, Computer]] = []
        for our_id, row in by_ours.items():
            computer = ours.get(our_id)
            if computer is None:  # deleted here since: it stays deleted
                continue
            mine = _trace(computer)
            merged = rules.caught_up(mine, self._trace(row))
            inventory = rules.inventory_is_newer(computer.inventory_updated, self._utc(row["last_update"]))
            if merged == mine and not inventory:
                continue
            computer.agent_key, computer.server_key = merged.agent_key, merged.server_key
            computer.last_agent_timestamp, computer.last_seen = merged.agent_timestamp, merged.last_seen
            if inventory:
                newer.append((row, computer))
            self.report.kind(ImportKind.COMPUTER).updated += 1
        if newer:
            children = self._children([row["id"] for row, _ in newer])
            for row, computer in newer:
                self._inventory(computer, row, children)
                computer.networks_digest = ""  # the next check-in stores what the agent reports
        self.session.flush()
        for computer in ours.values():
            self.session.expunge(computer)
        rows.clear()

    def _trace(self, row: Row) -> rules.AgentTrace:
        return rules.AgentTrace(
            agent_key=_text(row["agent_key"]),
            server_key=_text(row["server_key"]),
            agent_timestamp=float(row["agent_timestamp"] or 0.0),
            last_seen=self._utc(row["last_ping"]),
            inventory_updated=self._utc(row["last_update"]),
        )

    def _children(self, ids: Sequence[int]) -> _Children:
        networks = self._grouped(
            "computer_network",
            ["interface", "netmask", "broadcast", "mac", "nic_number"],
            "computer_id",
            ids,
            ("address", "addr"),
        )
        return _Children(networks, self._logins(ids), self._software(ids))

    def _computer(self, row: Row, taken: set[str]) -> Computer | None:
        kind = ImportKind.COMPUTER
        try:
            hostname = normalize_hostname(_text(row["hostname"], None))
        except OcoError as exc:
            self.report.skip(kind, row["id"], _text(row["hostname"]), exc.message)
            return None
        if hostname_key(hostname) in taken:
            self.report.skip(kind, row["id"], hostname, f"a computer named {hostname!r} exists here already")
            return None
        taken.add(hostname_key(hostname))
        trace = self._trace(row)
        return Computer(
            hostname=hostname,
            uid=_text(row["uid"]),
            notes=_text(row["notes"], None),
            agent_key=trace.agent_key,
            server_key=trace.server_key,
            last_agent_timestamp=trace.agent_timestamp,
            last_server_timestamp=0.0,
            last_seen=trace.last_seen,
            remote_address=_text(row["remote_address"], 64),
            force_update=bool(row["force_update"]),
            created=self._utc(row["created"]) or self.now,
        )

    def _inventory(self, computer: Computer, row: Row, children: _Children) -> None:
        """The inventory of an OCO computer: its columns, networks, logins and software."""
        computer.agent_version = _text(row["agent_version"])
        computer.os = _text(row["os"])
        computer.os_version = _text(row["os_version"])
        computer.architecture = _text(row["architecture"])
        computer.kernel_version = _text(row["kernel_version"])
        computer.inventory = {
            name: row[name] for name in _INVENTORY_COLUMNS if row.get(name) not in (None, "")
        }
        computer.inventory_updated = self._utc(row["last_update"])
        history = children.logins.get(row["id"], _Logins([], None))
        computer.logins = history.entries
        computer.newest_login = history.newest
        computer.software = [
            ComputerSoftware(
                name=entry.name, version=entry.version, description=entry.description, first_seen=entry.seen
            )
            for entry in children.software.get(row["id"], [])
        ]
        rows = sorted(children.networks.get(row["id"], []), key=lambda n: (n["nic_number"] or 0, n["id"]))
        computer.networks = [
            ComputerNetwork(
                interface=_text(n["interface"]),
                address=_text(n["address"], 64),
                netmask=_text(n["netmask"], 64),
                broadcast=_text(n["broadcast"], 64),
                mac=_text(n["mac"], 32),
            )
            for n in rows
        ]

    def _logins(self, computer_ids: Sequence[int]) -> dict[int, _Logins]:
        logons_table, user_key = "domain_user_logon", "domain_user_id"
        if not self.source.has(logons_table):
            logons_table, user_key = "domainuser_logon", "domainuser_id"
        names = self._user_names()
        if not self.source.has(logons_table) or names is None:
            return {}
        logons = self._grouped(logons_table, [user_key, "console", "timestamp"], "computer_id", computer_ids)
        carried: dict[int, _Logins] = {}
        for computer_id, rows in logons.items():
            newest = sorted(rows, key=lambda r: (r["timestamp"] or datetime.min, r["id"]), reverse=True)
            kept = [(r, self._utc(r["timestamp"])) for r in newest[:LOGINS_KEPT]]
            carried[computer_id] = _Logins(
                [rules.login_entry(names.get(r[user_key], ""), r["console"], at) for r, at in kept],
                max((at for _, at in kept if at is not None), default=None),
            )
        return carried

    def _user_names(self) -> dict[int, str] | None:
        """OCO's domain users by id (read once); None when the schema has none."""
        if self._users_by_id is None:
            table = next((t for t in ("domain_user", "domainuser") if self.source.has(t)), None)
            if table is None:
                return None
            self._users_by_id = {r["id"]: _text(r["username"]) for r in self.source.rows(table, ["username"])}
        return self._users_by_id

    def _software(self, computer_ids: Sequence[int]) -> dict[int, list[_Software]]:
        if not self.source.has("software") or not self.source.has("computer_software") or not computer_ids:
            return {}
        if self._catalog is None:  # OCO's software list, read once: each entry is shared by many computers
            columns = ["name", "version", "description"]
            self._catalog = {row["id"]: row for row in self.source.rows("software", columns)}
        catalog = self._catalog
        installed: dict[int, list[_Software]] = defaultdict(list)
        columns = ["computer_id", "software_id", "version", "installed"]
        for row in self.source.rows("computer_software", columns, where=("computer_id", computer_ids)):
            entry = catalog.get(row["software_id"])
            if entry is None or not _text(entry["name"]).strip():
                continue
            installed[row["computer_id"]].append(
                _Software(
                    name=_text(entry["name"]),
                    # OCO 1.0 kept the version per computer, later per software entry
                    version=_text(entry["version"] if entry["version"] is not None else row["version"]),
                    description=_text(entry["description"], None),
                    seen=self._utc(row["installed"]) or self.now,
                )
            )
        return installed

    # Groups ----------------------------------------------------------------------------------------

    def computer_groups(self) -> None:
        groups = self._groups(
            ImportKind.COMPUTER_GROUP, "computer_group", "parent_computer_group_id", ComputerGroup
        )
        computers = _mapping(self.session, ImportKind.COMPUTER)
        self._members(
            ImportKind.COMPUTER_GROUP_MEMBER,
            "computer_group_member",
            ("computer_group_id", "computer_id"),
            groups,
            computers,
            lambda group_id, computer_id, _: ComputerGroupMember(group_id=group_id, computer_id=computer_id),
        )

    def package_groups(self) -> None:
        groups = self._groups(
            ImportKind.PACKAGE_GROUP, "package_group", "parent_package_group_id", PackageGroup
        )
        packages = _mapping(self.session, ImportKind.PACKAGE)
        rows = list(self.source.rows("package_group_member", ["package_group_id", "package_id", "sequence"]))
        by_group: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
        for row in rows:
            by_group[row["package_group_id"]].append((row["id"], row["package_id"], row["sequence"] or 0))
        position = {
            member_id: index
            for members in by_group.values()
            for index, member_id in enumerate(rules.package_group_order(members), start=1)
        }
        existing = Counter(
            self.session.scalars(select(PackageGroupMember.group_id))
        )  # groups carried before keep their numbering after their members
        self._members(
            ImportKind.PACKAGE_GROUP_MEMBER,
            "package_group_member",
            ("package_group_id", "package_id"),
            groups,
            packages,
            lambda group_id, package_id, member_id: PackageGroupMember(
                group_id=group_id, package_id=package_id, sequence=existing[group_id] + position[member_id]
            ),
        )

    def _groups(
        self,
        kind: ImportKind,
        table: str,
        parent: str,
        model: type[ComputerGroup] | type[PackageGroup],
    ) -> dict[int, int]:
        mapped = _mapping(self.session, kind)
        rows = list(self.source.rows(table, ["name", parent]))
        names = rules.group_names(rules.GroupRow(r["id"], _text(r["name"], None), r[parent]) for r in rows)
        taken = set(self.session.scalars(select(model.name)))
        new: list[tuple[int, ComputerGroup | PackageGroup]] = []
        for done, row in enumerate(rows, start=1):
            if row["id"] in mapped:
                self.report.kind(kind).already_imported += 1
                continue
            name = names[row["id"]][:255]
            if not name:
                self.report.skip(kind, row["id"], "", "the group has no name")
            elif name in taken:
                self.report.skip(kind, row["id"], name, f"a group named {name!r} exists here already")
            else:
                taken.add(name)
                group = model(name=name, created=self.now)
                self.session.add(group)
                new.append((row["id"], group))
            self._tick(kind, done, len(rows))
        self.session.flush()
        self._remember(kind, [(source_id, group.id) for source_id, group in new])
        return {**mapped, **{source_id: group.id for source_id, group in new}}

    def _members(
        self,
        kind: ImportKind,
        table: str,
        keys: tuple[str, str],
        groups: dict[int, int],
        targets: dict[int, int],
        make: Callable[[int, int, int], ComputerGroupMember | PackageGroupMember],
    ) -> None:
        mapped = _mapping(self.session, kind)
        group_key, target_key = keys
        if kind is ImportKind.COMPUTER_GROUP_MEMBER:
            present = select(ComputerGroupMember.group_id, ComputerGroupMember.computer_id)
        else:
            present = select(PackageGroupMember.group_id, PackageGroupMember.package_id)
        seen = _pairs(self.session, present)
        new: list[tuple[int, ComputerGroupMember | PackageGroupMember]] = []
        rows = list(self.source.rows(table, list(keys)))
        noun = "computer" if kind is ImportKind.COMPUTER_GROUP_MEMBER else "package"
        for done, row in enumerate(rows, start=1):
            label = f"{noun} {row[target_key]} in group {row[group_key]}"
            if row["id"] in mapped:
                self.report.kind(kind).already_imported += 1
            elif row[group_key] not in groups:
                self.report.skip(kind, row["id"], label, "its group was not imported")
            elif row[target_key] not in targets:
                self.report.skip(kind, row["id"], label, f"its {noun} was not imported")
            elif (groups[row[group_key]], targets[row[target_key]]) in seen:
                self.report.skip(kind, row["id"], label, f"the {noun} is in the group already")
            else:
                pair = (groups[row[group_key]], targets[row[target_key]])
                seen.add(pair)
                member = make(*pair, row["id"])
                self.session.add(member)
                new.append((row["id"], member))
            self._tick(kind, done, len(rows))
        self.session.flush()
        self._remember(kind, [(source_id, member.id) for source_id, member in new])

    # Packages --------------------------------------------------------------------------------------

    def families(self) -> None:
        kind = ImportKind.PACKAGE_FAMILY
        mapped = _mapping(self.session, kind)
        ours: dict[str, int | PackageFamily] = {
            name: family_id
            for name, family_id in self.session.execute(select(PackageFamily.name, PackageFamily.id))
        }
        rows = list(self.source.rows("package_family", ["name", "notes", "icon"]))
        carried: list[tuple[int, int | PackageFamily]] = []
        for done, row in enumerate(rows, start=1):
            name = _text(row["name"]).strip()
            if row["id"] in mapped:
                self.report.kind(kind).already_imported += 1
            elif not name:
                self.report.skip(kind, row["id"], "", "the package family has no name")
            elif name in ours:  # the same software: its versions join the family of that name
                carried.append((row["id"], ours[name]))
            else:
                family = PackageFamily(
                    name=name, notes=_text(row["notes"], None), icon=_icon(row["icon"]), created=self.now
                )
                self.session.add(family)
                ours[name] = family
                carried.append((row["id"], family))
            self._tick(kind, done, len(rows))
        self.session.flush()
        self._remember(kind, [(s, t if isinstance(t, int) else t.id) for s, t in carried])

    def packages(self) -> None:
        kind = ImportKind.PACKAGE
        mapped = _mapping(self.session, kind)
        families = _mapping(self.session, ImportKind.PACKAGE_FAMILY)
        family_names = {
            family_id: name
            for family_id, name in self.session.execute(select(PackageFamily.id, PackageFamily.name))
        }
        taken = _pairs(self.session, select(Package.family_id, Package.version))
        total = self.source.count("package")
        new: list[tuple[int, Package]] = []
        late: list[int] = []
        for done, row in enumerate(self.source.rows("package", _PACKAGE_COLUMNS), start=1):
            version = _text(row["version"]).strip()
            family_id = families.get(row["package_family_id"])
            label = f"{family_names.get(family_id or -1, '?')} {version}"
            if row["id"] in mapped:
                self.report.kind(kind).already_imported += 1
                late.append(row["id"])
            elif family_id is None:
                self.report.skip(kind, row["id"], label, "its package family was not imported")
            elif not version:
                self.report.skip(kind, row["id"], label, "the package has no version")
            elif (family_id, version) in taken:
                self.report.skip(kind, row["id"], label, f"package {label!r} exists here already")
            else:
                package = self._package(row, family_id, version, label)
                if package is not None:
                    taken.add((family_id, version))
                    self.session.add(package)
                    new.append((row["id"], package))
            self._tick(kind, done, total)
        self.session.flush()
        self._remember(kind, [(source_id, package.id) for source_id, package in new])
        self._attach_late_payloads(mapped, late)

    def _attach_late_payloads(self, mapped: dict[int, int], source_ids: Sequence[int]) -> None:
        """Packages carried before without a payload get theirs once its file is there (a first run
        without --payloads)."""
        for source_id in source_ids:
            payload = self.payloads.get(source_id)
            package = self.session.get(Package, mapped[source_id]) if payload is not None else None
            if payload is None or package is None or package.payload_sha256 is not None:
                continue
            package.payload_sha256, package.payload_size = payload.sha256, payload.size
            self.report.kind(ImportKind.PACKAGE).updated += 1

    def _package(self, row: Row, family_id: int, version: str, label: str) -> Package | None:
        try:
            values = {
                "install_success_codes": rules.success_codes(row["install_procedure_success_return_codes"]),
                "uninstall_success_codes": rules.success_codes(
                    row["uninstall_procedure_success_return_codes"]
                ),
                "install_post_action": int(rules.post_action(row["install_procedure_post_action"])),
                "uninstall_post_action": int(rules.post_action(row["uninstall_procedure_post_action"])),
                "upgrade_behavior": str(rules.upgrade_behavior(row["upgrade_behavior"])),
            }
        except OcoError as exc:
            self.report.skip(ImportKind.PACKAGE, row["id"], label, exc.message)
            return None
        payload = self.payloads.get(row["id"])
        if payload is None:
            self.without_payload.append(label)
        return Package(
            family_id=family_id,
            version=version[:255],
            notes=_text(row["notes"], None),
            install_procedure=_text(row["install_procedure"], None),
            uninstall_procedure=_text(row["uninstall_procedure"], None),
            compatible_os=rules.compatibility(row["compatible_os"])[:255],
            compatible_os_version=rules.compatibility(row["compatible_os_version"])[:255],
            compatible_architecture=rules.compatibility(row["compatible_architecture"])[:255],
            download_for_uninstall=bool(row["download_for_uninstall"]),
            payload_sha256=payload.sha256 if payload else None,
            payload_size=payload.size if payload else None,
            author=self._author(row),
            created=self._utc(row["created"]) or self.now,
            **values,
        )

    def assignments(self) -> None:
        kind = ImportKind.ASSIGNMENT
        mapped = _mapping(self.session, kind)
        computers = _mapping(self.session, ImportKind.COMPUTER)
        packages = _mapping(self.session, ImportKind.PACKAGE)
        self._drop_removed_assignments(mapped)
        seen = _pairs(self.session, select(ComputerPackage.computer_id, ComputerPackage.package_id))
        total = self.source.count("computer_package")
        new: list[tuple[int, ComputerPackage]] = []
        for done, row in enumerate(
            self.source.rows("computer_package", ["computer_id", "package_id", "installed"]), start=1
        ):
            label = f"package {row['package_id']} on computer {row['computer_id']}"
            if row["id"] in mapped:
                self.report.kind(kind).already_imported += 1
            elif row["computer_id"] not in computers:
                self.report.skip(kind, row["id"], label, "its computer was not imported")
            elif row["package_id"] not in packages:
                self.report.skip(kind, row["id"], label, "its package was not imported")
            elif (computers[row["computer_id"]], packages[row["package_id"]]) in seen:
                self.report.skip(kind, row["id"], label, "the package is assigned to the computer already")
            else:
                pair = (computers[row["computer_id"]], packages[row["package_id"]])
                seen.add(pair)
                assignment = ComputerPackage(
                    computer_id=pair[0], package_id=pair[1], installed=self._utc(row["installed"]) or self.now
                )
                self.session.add(assignment)
                new.append((row["id"], assignment))
            if len(new) % FLUSH_EVERY == 0:
                self.session.flush()
            self._tick(kind, done, total)
        self.session.flush()
        self._remember(kind, [(source_id, a.id) for source_id, a in new])

    def _drop_removed_assignments(self, mapped: dict[int, int]) -> None:
        """Assignments carried before that OCO-Server has removed since (its agent uninstalled the
        package there) are removed here too; those removed here stay removed."""
        present = {row["id"] for row in self.source.rows("computer_package", [])}
        gone = [target for source_id, target in mapped.items() if source_id not in present]
        removed = 0
        for chunk in chunks(gone):
            result = self.session.execute(delete(ComputerPackage).where(ComputerPackage.id.in_(chunk)))
            removed += int(getattr(result, "rowcount", 0) or 0)
        self.report.kind(ImportKind.ASSIGNMENT).updated += removed

    # Deployments -----------------------------------------------------------------------------------

    def containers(self) -> None:
        kind = ImportKind.JOB_CONTAINER
        mapped = _mapping(self.session, kind)
        timeouts: dict[int, list[int | None]] = defaultdict(list)
        for row in self.source.rows(self.source.job_table, ["job_container_id", "post_action_timeout"]):
            timeouts[row["job_container_id"]].append(row["post_action_timeout"])
        rows = list(self.source.rows("job_container", _CONTAINER_COLUMNS))
        new: list[tuple[int, JobContainer]] = []
        for done, row in enumerate(rows, start=1):
            if row["id"] in mapped:
                self.report.kind(kind).already_imported += 1
                continue
            wol = rules.container_wol(row["wol_sent"])
            start = self._utc(row["start_time"]) or self.now
            container = JobContainer(
                name=_text(row["name"]) or f"OCO job container {row['id']}",
                description=_text(row["notes"], None),
                author=self._author(row),
                created=self._utc(row["created"]) or self.now,
                enabled=row["enabled"] is None or bool(row["enabled"]),
                start_time=start,
                end_time=self._utc(row["end_time"]),
                wol=wol.wol,
                shutdown_waked=wol.wol and bool(row["shutdown_waked_after_completion"]),
                wol_sent=start if wol.sent else None,
                priority=rules.priority(row["priority"]),
                restart_timeout=rules.restart_timeout(timeouts.get(row["id"], [])),
                sequence_mode=int(rules.sequence_mode(row["sequence_mode"])),
                agent_ip_ranges=_text(row["agent_ip_ranges"], None).strip(),
            )
            if _text(row["time_frames"], None).strip():
                self.report.notes.append(
                    f"job container {container.name!r} has time frames ({_text(row['time_frames'])}), "
                    "which we do not have: its jobs run at any time between its start and end"
                )
            self.session.add(container)
            new.append((row["id"], container))
            self._tick(kind, done, len(rows))
        self.session.flush()
        self._remember(kind, [(source_id, c.id) for source_id, c in new])

    def jobs(self) -> None:
        kind = ImportKind.JOB
        mapped = _mapping(self.session, kind)
        containers = _mapping(self.session, ImportKind.JOB_CONTAINER)
        computers = _mapping(self.session, ImportKind.COMPUTER)
        packages = _mapping(self.session, ImportKind.PACKAGE)
        infos = self._package_infos(packages.values())
        by_id = {
            c.id: c
            for chunk in chunks(list(containers.values()))
            for c in self.session.scalars(select(JobContainer).where(JobContainer.id.in_(chunk)))
        }
        wol_targets: dict[tuple[int, int], datetime | None] = {}
        total = self.source.count(self.source.job_table)
        pending: list[tuple[int, Job]] = []
        known: list[tuple[int, Row]] = []
        for done, row in enumerate(
            self.source.rows(self.source.job_table, _JOB_COLUMNS, ("procedure", "package_procedure")),
            start=1,
        ):
            label = f"job {row['id']} of container {row['job_container_id']}"
            if row["id"] in mapped:
                self.report.kind(kind).already_imported += 1
                known.append((mapped[row["id"]], row))
            elif row["job_container_id"] not in containers:
                self.report.skip(kind, row["id"], label, "its job container was not imported")
            elif row["computer_id"] not in computers:
                self.report.skip(kind, row["id"], label, "its computer was not imported")
            elif row["package_id"] not in packages:
                self.report.skip(kind, row["id"], label, "its package was not imported")
            else:
                container = by_id[containers[row["job_container_id"]]]
                package_id = packages[row["package_id"]]
                job = self._job(row, container, computers[row["computer_id"]], package_id, infos[package_id])
                if job is not None:
                    self.session.add(job)
                    pending.append((row["id"], job))
                    self._wol_target(wol_targets, container, job, row["wol_shutdown_set"])
            if len(pending) >= FLUSH_EVERY:
                self._flush_jobs(pending)
            if len(known) >= FLUSH_EVERY:
                self._catch_up_jobs(known)
            self._tick(kind, done, total)
        self._flush_jobs(pending)
        self._catch_up_jobs(known)
        self._add_wol_targets(wol_targets)

    def _catch_up_jobs(self, known: list[tuple[int, Row]]) -> None:
        """Jobs carried while waiting that OCO-Server's agents have run since take their course from
        there (`oco.domain.ocoimport.job_moved_on`), so they do not run again here."""
        jobs = {
            job.id: job
            for chunk in chunks([job_id for job_id, _ in known])
            for job in self.session.scalars(select(Job).where(Job.id.in_(chunk)))
        }
        for job_id, row in known:
            job = jobs.get(job_id)
            if job is None:
                continue
            try:
                theirs = rules.job_state(row["state"])
                code = rules.return_code(row["return_code"])
            except OcoError:
                continue
            if not rules.job_moved_on(JobState(job.state), theirs):
                continue
            job.state = int(theirs)
            job.return_code = code
            job.message = rules.job_message(row["state"], row["message"])
            progress = row["download_progress"]
            job.download_progress = None if progress is None else round(float(progress))
            job.download_started = self._utc(row["download_started"])
            job.execution_started = self._utc(row["execution_started"])
            job.execution_finished = self._utc(row["execution_finished"]) or (
                self._utc(row["last_update"]) if theirs.is_final else None
            )
            job.last_update = self._utc(row["last_update"]) or job.execution_finished or self.now
            if theirs.is_final:
                job.wol_shutdown = False
            self.report.kind(ImportKind.JOB).updated += 1
        self.session.flush()
        for job in jobs.values():
            self.session.expunge(job)
        known.clear()

    def _flush_jobs(self, pending: list[tuple[int, Job]]) -> None:
        self.session.flush()
        self._remember(ImportKind.JOB, [(source_id, job.id) for source_id, job in pending])
        for _, job in pending:
            self.session.expunge(job)
        pending.clear()

    def _package_infos(self, package_ids: Iterable[int]) -> dict[int, _PackageInfo]:
        ids = list(package_ids)
        infos: dict[int, _PackageInfo] = {}
        for chunk in chunks(ids):
            rows = self.session.execute(
                select(
                    Package.id,
                    PackageFamily.name,
                    Package.version,
                    Package.install_post_action,
                    Package.uninstall_post_action,
                )
                .join(PackageFamily, Package.family_id == PackageFamily.id)
                .where(Package.id.in_(chunk))
            )
            for package_id, family, version, install, uninstall in rows:
                infos[package_id] = _PackageInfo(
                    f"{family} {version}", PostAction(install), PostAction(uninstall)
                )
        return infos

    def _job(
        self, row: Row, container: JobContainer, computer_id: int, package_id: int, package: _PackageInfo
    ) -> Job | None:
        label = f"job {row['id']} of container {row['job_container_id']}"
        action = JobAction.UNINSTALL if row["is_uninstall"] else JobAction.INSTALL
        own = package.uninstall_post_action if action is JobAction.UNINSTALL else package.install_post_action
        try:
            state = rules.job_state(row["state"])
            code = rules.return_code(row["return_code"])
            codes = rules.success_codes(row["success_return_codes"])
            post = rules.job_post_action(row["post_action"], row["wol_shutdown_set"] is not None, own)
        except OcoError as exc:
            self.report.skip(ImportKind.JOB, row["id"], label, exc.message)
            return None
        finished = self._utc(row["execution_finished"])
        if finished is None and state.is_final:  # OCO 1.0 kept only the time of the last change
            finished = self._utc(row["last_update"])
        progress = row["download_progress"]
        return Job(
            container_id=container.id,
            computer_id=computer_id,
            package_id=package_id,
            package_name=package.name[:255],
            action=str(action),
            sequence=int(row["sequence"] or 0),
            state=int(state),
            return_code=code,
            message=rules.job_message(row["state"], row["message"]),
            download_progress=None if progress is None else round(float(progress)),
            procedure=_text(row["procedure"], None),
            success_codes=codes,
            post_action=int(post.post_action),
            wol_shutdown=post.wol_shutdown and state in PENDING_STATES,
            created=container.created,
            last_update=self._utc(row["last_update"]) or finished,
            download_started=self._utc(row["download_started"]),
            execution_started=self._utc(row["execution_started"]),
            execution_finished=finished,
        )

    def _wol_target(
        self,
        targets: dict[tuple[int, int], datetime | None],
        container: JobContainer,
        job: Job,
        wol_shutdown_set: datetime | None,
    ) -> None:
        """Remember whom a WOL container still has to wake (not sent yet), or whose automatic shutdown
        may still be removed (sent, and the job still pending)."""
        if not container.wol:
            return
        key = (container.id, job.computer_id)
        if container.wol_sent is None:
            targets.setdefault(key, None)
        elif job.wol_shutdown and wol_shutdown_set is not None:
            targets[key] = self._utc(wol_shutdown_set)

    def _add_wol_targets(self, targets: dict[tuple[int, int], datetime | None]) -> None:
        existing = _pairs(self.session, select(WolTarget.container_id, WolTarget.computer_id))
        rows = [
            {"container_id": container_id, "computer_id": computer_id, "sent": sent}
            for (container_id, computer_id), sent in targets.items()
            if (container_id, computer_id) not in existing
        ]
        if rows:
            self.session.execute(insert(WolTarget), rows)

    def not_carried(self) -> None:
        if self.without_payload:
            shown = ", ".join(repr(name) for name in self.without_payload[:5])
            more = f" and {len(self.without_payload) - 5} more" if len(self.without_payload) > 5 else ""
            self.report.notes.append(
                f"{len(self.without_payload)} package(s) carried without a payload (no <id>.zip in the "
                f"--payloads directory): {shown}{more}"
            )
        for table, what in NOT_CARRIED.items():
            if self.source.has(table):
                count = self.source.count(table)
                if count:
                    self.report.notes.append(f"not carried: {count} {what}")


def _pairs(session: Session, query: Any) -> set[tuple[int, Any]]:
    return {(first, second) for first, second in session.execute(query)}


def _icon(value: Any) -> str | None:
    if not value:
        return None
    data = value if isinstance(value, bytes) else str(value).encode()
    return "data:image/png;base64," + base64.b64encode(data).decode()


_INVENTORY_COLUMNS = (
    "os",
    "os_version",
    "os_license",
    "os_locale",
    "kernel_version",
    "architecture",
    "cpu",
    "gpu",
    "ram",
    "serial",
    "manufacturer",
    "model",
    "bios_version",
    "uptime",
    "boot_type",
    "secure_boot",
    "domain",
    "battery_level",
    "battery_status",
)
"""The columns of an OCO computer that are its inventory, kept as the OCO agent reports them."""
_COMPUTER_COLUMNS = (
    "uid",
    "hostname",
    *_INVENTORY_COLUMNS,
    "agent_version",
    "remote_address",
    "last_ping",
    "last_update",
    "force_update",
    "agent_timestamp",
    "notes",
    "agent_key",
    "server_key",
    "created",
)
_PACKAGE_COLUMNS = (
    "package_family_id",
    "version",
    "notes",
    "author",
    "created_by_system_user_id",
    "install_procedure",
    "install_procedure_success_return_codes",
    "install_procedure_post_action",
    "upgrade_behavior",
    "uninstall_procedure",
    "uninstall_procedure_success_return_codes",
    "download_for_uninstall",
    "uninstall_procedure_post_action",
    "compatible_os",
    "compatible_os_version",
    "compatible_architecture",
    "created",
)
_CONTAINER_COLUMNS = (
    "name",
    "author",
    "created_by_system_user_id",
    "enabled",
    "start_time",
    "end_time",
    "notes",
    "wol_sent",
    "shutdown_waked_after_completion",
    "sequence_mode",
    "priority",
    "agent_ip_ranges",
    "time_frames",
    "created",
)
_JOB_COLUMNS = (
    "job_container_id",
    "computer_id",
    "package_id",
    "success_return_codes",
    "is_uninstall",
    "post_action",
    "post_action_timeout",
    "sequence",
    "state",
    "download_progress",
    "return_code",
    "message",
    "wol_shutdown_set",
    "download_started",
    "execution_started",
    "execution_finished",
    "last_update",
)
