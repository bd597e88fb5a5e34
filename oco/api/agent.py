"""The OCO agent endpoint: JSON-RPC 2.0 over `/api-agent.php` and `/api/agent` (PROTOCOL.md).

This module only translates HTTP to use cases and back: parsing, limits, signatures of responses,
error mapping. The use cases live in `oco.services.agent_requests`, the rules in `oco.domain`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from oco.api.download import payload_response
from oco.domain import proxies
from oco.domain.depots import redirects
from oco.domain.errors import InvalidAgentInput
from oco.domain.protocol import (
    FOLLOWS_REDIRECT_HEADER,
    MAX_ID,
    SIGNATURE_HEADER_AGENT,
    SIGNATURE_HEADER_SERVER,
    AgentMethod,
    load_request,
    sign,
)
from oco.errors import OcoError, Unauthorized, Unavailable, outcome
from oco.services import agent_requests
from oco.services.agent_jobs import DownloadGrant
from oco.services.agent_requests import AgentAnswer
from oco.services.agents import AgentRequest
from oco.services.runtime import Runtime, WriterBusy

PATHS = ("/api-agent.php", "/api/agent")
JSONRPC_VERSION = "2.0"
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
PARSE_ERROR = -32700
SERVER_ERROR_STATUS = 500
CHECK_IN_TIMEOUT_S = 30
"""A check-in not answered in this time is answered with 503 (the database stalls)."""
WRITE_BATCH_MOST = 32
"""The most write-path requests of one transaction: it holds SQLite's one write lock, which the console's
transactions and the check-ins' confirmations wait for."""
WRITE_BATCHES_NETWORK = 2
"""Write batches at a time on PostgreSQL or MariaDB: one's round trips overlap the other's work."""

log = logging.getLogger("oco.agent_api")
Q = TypeVar("Q")
R = TypeVar("R")


