"""The agent side of the OCO protocol: signed JSON-RPC calls, key learning, response verification."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx

from oco.agent.config import AgentConfig, AgentConfigError, save_config, write_private
from oco.agent.tls import TlsTrustError, client_verify, store_verify
from oco.domain.protocol import (
    FOLLOWS_REDIRECT_HEADER,
    SIGNATURE_HEADER_AGENT,
    SIGNATURE_HEADER_SERVER,
    AgentMethod,
    sign,
    signature_matches,
)

TIMEOUT_S = 60
TIMESTAMP_STEP = 0.001
"""The smallest step between two of our timestamps when the clock has not moved (or went back)."""
COUNTERS_FILE = "protocol.json"
JSONRPC_VERSION = "2.0"
RPC_ID = 1
KEY_FIELDS = (("agent-key", "agent_key"), ("server-key", "server_key"))
REDIRECTS = (
    HTTPStatus.MOVED_PERMANENTLY,
    HTTPStatus.FOUND,
    HTTPStatus.SEE_OTHER,
    HTTPStatus.TEMPORARY_REDIRECT,
    HTTPStatus.PERMANENT_REDIRECT,
)


class ProtocolError(Exception):
    """The server answered something the protocol does not allow (bad signature, old timestamp…)."""


class ServerRefused(ProtocolError):
    """The server answered the request with a 4xx status (authentication, unknown job, bad range…)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


class ServerUnreachable(Exception):
    """No answer from the server (network, DNS, refused connection, 5xx)."""


class StoreUnreachable(ServerUnreachable):
    """The object store a download was redirected to did not serve it (down, or the URL expired)."""


