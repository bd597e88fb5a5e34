"""`python -m bench console`: how fast every console page renders, and how large it is, at fleet scale.

The database holds what `seed_fleet` makes (100,000 computers with 1,000,000 finished jobs by default), plus
what a site has beside it: a share of failed jobs, groups, packages installed on many computers, an audit
log. A real server answers; each page is fetched a few times after a warm-up, and its 50th and 95th
percentile latency and its size are printed (targets: p95 < 300 ms, < 300 KB).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert, select, update

from bench.seed import analyze, seed_fleet
from oco.db.bulk import insert_rows
from oco.db.models import (
    AuditLog,
    Computer,
    ComputerGroup,
    ComputerGroupMember,
    ComputerPackage,
    Job,
    JobContainer,
    Package,
)
from oco.domain.states import JobState, ReturnCode
from oco.services import housekeeping, users
from tests.live import free_port

PASSWORD = "a long password"
BATCH = 5000


def seed_site(rt, computers: int, finished_jobs: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The fleet, then failures, groups, assignments and audit entries; returns ids pages need."""
    seed_fleet(rt, computers, finished_jobs=finished_jobs)
    with rt.transaction() as session:
        computer_ids = list(session.scalars(select(Computer.id).order_by(Computer.id)))
        finished = session.scalar(select(JobContainer.id).where(JobContainer.name == "finished"))
        package = session.scalar(select(Package.id))
        # One finished job in a hundred failed, as a large rollout has them.
        session.execute(
            update(Job)
            .where(Job.container_id == finished, Job.id % 100 == 0)
            .values(
                state=int(JobState.FAILED), return_code=int(ReturnCode.AGENT_ERROR), message="download lost"
            )
        )
        _history(session, computer_ids, package)
        group = ComputerGroup(name="Half the fleet")
        session.add(group)
        session.flush()
        half = computer_ids[: len(computer_ids) // 2]
        for start in range(0, len(half), BATCH):
            members = [{"group_id": group.id, "computer_id": i} for i in half[start : start + BATCH]]
            session.execute(insert(ComputerGroupMember), members)
            installed = [{"computer_id": i, "package_id": package} for i in half[start : start + BATCH]]
            session.execute(insert(ComputerPackage), installed)
        entries = [
            {
                "actor": "web:admin",
                "action": "container.edit",
                "object_type": "job_container",
                "object_id": finished,
            }
            for _ in range(20_000)
        ]
        for start in range(0, len(entries), BATCH):
            session.execute(insert(AuditLog), entries[start : start + BATCH])
        ids = {"finished": finished, "package": package, "group": group.id, "computer": computer_ids[0]}
    analyze(rt)
    return ids


HISTORY = 300
"""Deployments a site ran before (a few small ones a week, for years), 20 jobs each."""


def _history(session, computer_ids: list[int], package: int) -> None:  # type: ignore[no-untyped-def]
    finished = datetime.now(UTC) - timedelta(hours=1)  # recent enough not to be purged while measuring
    containers = [
        {"name": f"Earlier rollout {index}", "created": finished, "start_time": finished}
        for index in range(HISTORY)
    ]
    session.execute(insert(JobContainer), containers)
    ids = session.scalars(select(JobContainer.id).where(JobContainer.name.like("Earlier rollout %"))).all()
    jobs = [
        {
            "container_id": container_id,
            "computer_id": computer_ids[(index * 20 + offset) % len(computer_ids)],
            "package_id": package,
            "package_name": "Bench 1",
            "action": "install",
            "sequence": 1,
            "state": int(JobState.SUCCEEDED if offset else JobState.FAILED),
            "return_code": 0 if offset else 1603,
            "procedure": "true",
            "success_codes": "0",
            "created": finished,
            "execution_started": finished,
            "execution_finished": finished,
        }
        for index, container_id in enumerate(ids)
        for offset in range(20)
    ]
    insert_rows(session.connection(), Job, jobs)


def pages(ids: dict[str, int]) -> list[str]:
    finished, package, group, computer = ids["finished"], ids["package"], ids["group"], ids["computer"]
    return [
        "/",
        "/computers",
        "/computers?q=bench-0500",
        "/computers?presence=online&sort=-last_seen",
        f"/computers?group={group}&package={package}",
        "/computers?page=1000",
        "/computers?size=200",
        f"/computers/{computer}",
        "/jobs",
        "/jobs?status=failed",
        f"/jobs/{finished}",
        f"/jobs/{finished}?outcome=failed",
        f"/jobs/{finished}?sort=-computer&page=500",
        f"/jobs/{finished}/state",
        "/jobs/new",
        "/jobs/new?find=bench-00",
        "/packages",
        f"/packages/{package}",
        "/groups",
        f"/groups/computer/{group}",
        "/audit",
    ]


def measure(client: httpx.Client, path: str, rounds: int) -> tuple[float, float, int]:
    """p50 and p95 latency (ms) and size (bytes) of a page."""
    for _ in range(2):
        client.get(path).raise_for_status()
    timings = []
    size = 0
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        size = len(response.content)
    timings.sort()
    p95 = timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]
    return statistics.median(timings), p95, size


def console(args: argparse.Namespace, fresh_runtime, start, stop) -> None:  # type: ignore[no-untyped-def]
    print(
        f"# console pages ({args.database}), {args.console_computers:,} computers and "
        f"{args.finished_jobs:,} finished jobs, {args.rounds} rounds each"
    )
    with tempfile.TemporaryDirectory() as tmp:
        rt = fresh_runtime(Path(tmp), args.database)
        started = time.perf_counter()
        ids = seed_site(rt, args.console_computers, args.finished_jobs)
        users.add_user(rt, "admin", PASSWORD, "bench")
        housekeeping.run_all(rt)  # the first count of outcomes and purge check, before measuring
        print(f"seeded in {time.perf_counter() - started:.0f} s")
        port = free_port()
        env = {
            **os.environ,
            "OCO_DATABASE_URL": rt.settings.database_url,
            "OCO_DEPOT_PATH": str(Path(tmp) / "depot"),
            "OCO_HOUSEKEEPING_INTERVAL_SECONDS": "3600",
        }
        server = start(
            [sys.executable, "-m", "oco", "server", "--no-migrate", "--port", str(port)],
            env,
            f"http://127.0.0.1:{port}/healthz",
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                login = client.get("/login").text
                token = re.search(r'name="login_csrf" value="([^"]+)"', login)
                assert token is not None
                client.post(
                    "/login", data={"username": "admin", "password": PASSWORD, "login_csrf": token.group(1)}
                )
                time.sleep(2)  # the server's first housekeeping round
                print(f"{'page':58} {'p50 ms':>8} {'p95 ms':>8} {'KB':>7}")
                for path in pages(ids):
                    p50, p95, size = measure(client, path, args.rounds)
                    flag = "" if p95 < 300 and size < 300_000 else "  <- over target"
                    print(f"{path:58} {p50:8.0f} {p95:8.0f} {size / 1000:7.0f}{flag}")
        finally:
            stop(server)
            rt.close()
