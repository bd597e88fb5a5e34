"""`python -m bench writes|rollout`: the write paths of the agent protocol against a real server process.

Scenarios (each request signed, each answer checked as an agent checks it — status, the server's
signature, a result timestamp greater than the last one the computer saw, the fields it needs — so a
fast but wrong answer counts as an error):

- registration: unknown computers send their first hello signed with the registration key and get keys;
- write-path hellos: registered computers send a hello with a new agent version, then one with new
  network data (4 interfaces);
- inventory: `oco.agent.update` with 50 software entries and 4 networks;
- job-state reports: downloading with progress, executing with output, final;
- rollout: a deployment of a package with a 1 MB payload to every computer, run end to end (each agent:
  hello, download, 4 reports, final), with the check-in latency per tenth of the rollout.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from bench.fleet import AGENT_VERSION, Answer, _Connection, percentiles_ms
from bench.seed import seed_fleet, server_key
from oco.db.models import Computer, Job
from oco.domain.states import JobState
from oco.services import deployments, packages
from oco.services.targets import Targets

PATH = "/api-agent.php"
REGISTRATION_KEY = "bench-registration-key"
NEW_VERSION = "1.1.8"
NETWORKS = [
    {
        "interface": f"eth{i}",
        "addr": f"10.{i}.0.17",
        "netmask": "255.255.0.0",
        "broadcast": f"10.{i}.255.255",
        "mac": f"52:54:00:00:00:{i:02x}",
    }
    for i in range(4)
]
SOFTWARE = [
    {"name": f"Application {i}", "version": f"{i}.2.3", "description": f"Vendor {i % 7} application"}
    for i in range(50)
]
OUTPUT = "Installing files…\n" * 20


class Wrong(Exception):
    """An answer a real agent would refuse (or a transport failure)."""


@dataclass
class SimAgent:
    """One simulated computer: its keys, its last timestamps and the job it was given."""

    hostname: str
    agent_key: str
    server_key: str
    last_timestamp: float = 0.0
    last_server_timestamp: float = 0.0
    job: dict[str, Any] | None = None

    def request(self, method: str, data: dict[str, Any] | None = None, **params: Any) -> tuple[bytes, str]:
        self.last_timestamp = max(time.time(), self.last_timestamp + 0.001)
        document = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": method,
            "params": {
                "uid": self.hostname,
                "hostname": self.hostname,
                "timestamp": self.last_timestamp,
                **({"data": data} if data is not None else {}),
                **params,
            },
        }
        body = json.dumps(document).encode()
        return body, hmac.new(self.agent_key.encode(), body, hashlib.sha256).hexdigest()

    def accept(self, answer: Answer) -> dict[str, Any]:
        """The answer's params, checked as an agent checks them; keys it announces are learned."""
        if answer.status != 200:
            raise Wrong(f"HTTP {answer.status}: {answer.body[:120]!r}")
        result = json.loads(answer.body)["result"]
        params: dict[str, Any] = result["params"]
        key = params.get("server-key", self.server_key)
        expected = hmac.new(key.encode(), answer.body, hashlib.sha256).hexdigest()
        if answer.signature is None or not hmac.compare_digest(expected, answer.signature):
            raise Wrong("server signature does not match")
        if not result["timestamp"] > self.last_server_timestamp:
            raise Wrong(f"server timestamp {result['timestamp']} not after {self.last_server_timestamp}")
        self.last_server_timestamp = result["timestamp"]
        if "agent-key" in params:
            self.agent_key = params["agent-key"]
        self.server_key = key
        return params


