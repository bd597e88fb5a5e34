"""End to end: a maintenance window in the computer's own time, with a real agent process that reports
its zone. The server runs in another zone (Pacific/Kiritimati, UTC+14), so a window read on the server's
clock would be a day off. The job waits, says when its window opens, and runs once it has opened."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from oco.db.models import Computer
from oco.domain.dispatch import Hold
from oco.domain.states import JobState
from oco.domain.windows import DAY_NAMES, parse_windows, reported_zone
from oco.services import deployments, jobs
from oco.services.deployments import ContainerOptions, DeploymentRequest
from oco.services.jobs import JobQuery
from oco.services.listing import PageRequest
from oco.services.targets import Targets
from tests.conftest import make_runtime
from tests.e2e.test_agent_e2e import World, add_package, make_agent
from tests.live import start_server
from tests.support import wait_until


@pytest.fixture
def far_world(tmp_path: Path, sqlite_template: Path) -> Iterator[World]:
    shutil.copy(sqlite_template, tmp_path / "oco.sqlite3")
    url = f"sqlite:///{tmp_path / 'oco.sqlite3'}"
    server = start_server(tmp_path, url, self_registration="true", time_zone="Pacific/Kiritimati")
    rt = make_runtime(url, tmp_path, time_zone="Pacific/Kiritimati")
    yield World(server, rt, tmp_path)
    server.stop()
    rt.close()


def test_a_window_in_computer_time_opens_and_the_job_runs(far_world: World) -> None:
    world = far_world
    agent = make_agent(world, "night-pc")
    with world.rt.reading() as session:
        reported = session.query(Computer).filter_by(hostname="night-pc").one().time_zone
    zone = reported_zone(reported)
    assert zone is not None, f"the agent reported no usable zone: {reported!r}"
    local = datetime.now(UTC).astimezone(zone)
    opens = (local + timedelta(minutes=2)).replace(second=0, microsecond=0)
    closes = opens + timedelta(minutes=30)
    window = f"daily {opens:%H:%M}-{closes:%H:%M}"
    request = DeploymentRequest(
        ContainerOptions(name="night update", windows=parse_windows([window])),
        Targets(computers=["night-pc"], packages=[add_package(world, "Night", "1")]),
    )
    container = deployments.create_deployment(world.rt, request, "admin").id

    assert agent.run().returncode == 0
    [row] = jobs.search_jobs(world.rt, container, JobQuery(), PageRequest(1, 10, "")).items
    assert row.state is JobState.WAITING
    assert row.waiting is not None and row.waiting.hold is Hold.OUTSIDE_WINDOW
    assert row.waiting.opens == f"{DAY_NAMES[opens.weekday()]} {opens:%H:%M} computer time"
    assert not (agent.marker_dir / "Night-1").exists()

    def ran() -> bool:
        agent.run()
        [job] = jobs.search_jobs(world.rt, container, JobQuery(), PageRequest(1, 10, "")).items
        return job.state is JobState.SUCCEEDED

    wait_until(ran, timeout=300, interval=5, message="the job did not run after its window opened")
    assert (agent.marker_dir / "Night-1").exists()
