"""Use cases of the agent protocol: authenticate a request, check-in, inventory (PROTOCOL.md).

Each public function runs inside the caller's transaction (a Core connection: these are the agent endpoint's
hot paths, no ORM objects); the API opens one per request.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Update, bindparam, delete, insert, select, update

from oco.config import Settings
from oco.db.bulk import insert_rows
from oco.db.models import Computer, ComputerNetwork, ComputerSoftware
from oco.db.types import UTCDateTime
from oco.domain.hostnames import hostname_key, normalize_hostname
from oco.domain.logins import logins_since as domain_logins_since
from oco.domain.logins import merge_logins, newest_login
from oco.domain.protocol import NETWORK_FIELD_LIMITS, AgentMethod, signature_matches, too_far_ahead
from oco.domain.versions import version_key
from oco.errors import InvalidInput, Unauthorized
from oco.services import wol
from oco.services.ledger import CheckinLedger, Claim, next_server_timestamp
from oco.services.listing import chunks

KEY_BYTES = 32
"""Agent and server keys: 32 random bytes, 43 URL-safe characters."""
SELF_REGISTRATION_DISABLED = "Client self-registration is disabled"
REGISTRATION_KEY_ONLY_FOR_HELLO = (
    "the agent registration key admits only the first oco.agent.hello of a computer without keys, "
    "not {method}: say hello first and sign with the agent key it issues"
)


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
class ComputerRecord:
    """The columns of a computer the check-in needs, read without the ORM's bookkeeping."""

    id: int
    hostname: str
    agent_key: str
    server_key: str
    last_agent_timestamp: float
    last_server_timestamp: float
    force_update: bool
    inventory_updated: datetime | None
    agent_version: str
    networks_digest: str
    uid: str
    newest_login: datetime | None
    time_zone: str


RECORD_COLUMNS = tuple(getattr(Computer, name) for name in ComputerRecord.__slots__)
# The check-in runs these on every request: built once, executed with parameters, no ORM bookkeeping.
_SELECT = select(*RECORD_COLUMNS).where(Computer.hostname_key == bindparam("p_key"))
_ACCEPT = (
    update(Computer)
    .where(Computer.id == bindparam("p_id"), Computer.last_agent_timestamp < bindparam("p_timestamp"))
    .values(
        last_agent_timestamp=bindparam("p_timestamp"),
        last_server_timestamp=bindparam("p_server_timestamp"),
        last_seen=bindparam("p_now", type_=UTCDateTime()),
        remote_address=bindparam("p_address"),
        uid=bindparam("p_uid"),
    )
)


@dataclass(slots=True)
class AuthenticatedAgent:
    """A computer whose request passed authentication, with the keys to announce, if new."""

    computer: ComputerRecord
    server_key: str
    timestamp: float
    """The `result.timestamp` of the answer: greater than any this computer was sent before."""
    new_agent_key: str | None = None
    new_server_key: str | None = None
    registered: bool = False
    claim: Claim | None = None
    """The ledger's acceptance of the request: reverted if the use case fails."""


def authenticate_check_in(
    record: ComputerRecord | None,
    ledger: CheckinLedger,
    request: AgentRequest,
    now: datetime,
    max_ahead_seconds: float,
) -> AuthenticatedAgent | None:
    """The fast path of a steady agent's `oco.agent.hello`: verify it and claim its timestamp in the
    ledger, without writing.

    `record` is the computer the request names, as read by the caller. None when the request must take
    `authenticate`'s path instead: an unknown computer, keys to issue, or an agent version or network
    data to store. The claim is not the last word: the request is answered only once
    `oco.services.checkins.confirm` confirmed it in the database, with the check-in's traces.
    """
    if record is None or not record.agent_key or not record.server_key:
        return None
    if not signature_matches(record.agent_key, request.body, request.signature):
        raise AuthenticationFailed("signature does not match the computer's agent key")
    _require_plausible_timestamp(request, now, max_ahead_seconds)
    if _hello_changes(record, request.data):
        return None
    claim = _claim(ledger, record, request, now)
    return AuthenticatedAgent(
        computer=record, server_key=record.server_key, timestamp=claim.server_timestamp, claim=claim
    )


