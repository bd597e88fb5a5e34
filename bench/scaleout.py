"""`python -m bench scaleout`: the steady check-in on SQLite and PostgreSQL, one and two server processes,
in one run with the bare ASGI endpoint, each figure as its share of it (issue 18's targets; measures,
asserts nothing). `--profile DIR` records each server process with py-spy (installed separately) while
it is under load, as raw collapsed stacks.

PostgreSQL runs use the benchmarks' own database (`oco_bench`, created if missing; `OCO_BENCH_DATABASE`
names another), never the test suite's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.fleet import FleetResult, run_fleet
from bench.seed import seed_fleet, server_key
from tests.live import free_port

DEFAULT_CASES = ("sqlite:1", "postgres:1", "postgres:2")


@dataclass(frozen=True)
class Case:
    """A database and how many server processes answer on it."""

    database: str
    workers: int

    @classmethod
    def parse(cls, spec: str) -> Case:
        database, _, workers = spec.partition(":")
        return cls(database, int(workers or "1"))

    @property
    def label(self) -> str:
        name = {"sqlite": "SQLite", "postgres": "PostgreSQL", "mariadb": "MariaDB"}[self.database]
        return f"{name}, {self.workers} process{'es' if self.workers > 1 else ''}"


def scaleout(args: argparse.Namespace, fresh_runtime: Any, start: Any, stop: Any) -> None:
    """Every case at every size, after the bare endpoint, in one table."""
    cases = [Case.parse(spec) for spec in args.cases]
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(f"# scale-out: load average {os.getloadavg()[0]:.1f} at the start")
    ceiling = _bare(args, start, stop)
    print("| case | computers | check-ins/s | p50 | p99 | errors | share of bare |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| bare ASGI endpoint, 1 process | - | {ceiling.rate:,.0f} | {ceiling.p50_ms:.1f} ms "
        f"| {ceiling.p99_ms:.1f} ms | {ceiling.errors} | 100 % |",
        flush=True,
    )
    for size in args.computers:
        for case in cases:
            result = _measure(case, size, args, fresh_runtime, start, stop)
            print(
                f"| {case.label} | {size:,} | {result.rate:,.0f} | {result.p50_ms:.1f} ms "
                f"| {result.p99_ms:.1f} ms | {result.errors} | {result.rate / ceiling.rate:.0%} |",
                flush=True,
            )
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")


def _bare(args: argparse.Namespace, start: Any, stop: Any) -> FleetResult:
    port = free_port()
    process = start(
        [sys.executable, "-m", "uvicorn", "bench.bare:app", "--port", str(port), "--log-level", "warning"],
        dict(os.environ),
        f"http://127.0.0.1:{port}/",
    )
    try:
        keys = {f"bare-{i}": "k" for i in range(100)}  # the bare endpoint signs nothing: not checked
        return asyncio.run(run_fleet(f"http://127.0.0.1:{port}", keys, args.concurrency, args.duration))
    finally:
        stop(process)


def _measure(
    case: Case, size: int, args: argparse.Namespace, fresh_runtime: Any, start: Any, stop: Any
) -> FleetResult:
    with tempfile.TemporaryDirectory() as tmp:
        rt = fresh_runtime(Path(tmp), case.database)
        try:
            keys = seed_fleet(rt, size, finished_jobs=args.finished_jobs)
            if case.database == "postgres":
                with rt.engine.connect() as connection:  # what autovacuum would do after a bulk load
                    connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                        "VACUUM ANALYZE"
                    )
            env = {
                **os.environ,
                "OCO_DATABASE_URL": rt.settings.database_url,
                "OCO_DEPOT_PATH": f"{tmp}/depot",
            }
            port = free_port()
            server = start(
                [
                    *[sys.executable, "-m", "oco", "server", "--no-migrate", "--port", str(port)],
                    *["--workers", str(case.workers)],
                ],
                env,
                f"http://127.0.0.1:{port}/healthz",
            )
            recorders: list[subprocess.Popen[bytes]] = []
            try:
                if args.profile is not None:
                    recorders = _record(server.pid, case, size, args.duration, args.profile)
                server_keys = {name: server_key(key) for name, key in keys.items()}
                return asyncio.run(
                    run_fleet(
                        f"http://127.0.0.1:{port}",
                        keys,
                        args.concurrency,
                        args.duration,
                        server_keys=server_keys,
                    )
                )
            finally:
                for recorder in recorders:
                    recorder.wait(timeout=args.duration + 60)
                stop(server)
        finally:
            rt.close()


def _record(
    pid: int, case: Case, size: int, duration: float, profiles: Path
) -> list[subprocess.Popen[bytes]]:
    """py-spy on each server process (the supervisor's children with --workers)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("# py-spy is not installed (pip install py-spy): no profiles", flush=True)
        return []
    targets = [child.pid for child in psutil.Process(pid).children()] if case.workers > 1 else [pid]
    seconds = str(max(1, int(duration) - 1))
    return [
        subprocess.Popen(
            [
                *[spy, "record", "--pid", str(target), "--duration", seconds, "--rate", "200"],
                *["--format", "raw", "--nonblocking"],
                *["--output", str(profiles / f"{case.database}-{case.workers}p-{size}-{index}.txt")],
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for index, target in enumerate(targets)
    ]
