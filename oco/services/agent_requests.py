"""The use cases of the agent endpoint: answer one authenticated request (PROTOCOL.md).

`check_ins` answers steady agents' hellos from reads alone, several at once, each once the database
confirmed its claim, or says which have to write. `answer` runs any other call —
and a hello with something to store — in one transaction with its authentication; `authorize_download`
decides a payload download the same way. Each claims the request's timestamp in the process's check-in
ledger first; if the use case then fails, the claim is reverted, so a
refused request uses up nothing and leaves no trace.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection

from oco.domain.dispatch import Clocks
from oco.domain.hostnames import hostname_key, normalize_hostname
from oco.domain.protocol import AgentMethod
from oco.domain.slots import Limit, Occupancy
from oco.errors import InvalidInput, OcoError, Unavailable
from oco.services import agent_jobs, agents, checkins, slots
from oco.services.agent_jobs import CheckInView, DownloadGrant, PendingJob, SlotGate
from oco.services.agents import AgentRequest, AuthenticatedAgent, ComputerRecord
from oco.services.checkins import Unconfirmed
from oco.services.runtime import Runtime

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AgentAnswer:
    """The `result` of a successful call: its params, the server timestamp, and the key to sign it with."""

    params: dict[str, Any]
    timestamp: float
    server_key: str
    unconfirmed: Unconfirmed | None = None
    """A plain check-in's claim, confirmed by `check_ins` before it answers."""


CheckInOutcome = AgentAnswer | OcoError | None
"""A steady hello's answer, its refusal, or None: it has something to write (`answer` takes it)."""


def check_ins(rt: Runtime, requests: Sequence[AgentRequest]) -> list[CheckInOutcome]:
    """Steady agents' hellos, answered together: one read for all of them, each authenticated and its
    timestamp claimed in the ledger, then every claim confirmed in the database in one transaction
    (`checkins.confirm`) — an answer exists only for a confirmed claim. One outcome each, in order; one
    request's refusal never touches the others'."""
    outcomes = claimed_check_ins(rt, requests)
    confirm_check_ins(rt, outcomes)
    return outcomes


def claimed_check_ins(rt: Runtime, requests: Sequence[AgentRequest]) -> list[CheckInOutcome]:
    """`check_ins` up to its confirmation: the outcomes, the answers among them not confirmed yet (only
    reads: SQLite's never wait)."""
    hostnames: list[str | None] = []
    for request in requests:
        try:
            hostnames.append(normalize_hostname(request.hostname))
        except OcoError:
            hostnames.append(None)  # refused by the write path, which says why
    named = [hostname for hostname in hostnames if hostname is not None]
    views = rt.read(lambda connection: agent_jobs.read_hellos(connection, named)) if named else {}
    now = rt.now()
    outcomes: list[CheckInOutcome] = []
    for request, hostname in zip(requests, hostnames, strict=True):
        found = views.get(hostname_key(hostname)) if hostname is not None else None
        try:
            outcomes.append(_check_in(rt, request, found, now))
        except OcoError as exc:
            outcomes.append(exc)
    return outcomes


def _check_in(
    rt: Runtime, request: AgentRequest, found: tuple[CheckInView, bool] | None, now: datetime
) -> AgentAnswer | None:
    view, awaited = found if found is not None else (None, False)
    agent = agents.authenticate_check_in(
        view.computer if view else None,
        rt.checkins,
        request,
        now,
        rt.settings.agent_timestamp_max_ahead_seconds,
    )
    if agent is None or view is None or agent.claim is None:
        return None
    try:
        with _reverted_on_failure(rt, agent):
            params = _hello_params(rt, agent, request, now, view.pending, _known_slots(rt))
    except agent_jobs.SlotToTake:
        return None  # its claim reverted: the write path takes the slot in its transaction
    return AgentAnswer(params, agent.timestamp, agent.server_key, Unconfirmed(agent.claim, awaited))


