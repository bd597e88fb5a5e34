"""Importing computers: identity, keys and traces, inventory with networks, logins and software."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select

from oco.db.models import Computer, ComputerNetwork, ComputerSoftware
from oco.domain import ocoimport as rules
from oco.domain.hostnames import hostname_key, normalize_hostname
from oco.domain.logins import merge_logins, newest_login
from oco.domain.ocoimport import ImportKind
from oco.errors import OcoError
from oco.services.listing import chunks
from oco.services.ocoimport.context import FLUSH_EVERY, ImportContext, mapping_of, text_of
from oco.services.ocoimport.source import Row


@dataclass(frozen=True, slots=True)
class _Logins:
    entries: list[dict[str, Any]]
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


class ComputerImport(ImportContext):
    """Computers, new and caught up."""

    def computers(self) -> None:
        """Computers a batch at a time, each batch with its networks, logins and software; those imported
        before catch up with what their agent did at the source since."""
        kind = ImportKind.COMPUTER
        mapped = mapping_of(self.session, kind)
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
        pending: list[tuple[Row, Computer]] = []
        for row in rows:
            computer = self._computer(row, taken)
            if computer is not None:
                self._inventory(computer, row, children)
                self.session.add(computer)
                pending.append((row, computer))
        self.session.flush()
        self._add_children([(row, c.id) for row, c in pending], children)
        self._remember(ImportKind.COMPUTER, [(row["id"], c.id) for row, c in pending])
        for _, computer in pending:
            self.session.expunge(computer)
        rows.clear()

    def _add_children(self, computers: Sequence[tuple[Row, int]], children: _Children) -> None:
        """The networks and software of computers (OCO's row, our id), in a few multi-row INSERTs."""
        networks: list[dict[str, Any]] = []
        software: list[dict[str, Any]] = []
        for row, computer_id in computers:
            ordered = sorted(
                children.networks.get(row["id"], []), key=lambda n: (n["nic_number"] or 0, n["id"])
            )
            networks += [
                {
                    "computer_id": computer_id,
                    "interface": text_of(n["interface"]),
                    "address": text_of(n["address"], 64),
                    "netmask": text_of(n["netmask"], 64),
                    "broadcast": text_of(n["broadcast"], 64),
                    "mac": text_of(n["mac"], 32),
                }
                for n in ordered
            ]
            software += [
                {
                    "computer_id": computer_id,
                    "name": entry.name,
                    "version": entry.version,
                    "description": entry.description,
                    "first_seen": entry.seen,
                }
                for entry in children.software.get(row["id"], [])
            ]
        if networks:
            self.session.execute(insert(ComputerNetwork), networks)
        if software:
            self.session.execute(insert(ComputerSoftware), software)

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
            ids = [computer.id for _, computer in newer]
            for chunk in chunks(ids):
                self.session.execute(delete(ComputerNetwork).where(ComputerNetwork.computer_id.in_(chunk)))
                self.session.execute(delete(ComputerSoftware).where(ComputerSoftware.computer_id.in_(chunk)))
            self._add_children([(row, computer.id) for row, computer in newer], children)
        self.session.flush()
        for computer in ours.values():
            self.session.expunge(computer)
        rows.clear()

    def _trace(self, row: Row) -> rules.AgentTrace:
        return rules.AgentTrace(
            agent_key=text_of(row["agent_key"]),
            server_key=text_of(row["server_key"]),
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
            hostname = normalize_hostname(text_of(row["hostname"], None))
        except OcoError as exc:
            self.report.skip(kind, row["id"], text_of(row["hostname"]), exc.message)
            return None
        if hostname_key(hostname) in taken:
            self.report.skip(kind, row["id"], hostname, f"a computer named {hostname!r} exists here already")
            return None
        taken.add(hostname_key(hostname))
        trace = self._trace(row)
        return Computer(
            hostname=hostname,
            uid=text_of(row["uid"]),
            notes=text_of(row["notes"], None),
            agent_key=trace.agent_key,
            server_key=trace.server_key,
            last_agent_timestamp=trace.agent_timestamp,
            last_server_timestamp=0.0,
            last_seen=trace.last_seen,
            remote_address=text_of(row["remote_address"], 64),
            force_update=bool(row["force_update"]),
            created=self._utc(row["created"]) or self.now,
        )

    def _inventory(self, computer: Computer, row: Row, children: _Children) -> None:
        """The inventory of an OCO computer kept in its columns, and its logins (`_add_children` adds
        its networks and software)."""
        computer.agent_version = text_of(row["agent_version"])
        computer.os = text_of(row["os"])
        computer.os_version = text_of(row["os_version"])
        computer.architecture = text_of(row["architecture"])
        computer.kernel_version = text_of(row["kernel_version"])
        computer.inventory = {
            name: row[name] for name in _INVENTORY_COLUMNS if row.get(name) not in (None, "")
        }
        computer.inventory_updated = self._utc(row["last_update"])
        history = children.logins.get(row["id"], _Logins([], None))
        computer.logins = history.entries
        computer.newest_login = history.newest

    def _logins(self, computer_ids: Sequence[int]) -> dict[int, _Logins]:
        logons_table, user_key = "domain_user_logon", "domain_user_id"
        if not self.source.has(logons_table):
            logons_table, user_key = "domainuser_logon", "domainuser_id"
        names = self._user_names()
        if not self.source.has(logons_table) or names is None:
            return {}
        logons = self._grouped(logons_table, [user_key, "console", "timestamp"], "computer_id", computer_ids)
        carried: dict[int, _Logins] = {}
        limit, age = self.settings.login_history_max, timedelta(days=self.settings.login_history_days)
        for computer_id, rows in logons.items():
            reported = [
                rules.login_entry(names.get(r[user_key], ""), r["console"], self._utc(r["timestamp"]))
                for r in rows
            ]
            history = merge_logins([], reported, self.now, limit, age)  # capped and aged as here
            carried[computer_id] = _Logins(history, newest_login(history))
        return carried

    def _user_names(self) -> dict[int, str] | None:
        """OCO's domain users by id (read once); None when the schema has none."""
        if self._users_by_id is None:
            table = next((t for t in ("domain_user", "domainuser") if self.source.has(t)), None)
            if table is None:
                return None
            self._users_by_id = {
                r["id"]: text_of(r["username"]) for r in self.source.rows(table, ["username"])
            }
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
            if entry is None or not text_of(entry["name"]).strip():
                continue
            installed[row["computer_id"]].append(
                _Software(
                    name=text_of(entry["name"]),
                    # OCO 1.0 kept the version per computer, later per software entry
                    version=text_of(entry["version"] if entry["version"] is not None else row["version"]),
                    description=text_of(entry["description"], None),
                    seen=self._utc(row["installed"]) or self.now,
                )
            )
        return installed


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