def authenticate(
    connection: Connection,
    settings: Settings,
    ledger: CheckinLedger,
    request: AgentRequest,
    now: datetime,
    record: ComputerRecord | None,
    writes: dict[str, Any] | None = None,
) -> AuthenticatedAgent:
    """Check signature and timestamp; register the computer on first use (trust on first use).

    `record` is the computer the request names, as the caller read it in this transaction (None if
    unknown); `writes` are computer columns the use case changes, written by the same UPDATE that accepts
    the timestamp (`columns_of_hello`, `columns_of_inventory`).
    The registration key admits exactly one request: the first `oco.agent.hello` of a computer without
    keys (an unknown one, with self-registration on, or one an admin created), which issues its keys.
    Any other method signed with it is refused, so nobody holding the registration key can act as a
    computer that has not enrolled yet. A timestamp further ahead of the server's clock than the
    `agent_timestamp_max_ahead_seconds` setting is refused. The timestamp is accepted by the
    process's ledger, then written with a conditional UPDATE, so of two requests carrying the same
    timestamp only one passes, whichever server process they reach.
    """
    if record is None:
        return _self_register(connection, settings, request, writes or {}, now)
    changes: dict[str, Any] = dict(writes or {})
    if record.agent_key:
        if not signature_matches(record.agent_key, request.body, request.signature):
            raise AuthenticationFailed("signature does not match the computer's agent key")
    else:
        _require_registration_signature(settings, request)
        _require_first_hello(request)
        changes["agent_key"] = _new_key()
    _require_plausible_timestamp(request, now, settings.agent_timestamp_max_ahead_seconds)
    if not record.server_key and request.method is AgentMethod.HELLO:
        changes["server_key"] = _new_key()
    claim = _claim(ledger, record, request, now)
    parameters = {
        "p_id": record.id,
        "p_timestamp": request.timestamp,
        "p_server_timestamp": claim.server_timestamp,
        "p_now": now,
        "p_address": claim.entry.address,
        "p_uid": claim.entry.uid,
        **{f"v_{name}": value for name, value in changes.items()},
    }
    try:
        accepted = connection.execute(_accept(tuple(sorted(changes))), parameters)
    except BaseException:  # the database failed the statement: the claim is not this request's either
        ledger.revert(claim)
        raise
    if accepted.rowcount != 1:  # another server process accepted it first
        ledger.revert(claim)
        raise replayed(request.timestamp, record.last_agent_timestamp)
    return AuthenticatedAgent(
        computer=record,
        server_key=changes.get("server_key", record.server_key),
        timestamp=claim.server_timestamp,
        new_agent_key=changes.get("agent_key"),
        new_server_key=changes.get("server_key"),
        claim=claim,
    )


@functools.cache
def _accept(columns: tuple[str, ...]) -> Update:
    """The conditional UPDATE that accepts a timestamp, also setting `columns` (bound as `v_<name>`);
    built once for each set of columns."""
    table = Computer.__table__
    return _ACCEPT.values({name: bindparam(f"v_{name}", type_=table.c[name].type) for name in columns})


def _claim(ledger: CheckinLedger, record: ComputerRecord, request: AgentRequest, now: datetime) -> Claim:
    claim = ledger.claim(
        record.id,
        record.agent_key,
        record.last_agent_timestamp,
        record.last_server_timestamp,
        request.timestamp,
        seen=now,
        address=request.client_address[:64],
        uid=request.uid[:255] or record.uid,
    )
    if claim is None:
        last = ledger.last_agent_timestamp(record.id, record.agent_key, record.last_agent_timestamp)
        raise replayed(request.timestamp, last)
    return claim


