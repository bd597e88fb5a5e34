"""`python -m bench.scaleout`: the steady check-in on SQLite and PostgreSQL, one and two server processes,
in one run with the bare ASGI endpoint, each figure as a share of it (issue 18's targets; measures,
asserts nothing). `--profile` records each server process with py-spy while it is under load.

PostgreSQL runs use their own database, `oco_bench_scaleout` (created if missing): never the test suite's
(`test`), nor `bench`'s own `oco_bench`, which another benchmark may be using at the same time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from sqlalchemy import create_engine, text

from bench.__main__ import machine, start, stop
from bench.fleet import FleetResult, run_fleet
from bench.seed import seed_fleet
from oco.config import Settings
from oco.db.migrate import upgrade
from oco.services.runtime import Runtime
from tests.live import free_port

POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
DATABASE = "oco_bench_scaleout"


@dataclass(frozen=True)
class Case:
    database: str
    workers: int

    @property
    def label(self) -> str:
        name = "SQLite" if self.database == "sqlite" else "PostgreSQL"
        return f"{name}, {self.workers} process{'es' if self.workers > 1 else ''}"


CASES = (Case("sqlite", 1), Case("postgres", 1), Case("postgres", 2))


def fresh_runtime(workdir: Path, database: str) -> Runtime:
    if database == "postgres":
        server = create_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT")
        with server.connect() as connection:
            if not connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": DATABASE}):
                connection.execute(text(f'CREATE DATABASE "{DATABASE}"'))
        server.dispose()
        url = f"{POSTGRES_SERVER}/{DATABASE}"
    else:
        url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    settings = Settings(
        database_url=url,
        depot_path=workdir / "depot",
        wol_addresses=["127.0.0.1"],
        wol_subnet_broadcasts=False,
    )
    rt = Runtime.from_settings(settings)
    if database == "postgres":
        with rt.engine.begin() as connection:
            connection.exec_driver_sql("DROP SCHEMA public CASCADE")
            connection.exec_driver_sql("CREATE SCHEMA public")
    upgrade(rt.engine)
    return rt


def bare(concurrency: int, duration: float) -> FleetResult:
    port = free_port()
    process = start(
        [sys.executable, "-m", "uvicorn", "bench.bare:app", "--port", str(port), "--log-level", "warning"],
        dict(os.environ),
        f"http://127.0.0.1:{port}/",
    )
    try:
        keys = {f"bare-{i}": "k" for i in range(100)}
        return asyncio.run(run_fleet(f"http://127.0.0.1:{port}", keys, concurrency, duration))
    finally:
        stop(process)


def measure(
    case: Case, size: int, args: argparse.Namespace, profiles: Path | None
) -> tuple[FleetResult, float]:
    with tempfile.TemporaryDirectory() as tmp:
        rt = fresh_runtime(Path(tmp), case.database)
        started = time.perf_counter()
        keys = seed_fleet(rt, size, finished_jobs=args.finished_jobs)
        seeded = time.perf_counter() - started
        if case.database == "postgres":
            with rt.engine.connect() as connection:  # what autovacuum would do after a bulk load
                connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        env = {**os.environ, "OCO_DATABASE_URL": rt.settings.database_url, "OCO_DEPOT_PATH": f"{tmp}/depot"}
        port = free_port()
        server = start(
            [
                *[sys.executable, "-m", "oco", "server", "--no-migrate", "--port", str(port)],
                *["--workers", str(case.workers)],
            ],
            env,
            f"http://127.0.0.1:{port}/healthz",
        )
        recorders = []
        try:
            if profiles is not None:
                recorders = _record(server.pid, case, size, args.duration, profiles)
            result = asyncio.run(run_fleet(f"http://127.0.0.1:{port}", keys, args.concurrency, args.duration))
        finally:
            for recorder in recorders:
                recorder.wait(timeout=args.duration + 60)
            stop(server)
            rt.close()
    return result, seeded


def _record(
    pid: int, case: Case, size: int, duration: float, profiles: Path
) -> list[subprocess.Popen[bytes]]:
    """py-spy on each server process (the supervisor's children with --workers)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    parent = psutil.Process(pid)
    targets = [child.pid for child in parent.children()] if case.workers > 1 else [pid]
    recorders = []
    for index, target in enumerate(targets):
        name = f"{case.database}-{case.workers}p-{size}-{index}"
        recorders.append(
            subprocess.Popen(
                [
                    *[spy, "record", "--pid", str(target), "--duration", str(max(1, int(duration) - 1))],
                    *[
                        "--rate",
                        "200",
                        "--format",
                        "raw",
                        "--output",
                        str(profiles / f"{name}.txt"),
                        "--nonblocking",
                    ],
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    return recorders


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout")
    parser.add_argument("--computers", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--finished-jobs", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument(
        "--cases", nargs="+", default=[f"{c.database}:{c.workers}" for c in CASES], help="database:processes"
    )
    parser.add_argument("--profile", type=Path, help="directory for py-spy profiles (raw, collapsed stacks)")
    args = parser.parse_args()
    cases = [Case(spec.split(":")[0], int(spec.split(":")[1])) for spec in args.cases]
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at the start")
    ceiling = bare(args.concurrency, args.duration)
    print("| case | computers | check-ins/s | p50 | p99 | errors | share of bare |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| bare ASGI endpoint, 1 process | - | {ceiling.rate:,.0f} | {ceiling.p50_ms:.1f} ms "
        f"| {ceiling.p99_ms:.1f} ms | {ceiling.errors} | 100 % |",
        flush=True,
    )
    for size in args.computers:
        for case in cases:
            result, _seeded = measure(case, size, args, args.profile)
            print(
                f"| {case.label} | {size:,} | {result.rate:,.0f} | {result.p50_ms:.1f} ms "
                f"| {result.p99_ms:.1f} ms | {result.errors} | {result.rate / ceiling.rate:.0%} |",
                flush=True,
            )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
