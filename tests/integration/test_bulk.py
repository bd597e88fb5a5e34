"""Bulk inserts (`oco.db.bulk`) store exactly what the ORM stores, on every database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text

from oco.db.bulk import insert_rows
from oco.db.models import Computer, Job, JobContainer
from oco.services.runtime import Runtime

STORED = (
    "package_name",
    "action",
    "sequence",
    "state",
    "message",
    "procedure",
    "success_codes",
    "post_action",
    "wol_shutdown",
    "created",
    "execution_finished",
    "phase",
)
ON_THE_SECOND = datetime(2026, 3, 29, 1, 30, 15, tzinfo=UTC)
WITH_MICROSECONDS = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=UTC)


def rows(container_id: int, computer_id: int) -> list[dict[str, Any]]:
    return [
        {
            "container_id": container_id,
            "computer_id": computer_id,
            "package_id": None,
            "package_name": f"App {index % 3}",
            "action": "install",
            "sequence": index,
            "state": 0 if index % 2 else -5,
            "message": "" if index % 2 else "skipped: already installed",
            "procedure": "setup.exe /S",
            "success_codes": "0,3010",
            "post_action": index % 4,
            "wol_shutdown": bool(index % 2),
            "created": ON_THE_SECOND if index % 3 else WITH_MICROSECONDS,
            "execution_finished": None if index % 2 else WITH_MICROSECONDS,
            "phase": None if index < 5 else index // 5,
        }
        for index in range(12)
    ]


def test_rows_are_stored_as_the_orm_stores_them(rt: Runtime) -> None:
    with rt.transaction() as session:
        computer = Computer(hostname="pc1", uid="pc1")
        bulk, orm = (
            JobContainer(name=name, start_time=ON_THE_SECOND, created=ON_THE_SECOND) for name in "ab"
        )
        session.add_all([computer, bulk, orm])
        session.flush()
        insert_rows(session.connection(), Job, rows(bulk.id, computer.id))
        session.add_all(Job(**row) for row in rows(orm.id, computer.id))
        ids = bulk.id, orm.id
    with rt.engine.connect() as connection:  # as stored, before any type converts it back
        quote = connection.dialect.identifier_preparer.quote
        names = ", ".join(quote(name) for name in STORED)
        raw = {
            container_id: [
                tuple(row)
                for row in connection.execute(
                    text(f"SELECT {names} FROM job WHERE container_id = :c ORDER BY id"),
                    {"c": container_id},
                )
            ]
            for container_id in ids
        }
    assert raw[ids[0]] == raw[ids[1]]
    with rt.reading() as session:
        stored = session.scalars(select(Job).where(Job.container_id == ids[0]).order_by(Job.id)).all()
        found = [{name: getattr(job, name) for name in rows(ids[0], computer.id)[0]} for job in stored]
    assert found == rows(ids[0], computer.id)


def test_columns_left_out_get_their_defaults(rt: Runtime) -> None:
    with rt.transaction() as session:
        computer = Computer(hostname="pc1", uid="pc1")
        container = JobContainer(name="x", start_time=ON_THE_SECOND, created=ON_THE_SECOND)
        session.add_all([computer, container])
        session.flush()
        row = {
            "container_id": container.id,
            "computer_id": computer.id,
            "package_name": "App",
            "action": "install",
            "sequence": 1,
            "procedure": "true",
            "created": ON_THE_SECOND,
        }
        insert_rows(session.connection(), Job, [row])
        session.add(Job(**row))
    with rt.reading() as session:
        bulk, orm = session.scalars(select(Job).order_by(Job.id)).all()
        names = [column.name for column in Job.__table__.columns if column.name != "id"]
        assert [getattr(bulk, name) for name in names] == [getattr(orm, name) for name in names]


def test_no_rows_insert_nothing(rt: Runtime) -> None:
    with rt.transaction() as session:
        insert_rows(session.connection(), Job, [])
        assert session.scalars(select(Job)).first() is None