def prove_woken(connection: Connection, settings: Settings, agent: AuthenticatedAgent, now: datetime) -> None:
    """A hello proves a Wake-on-LAN target woke. Called only for a computer the caller found awaited
    (`wol.AWAITED`)."""
    wol.mark_computer_woken(connection, settings, agent.computer.id, [now])


def read_record(connection: Connection, hostname: str) -> ComputerRecord | None:
    """The computer by its name, without regard to case (indexed)."""
    row = connection.execute(_SELECT, {"p_key": hostname_key(hostname)}).first()
    return ComputerRecord(*row) if row is not None else None


def replayed(timestamp: float, last: float | None = None) -> AuthenticationFailed:
    """The refusal of a request whose timestamp is not newer than the last one accepted (`last`, if known)."""
    accepted = "the last one accepted" if last is None else f"the last one accepted ({last})"
    return AuthenticationFailed(f"timestamp {timestamp} is not newer than {accepted}: replayed request")


def _self_register(
    connection: Connection,
    settings: Settings,
    request: AgentRequest,
    writes: dict[str, Any],
    now: datetime,
) -> AuthenticatedAgent:
    if not settings.self_registration:
        raise AuthenticationFailed(SELF_REGISTRATION_DISABLED)
    _require_registration_signature(settings, request)
    _require_first_hello(request)
    _require_plausible_timestamp(request, now, settings.agent_timestamp_max_ahead_seconds)
    hostname = normalize_hostname(request.hostname)
    timestamp = next_server_timestamp(0.0)
    agent_key, server_key = _new_key(), _new_key()
    values = {
        "hostname": hostname,
        "uid": request.uid[:255],
        "notes": "Self-registered",
        "agent_key": agent_key,
        "server_key": server_key,
        "last_agent_timestamp": request.timestamp,
        "last_server_timestamp": timestamp,
        "last_seen": now,  # its first contact: seen, online
        "remote_address": request.client_address[:64],
        "agent_version": "",
        "networks_digest": "",
        **writes,
    }
    inserted = connection.execute(insert(Computer), values).inserted_primary_key
    assert inserted is not None
    record = ComputerRecord(
        id=inserted[0],
        hostname=hostname,
        agent_key=agent_key,
        server_key=server_key,
        last_agent_timestamp=request.timestamp,
        last_server_timestamp=timestamp,
        force_update=False,
        inventory_updated=None,
        agent_version="",  # as before this request: its news are written with it (`store_networks`)
        networks_digest="",
        uid=values["uid"],
        newest_login=None,
        time_zone="",
    )
    return AuthenticatedAgent(
        computer=record,
        server_key=server_key,
        timestamp=timestamp,
        new_agent_key=agent_key,
        new_server_key=server_key,
        registered=True,
    )


def _require_registration_signature(settings: Settings, request: AgentRequest) -> None:
    if not settings.agent_registration_key:
        raise AuthenticationFailed("no agent registration key is configured")
    if not signature_matches(settings.agent_registration_key, request.body, request.signature):
        raise AuthenticationFailed("signature does not match the agent registration key")


def _require_first_hello(request: AgentRequest) -> None:
    if request.method is not AgentMethod.HELLO:
        raise AuthenticationFailed(REGISTRATION_KEY_ONLY_FOR_HELLO.format(method=request.method))


def _require_plausible_timestamp(request: AgentRequest, now: datetime, max_ahead_seconds: float) -> None:
    if too_far_ahead(request.timestamp, now, max_ahead_seconds):
        raise AuthenticationFailed(
            f"timestamp {request.timestamp} is more than {max_ahead_seconds:g} s ahead of the server's "
            f"clock ({now.timestamp()}): set the computer's clock right"
        )


def _new_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


def issued_key_length() -> int:
    """The length of the agent and server keys the server issues (43)."""
    return len(_new_key())


