"""`make bench` / `python -m bench [checkin|slots|deploy|download|scaleout|all] …`: measure and print."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from bench.admin import admin
from bench.console import console
from bench.fleet import run_fleet
from bench.scaleout import DEFAULT_CASES, scaleout
from bench.seed import seed_fleet, server_key
from bench.slots import slots_bench
from bench.writes import rollout, writes
from oco.api.admin.schemas import PREVIEW_LIMIT
from oco.config import Settings
from oco.db.migrate import upgrade
from oco.services import computers, deployments, packages
from oco.services.runtime import Runtime
from oco.services.targets import Targets
from tests.live import free_port

POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
MARIADB_SERVER = "mysql+pymysql://root@127.0.0.1:3306"
BENCH_DATABASE = os.environ.get("OCO_BENCH_DATABASE", "oco_bench")
"""The benchmarks' own database, on PostgreSQL and on MariaDB: never the test suite's (`test`); another
name for benchmarks run side by side."""
POSTGRES = f"{POSTGRES_SERVER}/{BENCH_DATABASE}"
MARIADB = f"{MARIADB_SERVER}/{BENCH_DATABASE}"
DATABASES = ("sqlite", "postgres", "mariadb")


def machine() -> str:
    return (
        f"{platform.node()}: {psutil.cpu_count()} CPU ({platform.processor() or platform.machine()}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def fresh_runtime(workdir: Path, database: str) -> Runtime:
    """A runtime on an empty, migrated bench database."""
    url = {"sqlite": f"sqlite:///{workdir / 'bench.sqlite3'}", "postgres": POSTGRES, "mariadb": MARIADB}[
        database
    ]
    settings = Settings(  # benchmarks never send a magic packet beyond loopback
        database_url=url,
        depot_path=workdir / "depot",
        wol_addresses=["127.0.0.1"],
        wol_subnet_broadcasts=False,
    )
    if database == "postgres":
        _create_bench_database()
    elif database == "mariadb":
        _recreate_mariadb_database()
    rt = Runtime.from_settings(settings)
    if database == "postgres":
        with rt.engine.begin() as connection:
            connection.exec_driver_sql("DROP SCHEMA public CASCADE")
            connection.exec_driver_sql("CREATE SCHEMA public")
    upgrade(rt.engine)
    return rt


def _create_bench_database() -> None:
    from sqlalchemy import create_engine, text

    server = create_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            exists = connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": BENCH_DATABASE}
            )
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{BENCH_DATABASE}"'))
    finally:
        server.dispose()


def _recreate_mariadb_database() -> None:
    from sqlalchemy import create_engine

    server = create_engine(f"{MARIADB_SERVER}/", isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS `{BENCH_DATABASE}`")
            connection.exec_driver_sql(f"CREATE DATABASE `{BENCH_DATABASE}` CHARACTER SET utf8mb4")
    finally:
        server.dispose()


def start(command: list[str], env: dict[str, str], url: str) -> subprocess.Popen[bytes]:
    env = {**env, "OCO_WOL_ADDRESSES": "127.0.0.1", "OCO_WOL_SUBNET_BROADCASTS": "false"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            httpx.get(url, timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{command} did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=20)


def checkin(args: argparse.Namespace) -> None:
    print(
        f"# check-in throughput ({args.database}, {args.workers} server process(es), "
        f"concurrency {args.concurrency}, {args.duration} s each)"
    )
    port = free_port()
    bare = start(
        [sys.executable, "-m", "uvicorn", "bench.bare:app", "--port", str(port), "--log-level", "warning"],
        dict(os.environ),
        f"http://127.0.0.1:{port}/",
    )
    keys = {f"bare-{i}": "k" for i in range(100)}  # the bare endpoint signs nothing: not checked
    ceiling = asyncio.run(run_fleet(f"http://127.0.0.1:{port}", keys, args.concurrency, args.duration))
    stop(bare)
    print(ceiling.line("bare ASGI endpoint"))
    for size, phased in [
        (n, p) for n in args.computers for p in ((False, True) if args.rollout else (False,))
    ]:
        with tempfile.TemporaryDirectory() as tmp:
            rt = fresh_runtime(Path(tmp), args.database)
            started = time.perf_counter()
            keys = seed_fleet(rt, size, finished_jobs=args.finished_jobs, phased=phased)
            seeded = time.perf_counter() - started
            env = {
                **os.environ,
                "OCO_DATABASE_URL": rt.settings.database_url,
                "OCO_DEPOT_PATH": str(Path(tmp) / "depot"),
            }
            port = free_port()
            server = start(
                [
                    *[sys.executable, "-m", "oco", "server", "--no-migrate", "--port", str(port)],
                    *["--workers", str(args.workers)],
                ],
                env,
                f"http://127.0.0.1:{port}/healthz",
            )
            server_keys = {name: server_key(key) for name, key in keys.items()}
            with_job = set(list(keys)[: len(keys) // 10]) if phased else None
            result = asyncio.run(
                run_fleet(
                    f"http://127.0.0.1:{port}",
                    keys,
                    args.concurrency,
                    args.duration,
                    server_keys=server_keys,
                    with_job=with_job,
                )
            )
            stop(server)
            rt.close()
        print(
            result.line(
                f"{size:,} computers + {args.finished_jobs:,} finished jobs"
                + (" + a phased rollout, 10 % open" if phased else "")
                + f" (seeded in {seeded:.0f} s)"
            )
            + f" — {result.rate / ceiling.rate:.0%} of the bare endpoint"
        )


def deploy(args: argparse.Namespace) -> None:
    print(f"# creating one deployment of 3 packages to {args.deploy_computers:,} computers ({args.database})")
    with tempfile.TemporaryDirectory() as tmp:
        rt = fresh_runtime(Path(tmp), args.database)
        seed_fleet(rt, args.deploy_computers)
        ids = [
            packages.create_package(rt, packages.PackageSpec(f"P{i}", "1", "true", "true"), None, "bench").id
            for i in range(3)
        ]
        computer_ids = [c.id for c in computers.list_computers(rt)]
        request = deployments.DeploymentRequest(
            deployments.ContainerOptions(name="bench"), Targets(computers=computer_ids, packages=ids)
        )
        started = time.perf_counter()
        plan = deployments.preview_deployment(rt, request, PREVIEW_LIMIT)  # as the API and console list it
        previewed = time.perf_counter() - started
        started = time.perf_counter()
        deployments.create_deployment(rt, request, "bench")
        created = time.perf_counter() - started
        rt.close()
    print(f"preview: {previewed:.2f} s ({plan.summary.jobs:,} jobs); create: {created:.2f} s")


def download(args: argparse.Namespace) -> None:
    size = args.payload_mb * 2**20
    print(f"# payload download, {args.payload_mb} MiB ({args.database})")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rt = fresh_runtime(workdir, args.database)
        keys = seed_fleet(rt, 1)
        source = workdir / "payload.zip"
        with source.open("wb") as out:
            block = os.urandom(2**20)
            for _ in range(args.payload_mb):
                out.write(block)
        with source.open("r+b") as handle:
            handle.write(b"PK\x03\x04")  # stored as it is, like an uploaded zip
        package_id = packages.create_package(
            rt, packages.PackageSpec("Big", "1", "true"), lambda depot: depot.put_file(source), "bench"
        ).id
        request = deployments.DeploymentRequest(
            deployments.ContainerOptions(name="big"), Targets(["bench-000000"], packages=[package_id])
        )
        deployments.create_deployment(rt, request, "bench")
        env = {
            **os.environ,
            "OCO_DATABASE_URL": rt.settings.database_url,
            "OCO_DEPOT_PATH": str(workdir / "depot"),
        }
        port = free_port()
        server = start(
            [sys.executable, "-m", "oco", "server", "--no-migrate", "--port", str(port)],
            env,
            f"http://127.0.0.1:{port}/healthz",
        )
        disk = _timed_disk_read(source)
        ours, peak = _timed_agent_download(port, keys["bench-000000"], package_id, server.pid)
        stop(server)
        static = _timed_static_download(workdir)
        rt.close()
    print(
        f"agent API: {size / ours / 2**20:,.0f} MiB/s; static file server in its own process: "
        f"{size / static / 2**20:,.0f} MiB/s (ours is {static / ours:.0%} of it); reading the payload "
        f"from disk: {size / disk / 2**20:,.0f} MiB/s (ours is {disk / ours:.0%} of it); "
        f"server RSS peak {peak / 2**20:.0f} MiB"
    )


def _timed_agent_download(port: int, key: str, package_id: int, pid: int) -> tuple[float, int]:
    import hmac
    import json

    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "oco.agent.download",
            "params": {
                "hostname": "bench-000000",
                "uid": "u",
                "timestamp": time.time(),
                "package-id": package_id,
            },
        }
    ).encode()
    signature = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    peak = 0
    process = psutil.Process(pid)
    started = time.perf_counter()
    with httpx.stream(
        "GET",
        f"http://127.0.0.1:{port}/api-agent.php",
        content=body,
        headers={"content-type": "application/json", "x-oco-agent-signature": signature},
        timeout=120,
    ) as response:
        response.raise_for_status()
        for count, _chunk in enumerate(response.iter_bytes(2**20)):
            if count % 64 == 0:
                peak = max(peak, process.memory_info().rss)
    return time.perf_counter() - started, peak


def _timed_disk_read(path: Path) -> float:
    """Reading the payload file in 1 MiB blocks (from the page cache, as the server reads it)."""
    started = time.perf_counter()
    with path.open("rb") as handle:
        while handle.read(2**20):
            pass
    return time.perf_counter() - started


def _timed_static_download(directory: Path) -> float:
    """Python's static file server, in a process of its own (not sharing this interpreter's GIL)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "http.server",
        str(port),
        "--bind",
        "127.0.0.1",
        "--directory",
        str(directory),
    ]
    server = start(command, dict(os.environ), f"http://127.0.0.1:{port}/")
    try:
        started = time.perf_counter()
        with httpx.stream("GET", f"http://127.0.0.1:{port}/payload.zip", timeout=120) as response:
            response.raise_for_status()
            for _chunk in response.iter_bytes(2**20):
                pass
        return time.perf_counter() - started
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=[
            "checkin",
            "writes",
            "rollout",
            "slots",
            "deploy",
            "admin",
            "download",
            "console",
            "scaleout",
            "all",
        ],
    )
    parser.add_argument("--database", default="sqlite", choices=DATABASES)
    parser.add_argument("--computers", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--finished-jobs", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="server processes (oco server --workers)")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument(
        "--rollout", action="store_true", help="check-in: also each size with a phased rollout active"
    )
    parser.add_argument("--deploy-computers", type=int, default=10_000)
    parser.add_argument("--slots-computers", type=int, default=10_000, help="computers of `slots`")
    parser.add_argument("--max-downloads", type=int, default=50, help="the limit of `slots`")
    parser.add_argument("--slots-payload-kb", type=int, default=64)
    parser.add_argument("--churn-seconds", type=float, default=30, help="how long `slots` churns")
    parser.add_argument("--download-seconds", type=float, default=1.0, help="a download's time in `slots`")
    parser.add_argument("--payload-mb", type=int, default=256)
    parser.add_argument("--write-computers", type=int, default=10_000, help="computers of `writes`")
    parser.add_argument("--rollout-computers", type=int, default=10_000)
    parser.add_argument("--rollout-payload-kb", type=int, default=1024)
    parser.add_argument("--admin-rounds", type=int, default=3, help="repetitions of each admin action")
    parser.add_argument("--console-computers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20, help="requests per console page")
    parser.add_argument(
        "--cases", nargs="+", default=list(DEFAULT_CASES), help="scaleout: DATABASE:PROCESSES each"
    )
    parser.add_argument("--profile", type=Path, help="scaleout: a directory for py-spy profiles")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    if args.what in ("checkin", "all"):
        checkin(args)
    if args.what in ("writes", "all"):
        writes(args, fresh_runtime, start, stop)
    if args.what in ("rollout", "all"):
        rollout(args, fresh_runtime, start, stop)
    if args.what in ("slots", "all"):
        slots_bench(args, fresh_runtime, start, stop)
    if args.what in ("deploy", "all"):
        deploy(args)
    if args.what in ("admin", "all"):
        admin(args, fresh_runtime, start, stop)
    if args.what in ("download", "all"):
        download(args)
    if args.what in ("console", "all"):
        console(args, fresh_runtime, start, stop)
    if args.what == "scaleout":  # not in "all": `checkin` measures the same, one case at a time
        scaleout(args, fresh_runtime, start, stop)


if __name__ == "__main__":
    main()
    shutil.rmtree(Path(tempfile.gettempdir()) / "oco-bench", ignore_errors=True)
