"""Housekeeping: expiry after the end, purge of old containers — idempotent, on every database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from oco.db.engine import make_engine
from oco.domain.states import ContainerStatus, JobState
from oco.errors import InvalidInput
from oco.services import containers, housekeeping, jobs
from oco.services.runtime import Runtime
from tests.conftest import Clock, make_runtime
from tests.integration.test_deployments import add_computers, add_package, deploy, jobs_of, run_all
from tests.support import wait_until


def test_jobs_past_the_end_expire_and_are_no_longer_handed_out(rt: Runtime, clock: Clock) -> None:
    pcs = add_computers(rt, "pc1")
    container = deploy(rt, pcs, [add_package(rt)], end=clock.current + timedelta(hours=1))

    expire = housekeeping.find_task("expire-jobs")
    assert housekeeping.run_task(rt, expire) == 0
    clock.advance(hours=1)
    assert housekeeping.run_task(rt, expire) == 1
    assert housekeeping.run_task(rt, expire) == 0  # idempotent

    assert [j[4] for j in jobs_of(rt, container)] == [JobState.EXPIRED]
    assert containers.container_detail(rt, container).status is ContainerStatus.FAILED


def test_succeeded_containers_are_purged_after_four_hours_failed_after_48(rt: Runtime, clock: Clock) -> None:
    pcs = add_computers(rt, "pc1")
    package = add_package(rt)
    good = deploy(rt, pcs, [package], name="good")
    run_all(rt, good)
    bad = deploy(rt, pcs, [add_package(rt, "Other")], name="bad")
    run_all(rt, bad, return_code=1)
    deploy(rt, pcs, [add_package(rt, "Third")], name="running")

    clock.advance(hours=3, minutes=59)
    assert housekeeping.run_all(rt)["purge-containers"] == 0
    assert _names(rt) == ["running", "bad", "good"]

    clock.advance(minutes=1)
    assert housekeeping.run_all(rt)["purge-containers"] == 1
    assert _names(rt) == ["running", "bad"]

    clock.advance(hours=44)
    assert housekeeping.run_all(rt)["purge-containers"] == 1
    assert _names(rt) == ["running"]  # a container with pending jobs is never purged


def test_empty_containers_are_purged_like_succeeded_ones(rt: Runtime, clock: Clock) -> None:
    pcs = add_computers(rt, "pc1")
    emptied = deploy(rt, pcs, [add_package(rt)], name="emptied")
    [job] = containers.container_detail(rt, emptied).jobs
    jobs.delete_job(rt, job.id, "admin")
    clock.advance(hours=3, minutes=59)
    assert housekeeping.run_all(rt)["purge-containers"] == 0
    clock.advance(minutes=1)  # four hours after its creation: no job ever finished in it
    assert housekeeping.run_all(rt)["purge-containers"] == 1
    assert _names(rt) == []


def test_purging_can_be_disabled(tmp_path: Path, sqlite_url: str, clock: Clock) -> None:
    from tests.conftest import make_runtime

    rt = make_runtime(
        sqlite_url,
        tmp_path,
        clock,
        purge_succeeded_job_containers_after=0,
        purge_failed_job_containers_after=None,
    )
    pcs = add_computers(rt, "pc1")
    run_all(rt, deploy(rt, pcs, [add_package(rt)]))
    clock.advance(days=365)
    housekeeping.run_all(rt)
    assert _names(rt) == ["Rollout"]
    rt.close()


def _names(rt: Runtime) -> list[str]:
    return [container.name for container in containers.list_containers(rt)]


def test_tasks_are_found_by_name() -> None:
    names = [task.name for task in housekeeping.TASKS]
    assert names == [
        "expire-jobs",
        "send-wol",
        "expire-wol-shutdown",
        "advance-rollouts",
        "count-outcomes",
        "purge-containers",
        "refresh-statistics",
        "forget-login-failures",
    ]
    assert all(housekeeping.find_task(name).name == name for name in names)
    assert len({task.lock_key for task in housekeeping.TASKS}) == len(names)
    with pytest.raises(InvalidInput, match="'purge' must be one of expire-jobs, send-wol"):
        housekeeping.find_task("purge")


def test_sqlite_statistics_are_refreshed_once_a_day(rt: Runtime, clock: Clock) -> None:
    if rt.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's autovacuum and InnoDB keep their statistics themselves")
    deploy(rt, add_computers(rt, "pc1", "pc2"), [add_package(rt)])
    refresh = housekeeping.find_task("refresh-statistics")

    def statistics() -> list[tuple[str, str]]:
        with rt.engine.connect() as connection:
            if not connection.scalar(text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")):
                return []
            return [tuple(row) for row in connection.execute(text("SELECT idx, stat FROM sqlite_stat1"))]

    assert statistics() == []
    assert housekeeping.run_task(rt, refresh) == 0  # nothing an admin changed: no audit entry
    first = statistics()
    assert dict(first)["ix_job_container_state_id"].split()[0] == "2"  # the planner knows there are 2 jobs
    deploy(rt, add_computers(rt, "pc3", "pc4", "pc5"), [add_package(rt, "Other")])
    housekeeping.run_task(rt, refresh)
    assert statistics() == first  # not again the same day
    clock.advance(hours=24)
    housekeeping.run_task(rt, refresh)
    assert dict(statistics())["ix_job_container_state_id"].split()[0] == "5"


def test_a_task_another_process_is_running_is_skipped_this_round(rt: Runtime) -> None:
    if rt.engine.dialect.name == "sqlite":
        pytest.skip("on SQLite the write lock serializes the tasks instead")
    other_process = make_engine(rt.settings.database_url)
    task = housekeeping.find_task("expire-jobs")
    try:
        with housekeeping.task_lock(other_process, task) as held:
            assert held
            assert housekeeping.run_task(rt, task) is None
            assert housekeeping.run_task(rt, housekeeping.find_task("send-wol")) == 0  # others are free
        assert housekeeping.run_task(rt, task) == 0
    finally:
        other_process.dispose()


def test_one_process_of_several_leads_housekeeping_until_it_stops(rt: Runtime, tmp_path: Path) -> None:
    other = make_runtime(rt.settings.database_url, tmp_path / "other")
    first, second = housekeeping.Leadership(rt), housekeeping.Leadership(other)
    try:
        assert first.held()
        assert not second.held()
        assert first.held()  # kept, round after round
        assert housekeeping.run_led_round(other, second) is None  # the other runs no round
        assert housekeeping.run_led_round(rt, first) == housekeeping.run_all(rt)
        first.release()
        assert second.held()
        assert not first.held()
        assert housekeeping.run_led_round(rt, first) is None
    finally:
        first.release()
        second.release()
        other.close()


def test_the_lead_passes_on_when_its_connection_is_lost(rt: Runtime, tmp_path: Path) -> None:
    if rt.engine.dialect.name == "sqlite":
        pytest.skip("on SQLite the lead is a file lock: the kernel releases it with the process")
    other = make_runtime(rt.settings.database_url, tmp_path / "other")
    first, second = housekeeping.Leadership(rt), housekeeping.Leadership(other)
    try:
        assert first.held()
        connection = first._connection
        assert connection is not None
        connection.invalidate()  # as when the process dies: the database ends the session
        wait_until(second.held, timeout=30, message="the lead was not released")
        assert not first.held()  # it notices, and another holds the lead now
    finally:
        first.release()
        second.release()
        other.close()


def test_the_lead_passes_on_when_the_database_ends_its_session(rt: Runtime, tmp_path: Path) -> None:
    if rt.engine.dialect.name == "sqlite":
        pytest.skip("on SQLite the lead is a file lock: the kernel releases it with the process")
    other = make_runtime(rt.settings.database_url, tmp_path / "other")
    first, second = housekeeping.Leadership(rt), housekeeping.Leadership(other)
    try:
        assert first.held()
        assert first._connection is not None
        session_id = first._connection.scalar(
            text(
                "SELECT pg_backend_pid()"
                if rt.engine.dialect.name == "postgresql"
                else "SELECT CONNECTION_ID()"
            )
        )
        first._connection.commit()
        with other.engine.connect() as admin:  # an administrator (or a failover) ends the session
            if rt.engine.dialect.name == "postgresql":
                admin.execute(text("SELECT pg_terminate_backend(:id)"), {"id": session_id})
            else:
                admin.execute(text(f"KILL {int(session_id)}"))
        wait_until(second.held, timeout=30, message="the lead was not released")
        assert not first.held()  # the lost session is noticed, and the lead is not taken back
    finally:
        first.release()
        second.release()
        other.close()


def test_an_in_memory_database_has_one_process_which_leads(tmp_path: Path) -> None:
    rt = make_runtime("sqlite://", tmp_path)
    try:
        assert housekeeping.Leadership(rt).held()
    finally:
        rt.close()
