"""A small signing client written from PROTOCOL.md, independent of `oco.agent`, for conformance tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

PATH = "/api-agent.php"


@dataclass
class ProtocolClient:
    """One simulated computer: its hostname, the keys it learned and its last timestamps."""

    server: str
    hostname: str
    registration_key: str
    agent_key: str = ""
    server_key: str = ""
    uid: str = "uid-0001"
    source_address: str | None = None
    last_timestamp: float = 0.0
    last_server_timestamp: float = 0.0
    path: str = PATH
    _client: httpx.Client | None = field(default=None, repr=False)

    @property
    def http(self) -> httpx.Client:
        if self._client is None:
            transport = (
                httpx.HTTPTransport(local_address=self.source_address) if self.source_address else None
            )
            self._client = httpx.Client(base_url=self.server, transport=transport, timeout=30)
        return self._client

    def close(self) -> None:
        """Close the connection; the next call opens a new one."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def next_timestamp(self) -> float:
        self.last_timestamp = max(time.time(), self.last_timestamp + 0.001)
        return self.last_timestamp

    def body(self, method: str, data: dict[str, Any] | None = None, **params: Any) -> bytes:
        document = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": method,
            "params": {
                "uid": self.uid,
                "hostname": self.hostname,
                "timestamp": self.next_timestamp(),
                **({"data": data} if data is not None else {}),
                **params,
            },
        }
        return json.dumps(document).encode()

    def sign(self, body: bytes, key: str | None = None) -> str:
        secret = key if key is not None else (self.agent_key or self.registration_key)
        return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()

    def send(
        self, body: bytes, *, key: str | None = None, http_method: str = "POST", **headers: str
    ) -> httpx.Response:
        request_headers = {"content-type": "application/json", "x-oco-agent-signature": self.sign(body, key)}
        request_headers.update(headers)
        return self.http.request(http_method, self.path, content=body, headers=request_headers)

    def call(self, method: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a signed call, check the server signature and timestamp, learn keys; return params."""
        response = self.send(self.body(method, data))
        assert response.status_code == 200, f"{method}: {response.status_code} {response.text}"
        result = response.json()["result"]
        params = result["params"]
        if "agent-key" in params:
            self.agent_key = params["agent-key"]
        if "server-key" in params:
            self.server_key = params["server-key"]
        expected = hmac.new(self.server_key.encode(), response.content, hashlib.sha256).hexdigest()
        assert response.headers["x-oco-server-signature"] == expected, "server signature mismatch"
        assert result["timestamp"] > self.last_server_timestamp, "server timestamp did not increase"
        self.last_server_timestamp = result["timestamp"]
        return params

    def hello(self, **data: Any) -> dict[str, Any]:
        payload = {"agent_version": "1.1.7", "networks": [], "uptime": 100, "services": [], **data}
        return self.call("oco.agent.hello", payload)

    def report(
        self, job_id: int, state: int, return_code: int | None = None, message: str = "", **extra: Any
    ) -> bool:
        data = {"job-id": job_id, "state": state, "return-code": return_code, "message": message, **extra}
        return bool(self.call("oco.agent.update_job_state", data)["job-succeeded"])

    def download(self, package_id: int, headers: dict[str, str] | None = None) -> httpx.Response:
        body = self.body("oco.agent.download", None, **{"package-id": package_id})
        return self.send(body, http_method="GET", **(headers or {}))

    def update(self, **data: Any) -> dict[str, Any]:
        """Send a full inventory (`oco.agent.update`), as an OCO agent does when a hello says `update: 1`."""
        inventory = {"os": "Linux", "os_version": "12", "architecture": "x86_64", "networks": [], **data}
        return self.call("oco.agent.update", inventory)

    def run_like_oco_agent(self, jobs: list[dict[str, Any]], exit_codes: dict[int, int | None]) -> list[bool]:
        """Run a hello's `software-jobs` as the OCO agent (1.2.0) does, returning each `job-succeeded`.

        In order; a job with `download: true` is downloaded first (state 1), then reported executing (2)
        and finished (3) with its exit code from `exit_codes` — None plays an agent error (state -1,
        return code -9999). After an error the agent does not skip the container's other jobs, even in
        sequence mode "abort after failed job": it runs them anyway and reports them.
        """
        answers = []
        for job in jobs:
            job_id = job["id"]
            if job["download"]:
                self.report(job_id, 1, None, "", **{"download-progress": 0})
                response = self.download(job["package-id"])
                if response.status_code != 200:
                    answers.append(self.report(job_id, -1, -9999, f"download failed: {response.status_code}"))
                    continue
            self.report(job_id, 2, None, "")
            code = exit_codes.get(job_id, 0)
            if code is None:
                answers.append(self.report(job_id, -1, -9999, "agent error"))
            else:
                answers.append(self.report(job_id, 3, code, f"exit {code}"))
        return answers