def wants_inventory(
    agent: AuthenticatedAgent, data: dict[str, Any], settings: Settings, now: datetime
) -> bool:
    """Ask for a full inventory when the computer is new, forced (by an admin, or by the agent's
    `data.force_update`: an OCO agent started with `--force`), or its inventory is old."""
    computer = agent.computer
    if agent.registered or computer.force_update or computer.inventory_updated is None:
        return True
    if data.get("force_update") is True:
        return True
    age = now - computer.inventory_updated
    return age > timedelta(seconds=settings.inventory_interval_seconds)


def columns_of_hello(record: ComputerRecord | None, data: dict[str, Any]) -> dict[str, Any]:
    """The computer columns a hello changes (agent version, digest of the network data), compared by
    value and digest: an unchanged hello changes none. `record` None: a computer not registered yet."""
    return _hello_changes(record or _UNREGISTERED, data)


def columns_of_inventory(data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The computer columns a full inventory sets: the fields we use, the rest as a document to show."""
    columns: dict[str, Any] = {}
    for name in ("os", "os_version", "architecture", "kernel_version", "agent_version"):
        value = data.get(name)
        if value is not None:
            columns[name] = str(value)[:255]
    networks = data.get("networks")
    if isinstance(networks, list):
        columns["networks_digest"] = _networks_digest(networks)
    columns["inventory"] = {key: value for key, value in data.items() if key not in _NOT_IN_DOCUMENT}
    zone = data.get("time_zone", data.get("timezone"))  # ours reports its zone (maintenance windows)
    columns["time_zone"] = str(zone)[:64] if isinstance(zone, str) else ""
    columns["inventory_updated"] = now
    columns["force_update"] = False
    return columns


def store_networks(
    connection: Connection, computer: ComputerRecord, data: dict[str, Any], columns: dict[str, Any]
) -> None:
    """Replace the computer's network interfaces when `columns` (of a hello or an inventory) hold a new
    digest of them; nothing is read or written otherwise."""
    networks = data.get("networks")
    if "networks_digest" not in columns or not isinstance(networks, list):
        return
    if columns["networks_digest"] == computer.networks_digest:
        return  # the same interfaces as stored
    connection.execute(_DELETE_NETWORKS, {"p_computer": computer.id})
    rows = [
        {"computer_id": computer.id, **dict(zip(_NETWORK_FIELDS, values, strict=True))}
        for values in _network_fields(networks)
    ]
    insert_rows(connection, ComputerNetwork, rows)


def _hello_changes(record: ComputerRecord, data: dict[str, Any]) -> dict[str, Any]:
    """The columns a check-in changes: agent version and the digest of the network data."""
    changes: dict[str, Any] = {}
    version = data.get("agent_version")
    if isinstance(version, str) and version[:255] != record.agent_version:
        changes["agent_version"] = version[:255]
    networks = data.get("networks")
    if isinstance(networks, list):
        digest = _networks_digest(networks)
        if digest != record.networks_digest:
            changes["networks_digest"] = digest
    return changes


_UNREGISTERED = ComputerRecord(0, "", "", "", 0.0, 0.0, False, None, "", "", "", None, "")
_DELETE_NETWORKS = delete(ComputerNetwork).where(ComputerNetwork.computer_id == bindparam("p_computer"))


def store_logins_and_software(
    connection: Connection, settings: Settings, computer: ComputerRecord, data: dict[str, Any], now: datetime
) -> None:
    """The parts of a full inventory that add to what is stored: the logins join the history (de-duplicated,
    capped and aged), the software replaces the computer's rows (searchable). Its other columns were
    written by the accepting UPDATE (`columns_of_inventory`)."""
    logins = data.get("logins")
    stored = connection.execute(_LOGINS, {"p_id": computer.id}).scalar()
    history = merge_logins(
        stored or [],
        logins if isinstance(logins, list) else [],
        now,
        settings.login_history_max,
        timedelta(days=settings.login_history_days),
    )
    connection.execute(
        _STORE_LOGINS, {"p_id": computer.id, "p_logins": history, "p_newest": newest_login(history)}
    )
    software = data.get("software")
    if isinstance(software, list):
        _store_software(connection, computer.id, software, now)


_LOGINS = select(Computer.logins).where(Computer.id == bindparam("p_id"))
_STORE_LOGINS = (
    update(Computer)
    .where(Computer.id == bindparam("p_id"))
    .values(
        logins=bindparam("p_logins", type_=Computer.logins.type),
        newest_login=bindparam("p_newest", type_=Computer.newest_login.type),
    )
)
_NOT_IN_DOCUMENT = {"networks", "logins", "software"}
"""Inventory sections kept in rows of their own; the rest (screens, printers, partitions…) as a document."""


def _store_software(connection: Connection, computer_id: int, reported: list[Any], now: datetime) -> None:
    """Replace the computer's software inventory with what was reported; an entry reported before
    (same name and version) keeps its row and when it was first seen."""
    wanted: dict[tuple[str, str], str] = {}
    for entry in reported:
        if not isinstance(entry, dict):
            continue
        name = _text(entry.get("name"), 255).strip()
        if name:
            wanted.setdefault(
                (name, _text(entry.get("version"), 255).strip()), _text(entry.get("description"), 4000)
            )
    gone = []
    for row_id, name, version, description in connection.execute(_SOFTWARE, {"p_computer": computer_id}):
        if (name, version) in wanted and wanted[(name, version)] == description:
            del wanted[(name, version)]
        else:
            gone.append(row_id)
    for ids in chunks(gone):
        connection.execute(_DELETE_SOFTWARE, {"p_ids": ids})
    insert_rows(
        connection,
        ComputerSoftware,
        [
            {
                "computer_id": computer_id,
                "name": name,
                "version": version,
                "version_key": version_key(version),
                "description": description,
                "first_seen": now,
            }
            for (name, version), description in wanted.items()
        ],
    )


_SOFTWARE = select(
    ComputerSoftware.id, ComputerSoftware.name, ComputerSoftware.version, ComputerSoftware.description
).where(ComputerSoftware.computer_id == bindparam("p_computer"))
_DELETE_SOFTWARE = delete(ComputerSoftware).where(ComputerSoftware.id.in_(bindparam("p_ids", expanding=True)))


_NETWORK_FIELDS = ("interface", "address", "netmask", "broadcast", "mac")
_NETWORK_LIMITS = tuple(NETWORK_FIELD_LIMITS[name] for name in _NETWORK_FIELDS)
"""The request was held to these (`oco.domain.protocol`); a value that is no string is cut to them."""


def _network_fields(networks: list[Any]) -> list[tuple[str, ...]]:
    """The interfaces we keep, as plain values: OCO agents name the address `addr`, ours `address`."""
    fields = []
    for entry in networks:
        if not isinstance(entry, dict):
            raise InvalidInput("each entry of 'networks' must be an object")
        values = (
            entry.get("interface"),
            entry.get("addr", entry.get("address")),
            entry.get("netmask"),
            entry.get("broadcast"),
            entry.get("mac"),
        )
        limited = (_text(value, limit) for value, limit in zip(values, _NETWORK_LIMITS, strict=True))
        fields.append(tuple(limited))
    return fields


def _networks_digest(networks: list[Any]) -> str:
    return hashlib.sha256(json.dumps(_network_fields(networks)).encode()).hexdigest()


def _text(value: Any, limit: int) -> str:
    return "" if value is None else str(value)[:limit]


def logins_since(agent: AuthenticatedAgent) -> str:
    """The time from which the agent should report logins: the newest stored login (UTC), as OCO-Server
    sends it, or the epoch; the agent then reports only newer ones, which `store_logins_and_software` adds."""
    return domain_logins_since(agent.computer.newest_login)