def confirm_check_ins(rt: Runtime, outcomes: list[CheckInOutcome], *, wait: bool = True) -> None:
    """Confirm the answers' claims of `claimed_check_ins`; an answer whose claim the database did not
    confirm becomes its refusal, and the claim is given back. Not `wait`: raise `WriterBusy`, nothing
    done, when SQLite's write lock is taken."""
    answered = [
        (i, answer.unconfirmed) for i, answer in enumerate(outcomes) if isinstance(answer, AgentAnswer)
    ]
    claims = [unconfirmed for _, unconfirmed in answered if unconfirmed is not None]
    if len(claims) != len(answered):
        raise AssertionError("a plain check-in was answered without a claim")
    try:
        confirmed: Sequence[checkins.Outcome | OcoError] = checkins.confirm(rt, claims, wait=wait)
    except OcoError as exc:  # the database does not answer: nobody is answered
        confirmed = [exc] * len(claims)
    for (index, unconfirmed), outcome in zip(answered, confirmed, strict=True):
        if outcome is checkins.Outcome.CONFIRMED or unconfirmed is None:
            continue
        rt.checkins.revert(unconfirmed.claim)
        if isinstance(outcome, OcoError):
            outcomes[index] = outcome
        elif outcome is checkins.Outcome.REPLAYED:
            outcomes[index] = agents.replayed(unconfirmed.claim.entry.agent_timestamp)
        else:
            outcomes[index] = Unavailable("the check-in could not be recorded; send it again")


def answer(rt: Runtime, request: AgentRequest) -> AgentAnswer:
    """Authenticate a hello, inventory or job report and run it, in one transaction."""
    return _answer(*_in_transaction(rt, request, _work_of(rt, request)))


def authorize_download(rt: Runtime, request: AgentRequest, package_id: int) -> DownloadGrant:
    """Authenticate a download and grant it while the computer has an eligible job for the package."""
    return _in_transaction(rt, request, _grant_work(rt, request, package_id))[1]


Answered = AgentAnswer | OcoError
"""A write-path request's answer or its refusal."""
Granted = DownloadGrant | OcoError
"""A download's grant or its refusal."""


def answer_together(rt: Runtime, requests: Sequence[AgentRequest]) -> list[Answered]:
    """Write-path requests (`answer`'s) run together in one transaction (`_together`); one outcome each,
    in order."""
    works = [_refused_or(functools.partial(_work_of, rt, request)) for request in requests]
    done = _together(rt, requests, works)
    return [outcome if isinstance(outcome, OcoError) else _answer(*outcome) for outcome in done]


def grant_together(rt: Runtime, downloads: Sequence[tuple[AgentRequest, int]]) -> list[Granted]:
    """Downloads (`authorize_download`'s: a request and the package it asks for) granted together in one
    transaction (`_together`); one outcome each, in order."""
    requests = [request for request, _ in downloads]
    works = [_grant_work(rt, request, package_id) for request, package_id in downloads]
    done = _together(rt, requests, works)
    return [outcome if isinstance(outcome, OcoError) else outcome[1] for outcome in done]


Accept = Callable[[ComputerRecord | None, dict[str, Any] | None], AuthenticatedAgent]
"""Authenticate the request against the computer as read (None: unknown), writing these columns with
its timestamp (`agents.authenticate`)."""


Work = Callable[[Connection, datetime, Accept], T]
"""A request's use case, run in the caller's transaction; it authenticates with the `Accept` it is given."""


def _together(
    rt: Runtime, requests: Sequence[AgentRequest], works: Sequence[Work[T] | OcoError]
) -> list[tuple[AuthenticatedAgent, T] | OcoError]:
    """Run each request's work (or take its refusal as it is) in one transaction, each in a savepoint of
    its own, so one's refusal takes back its own writes and claims and leaves the others' work.

    They run in the order of their computers' names, so batches of several server processes lock
    computers in one order. If the transaction as a whole fails — the database refused a statement (a
    conflict, a deadlock, a lost connection) or the commit — every claim is given back and each request
    runs again in a transaction of its own: nobody is answered for work that was not committed.
    """
    if len(requests) == 1:
        return [_alone(rt, requests[0], works[0])]
    outcomes: dict[int, tuple[AuthenticatedAgent, T] | OcoError] = {}
    accepted: list[AuthenticatedAgent] = []
    try:
        with rt.writing() as connection:
            for index in sorted(range(len(requests)), key=lambda i: hostname_key(requests[i].hostname)):
                work = works[index]
                outcomes[index] = (
                    work
                    if isinstance(work, OcoError)
                    else _in_savepoint(rt, connection, requests[index], work, accepted)
                )
    except Exception:
        for agent in accepted:
            _revert(rt, agent)
        return [_alone(rt, request, work) for request, work in zip(requests, works, strict=True)]
    return [outcomes[index] for index in range(len(requests))]


