"""The agent side of the OCO protocol: signed JSON-RPC calls, key learning, response verification."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from oco.agent.config import AgentConfig, save_config, write_private
from oco.domain.protocol import (
    SIGNATURE_HEADER_AGENT,
    SIGNATURE_HEADER_SERVER,
    AgentMethod,
    sign,
    signature_matches,
)

TIMEOUT_S = 60
TIMESTAMP_STEP = 0.001


class ProtocolError(Exception):
    """The server answered something the protocol does not allow (bad signature, old timestamp…)."""


class ServerUnreachable(Exception):
    """No answer from the server (network, DNS, refused connection, 5xx)."""


class AgentClient:
    """Talks to `<server>/api-agent.php`; keeps keys in the config file and timestamps in the state dir."""

    def __init__(
        self, config: AgentConfig, config_path: Path, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.config = config
        self.config_path = config_path
        self._counters = config.state_path / "protocol.json"
        self._last_timestamp, self._last_server_timestamp = self._load_counters()
        if transport is None and config.source_address:
            transport = httpx.HTTPTransport(local_address=config.source_address)
        self.http = httpx.Client(timeout=TIMEOUT_S, transport=transport, verify=config.verify_tls)

    def close(self) -> None:
        self.http.close()

    # Requests ---------------------------------------------------------------------------------

    def call(self, method: AgentMethod, data: dict[str, Any]) -> dict[str, Any]:
        """Send a signed call and return the verified `result.params`."""
        body = self._body(method, {"data": data})
        response = self._send("POST", body)
        return self._verified_params(response)

    def open_download(self, package_id: int, offset: int = 0) -> httpx.Response:
        """Start a payload download (GET with a JSON body, as OCO agents do), from `offset` on."""
        body = self._body(AgentMethod.DOWNLOAD, {"package-id": package_id})
        headers = self._headers(body)
        if offset:
            headers["range"] = f"bytes={offset}-"
        request = self.http.build_request("GET", self.config.endpoint, content=body, headers=headers)
        try:
            response = self.http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"download of package {package_id}: {exc}") from exc
        if response.status_code not in (200, 206):
            response.read()
            response.close()
            raise ProtocolError(
                f"download of package {package_id} refused: {response.status_code} {response.text}"
            )
        return response

    def _body(self, method: AgentMethod, params: dict[str, Any]) -> bytes:
        document = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": str(method),
            "params": {
                "uid": self.config.uid,
                "hostname": self.config.effective_hostname,
                "timestamp": self._next_timestamp(),
                **params,
            },
        }
        return json.dumps(document).encode()

    def _headers(self, body: bytes) -> dict[str, str]:
        key = self.config.agent_key or self.config.registration_key
        return {"content-type": "application/json", SIGNATURE_HEADER_AGENT: sign(key, body)}

    def _send(self, verb: str, body: bytes) -> httpx.Response:
        try:
            response = self.http.request(
                verb, self.config.endpoint, content=body, headers=self._headers(body)
            )
        except httpx.TransportError as exc:
            raise ServerUnreachable(str(exc)) from exc
        if response.status_code >= 500:
            raise ServerUnreachable(f"server error {response.status_code}")
        if response.status_code != 200:
            raise ProtocolError(f"server refused the request: {response.status_code} {response.text.strip()}")
        return response

    # Responses --------------------------------------------------------------------------------

    def _verified_params(self, response: httpx.Response) -> dict[str, Any]:
        try:
            result = response.json()["result"]
            params = result["params"]
            timestamp = float(result["timestamp"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(f"malformed server response: {exc}") from None
        self._learn_keys(params)
        signature = response.headers.get(SIGNATURE_HEADER_SERVER)
        if self.config.server_key and not signature_matches(
            self.config.server_key, response.content, signature
        ):
            raise ProtocolError("the server's signature does not match its key")
        if timestamp <= self._last_server_timestamp:
            raise ProtocolError("the server's timestamp is not newer than the last one: replayed response")
        self._last_server_timestamp = timestamp
        self._save_counters()
        return dict(params)

    def _learn_keys(self, params: dict[str, Any]) -> None:
        changes = {}
        for wire, attribute in (("agent-key", "agent_key"), ("server-key", "server_key")):
            value = params.get(wire)
            if isinstance(value, str) and value and not getattr(self.config, attribute):
                changes[attribute] = value
        if changes:
            self.config = replace(self.config, **changes)
            save_config(self.config_path, self.config)

    # Timestamps -------------------------------------------------------------------------------

    def _next_timestamp(self) -> float:
        self._last_timestamp = max(time.time(), self._last_timestamp + TIMESTAMP_STEP)
        self._save_counters()
        return self._last_timestamp

    def _load_counters(self) -> tuple[float, float]:
        try:
            data = json.loads(self._counters.read_text())
            return float(data["timestamp"]), float(data["server_timestamp"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0, 0.0

    def _save_counters(self) -> None:
        self._counters.parent.mkdir(parents=True, exist_ok=True)
        data = {"timestamp": self._last_timestamp, "server_timestamp": self._last_server_timestamp}
        write_private(self._counters, json.dumps(data).encode())
