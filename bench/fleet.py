"""Fleet simulator: N agents speaking the real protocol (signed requests, keys, timestamps) against a
real server process, with a given concurrency; reports check-ins/s, latency percentiles and errors."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import statistics
import time
from dataclasses import dataclass

import httpx

from bench.seed import AGENT_VERSION


@dataclass(frozen=True)
class FleetResult:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def line(self, label: str) -> str:
        return (
            f"{label}: {self.rate:,.0f} check-ins/s, p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, "
            f"{self.errors} errors in {self.requests:,} requests"
        )


def hello_body(hostname: str, timestamp: float) -> bytes:
    document = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "oco.agent.hello",
        "params": {
            "uid": hostname,
            "hostname": hostname,
            "timestamp": timestamp,
            "data": {"agent_version": AGENT_VERSION, "networks": [], "uptime": 1, "services": []},
        },
    }
    return json.dumps(document).encode()


JOB_MARK = b'"software-jobs":[{'


class Answer:
    """An HTTP answer as the simulator reads it: status, the server's signature header, the body."""

    __slots__ = ("body", "signature", "status")

    def __init__(self, status: int, signature: str | None, body: bytes) -> None:
        self.status, self.signature, self.body = status, signature, body


class _Connection:
    """One keep-alive HTTP/1.1 connection; a minimal client so the load generator is not the bottleneck."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, signature: str) -> tuple[int, bytes]:
        answer = await self.send("POST", path, body, signature)
        return answer.status, answer.body

    async def send(self, method: str, path: str, body: bytes, signature: str) -> Answer:
        """One request (OCO agents download with a GET that has a JSON body); the whole answer read."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=2**20)
        assert self.reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"X-OCO-Agent-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        length = 0
        server_signature = None
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            name = name.lower()
            if name == "content-length":
                length = int(value)
            elif name == SERVER_SIGNATURE:
                server_signature = value.strip()
        answer = await self.reader.readexactly(length)
        return Answer(int(status_line.split()[1]), server_signature, answer)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


SERVER_SIGNATURE = "x-oco-server-signature"
_TIMESTAMP = re.compile(rb'"timestamp":\s*([0-9.eE+-]+)')


def verified(answer: Answer, server_key: str, last_server_timestamp: float) -> float | None:
    """The answer's server timestamp if a real agent would take the answer, else None: status 200, the
    body signed with the computer's server key, a timestamp greater than the last one it saw."""
    if answer.status != 200 or answer.signature is None:
        return None
    expected = hmac.new(server_key.encode(), answer.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, answer.signature):
        return None
    found = _TIMESTAMP.search(answer.body)  # result.timestamp: the first of the answer
    if found is None:
        return None
    timestamp = float(found.group(1))
    return timestamp if timestamp > last_server_timestamp else None


async def run_fleet(
    url: str,
    keys: dict[str, str],
    concurrency: int,
    duration_s: float,
    path: str = "/api-agent.php",
    server_keys: dict[str, str] | None = None,
    with_job: set[str] | None = None,
    handed: set[str] | None = None,
) -> FleetResult:
    """Agents check in round-robin for `duration_s` with `concurrency` requests in flight; `with_job`:
    the computers handed their pending job (default: all of them).

    With `server_keys`, each answer is checked as an agent checks it (signature, increasing timestamp):
    one an agent would refuse counts as an error. The bare endpoint signs nothing and is not checked.
    With `handed`, whether an answer carries the job is not checked but noted: the computers handed it
    are added to the set (download slots decide which).
    """
    parsed = httpx.URL(url)
    names = list(keys)
    latencies: list[float] = []
    errors = 0
    counter = 0
    stamps: dict[str, float] = {}
    server_stamps: dict[str, float] = {}
    deadline = time.perf_counter() + duration_s

    async def worker() -> None:
        nonlocal errors, counter
        connection = _Connection(parsed.host, parsed.port or 80)
        while time.perf_counter() < deadline:
            name = names[counter % len(names)]
            counter += 1
            stamp = max(time.time(), stamps.get(name, 0.0) + 0.001)
            stamps[name] = stamp
            body = hello_body(name, stamp)
            signature = hmac.new(keys[name].encode(), body, hashlib.sha256).hexdigest()
            started = time.perf_counter()
            try:
                answer = await connection.send("POST", path, body, signature)
                # Every simulated computer has one pending job: an answer without it is wrong too
                # (with a phased rollout, only those of the open phase are handed theirs).
                expected = with_job is None or name in with_job
                has_job = JOB_MARK in answer.body
                if handed is not None:
                    expected = has_job
                    if has_job:
                        handed.add(name)
                if answer.status != 200 or has_job != expected:
                    errors += 1
                elif server_keys is not None:
                    server_stamp = verified(answer, server_keys[name], server_stamps.get(name, 0.0))
                    if server_stamp is None:
                        errors += 1
                    else:
                        server_stamps[name] = server_stamp
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                connection.close()
                connection = _Connection(parsed.host, parsed.port or 80)
            latencies.append(time.perf_counter() - started)
        connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return FleetResult(len(latencies), errors, elapsed, *percentiles_ms(latencies))


def percentiles_ms(latencies: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    if not latencies:
        return 0.0, 0.0
    ordered = sorted(latencies)
    p99 = ordered[max(int(len(ordered) * 0.99) - 1, 0)]
    return statistics.median(ordered) * 1000, p99 * 1000