def _alone(
    rt: Runtime, request: AgentRequest, work: Work[T] | OcoError
) -> tuple[AuthenticatedAgent, T] | OcoError:
    if isinstance(work, OcoError):
        return work
    try:
        return _in_transaction(rt, request, work)
    except OcoError as exc:
        return exc


def _in_savepoint(
    rt: Runtime,
    connection: Connection,
    request: AgentRequest,
    work: Work[T],
    accepted: list[AuthenticatedAgent],
) -> tuple[AuthenticatedAgent, T] | OcoError:
    """One request of `_together`'s transaction. A refusal (an `OcoError` of the use case) rolls back to
    the savepoint; an error of the database is left to end the whole transaction."""
    first = len(accepted)
    try:
        with _savepoint(connection):
            return _authenticated(rt, connection, request, work, accepted)
    except OcoError as exc:
        for agent in accepted[first:]:
            _revert(rt, agent)
        del accepted[first:]
        return exc


def _refused_or(work_of: Callable[[], Work[T]]) -> Work[T] | OcoError:
    try:
        return work_of()
    except OcoError as exc:
        return exc


def _work_of(rt: Runtime, request: AgentRequest) -> Work[dict[str, Any]]:
    handler = _HANDLERS.get(request.method)
    if handler is None:
        raise InvalidInput(f"method {request.method} is not answered with a result")
    return lambda connection, now, accept: handler(rt, connection, request, now, accept)


def _grant_work(rt: Runtime, request: AgentRequest, package_id: int) -> Work[DownloadGrant]:
    def grant(connection: Connection, now: datetime, accept: Accept) -> DownloadGrant:
        agent = accept(agents.read_record(connection, normalize_hostname(request.hostname)), None)
        return agent_jobs.authorize_download(
            connection, agent.computer, package_id, request.client_address, now, rt.settings.zone
        )

    return grant


def _answer(agent: AuthenticatedAgent, params: dict[str, Any]) -> AgentAnswer:
    return AgentAnswer(params=params, timestamp=agent.timestamp, server_key=agent.server_key)


def _in_transaction(rt: Runtime, request: AgentRequest, use: Work[T]) -> tuple[AuthenticatedAgent, T]:
    """Run `use`, which authenticates with the `Accept` it is given, in one transaction: a failure leaves
    no trace, the ledger's claim of the timestamp included."""
    accepted: list[AuthenticatedAgent] = []
    try:
        with rt.writing() as connection:
            return _authenticated(rt, connection, request, use, accepted)
    except BaseException:
        for agent in accepted:
            _revert(rt, agent)
        raise


def _authenticated(
    rt: Runtime,
    connection: Connection,
    request: AgentRequest,
    use: Work[T],
    accepted: list[AuthenticatedAgent],
) -> tuple[AuthenticatedAgent, T]:
    """Run `use` on `connection`'s transaction with an `Accept` that authenticates the request; each
    agent it accepted is added to `accepted`, for the caller to revert its claim if the work fails."""
    now = rt.now()
    first = len(accepted)

    def accept(record: ComputerRecord | None, columns: dict[str, Any] | None) -> AuthenticatedAgent:
        agent = agents.authenticate(connection, rt.settings, rt.checkins, request, now, record, columns)
        accepted.append(agent)
        return agent

    result = use(connection, now, accept)
    if len(accepted) == first:
        raise AssertionError("an agent request was answered without authentication")
    return accepted[first], result


@contextmanager
def _savepoint(connection: Connection) -> Iterator[None]:
    """A savepoint of the transaction around the block, rolled back to if the block raises. Written as
    plain SQL: SQLAlchemy compiles its savepoint constructs anew each time, which cost a request more than
    the database's work. One name serves all: the savepoints of a batch follow one another."""
    connection.exec_driver_sql("SAVEPOINT oco_request")
    try:
        yield
    except BaseException:
        connection.exec_driver_sql("ROLLBACK TO SAVEPOINT oco_request")
        raise
    connection.exec_driver_sql("RELEASE SAVEPOINT oco_request")


@contextmanager
def _reverted_on_failure(rt: Runtime, agent: AuthenticatedAgent) -> Iterator[None]:
    try:
        yield
    except BaseException:
        _revert(rt, agent)
        raise


def _revert(rt: Runtime, agent: AuthenticatedAgent) -> None:
    if agent.claim is not None:
        rt.checkins.revert(agent.claim)


Handler = Callable[[Runtime, Connection, AgentRequest, datetime, Accept], dict[str, Any]]


