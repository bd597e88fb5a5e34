"""Use cases of the agent protocol: authenticate a request, check-in, inventory (PROTOCOL.md).

Each public function runs inside the caller's transaction; the API opens one per request.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.orm import Session

from oco.config import Settings
from oco.db.models import Computer, ComputerNetwork
from oco.db.types import UTCDateTime
from oco.domain.hostnames import hostname_key, normalize_hostname
from oco.domain.protocol import AgentMethod, signature_matches
from oco.errors import InvalidInput, Unauthorized
from oco.services import wol
from oco.services.ledger import CheckinLedger, Claim, next_server_timestamp

KEY_BYTES = 32
"""Agent and server keys: 32 random bytes, 43 URL-safe characters."""
SELF_REGISTRATION_DISABLED = "Client self-registration is disabled"


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
    record: ComputerRecord | None, ledger: CheckinLedger, request: AgentRequest, now: datetime
) -> AuthenticatedAgent | None:
    """The fast path of a steady agent's `oco.agent.hello`: verify and claim it without writing.

    `record` is the computer the request names, as read by the caller. None when the request must take
    `authenticate`'s path instead: an unknown computer, keys to issue, or an agent version or network
    data to store. The claim waits in the ledger for `oco.services.checkins` to confirm it in the
    database (`claim.confirmed`), with the check-in's traces, before the request may be answered.
    """
    if record is None or not record.agent_key or not record.server_key:
        return None
    if not signature_matches(record.agent_key, request.body, request.signature):
        raise AuthenticationFailed("signature does not match the computer's agent key")
    if _hello_changes(record, request.data):
        return None
    claim = _claim(ledger, record, request, now, deferred=True)
    return AuthenticatedAgent(
        computer=record, server_key=record.server_key, timestamp=claim.server_timestamp, claim=claim
    )


def authenticate(
    session: Session, settings: Settings, ledger: CheckinLedger, request: AgentRequest, now: datetime
) -> AuthenticatedAgent:
    """Check signature and timestamp; register the computer on first use (trust on first use).

    A request signed with the registration key is accepted only from a computer without an agent key,
    and new keys are issued only in answer to `oco.agent.hello`. The timestamp is accepted by the
    process's ledger, then written with a conditional UPDATE, so of two requests carrying the same
    timestamp only one passes, whichever server process they reach.
    """
    hostname = normalize_hostname(request.hostname)
    record = _record(session.connection(), hostname)
    if record is None:
        return _self_register(session, settings, request, hostname)
    changes: dict[str, Any] = {}
    if record.agent_key:
        if not signature_matches(record.agent_key, request.body, request.signature):
            raise AuthenticationFailed("signature does not match the computer's agent key")
    else:
        _require_registration_signature(settings, request)
        if request.method is AgentMethod.HELLO:
            changes["agent_key"] = _new_key()
    if not record.server_key and request.method is AgentMethod.HELLO:
        changes["server_key"] = _new_key()
    # The request writes its own traces below: were the flush to write its timestamp first, the
    # conditional UPDATE would take the request for a replay.
    claim = _claim(ledger, record, request, now, deferred=False)
    parameters = {
        "p_id": record.id,
        "p_timestamp": request.timestamp,
        "p_server_timestamp": claim.server_timestamp,
        "p_now": now,
        "p_address": claim.entry.address,
        "p_uid": claim.entry.uid,
    }
    statement = _ACCEPT.values(**changes) if changes else _ACCEPT
    accepted = session.connection().execute(statement, parameters)
    if accepted.rowcount != 1:  # another server process accepted it first
        ledger.revert(claim)
        raise _replay(request, record.last_agent_timestamp)
    if request.method is AgentMethod.HELLO:
        _prove_woken(session, settings, record.id, now)
    return AuthenticatedAgent(
        computer=record,
        server_key=changes.get("server_key", record.server_key),
        timestamp=claim.server_timestamp,
        new_agent_key=changes.get("agent_key"),
        new_server_key=changes.get("server_key"),
        claim=claim,
    )


def _claim(
    ledger: CheckinLedger, record: ComputerRecord, request: AgentRequest, now: datetime, *, deferred: bool
) -> Claim:
    claim = ledger.claim(
        record.id,
        record.agent_key,
        record.last_agent_timestamp,
        record.last_server_timestamp,
        request.timestamp,
        seen=now,
        address=request.client_address[:64],
        uid=request.uid[:255] or record.uid,
        deferred=deferred,
    )
    if claim is None:
        last = ledger.last_agent_timestamp(record.id, record.agent_key, record.last_agent_timestamp)
        raise _replay(request, last)
    return claim


def _prove_woken(session: Session, settings: Settings, computer_id: int, now: datetime) -> None:
    """A hello proves a Wake-on-LAN target woke."""
    wol.mark_woken(session, settings, [(computer_id, now)])


def _record(connection: Connection, hostname: str) -> ComputerRecord | None:
    """The computer by its name, without regard to case (indexed)."""
    row = connection.execute(_SELECT, {"p_key": hostname_key(hostname)}).first()
    return ComputerRecord(*row) if row is not None else None


def _replay(request: AgentRequest, last: float) -> AuthenticationFailed:
    return AuthenticationFailed(
        f"timestamp {request.timestamp} is not newer than the last one accepted ({last}): replayed request"
    )


def _self_register(
    session: Session, settings: Settings, request: AgentRequest, hostname: str
) -> AuthenticatedAgent:
    if not settings.self_registration:
        raise AuthenticationFailed(SELF_REGISTRATION_DISABLED)
    _require_registration_signature(settings, request)
    if request.method is not AgentMethod.HELLO:
        raise AuthenticationFailed("unknown computer: register with oco.agent.hello first")
    timestamp = next_server_timestamp(0.0)
    computer = Computer(
        hostname=hostname,
        uid=request.uid[:255],
        notes="Self-registered",
        agent_key=_new_key(),
        server_key=_new_key(),
        last_agent_timestamp=request.timestamp,
        last_server_timestamp=timestamp,
        last_seen=None,
        remote_address=request.client_address[:64],
    )
    session.add(computer)
    session.flush()
    record = _record(session.connection(), hostname)
    assert record is not None
    return AuthenticatedAgent(
        computer=record,
        server_key=computer.server_key,
        timestamp=timestamp,
        new_agent_key=computer.agent_key,
        new_server_key=computer.server_key,
        registered=True,
    )


def _require_registration_signature(settings: Settings, request: AgentRequest) -> None:
    if not settings.agent_registration_key:
        raise AuthenticationFailed("no agent registration key is configured")
    if not signature_matches(settings.agent_registration_key, request.body, request.signature):
        raise AuthenticationFailed("signature does not match the agent registration key")


def _new_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


def wants_inventory(agent: AuthenticatedAgent, settings: Settings, now: datetime) -> bool:
    """Ask for a full inventory when the computer is new, forced, or its inventory is old."""
    computer = agent.computer
    if agent.registered or computer.force_update or computer.inventory_updated is None:
        return True
    age = now - computer.inventory_updated
    return age > timedelta(seconds=settings.inventory_interval_seconds)


def store_hello(session: Session, agent: AuthenticatedAgent, data: dict[str, Any]) -> None:
    """Keep what a check-in tells us: agent version and network interfaces (with MACs).

    Network data is compared by digest, so an unchanged check-in reads and writes nothing more.
    """
    changes = _hello_changes(agent.computer, data)
    if not changes:
        return
    if "networks_digest" in changes:
        computer = session.get(Computer, agent.computer.id)
        assert computer is not None
        computer.networks = _network_rows(data["networks"])
    session.execute(
        update(Computer)
        .where(Computer.id == agent.computer.id)
        .values(**changes)
        .execution_options(synchronize_session=False)
    )


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


def store_inventory(session: Session, agent: AuthenticatedAgent, data: dict[str, Any], now: datetime) -> None:
    """Keep a full inventory: the fields we use in columns, the rest as a document to show."""
    computer = session.get(Computer, agent.computer.id)
    assert computer is not None
    for field in ("os", "os_version", "architecture", "kernel_version", "agent_version"):
        value = data.get(field)
        if value is not None:
            setattr(computer, field, str(value)[:255])
    networks = data.get("networks")
    if isinstance(networks, list):
        computer.networks = _network_rows(networks)
        computer.networks_digest = _networks_digest(networks)
    logins = data.get("logins")
    computer.logins = logins if isinstance(logins, list) else []
    computer.inventory = {key: value for key, value in data.items() if key not in {"networks", "logins"}}
    computer.inventory_updated = now
    computer.force_update = False


_NETWORK_FIELDS = ("interface", "address", "netmask", "broadcast", "mac")
_NETWORK_LIMITS = (255, 64, 64, 64, 32)


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


def _network_rows(networks: list[Any]) -> list[ComputerNetwork]:
    return [
        ComputerNetwork(**dict(zip(_NETWORK_FIELDS, values, strict=True)))
        for values in _network_fields(networks)
    ]


def _networks_digest(networks: list[Any]) -> str:
    return hashlib.sha256(json.dumps(_network_fields(networks)).encode()).hexdigest()


def _text(value: Any, limit: int) -> str:
    return "" if value is None else str(value)[:limit]


LOGINS_SINCE_FORMAT = "%Y-%m-%d %H:%M:%S"
EPOCH_TEXT = "1970-01-01 00:00:00"


def logins_since(agent: AuthenticatedAgent) -> str:
    """The time from which the agent should report logins: the last full inventory (UTC), or the epoch."""
    updated = agent.computer.inventory_updated
    return EPOCH_TEXT if updated is None else updated.strftime(LOGINS_SINCE_FORMAT)
