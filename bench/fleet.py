"""Fleet simulator: N agents speaking the real protocol (signed requests, keys, timestamps) against a
real server process, with a given concurrency; reports check-ins/s, latency percentiles and errors."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import statistics
import time
from dataclasses import dataclass

import httpx


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
            "data": {"agent_version": "1.1.7", "networks": [], "uptime": 1, "services": []},
        },
    }
    return json.dumps(document).encode()


async def run_fleet(
    url: str, keys: dict[str, str], concurrency: int, duration_s: float, path: str = "/api-agent.php"
) -> FleetResult:
    """Agents check in round-robin for `duration_s` with `concurrency` requests in flight."""
    names = list(keys)
    latencies: list[float] = []
    errors = 0
    counter = 0
    stamps: dict[str, float] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        deadline = time.perf_counter() + duration_s

        async def worker() -> None:
            nonlocal errors, counter
            while time.perf_counter() < deadline:
                name = names[counter % len(names)]
                counter += 1
                stamp = max(time.time(), stamps.get(name, 0.0) + 0.001)
                stamps[name] = stamp
                body = hello_body(name, stamp)
                signature = hmac.new(keys[name].encode(), body, hashlib.sha256).hexdigest()
                started = time.perf_counter()
                try:
                    response = await client.post(
                        path,
                        content=body,
                        headers={"content-type": "application/json", "x-oco-agent-signature": signature},
                    )
                    if response.status_code != 200:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    p99 = ordered[int(len(ordered) * 0.99) - 1] if ordered else 0.0
    return FleetResult(
        len(latencies), errors, elapsed, statistics.median(ordered) * 1000 if ordered else 0, p99 * 1000
    )
