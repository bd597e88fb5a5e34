"""`python -m bench admin`: fleet-scale admin actions through the HTTP API and the CLI, against a real server.

- deployment preview and creation of 3 packages x N computers (`POST /api/v1/deployments[/preview]`): the
  time until the answer is read, and the answer's size;
- bulk group membership of N computer ids: `POST /api/v1/computer-groups/{id}/members` (and `…/remove`),
  `oco group computer add --from-file` and `--all-matching` (the CLI's time includes starting Python and
  its imports; Python's start-up alone, `oco group computer --help` and `oco --help` are printed beside it).

The CLI runs as an installed one does, with its modules' bytecode compiled (pip compiles it at install; a
source checkout writes it at the first run): a cache directory of its own, even where the environment
sets PYTHONDONTWRITEBYTECODE, which would otherwise compile every module of `oco` at every start.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.seed import seed_fleet
from oco.services import computers, packages, users
from tests.live import free_port


def admin(args: argparse.Namespace, fresh_runtime: Any, start: Any, stop: Any) -> None:
    size = args.deploy_computers
    rounds = args.admin_rounds
    print(f"# admin API and CLI at fleet scale ({args.database}, {size:,} computers, {rounds} rounds)")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rt = fresh_runtime(workdir, args.database)
        seed_fleet(rt, size, pending=False)
        users.ensure_admin(rt, "bench")
        token = users.create_token(rt, "admin", "bench", "bench")
        computer_ids = [c.id for c in computers.list_computers(rt)]
        env = {
            **os.environ,
            "OCO_DATABASE_URL": rt.settings.database_url,
            "OCO_DEPOT_PATH": str(workdir / "depot"),
            "PYTHONPYCACHEPREFIX": str(workdir / "bytecode"),
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        port = free_port()
        server = start(
            [sys.executable, "-m", "oco", "server", "--no-migrate", "--port", str(port)],
            env,
            f"http://127.0.0.1:{port}/healthz",
        )
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api/v1",
            headers={"authorization": f"Bearer {token}"},
            timeout=120,
        )
        try:
            _deployments(rt, api, computer_ids, rounds)
            _groups(api, env, workdir, computer_ids, rounds)
        finally:
            api.close()
            stop(server)
            rt.close()


def _deployments(rt: Any, api: httpx.Client, computer_ids: list[int], rounds: int) -> None:
    previews, creations = [], []
    sizes: dict[str, int] = {}
    for round_ in range(rounds):
        package_ids = [
            packages.create_package(
                rt, packages.PackageSpec(f"P{round_}-{i}", "1", "true", "true"), None, "bench"
            ).id
            for i in range(3)
        ]
        body = {"name": f"bench {round_}", "computer_ids": computer_ids, "package_ids": package_ids}
        elapsed, answer = _timed(lambda: api.post("/deployments/preview", json=body))  # noqa: B023
        _expect(answer, 200, lambda doc: doc["summary"]["jobs"] == 3 * len(computer_ids))
        previews.append(elapsed)
        sizes["preview"] = len(answer.content)
        elapsed, answer = _timed(lambda: api.post("/deployments", json=body))  # noqa: B023
        _expect(answer, 201, lambda doc: sum(doc["job_counts"].values()) == 3 * len(computer_ids))
        creations.append(elapsed)
        sizes["create"] = len(answer.content)
    print(
        f"POST /deployments/preview (3 x {len(computer_ids):,}): {_spread(previews)}, "
        f"answer {sizes['preview'] / 1024:.1f} KiB"
    )
    print(
        f"POST /deployments (3 x {len(computer_ids):,} = {3 * len(computer_ids):,} jobs): "
        f"{_spread(creations)}, answer {sizes['create'] / 1024:.1f} KiB"
    )


def _groups(
    api: httpx.Client, env: dict[str, str], workdir: Path, computer_ids: list[int], rounds: int
) -> None:
    count = len(computer_ids)
    added, removed, from_file, matching = [], [], [], []
    ids_file = workdir / "ids.txt"
    ids_file.write_text("".join(f"{i}\n" for i in computer_ids))
    _oco(env, "--help")  # compiles the bytecode of every command's modules, as an installation has it
    for round_ in range(rounds):
        group = api.post("/computer-groups", json={"name": f"api {round_}"}).json()["id"]
        elapsed, answer = _timed(
            lambda: api.post(f"/computer-groups/{group}/members", json={"ids": computer_ids})  # noqa: B023
        )
        _expect(answer, 200, lambda doc: doc["changed"] == count and doc["size"] == count)
        added.append(elapsed)
        elapsed, answer = _timed(
            lambda: api.post(f"/computer-groups/{group}/members/remove", json={"ids": computer_ids})  # noqa: B023
        )
        _expect(answer, 200, lambda doc: doc["changed"] == count and doc["size"] == 0)
        removed.append(elapsed)
        for name, options, times in (
            (f"file {round_}", ["--from-file", str(ids_file)], from_file),
            (f"matching {round_}", ["--all-matching", "--search", "bench-"], matching),
        ):
            _oco(env, "group", "computer", "create", name)
            elapsed, output = _timed(lambda: _oco(env, "group", "computer", "add", name, *options))  # noqa: B023
            if f"added {count} computer(s)" not in output:
                raise RuntimeError(f"unexpected CLI output: {output}")
            times.append(elapsed)
    python = [
        _timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))[0] for _ in range(rounds)
    ]
    group_help = [_timed(lambda: _oco(env, "group", "computer", "--help"))[0] for _ in range(rounds)]
    startup = [_timed(lambda: _oco(env, "--help"))[0] for _ in range(rounds)]
    print(f"POST /computer-groups/{{id}}/members ({count:,} ids): {_spread(added)}")
    print(f"POST /computer-groups/{{id}}/members/remove ({count:,} ids): {_spread(removed)}")
    print(f"oco group computer add --from-file ({count:,} ids): {_spread(from_file)}")
    print(f"oco group computer add --all-matching --search bench- ({count:,}): {_spread(matching)}")
    print(f"  (Python's start-up alone: {_spread(python)})")
    print(f"  (oco group computer --help, start-up and the group commands' imports: {_spread(group_help)})")
    print(f"  (oco --help, start-up and the imports of every command: {_spread(startup)})")


def _oco(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "oco", *args], env=env, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"oco {' '.join(args)} failed: {result.stderr}{result.stdout}")
    return result.stdout


def _timed(action: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def _expect(answer: httpx.Response, status: int, check: Any) -> None:
    if answer.status_code != status or not check(answer.json()):
        raise RuntimeError(f"unexpected answer {answer.status_code}: {answer.text[:300]}")


def _spread(times: list[float]) -> str:
    return f"median {statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f})"
