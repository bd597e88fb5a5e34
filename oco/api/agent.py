"""The OCO agent endpoint: JSON-RPC 2.0 over `/api-agent.php` and `/api/agent` (PROTOCOL.md).

This module only translates HTTP to use cases and back: parsing, limits, signatures of responses,
error mapping. The rules live in `oco.services.agents` and `oco.domain`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from oco.api.download import payload_response
from oco.domain.errors import DomainError
from oco.domain.protocol import SIGNATURE_HEADER_AGENT, SIGNATURE_HEADER_SERVER, AgentMethod, sign
from oco.services import agent_jobs, agents
from oco.services.agents import AgentRequest, AuthenticatedAgent, AuthenticationFailed
from oco.services.computers import normalise_hostname
from oco.services.errors import ServiceError
from oco.services.runtime import Runtime

PATHS = ("/api-agent.php", "/api/agent")
JSONRPC_VERSION = "2.0"
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
PARSE_ERROR = -32700

log = logging.getLogger("oco.agent_api")


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
    hands it its requests before the web framework's middleware and routing (see `oco.server`).
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # SQLite reads are local and never wait for a writer (WAL): a plain check-in's ~100 µs run on the
        # event loop, cheaper than any trip to a thread. A network database is waited for in a few
        # threads of their own: the 40 of the shared pool would only fight over the GIL.
        self.reads_inline = runtime.engine.dialect.name == "sqlite"
        self._readers = ThreadPoolExecutor(
            runtime.settings.checkin_threads, thread_name_prefix="oco-check-in"
        )

    def close(self) -> None:
        self._readers.shutdown(wait=True)

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
                return await run_in_threadpool(_download, runtime, agent_request, request)
            agent, params = await self._answer(agent_request)
        except BadRequest as exc:
            request_id = exc.request_id if exc.request_id is not None else rpc_id
            return _error_response(request_id, exc.code, exc.message)
        except AuthenticationFailed as exc:
            _log_auth_failure(request, runtime.settings.trusted_proxies, exc)
            return PlainTextResponse(str(exc), status_code=401)
        except (ServiceError, DomainError) as exc:
            return _error_response(rpc_id, INVALID_PARAMS, str(exc))
        return _result_response(rpc_id, agent, params)

    async def _answer(self, request: AgentRequest) -> tuple[AuthenticatedAgent, dict[str, Any]]:
        runtime = self.runtime
        if request.method is AgentMethod.HELLO:
            if self.reads_inline:
                answer = _check_in(runtime, request)
            else:
                loop = asyncio.get_running_loop()
                answer = await loop.run_in_executor(self._readers, _check_in, runtime, request)
            if answer is not None:
                return answer
        handler = HANDLERS[request.method]
        return await run_in_threadpool(
            _authenticated,
            runtime,
            request,
            lambda session, agent, now: handler(runtime, session, agent, request, now),
        )


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
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}", PARSE_ERROR) from None
    if not isinstance(document, dict):
        raise BadRequest("body must be a JSON-RPC request object")
    rpc_id = document.get("id")
    if document.get("jsonrpc") != JSONRPC_VERSION:
        raise BadRequest('"jsonrpc" must be "2.0"', request_id=rpc_id)
    method_name = document.get("method")
    try:
        method = AgentMethod(method_name)
    except ValueError:
        raise BadRequest(f"unknown method {method_name!r}", METHOD_NOT_FOUND, rpc_id) from None
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
    forwarded = request.headers.get("x-forwarded-for")
    if not forwarded or not _is_trusted(peer, trusted_proxies):
        return peer
    # Walk from the nearest hop back; the first address not of a trusted proxy is the client.
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted_proxies):
            return hop
    return hops[0] if hops else peer


def _is_trusted(address: str, proxies: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for proxy in proxies:
        try:
            if ip in ipaddress.ip_network(proxy, strict=False):
                return True
        except ValueError:
            continue
    return False


# Calls --------------------------------------------------------------------------------------------

Handler = Callable[[Runtime, Session, AuthenticatedAgent, AgentRequest, datetime], dict[str, Any]]
T = TypeVar("T")


def _result_response(rpc_id: Any, agent: AuthenticatedAgent, params: dict[str, Any]) -> Response:
    document = {
        "jsonrpc": JSONRPC_VERSION,
        "id": rpc_id,
        "error": None,
        "result": {"success": True, "timestamp": agent.timestamp, "params": params},
    }
    body = json.dumps(document, separators=(",", ":")).encode()
    headers = {SIGNATURE_HEADER_SERVER: sign(agent.server_key, body)} if agent.server_key else {}
    return Response(body, media_type="application/json", headers=headers)


def _check_in(runtime: Runtime, request: AgentRequest) -> tuple[AuthenticatedAgent, dict[str, Any]] | None:
    """A steady agent's hello only reads (see `oco.services.checkins`); None when it has to write."""
    hostname = normalise_hostname(request.hostname)
    view = runtime.read(lambda connection: agent_jobs.read_check_in(connection, hostname))
    now = runtime.now()
    agent = agents.authenticate_check_in(view.computer if view else None, runtime.checkins, request, now)
    if agent is None or view is None:
        return None
    with _reverted_on_failure(runtime, agent):
        return agent, _hello_answer(runtime, agent, request, now, view.pending)