class BadRequest(Exception):
    """A malformed request: answered with HTTP 400 and a JSON-RPC error object."""

    def __init__(self, message: str, code: int = INVALID_REQUEST, request_id: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.request_id = request_id


class AgentApi:
    """The agent endpoint as a plain ASGI application.

    It is the server's hot path (every managed computer checks in every minute or so), so the server
    hands it its requests before the web framework's middleware and routing (see `oco.application`).
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # Plain check-ins run on the event loop on SQLite (local reads, cheaper than any trip to a thread)
        # and on PostgreSQL (asyncio connections); MariaDB's are waited for in a few threads of their
        # own: the 40 of the shared pool would only fight over the GIL.
        self._readers = ThreadPoolExecutor(
            runtime.settings.checkin_threads, thread_name_prefix="oco-check-in"
        )
        # Write-path requests run in transactions of a batch each (`agent_requests.answer_together`), in
        # threads of their own: a transaction may wait for a writer of the console. SQLite has one
        # writer at a time; a network database overlaps a batch's round trips with the next one's.
        concurrent = 1 if runtime.reads_are_local else WRITE_BATCHES_NETWORK
        self._writers = ThreadPoolExecutor(concurrent, thread_name_prefix="oco-agent-writes")
        self.check_ins = CheckIns(runtime, self._readers, self._writers)
        self.writes: Batches[AgentRequest, agent_requests.Answered] = Batches(
            "agent writes",
            in_thread(self._writers, functools.partial(agent_requests.answer_together, runtime)),
            concurrent=concurrent,
            most=WRITE_BATCH_MOST,
        )
        self.grants: Batches[tuple[AgentRequest, int], agent_requests.Granted] = Batches(
            "download grants",
            in_thread(self._writers, functools.partial(agent_requests.grant_together, runtime)),
            concurrent=concurrent,
            most=WRITE_BATCH_MOST,
        )

    async def aclose(self) -> None:
        await self.runtime.close_loop()
        self.close()

    def close(self) -> None:
        self._readers.shutdown(wait=True)
        self._writers.shutdown(wait=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.method not in ("POST", "GET"):
            response: Response = PlainTextResponse(
                "Method Not Allowed", status_code=405, headers={"Allow": "GET, POST"}
            )
        else:
            response = await self.respond(request)
        await response(scope, receive, send)

    async def respond(self, request: Request) -> Response:
        """Every agent method on one path; downloads come as GET with a JSON body, like OCO agents send."""
        runtime = self.runtime
        rpc_id: Any = None
        try:
            body = await _read_body(request, runtime.settings.max_request_bytes)
            rpc_id, agent_request = _parse(body, request, runtime.settings.trusted_proxies)
            if agent_request.method is AgentMethod.DOWNLOAD:
                return await self._download(agent_request, request)
            answer = await self._answer(agent_request)
        except BadRequest as exc:
            request_id = exc.request_id if exc.request_id is not None else rpc_id
            return _error_response(request_id, exc.code, exc.message)
        except OcoError as exc:
            return _refusal(request, runtime.settings.trusted_proxies, rpc_id, exc)
        return _result_response(rpc_id, answer)

    async def _answer(self, request: AgentRequest) -> AgentAnswer:
        if request.method is AgentMethod.HELLO:
            answer = await self.check_ins.answer(request)
            if answer is not None:
                return answer
        answered = await self.writes.outcome(request)
        if isinstance(answered, OcoError):
            raise answered
        return answered

    async def _download(self, request: AgentRequest, http: Request) -> Response:
        package_id = _package_id(request.data.get("package-id"))
        grant = await self.grants.outcome((request, package_id))
        if isinstance(grant, OcoError):
            raise grant
        return await run_in_threadpool(_payload, self.runtime, grant, http)


Runner = Callable[[Sequence[Q]], Awaitable[Sequence[R]]]
"""What answers a batch: one outcome for each request, in order."""


def in_thread(executor: ThreadPoolExecutor, answer_all: Callable[[Sequence[Q]], Sequence[R]]) -> Runner[Q, R]:
    """A batch answered in one of `executor`'s threads: one trip a batch."""

    async def run(requests: Sequence[Q]) -> Sequence[R]:
        return await asyncio.get_running_loop().run_in_executor(executor, answer_all, requests)

    return run


class Batches(Generic[Q, R]):
    """Requests that wait here to be answered together by `run` (one outcome each, in order): while a
    batch is answered, the requests that arrive wait for the next, so a batch holds what came meanwhile —
    no timer — and the many requests of a busy minute share reads, transactions and commits.

    `concurrent` batches at a time, each of at most `most` requests; with `gather_first` a batch starts
    after one turn of the event loop, so the requests already received join it.
    """

    def __init__(
        self,
        name: str,
        run: Runner[Q, R],
        *,
        concurrent: int = 1,
        most: int | None = None,
        gather_first: bool = False,
    ) -> None:
        self.name = name
        self._run = run
        self._concurrent = concurrent
        self._most = most
        self._gather_first = gather_first
        self._waiting: list[tuple[Q, asyncio.Future[R]]] = []
        self._answering = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def outcome(self, request: Q) -> R:
        """The request's outcome, once its batch was answered (shielded: a client that hangs up does not
        take it back)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((request, future))
        if self._answering < self._concurrent:
            self._answering += 1  # here, not in the task: the next request must see it at once
            task = loop.create_task(self._answer_batches())
            self._tasks.add(task)  # a reference, so the task is not collected while it runs
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(future)

    async def _answer_batches(self) -> None:
        try:
            await self._answer_waiting()
        finally:
            self._answering -= 1

    async def _answer_waiting(self) -> None:
        while self._waiting:
            if self._gather_first:
                await asyncio.sleep(0)
            most = self._most or len(self._waiting)
            batch, self._waiting = self._waiting[:most], self._waiting[most:]
            try:
                outcomes = await self._run([request for request, _ in batch])
            except Exception as exc:  # a bug: answered with 500 rather than left waiting
                log.exception("answering %d %s failed", len(batch), self.name)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), answered in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(answered)


class CheckIns:
    """Steady agents' hellos, answered in batches (`agent_requests.check_ins`: one read for all, one
    transaction confirming their timestamps), each on the event loop where it can wait there:

    - SQLite: the reads never wait (WAL), nor does the confirmation while the write lock is free; when a
      console transaction or a batch of writes holds it, the confirmation waits in a thread instead, and
      the loop serves the others meanwhile.
    - PostgreSQL: the read and the confirmation awaited on asyncio connections (`Runtime.on_loop`), so no
      thread takes the GIL from the loop twice a batch; a batch starts after one turn of the loop.
    - MariaDB: in one of the check-in threads.
    """

    def __init__(self, runtime: Runtime, readers: ThreadPoolExecutor, writers: ThreadPoolExecutor) -> None:
        self.runtime = runtime
        self._writers = writers
        self._batches: Batches[AgentRequest, agent_requests.CheckInOutcome]
        if runtime.reads_are_local:
            self._batches = Batches("check-ins", self._on_loop_unless_locked)
        elif runtime.reads_on_loop:
            self._batches = Batches(
                "check-ins",
                lambda requests: runtime.on_loop(agent_requests.check_ins, requests),
                gather_first=True,
            )
        else:
            self._batches = Batches(
                "check-ins", in_thread(readers, functools.partial(agent_requests.check_ins, runtime))
            )

    async def _on_loop_unless_locked(
        self, requests: Sequence[AgentRequest]
    ) -> list[agent_requests.CheckInOutcome]:
        outcomes = agent_requests.claimed_check_ins(self.runtime, requests)
        try:
            agent_requests.confirm_check_ins(self.runtime, outcomes, wait=False)
        except WriterBusy:
            await asyncio.get_running_loop().run_in_executor(
                self._writers, agent_requests.confirm_check_ins, self.runtime, outcomes
            )
        return outcomes

    async def answer(self, request: AgentRequest) -> AgentAnswer | None:
        """The hello's answer, None if it has something to write; raises its refusal."""
        try:
            async with asyncio.timeout(CHECK_IN_TIMEOUT_S):
                answered = await self._batches.outcome(request)
        except TimeoutError:
            raise Unavailable("the check-in could not be answered in time; send it again") from None
        if isinstance(answered, OcoError):
            raise answered
        return answered


