"""`python -m bench slots`: download slots under a fleet (docs/rollouts.md "Download slots").

Each run seeds N computers and one deployment of a package with a payload to all of them, once without a
limit and once with `--max-downloads M`, then:

- steady check-ins: every computer checks in round-robin (`bench.fleet.run_fleet`), nobody reports, so
  with the limit M computers are handed the job (their hellos take the slots) and all the others are
  answered without it — the check-in throughput of the two runs compares the cost of the slots;
- churn: simulated agents work through the deployment one request per turn: a waiting agent checks in
  round-robin; one handed the job goes on by itself — reports downloading and downloads the payload
  (checked against the signed digest), takes `--download-seconds` as if its line were slow, reports
  executing, reports the result. "Active downloads" are the agents between the hello answer
  that handed them the job and the executing report they send: an interval inside the server's slot
  (taken before that answer, released by that report), so the peak is a lower bound of what the server
  held and must never pass M. A sampler reads the held slots from the database beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.fleet import run_fleet
from bench.seed import seed_fleet, server_key
from bench.writes import PATH, Record, Session, SimAgent, Wrong, _report, hello_data
from oco.db.models import Job, JobContainer
from oco.domain.slots import Limit, container_scope
from oco.domain.states import JobState
from oco.services import deployments, packages, slots
from oco.services.targets import Targets


class _Peak:
    """The largest number of agents between hand-out and their executing report, as they go."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0

    def up(self) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)

    def down(self) -> None:
        self.active -= 1


async def _churn(
    url: str,
    fleet: list[SimAgent],
    concurrency: int,
    duration: float,
    digest: str,
    peak: _Peak,
    download_seconds: float,
) -> tuple[Record, int]:
    """Agents take turns, one request each, until all finished or `duration` passed; the finished count.

    A waiting agent checks in again after every other waiting agent did (round-robin). An agent handed
    the job goes on by itself, as a real one does: it reports downloading and downloads, spends
    `download_seconds` as if the payload took that long on its line, reports executing, reports the
    result — each step as soon as it is due, before any waiting agent's next check-in.
    """
    import heapq
    import itertools

    record = Record()
    waiting: deque[SimAgent] = deque(fleet)
    due: list[tuple[float, int, SimAgent, int]] = []
    order = itertools.count()
    finished = 0
    deadline = time.perf_counter() + duration

    async def turn(session: Session, agent: SimAgent, step: int) -> int:
        if step == 0:
            params = await session.call("hello", agent, "oco.agent.hello", hello_data())
            jobs = params["software-jobs"]
            if not jobs:
                return 0
            agent.job = jobs[0]
            if not agent.job["download"] or agent.job.get("payload-sha256") != digest:
                raise Wrong("the job does not name the payload")
            peak.up()
            return 1
        assert agent.job is not None
        job_id = agent.job["id"]
        if step == 1:
            await _report(session, agent, job_id, 1, None, "", 0)
            received = await session.download("download", agent, agent.job["package-id"])
            if hashlib.sha256(received).hexdigest() != digest:
                raise Wrong("download: the payload is not the one the signed answer names")
            return 2
        if step == 2:
            peak.down()  # before the report that releases the slot is sent
            await _report(session, agent, job_id, 2, None, "")
            return 3
        if not await _report(session, agent, job_id, 3, 0, "done\n"):
            raise Wrong("a job that exited 0 did not succeed")
        return 4

    async def worker() -> None:
        nonlocal finished
        session = Session(url, record)
        while (waiting or due) and time.perf_counter() < deadline:
            now = time.perf_counter()
            if due and due[0][0] <= now:
                _, _, agent, step = heapq.heappop(due)
            elif waiting:
                agent, step = waiting.popleft(), 0
            else:
                await asyncio.sleep(min(due[0][0] - now, 0.05))
                continue
            try:
                step = await turn(session, agent, step)
            except Wrong as exc:
                record.error(str(exc).split(":", 1)[0], str(exc))
                step = 0 if step == 0 else step + 1  # a failed step goes on as the agent would
            except (KeyError, TypeError, ValueError) as exc:
                record.error("malformed", repr(exc))
            if step == 4:
                finished += 1
            elif step == 0:
                waiting.append(agent)
            else:
                pause = download_seconds if step == 2 else 0.0
                heapq.heappush(due, (time.perf_counter() + pause, next(order), agent, step))
        session.connection.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    record.elapsed = time.perf_counter() - record.started
    return record, finished


def _sample_held(rt: Any, limit: Limit | None, stop: threading.Event, peaks: dict[str, int]) -> None:
    """The held slots as the database says, every 50 ms (nothing to read without a limit)."""
    while limit is not None and not stop.is_set():
        now = rt.now()
        [occupancy] = rt.read(lambda connection, at=now: slots.read_occupancy(connection, [limit], at))
        peaks["held"] = max(peaks.get("held", 0), occupancy.in_use(now))
        stop.wait(0.05)