@dataclass
class Record:
    """What a scenario measured: each request's end (since the start), kind and latency; the errors."""

    started: float = field(default_factory=time.perf_counter)
    samples: list[tuple[float, str, float]] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def count(self, kind: str | None = None) -> int:
        return sum(1 for sample in self.samples if kind is None or sample[1] == kind)

    def latencies(self, kind: str | None = None) -> list[float]:
        return [sample[2] for sample in self.samples if kind is None or sample[1] == kind]

    def error(self, kind: str, reason: str) -> None:
        self.errors[kind] += 1
        if len(self.examples) < 3:
            self.examples.append(f"{kind}: {reason}")

    def line(self, label: str, kind: str | None = None, unit: str = "requests") -> str:
        p50, p99 = percentiles_ms(self.latencies(kind))
        done = self.count(kind)
        errors = self.errors[kind] if kind else sum(self.errors.values())
        rate = done / self.elapsed if self.elapsed else 0.0
        text = (
            f"{label}: {rate:,.0f} {unit}/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
            f"{errors} errors in {done + errors:,}"
        )
        return text + (f" ({'; '.join(self.examples)})" if self.examples and errors else "")


Script = Callable[["Session", SimAgent], Awaitable[None]]


class Session:
    """One worker's connection, recording each call of the agents it serves."""

    def __init__(self, url: str, record: Record) -> None:
        parsed = httpx.URL(url)
        self.host, self.port = parsed.host, parsed.port or 80
        self.connection = _Connection(self.host, self.port)
        self.record = record

    async def call(
        self, kind: str, agent: SimAgent, method: str, data: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body, signature = agent.request(method, data)
        started = time.perf_counter()
        answer = await self._send("POST", body, signature)
        params = agent.accept(answer)
        ended = time.perf_counter()
        self.record.samples.append((ended - self.record.started, kind, ended - started))
        return params

    async def download(self, kind: str, agent: SimAgent, package_id: int) -> bytes:
        body, signature = agent.request("oco.agent.download", None, **{"package-id": package_id})
        started = time.perf_counter()
        answer = await self._send("GET", body, signature)
        ended = time.perf_counter()
        if answer.status != 200:
            raise Wrong(f"download: HTTP {answer.status}: {answer.body[:120]!r}")
        self.record.samples.append((ended - self.record.started, kind, ended - started))
        return answer.body

    async def _send(self, method: str, body: bytes, signature: str) -> Answer:
        try:
            return await self.connection.send(method, PATH, body, signature)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            self.connection.close()
            self.connection = _Connection(self.host, self.port)
            raise Wrong(f"transport: {exc!r}") from exc


async def drive(url: str, agents: Iterable[SimAgent], concurrency: int, script: Script) -> Record:
    """Run `script` for every agent, `concurrency` agents at a time (one connection each)."""
    record = Record()
    queue = iter(agents)

    async def worker() -> None:
        session = Session(url, record)
        for agent in queue:
            try:
                await script(session, agent)
            except Wrong as exc:
                record.error(_kind_of(exc), str(exc))
            except (KeyError, TypeError, ValueError) as exc:  # an answer without what an agent needs
                record.error("malformed", repr(exc))
        session.connection.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    record.elapsed = time.perf_counter() - record.started
    return record


def _kind_of(exc: Wrong) -> str:
    return str(exc).split(":", 1)[0] if str(exc).startswith(("download", "transport")) else "answer"


# Scenarios ----------------------------------------------------------------------------------------


def hello_data(version: str = AGENT_VERSION, networks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"agent_version": version, "networks": networks or [], "uptime": 1, "services": []}


async def register(session: Session, agent: SimAgent) -> None:
    params = await session.call("register", agent, "oco.agent.hello", hello_data())
    if params["update"] != 1 or "agent-key" not in params or params["software-jobs"] != []:
        raise Wrong("a first hello is answered with keys, update 1 and no jobs")


async def hello_new_version(session: Session, agent: SimAgent) -> None:
    params = await session.call("hello", agent, "oco.agent.hello", hello_data(NEW_VERSION))
    _take_job(agent, params)


async def hello_new_networks(session: Session, agent: SimAgent) -> None:
    params = await session.call("hello", agent, "oco.agent.hello", hello_data(NEW_VERSION, NETWORKS))
    _take_job(agent, params)


def _take_job(agent: SimAgent, params: dict[str, Any]) -> None:
    jobs = params["software-jobs"]
    if len(jobs) != 1:
        raise Wrong(f"expected the computer's one pending job, got {len(jobs)}")
    agent.job = jobs[0]


async def inventory(session: Session, agent: SimAgent) -> None:
    data = {
        "os": "Linux",
        "os_version": "Debian 12",
        "architecture": "x86_64",
        "kernel_version": "6.1.0",
        "agent_version": NEW_VERSION,
        "hostname": agent.hostname,
        "cpu": "Virtual CPU",
        "ram": 8 * 2**30,
        "serial": agent.hostname,
        "networks": NETWORKS,
        "software": SOFTWARE,
        "logins": [{"username": "alice", "console": "tty1", "timestamp": "2026-11-30 08:00:00"}],
    }
    params = await session.call("inventory", agent, "oco.agent.update", data)
    if params != {"policies": {}}:
        raise Wrong(f"unexpected inventory answer {params}")


async def reports(session: Session, agent: SimAgent) -> None:
    """Downloading with progress, executing with output, finished: three reports of the agent's job."""
    assert agent.job is not None
    job_id = agent.job["id"]
    await _report(session, agent, job_id, 1, None, "", 50)
    await _report(session, agent, job_id, 2, None, OUTPUT)
    if not await _report(session, agent, job_id, 3, 0, OUTPUT + "done\n"):
        raise Wrong("a job that exited 0 did not succeed")


async def _report(
    session: Session,
    agent: SimAgent,
    job_id: int,
    state: int,
    code: int | None,
    message: str,
    progress: int | None = None,
) -> bool:
    data: dict[str, Any] = {"job-id": job_id, "state": state, "return-code": code, "message": message}
    if progress is not None:
        data["download-progress"] = progress
    params = await session.call("report", agent, "oco.agent.update_job_state", data)
    return bool(params["job-succeeded"])


def rollout_script(payload: bytes) -> Script:
    digest = hashlib.sha256(payload).hexdigest()

    async def rollout(session: Session, agent: SimAgent) -> None:
        params = await session.call("hello", agent, "oco.agent.hello", hello_data())
        _take_job(agent, params)
        assert agent.job is not None
        job = agent.job
        if not job["download"] or job.get("payload-sha256") != digest:
            raise Wrong("the job does not name the payload")
        received = await session.download("download", agent, job["package-id"])
        if hashlib.sha256(received).hexdigest() != digest:
            raise Wrong("download: the payload is not the one the signed answer names")
        await _report(session, agent, job["id"], 1, None, "", 0)
        await _report(session, agent, job["id"], 1, None, "", 100)
        await _report(session, agent, job["id"], 2, None, "")
        await _report(session, agent, job["id"], 2, None, OUTPUT)
        if not await _report(session, agent, job["id"], 3, 0, OUTPUT + "done\n"):
            raise Wrong("a job that exited 0 did not succeed")

    return rollout


# Runs ---------------------------------------------------------------------------------------------


def _server_env(rt: Any, workdir: Path, **settings: str) -> dict[str, str]:
    return {
        **os.environ,
        "OCO_DATABASE_URL": rt.settings.database_url,
        "OCO_DEPOT_PATH": str(workdir / "depot"),
        **{f"OCO_{key.upper()}": value for key, value in settings.items()},
    }


def writes(args: argparse.Namespace, fresh_runtime: Any, start: Any, stop: Any) -> None:
    """Registration, write-path hellos, inventory and job reports, each computer once per scenario."""
    import tempfile

    from tests.live import free_port

    size = args.write_computers
    print(
        f"# agent write paths ({args.database}, {args.workers} server process(es), "
        f"concurrency {args.concurrency}, {size:,} computers)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rt = fresh_runtime(workdir, args.database)
        keys = seed_fleet(rt, size)
        port = free_port()
        env = _server_env(rt, workdir, agent_registration_key=REGISTRATION_KEY, self_registration="true")
        command = ["-m", "oco", "server", "--no-migrate", "--port", str(port), "--workers", str(args.workers)]
        server = start([_python(), *command], env, f"http://127.0.0.1:{port}/healthz")
        url = f"http://127.0.0.1:{port}"
        try:
            newcomers = [SimAgent(f"new-{i:06d}", REGISTRATION_KEY, "") for i in range(size)]
            result = asyncio.run(drive(url, newcomers, args.concurrency, register))
            print(result.line("registration (first hello, keys issued)", unit="hellos"))
            fleet = [SimAgent(name, key, server_key(key)) for name, key in keys.items()]
            result = asyncio.run(drive(url, fleet, args.concurrency, hello_new_version))
            print(result.line("write-path hello (new agent version)", unit="hellos"))
            result = asyncio.run(drive(url, fleet, args.concurrency, hello_new_networks))
            print(result.line("write-path hello (new network data, 4 interfaces)", unit="hellos"))
            result = asyncio.run(drive(url, fleet, args.concurrency, inventory))
            print(result.line("inventory (50 software entries, 4 networks)", unit="updates"))
            with_job = [agent for agent in fleet if agent.job is not None]
            result = asyncio.run(drive(url, with_job, args.concurrency, reports))
            print(
                result.line("job-state reports (downloading, executing with output, final)", unit="reports")
            )
        finally:
            stop(server)
        with rt.reading() as session:
            registered = session.scalar(select(func.count()).select_from(Computer)) or 0
            succeeded = (
                session.scalar(select(func.count()).select_from(Job).where(Job.state == JobState.SUCCEEDED))
                or 0
            )
        rt.close()
    print(f"stored: {registered:,} computers (of {2 * size:,}), {succeeded:,} jobs succeeded (of {size:,})")


def rollout(args: argparse.Namespace, fresh_runtime: Any, start: Any, stop: Any) -> None:
    """A deployment to every computer, run end to end by the simulated fleet."""
    import tempfile

    from tests.live import free_port

    size = args.rollout_computers
    print(
        f"# rollout of a {args.rollout_payload_kb} KB payload to {size:,} computers ({args.database}, "
        f"{args.workers} server process(es), concurrency {args.concurrency})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rt = fresh_runtime(workdir, args.database)
        keys = seed_fleet(rt, size, pending=False)
        payload = b"PK\x03\x04" + os.urandom(args.rollout_payload_kb * 1024 - 4)
        source = workdir / "payload.zip"
        source.write_bytes(payload)
        package_id = packages.create_package(
            rt, packages.PackageSpec("Rollout", "1", "true"), lambda depot: depot.put_file(source), "bench"
        ).id
        request = deployments.DeploymentRequest(
            deployments.ContainerOptions(name="rollout"), Targets(list(keys), packages=[package_id])
        )
        deployments.create_deployment(rt, request, "bench")
        port = free_port()
        command = ["-m", "oco", "server", "--no-migrate", "--port", str(port), "--workers", str(args.workers)]
        server = start([_python(), *command], _server_env(rt, workdir), f"http://127.0.0.1:{port}/healthz")
        fleet = [SimAgent(name, key, server_key(key)) for name, key in keys.items()]
        try:
            result = asyncio.run(
                drive(f"http://127.0.0.1:{port}", fleet, args.concurrency, rollout_script(payload))
            )
        finally:
            stop(server)
        with rt.reading() as session:
            succeeded = (
                session.scalar(select(func.count()).select_from(Job).where(Job.state == JobState.SUCCEEDED))
                or 0
            )
        rt.close()
    print(f"rollout done in {result.elapsed:.1f} s: {succeeded:,} of {size:,} jobs succeeded")
    print(result.line("  all requests"))
    print(result.line("  check-ins (hello)", "hello", "check-ins"))
    print(result.line("  downloads", "download", "downloads"))
    print(result.line("  job-state reports", "report", "reports"))
    tenths = []
    for tenth in range(10):
        low, high = result.elapsed * tenth / 10, result.elapsed * (tenth + 1) / 10
        window = [s[2] for s in result.samples if s[1] == "hello" and low <= s[0] < high]
        tenths.append(percentiles_ms(window)[1])
    print("  check-in p99 per tenth of the rollout: " + ", ".join(f"{p99:.0f}" for p99 in tenths) + " ms")


def _python() -> str:
    import sys

    return sys.executable