class AgentClient:
    """Talks to `<server>/api-agent.php`; keeps keys in the config file and timestamps in the state dir."""

    def __init__(
        self, config: AgentConfig, config_path: Path, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.config = config
        self.config_path = config_path
        self._counters = config.state_path / COUNTERS_FILE
        self._last_timestamp, self._last_server_timestamp = self._load_counters()
        try:
            verify = client_verify(config.tls_ca_file, config.tls_fingerprint, config.verify_tls)
        except TlsTrustError as exc:
            raise AgentConfigError(str(exc)) from None
        self._given_transport = transport
        if transport is None and config.source_address:
            transport = httpx.HTTPTransport(local_address=config.source_address, verify=verify)
        self.http = httpx.Client(timeout=TIMEOUT_S, transport=transport, verify=verify)
        self._store: httpx.Client | None = None

    def close(self) -> None:
        """Close the connection pools."""
        self.http.close()
        if self._store is not None:
            self._store.close()

    # Requests ---------------------------------------------------------------------------------

    def call(self, method: AgentMethod, data: dict[str, Any]) -> dict[str, Any]:
        """Send a signed call and return the verified `result.params`.

        Raises ServerUnreachable (network, 5xx), ServerRefused (4xx) or ProtocolError (bad answer).
        """
        body = self.body(method, {"data": data})
        try:
            response = self.http.post(self.config.endpoint, content=body, headers=self.headers(body))
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"{self.config.endpoint}: {exc}") from exc
        _raise_for_status(response)
        return self.verified_params(response)

    def open_download(self, package_id: int, offset: int = 0) -> httpx.Response:
        """Start a payload download (GET with a JSON body, as OCO agents do), from byte `offset` on.

        A server with an object-store depot may answer with a redirect to a signed URL of the store: it is
        followed (once) with a plain GET and the same `Range`. The caller reads the returned streaming
        response and closes it.
        """
        body = self.body(AgentMethod.DOWNLOAD, {"package-id": package_id})
        headers = {**self.headers(body), FOLLOWS_REDIRECT_HEADER: "1"}
        ranged = {"range": f"bytes={offset}-"} if offset else {}
        request = self.http.build_request(
            "GET", self.config.endpoint, content=body, headers={**headers, **ranged}
        )
        what = f"download of package {package_id}"
        response = self._send(self.http, request, what)
        if response.status_code in REDIRECTS and response.headers.get("location"):
            location = self._redirect_target(response, what)
            store = self._store_client()
            try:
                response = self._send(store, store.build_request("GET", location, headers=ranged), what)
            except ServerUnreachable as exc:
                raise StoreUnreachable(f"{exc} (the object store {location.host})") from exc
            if response.status_code not in (HTTPStatus.OK, HTTPStatus.PARTIAL_CONTENT):
                _drain(response, what)
                if response.status_code == HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE:
                    raise ServerRefused(response.status_code, f"{what}: the object store refused the range")
                # An expired URL (403) or a store that is down: the next try asks the server anew.
                raise StoreUnreachable(f"{what}: the object store answered {response.status_code}")
        if response.status_code not in (HTTPStatus.OK, HTTPStatus.PARTIAL_CONTENT):
            _drain(response, what)
            _raise_for_status(response, what)
            raise ProtocolError(f"{what}: unexpected status {response.status_code}")
        return response

    def _send(self, client: httpx.Client, request: httpx.Request, what: str) -> httpx.Response:
        try:
            return client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"{what}: {exc}") from exc

    def _redirect_target(self, response: httpx.Response, what: str) -> httpx.URL:
        """Where a redirect points (only http and https); the redirect response is closed."""
        try:
            location = response.url.join(response.headers["location"])
        except httpx.InvalidURL as exc:
            raise ProtocolError(f"{what}: the redirect's location is not a URL: {exc}") from None
        finally:
            response.close()
        if location.scheme not in ("http", "https"):
            raise ProtocolError(f"{what}: redirected to a {location.scheme or 'relative'} URL")
        return location

    def _store_client(self) -> httpx.Client:
        """The client of redirected downloads: an object store is trusted like any https site (the
        system's CAs, plus the agent's CA file); what it sends is checked against the signed job."""
        if self._store is None:
            try:
                verify = store_verify(self.config.tls_ca_file, self.config.verify_tls)
            except TlsTrustError as exc:
                raise AgentConfigError(str(exc)) from None
            transport = self._given_transport
            if transport is None and self.config.source_address:
                transport = httpx.HTTPTransport(local_address=self.config.source_address, verify=verify)
            self._store = httpx.Client(timeout=TIMEOUT_S, transport=transport, verify=verify)
        return self._store

    def body(self, method: AgentMethod, params: dict[str, Any]) -> bytes:
        """The exact JSON-RPC body of a call, with a fresh, strictly increasing timestamp."""
        document = {
            "jsonrpc": JSONRPC_VERSION,
            "id": RPC_ID,
            "method": str(method),
            "params": {
                "uid": self.config.uid,
                "hostname": self.config.effective_hostname,
                "timestamp": self.next_timestamp(),
                **params,
            },
        }
        return json.dumps(document).encode()

    def headers(self, body: bytes) -> dict[str, str]:
        """Content type and signature: the agent key, or the registration key before we have one."""
        key = self.config.agent_key or self.config.registration_key
        return {"content-type": "application/json", SIGNATURE_HEADER_AGENT: sign(key, body)}

    # Responses --------------------------------------------------------------------------------

    def verified_params(self, response: httpx.Response) -> dict[str, Any]:
        """Check the server's signature and timestamp, learn offered keys, return `result.params`."""
        try:
            result = response.json()["result"]
            params = result["params"]
            timestamp = float(result["timestamp"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(f"malformed server response: {exc!r}") from None
        if not isinstance(params, dict):
            raise ProtocolError("malformed server response: result.params is not an object")
        offered = _offered_keys(params)
        # Trust on first use: before we know a server key, the answer signs with the one it offers.
        server_key = self.config.server_key or offered.get("server_key", "")
        signature = response.headers.get(SIGNATURE_HEADER_SERVER)
        if server_key and not signature_matches(server_key, response.content, signature):
            raise ProtocolError("the server's signature does not match its key")
        if timestamp <= self._last_server_timestamp:
            raise ProtocolError("the server's timestamp is not newer than the last one: replayed response")
        self._last_server_timestamp = timestamp
        self._save_counters()
        self._learn_keys(offered)
        return params

    def _learn_keys(self, offered: dict[str, str]) -> None:
        """Keep the keys the server offers; once both are known, forget the registration key.

        The server admits the registration key only for a computer's first hello, so keeping it would
        only leave a shared secret of every computer lying in this one's configuration file.
        """
        agent_key = self.config.agent_key or offered.get("agent_key", "")
        server_key = self.config.server_key or offered.get("server_key", "")
        registration_key = "" if agent_key and server_key else self.config.registration_key
        learned = (agent_key, server_key, registration_key)
        if learned != (self.config.agent_key, self.config.server_key, self.config.registration_key):
            self.config = replace(
                self.config, agent_key=agent_key, server_key=server_key, registration_key=registration_key
            )
            save_config(self.config_path, self.config)

    # Timestamps -------------------------------------------------------------------------------

    def next_timestamp(self) -> float:
        """Now, or just above the last timestamp used (persisted, so it survives restarts)."""
        self._last_timestamp = max(time.time(), self._last_timestamp + TIMESTAMP_STEP)
        self._save_counters()
        return self._last_timestamp

    def _load_counters(self) -> tuple[float, float]:
        try:
            data = json.loads(self._counters.read_text(encoding="utf-8"))
            return float(data["timestamp"]), float(data["server_timestamp"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0, 0.0

    def _save_counters(self) -> None:
        self._counters.parent.mkdir(parents=True, exist_ok=True)
        data = {"timestamp": self._last_timestamp, "server_timestamp": self._last_server_timestamp}
        write_private(self._counters, json.dumps(data).encode())


def _offered_keys(params: dict[str, Any]) -> dict[str, str]:
    """The keys an answer hands out, by config attribute; null or empty values are ignored."""
    return {
        attribute: value
        for wire, attribute in KEY_FIELDS
        if isinstance(value := params.get(wire), str) and value
    }


def _drain(response: httpx.Response, what: str) -> None:
    """Read and close a response that is not the payload (its text may explain why)."""
    try:
        response.read()
    except httpx.TransportError as exc:
        raise ServerUnreachable(f"{what}: {exc}") from exc
    finally:
        response.close()


def _raise_for_status(response: httpx.Response, what: str = "server") -> None:
    if response.status_code >= HTTPStatus.INTERNAL_SERVER_ERROR:
        raise ServerUnreachable(f"{what}: server error {response.status_code}")
    if response.status_code != HTTPStatus.OK and response.status_code >= HTTPStatus.BAD_REQUEST:
        reason = response.text.strip()
        raise ServerRefused(
            response.status_code, f"{what} refused the request: {response.status_code} {reason}"
        )
    if response.status_code != HTTPStatus.OK:
        raise ProtocolError(f"{what}: unexpected status {response.status_code}")
