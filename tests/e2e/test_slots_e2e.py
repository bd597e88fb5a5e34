"""End to end: download slots under many real agent processes, on every database. Twelve agents poll
two server processes (`oco server --workers 2`) for a deployment with `max_downloads=3` and a payload
large enough to take a moment to fetch and unpack. A sampler reads the database all along: never more
than three slots held or jobs downloading; the jobs' own timestamps agree (no more than three download
intervals overlap); and every job finishes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from oco.db.models import Job
from oco.domain.slots import Limit, container_scope
from oco.domain.states import JobState
from oco.services import packages, slots
from tests.conftest import make_runtime
from tests.e2e.test_agent_e2e import World, deploy, make_agent, zip_payload
from tests.live import start_server
from tests.support import wait_until

AGENTS = 12
LIMIT = 3


@pytest.fixture
def two_process_world(tmp_path: Path, database_url: str) -> Iterator[World]:
    """Two server processes on each database in turn (PostgreSQL and MariaDB under CI)."""
    server = start_server(tmp_path, database_url, server_args=("--workers", "2"), self_registration="true")
    rt = make_runtime(database_url, tmp_path)
    world = World(server, rt, tmp_path)
    yield world
    server.stop()
    rt.close()


def _big_package(world: World) -> int:
    filler = os.urandom(6 * 1024 * 1024).hex()  # incompressible: each download and unpack takes a while
    payload = zip_payload(
        {
            "install.sh": 'echo installed > "$MARKERS/Big-1"\n',
            "filler.txt": filler,
        }
    )
    spec = packages.PackageSpec(family="Big", version="1", install_procedure="sh install.sh")
    return packages.create_package(
        world.rt, spec, lambda depot: depot.put_upload(io.BytesIO(payload), "big.zip"), "admin"
    ).id


def test_many_agents_never_exceed_the_download_slots_and_all_jobs_finish(
    two_process_world: World,
) -> None:
    world = two_process_world
    agents = [make_agent(world, f"branch-{n:02}") for n in range(AGENTS)]
    container_id = deploy(world, agents, [_big_package(world)], max_downloads=LIMIT)
    limit = Limit(container_scope(container_id), LIMIT)

    peaks = {"held": 0, "downloading": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            with world.rt.reading() as session:
                [occupancy] = slots.read_occupancy(session.connection(), [limit], world.rt.now())
                downloading = session.scalars(
                    select(Job.id).where(
                        Job.container_id == container_id, Job.state == int(JobState.DOWNLOADING)
                    )
                ).all()
            peaks["held"] = max(peaks["held"], occupancy.in_use(world.rt.now()))
            peaks["downloading"] = max(peaks["downloading"], len(downloading))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "oco.agent", "--config", str(agent.config_path)],
            env={"PATH": "/usr/bin:/bin", "MARKERS": str(agent.marker_dir)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for agent in agents
    ]

    def finished() -> bool:
        with world.rt.reading() as session:
            states = session.scalars(select(Job.state).where(Job.container_id == container_id)).all()
        return all(state == int(JobState.SUCCEEDED) for state in states)

    try:
        wait_until(finished, timeout=420, interval=1, message="not every job finished")
    finally:
        stop.set()
        sampler.join(timeout=30)
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    assert 1 <= peaks["held"] <= LIMIT, peaks
    assert peaks["downloading"] <= LIMIT, peaks
    with world.rt.reading() as session:
        intervals = session.execute(
            select(Job.download_started, Job.execution_started).where(Job.container_id == container_id)
        ).all()
    events = sorted(
        [(started, 1) for started, _ in intervals] + [(ended, -1) for _, ended in intervals],
        key=lambda event: (event[0], event[1]),  # an end before a start at the same instant
    )
    running = overlap = 0
    for _, step in events:
        running += step
        overlap = max(overlap, running)
    assert 1 <= overlap <= LIMIT
    assert all((agent.marker_dir / "Big-1").exists() for agent in agents)