def _authenticated(
    runtime: Runtime, request: AgentRequest, use: Callable[[Session, AuthenticatedAgent, datetime], T]
) -> tuple[AuthenticatedAgent, T]:
    """Authenticate and run `use` in one transaction: a failure leaves no trace, timestamp included."""
    agent: AuthenticatedAgent | None = None
    try:
        with runtime.transaction() as session:
            now = runtime.now()
            agent = agents.authenticate(session, runtime.settings, runtime.checkins, request, now)
            result = use(session, agent, now)
    except BaseException:
        if agent is not None:
            _revert(runtime, agent)
        raise
    return agent, result


@contextmanager
def _reverted_on_failure(runtime: Runtime, agent: AuthenticatedAgent) -> Iterator[None]:
    try:
        yield
    except BaseException:
        _revert(runtime, agent)
        raise


def _revert(runtime: Runtime, agent: AuthenticatedAgent) -> None:
    if agent.claim is not None:
        runtime.checkins.revert(agent.claim)


def _hello(
    runtime: Runtime, session: Session, agent: AuthenticatedAgent, request: AgentRequest, now: datetime
) -> dict[str, Any]:
    agents.store_hello(session, agent, request.data)
    pending = [] if agent.registered else agent_jobs.pending_jobs(session.connection(), agent.computer.id)
    return _hello_answer(runtime, agent, request, now, pending)


def _hello_answer(
    runtime: Runtime,
    agent: AuthenticatedAgent,
    request: AgentRequest,
    now: datetime,
    pending: list[agent_jobs.PendingJob],
) -> dict[str, Any]:
    jobs = agent_jobs.software_jobs(pending, request.client_address, now)
    params: dict[str, Any] = {
        "update": 1 if agents.wants_inventory(agent, runtime.settings, now) else 0,
        "software-jobs": jobs,
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
    runtime: Runtime, session: Session, agent: AuthenticatedAgent, request: AgentRequest, now: datetime
) -> dict[str, Any]:
    agents.store_inventory(session, agent, request.data, now)
    return {"policies": {}}


def _update_job_state(
    runtime: Runtime, session: Session, agent: AuthenticatedAgent, request: AgentRequest, now: datetime
) -> dict[str, Any]:
    succeeded = agent_jobs.report_job_state(session, runtime.settings, agent.computer, request.data, now)
    return {"job-succeeded": succeeded}


HANDLERS: dict[AgentMethod, Handler] = {
    AgentMethod.HELLO: _hello,
    AgentMethod.UPDATE: _update,
    AgentMethod.UPDATE_JOB_STATE: _update_job_state,
}


# Download -----------------------------------------------------------------------------------------


def _download(runtime: Runtime, request: AgentRequest, http: Request) -> Response:
    package_id = request.data.get("package-id")
    if isinstance(package_id, bool) or not isinstance(package_id, int | str) or not str(package_id).isdigit():
        raise BadRequest('"params.package-id" must be a package id', INVALID_PARAMS)
    try:
        _agent, grant = _authenticated(
            runtime,
            request,
            lambda session, agent, now: agent_jobs.authorise_download(
                session, agent.computer, int(package_id), request.client_address, now
            ),
        )
    except AuthenticationFailed:
        raise
    except (ServiceError, DomainError) as exc:
        raise BadRequest(str(exc), INVALID_PARAMS) from None
    return payload_response(runtime.depot, grant, http.headers.get("range"))


# Errors -------------------------------------------------------------------------------------------


def _error_response(rpc_id: Any, code: int, message: str) -> Response:
    document = {"jsonrpc": JSONRPC_VERSION, "id": rpc_id, "error": {"code": code, "message": message}}
    return Response(json.dumps(document).encode(), status_code=400, media_type="application/json")


def _log_auth_failure(request: Request, trusted_proxies: list[str], exc: AuthenticationFailed) -> None:
    address = client_address(request, trusted_proxies)
    log.warning("oco-agent authentication failure from %s: %s", address, exc)