def _hello(
    rt: Runtime, connection: Connection, request: AgentRequest, now: datetime, accept: Accept
) -> dict[str, Any]:
    """A hello with something to store, or from a computer without keys: the computer, its pending jobs
    and whether it is an awaited Wake-on-LAN target in one read; its news in the accepting UPDATE."""
    view, awaited = agent_jobs.read_hello(connection, normalize_hostname(request.hostname))
    record = view.computer if view is not None else None
    columns = agents.columns_of_hello(record, request.data)
    agent = accept(record, columns)
    agents.store_networks(connection, agent.computer, request.data, columns)
    if awaited:
        agents.prove_woken(connection, rt.settings, agent, now)
    pending = view.pending if view is not None and not agent.registered else []
    return _hello_params(rt, agent, request, now, pending, _taking_slots(rt, connection, agent, now))


def _known_slots(rt: Runtime) -> SlotGate:
    """Download slots as the read-only check-in judges them: from what this process read lately (read
    again when older than `slots.REFRESH_SECONDS`); a slot to take sends the hello to the write path —
    as many hellos at a time as there are free slots, the others wait for a later check-in."""

    def occupancy(limits: Sequence[Limit]) -> list[Occupancy]:
        known = rt.download_slots.known(limits)
        if known is None:
            now = rt.now()
            known = rt.read(lambda connection: slots.read_occupancy(connection, limits, now))
            rt.download_slots.note(known)
        return known

    def take(job_id: int, limits: Sequence[Limit]) -> bool:
        if not rt.download_slots.reserve(limits, rt.now()):
            return False
        raise agent_jobs.SlotToTake

    return SlotGate(rt.settings.download_limits, occupancy, take)


def _taking_slots(rt: Runtime, connection: Connection, agent: AuthenticatedAgent, now: datetime) -> SlotGate:
    """Download slots as a hello that writes judges them: read in its transaction, taken there."""

    def take(job_id: int, limits: Sequence[Limit]) -> bool:
        taken, seen = slots.take(
            connection, job_id, agent.computer.id, limits, now, rt.settings.download_slot_timeout_seconds
        )
        rt.download_slots.note(seen)  # what this transaction saw and did: fresher than the board
        return taken

    return SlotGate(
        rt.settings.download_limits,
        lambda limits: slots.read_occupancy(connection, limits, now),
        take,
    )


def _hello_params(
    rt: Runtime,
    agent: AuthenticatedAgent,
    request: AgentRequest,
    now: datetime,
    pending: list[PendingJob],
    gate: SlotGate,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "update": 1 if agents.wants_inventory(agent, request.data, rt.settings, now) else 0,
        "software-jobs": agent_jobs.software_jobs(
            pending,
            request.client_address,
            now,
            Clocks(agent.computer.time_zone, rt.settings.zone),
            gate,
        ),
        "logins-since": agents.logins_since(agent),
        "events": [],
    }
    # Never send null keys: an OCO agent would store the text "None".
    if agent.new_agent_key:
        params["agent-key"] = agent.new_agent_key
    if agent.new_server_key:
        params["server-key"] = agent.new_server_key
    return params


def _update(
    rt: Runtime, connection: Connection, request: AgentRequest, now: datetime, accept: Accept
) -> dict[str, Any]:
    """A full inventory: its columns in the accepting UPDATE, the network interfaces if they changed, the
    logins added to the history, the software stored in rows of its own."""
    columns = agents.columns_of_inventory(request.data, now)
    agent = accept(agents.read_record(connection, normalize_hostname(request.hostname)), columns)
    agents.store_networks(connection, agent.computer, request.data, columns)
    agents.store_logins_and_software(connection, rt.settings, agent.computer, request.data, now)
    return {"policies": {}}


def _update_job_state(
    rt: Runtime, connection: Connection, request: AgentRequest, now: datetime, accept: Accept
) -> dict[str, Any]:
    agent = accept(agents.read_record(connection, normalize_hostname(request.hostname)), None)
    succeeded = agent_jobs.report_job_state(
        connection, rt.settings, agent.computer, request.data, now, request.client_address
    )
    return {"job-succeeded": succeeded}


_HANDLERS: dict[AgentMethod, Handler] = {
    AgentMethod.HELLO: _hello,
    AgentMethod.UPDATE: _update,
    AgentMethod.UPDATE_JOB_STATE: _update_job_state,
}