# Request parsing ----------------------------------------------------------------------------------


async def _read_body(request: Request, limit: int) -> bytes:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise BadRequest(f"content type must be application/json, not {content_type or 'missing'!r}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"request body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(body: bytes, request: Request, trusted_proxies: list[str]) -> tuple[Any, AgentRequest]:
    try:
        document = load_request(body)
    except InvalidAgentInput as exc:
        raise BadRequest(exc.message, PARSE_ERROR if exc.syntax else INVALID_REQUEST) from None
    if not isinstance(document, dict):
        raise BadRequest("body must be a JSON-RPC request object")
    rpc_id = document.get("id")
    if document.get("jsonrpc") != JSONRPC_VERSION:
        raise BadRequest('"jsonrpc" must be "2.0"', request_id=rpc_id)
    method_name = document.get("method")
    if not isinstance(method_name, str) or method_name not in set(AgentMethod):
        raise BadRequest(f"unknown method {method_name!r}", METHOD_NOT_FOUND, rpc_id)
    method = AgentMethod(method_name)
    params = document.get("params")
    if not isinstance(params, dict):
        raise BadRequest('"params" must be an object', INVALID_PARAMS, rpc_id)
    return rpc_id, AgentRequest(
        method=method,
        hostname=_required_text(params, "hostname", rpc_id),
        uid=_optional_text(params, "uid", rpc_id),
        timestamp=_timestamp(params, rpc_id),
        data=_data(params, method, rpc_id),
        body=body,
        signature=request.headers.get(SIGNATURE_HEADER_AGENT),
        client_address=client_address(request, trusted_proxies),
    )


def _required_text(params: dict[str, Any], key: str, rpc_id: Any) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f'"params.{key}" must be a non-empty string', INVALID_PARAMS, rpc_id)
    return value


