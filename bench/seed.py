"""Fast bulk set-up of a benchmark database: computers with keys, packages, pending and finished jobs."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from oco.db.models import Base, Computer, Job, JobContainer, Package, PackageFamily
from oco.domain.states import JobAction, JobState
from oco.services.runtime import Runtime

BATCH = 5000
AGENT_VERSION = "1.1.7"
NO_NETWORKS_DIGEST = hashlib.sha256(json.dumps([]).encode()).hexdigest()


def seed_fleet(
    rt: Runtime, computers: int, finished_jobs: int = 0, *, pending: bool = True, phased: bool = False
) -> dict[str, str]:
    """`computers` registered computers (hostname -> agent key), each with one pending job unless not
    `pending`; the server key of each is its agent key reversed (`server_key`). `phased`: the pending
    container is a rollout whose first phase (10 % of the computers) is open, the rest wait."""
    now = datetime.now(UTC)
    # Finished an hour ago: long before the measurement, yet too recent for housekeeping to purge them.
    recently = now - timedelta(hours=1)
    keys = {f"bench-{i:06d}": secrets.token_urlsafe(32) for i in range(computers)}
    with rt.transaction() as session:
        family = PackageFamily(name="Bench")
        session.add(family)
        session.flush()
        package = Package(family_id=family.id, version="1", install_procedure="true")
        done = JobContainer(
            name="finished", start_time=now - timedelta(days=2), created=now - timedelta(days=2)
        )
        waiting = JobContainer(
            name="pending",
            start_time=now - timedelta(minutes=1),
            created=now,
            open_phase=0 if phased else None,
        )
        session.add_all([package, done, waiting])
        session.flush()
        rows = [
            {
                "hostname": name,
                "agent_key": key,
                "server_key": server_key(key),
                "uid": name,
                "last_seen": now,
                # A steady fleet: its agent version and network data are known.
                "agent_version": AGENT_VERSION,
                "networks_digest": NO_NETWORKS_DIGEST,
            }
            for name, key in keys.items()
        ]
        for start in range(0, len(rows), BATCH):
            session.execute(insert(Computer), rows[start : start + BATCH])
        ids = list(session.scalars(select(Computer.id).order_by(Computer.id)))
        if pending:
            first = len(ids) // 10 if phased else len(ids)
            _jobs(session, waiting.id, package.id, ids[:first], JobState.WAITING, now, 0 if phased else None)
            _jobs(session, waiting.id, package.id, ids[first:], JobState.WAITING, now, 1)
        for start in range(0, finished_jobs, len(ids)):
            count = min(len(ids), finished_jobs - start)
            _jobs(session, done.id, package.id, ids[:count], JobState.SUCCEEDED, now, finished=recently)
    analyze(rt)
    return keys


def analyze(rt: Runtime) -> None:
    """Give the query planner the tables' statistics, as a running site has them (PostgreSQL's autovacuum
    and InnoDB gather them after large changes, the server's housekeeping once a day on SQLite): measured
    right after a bulk load, a planner without them walks a million jobs where it should not."""
    with rt.engine.begin() as connection:
        if rt.engine.dialect.name == "mysql":
            tables = ", ".join(sorted(Base.metadata.tables))
            connection.exec_driver_sql(f"ANALYZE TABLE {tables}")
        else:
            connection.exec_driver_sql("ANALYZE")


def _jobs(
    session,
    container_id: int,
    package_id: int,
    computer_ids: list[int],
    state: JobState,
    now: datetime,
    phase: int | None = None,
    *,
    finished: datetime | None = None,
) -> None:  # type: ignore[no-untyped-def]
    rows = [
        {
            "container_id": container_id,
            "computer_id": computer_id,
            "package_id": package_id,
            "package_name": "Bench 1",
            "action": str(JobAction.INSTALL),
            "sequence": 1,
            "state": int(state),
            "procedure": "true",
            "success_codes": "0",
            "created": now,
            "phase": phase,
            "execution_started": finished,
            "execution_finished": finished,
        }
        for computer_id in computer_ids
    ]
    for start in range(0, len(rows), BATCH):
        session.execute(insert(Job), rows[start : start + BATCH])


def server_key(agent_key: str) -> str:
    """The server key `seed_fleet` gives the computer with this agent key."""
    return agent_key[::-1]
