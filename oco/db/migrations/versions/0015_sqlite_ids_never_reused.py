"""SQLite: ids are never reused (AUTOINCREMENT on every table with an integer id)

Without AUTOINCREMENT, SQLite hands the id of the newest deleted row to the next insert: a deleted job
container's id went to the next one, and old links and log lines then pointed at another deployment.
PostgreSQL and MariaDB sequences never reuse ids, so this changes SQLite only. SQLite can only add
AUTOINCREMENT by rebuilding a table; env.py turns foreign keys off around migrations on SQLite so the
rebuild (drop and rename) cascades nowhere, and the check below proves no reference broke.

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tables_with_integer_ids(connection: sa.Connection) -> list[str]:
    inspector = sa.inspect(connection)
    tables = []
    for name in inspector.get_table_names():
        key = inspector.get_pk_constraint(name).get("constrained_columns") or []
        columns = {column["name"]: column for column in inspector.get_columns(name)}
        if key == ["id"] and isinstance(columns["id"]["type"], sa.Integer):
            tables.append(name)
    return tables


def _rebuild(autoincrement: bool) -> None:
    connection = op.get_bind()
    if connection.dialect.name != "sqlite":
        return
    for name in _tables_with_integer_ids(connection):
        with op.batch_alter_table(
            name, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"rebuilding the tables broke references: {broken[:5]}")


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)