def _optional_text(params: dict[str, Any], key: str, rpc_id: Any) -> str:
    value = params.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f'"params.{key}" must be a string', INVALID_PARAMS, rpc_id)
    return value


def _timestamp(params: dict[str, Any], rpc_id: Any) -> float:
    # `load_request` refused integers beyond 64 bits and non-finite numbers: float() cannot overflow.
    value = params.get("timestamp")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest('"params.timestamp" must be a number', INVALID_PARAMS, rpc_id)
    return float(value)


def _data(params: dict[str, Any], method: AgentMethod, rpc_id: Any) -> dict[str, Any]:
    if method is AgentMethod.DOWNLOAD:
        return {"package-id": params.get("package-id")}
    data = params.get("data", {})
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadRequest('"params.data" must be an object', INVALID_PARAMS, rpc_id)
    return data


def client_address(request: Request, trusted_proxies: list[str]) -> str:
    """The TCP peer, or the `X-Forwarded-For` client when the peer is a trusted proxy."""
    peer = request.client.host if request.client else ""
    return proxies.client_address(peer, request.headers.get("x-forwarded-for"), trusted_proxies)


# Answers ------------------------------------------------------------------------------------------


def _result_response(rpc_id: Any, answer: AgentAnswer) -> Response:
    document = {
        "jsonrpc": JSONRPC_VERSION,
        "id": rpc_id,
        "error": None,
        "result": {"success": True, "timestamp": answer.timestamp, "params": answer.params},
    }
    body = json.dumps(document, separators=(",", ":")).encode()
    headers = {SIGNATURE_HEADER_SERVER: sign(answer.server_key, body)} if answer.server_key else {}
    return Response(body, media_type="application/json", headers=headers)


# Download -----------------------------------------------------------------------------------------


def _payload(runtime: Runtime, grant: DownloadGrant, http: Request) -> Response:
    """The granted payload: streamed from the depot, or a redirect to a signed URL of it."""
    settings = runtime.settings
    follows = http.headers.get(FOLLOWS_REDIRECT_HEADER, "").strip() == "1"
    ttl = settings.depot_url_ttl_seconds if redirects(settings.depot_redirect, follows) else None
    return payload_response(runtime.depot, grant, http.headers.get("range"), ttl)


def _package_id(value: Any) -> int:
    """A package id as OCO agents send it: a number, or its decimal digits as a string."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= len(str(MAX_ID)):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise BadRequest('"params.package-id" must be a package id', INVALID_PARAMS)
    return value


# Errors -------------------------------------------------------------------------------------------


def _error_response(rpc_id: Any, code: int, message: str, status: int = 400) -> Response:
    document = {"jsonrpc": JSONRPC_VERSION, "id": rpc_id, "error": {"code": code, "message": message}}
    return Response(json.dumps(document).encode(), status_code=status, media_type="application/json")


def _refusal(request: Request, trusted_proxies: list[str], rpc_id: Any, exc: OcoError) -> Response:
    """A refused call: 401 in plain text (logged for fail2ban) or a JSON-RPC error, by `oco.errors`."""
    if isinstance(exc, Unauthorized):
        address = client_address(request, trusted_proxies)
        log.warning("oco-agent authentication failure from %s: %s", address, exc)
        return PlainTextResponse(exc.message, status_code=outcome(exc).status)
    status = outcome(exc).status
    if status >= SERVER_ERROR_STATUS:
        return _error_response(rpc_id, INTERNAL_ERROR, exc.message, status)
    return _error_response(rpc_id, INVALID_PARAMS, exc.message)