def slots_bench(args: argparse.Namespace, fresh_runtime: Any, start: Any, stop: Any) -> None:
    from tests.live import free_port

    size, cap = args.slots_computers, args.max_downloads
    print(
        f"# download slots: {size:,} computers, a {args.slots_payload_kb} KB payload ({args.database}, "
        f"{args.workers} server process(es), concurrency {args.concurrency}, steady {args.duration} s, "
        f"churn {args.churn_seconds} s with {args.download_seconds} s per download)"
    )
    steady: dict[str, float] = {}
    for max_downloads, holding in ((None, False), (size, True), (cap, False)):
        label = f"--max-downloads {max_downloads}" if max_downloads else "no limit"
        if holding:
            label += ", every computer holding its slot"
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            rt = fresh_runtime(workdir, args.database)
            keys = seed_fleet(rt, size, pending=False)
            payload = b"PK\x03\x04" + os.urandom(args.slots_payload_kb * 1024 - 4)
            source = workdir / "payload.zip"
            source.write_bytes(payload)
            package_id = packages.create_package(
                rt,
                packages.PackageSpec("Slots", "1", "true"),
                lambda depot, path=source: depot.put_file(path),
                "bench",
            ).id
            request = deployments.DeploymentRequest(
                deployments.ContainerOptions(name="slots", max_downloads=max_downloads),
                Targets(list(keys), packages=[package_id]),
            )
            container_id = deployments.create_deployment(rt, request, "bench").id
            if holding:
                _hold_every_slot(rt, container_id)
            env = {
                **os.environ,
                "OCO_DATABASE_URL": rt.settings.database_url,
                "OCO_DEPOT_PATH": str(workdir / "depot"),
            }
            port = free_port()
            command = [
                "-m",
                "oco",
                "server",
                "--no-migrate",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
            ]
            server = start([_python(), *command], env, f"http://127.0.0.1:{port}/healthz")
            url = f"http://127.0.0.1:{port}"
            limit = Limit(container_scope(container_id), max_downloads) if max_downloads else None
            peaks: dict[str, int] = {}
            halt = threading.Event()
            # The sampler runs during the churn only: in the steady run nobody reports, so the computers
            # handed the job are the slots held, and a sampler would share the load generator's GIL.
            sampler = threading.Thread(target=_sample_held, args=(rt, limit, halt, peaks), daemon=True)
            try:
                handed: set[str] = set()
                fleet_result = asyncio.run(
                    run_fleet(
                        url,
                        keys,
                        args.concurrency,
                        args.duration,
                        PATH,
                        server_keys={name: server_key(key) for name, key in keys.items()},
                        handed=handed,
                    )
                )
                steady[label] = fleet_result.rate
                print(
                    fleet_result.line(f"{label}, steady check-ins")
                    + f"; {len(handed):,} computers handed the job"
                )
                # With every slot held the answers are those without a limit: only the check's cost
                # differs, and there is nothing to churn.
                fleet = [] if holding else [SimAgent(n, k, server_key(k)) for n, k in keys.items()]
                if not holding:
                    sampler.start()
                peak = _Peak()
                record, finished = asyncio.run(
                    _churn(
                        url,
                        fleet,
                        args.concurrency,
                        args.churn_seconds,
                        hashlib.sha256(payload).hexdigest(),
                        peak,
                        args.download_seconds,
                    )
                )
            finally:
                halt.set()
                if sampler.is_alive():
                    sampler.join(timeout=10)
                stop(server)
            with rt.reading() as session:
                succeeded = session.scalar(
                    select(func.count())
                    .select_from(Job)
                    .join(JobContainer)
                    .where(JobContainer.id == container_id, Job.state == int(JobState.SUCCEEDED))
                )
            rt.close()
        if holding:
            continue
        held = f", at most {peaks['held']} slots held (database, every 50 ms)" if "held" in peaks else ""
        print(
            f"{label}, churn: {finished:,} jobs finished in {record.elapsed:.0f} s ({succeeded:,} stored "
            f"succeeded); peak active downloads {peak.peak}{held}"
        )
        print(record.line("  hellos", "hello", "check-ins"))
        print(record.line("  all requests"))
    unlimited = steady.get("no limit")
    for label, rate in steady.items():
        if unlimited and label != "no limit":
            print(f"steady check-ins, {label}: {rate / unlimited:.1%} of those without a limit")


def _hold_every_slot(rt: Any, container_id: int) -> None:
    """Every job of the container holding a slot for a day: each check-in then checks its slot and is
    handed its job, so the answers are the same as without a limit."""
    from datetime import timedelta

    from sqlalchemy import insert

    from oco.db.models import DownloadSlot

    expires = rt.now() + timedelta(days=1)
    with rt.transaction() as session:
        rows = session.execute(
            select(Job.id, Job.computer_id).where(Job.container_id == container_id).order_by(Job.id)
        ).all()
        values = [
            {
                "scope": container_scope(container_id),
                "number": number,
                "job_id": job_id,
                "computer_id": computer_id,
                "expires": expires,
            }
            for number, (job_id, computer_id) in enumerate(rows)
        ]
        for start in range(0, len(values), 1000):
            session.execute(insert(DownloadSlot), values[start : start + 1000])


def _python() -> str:
    import sys

    return sys.executable
