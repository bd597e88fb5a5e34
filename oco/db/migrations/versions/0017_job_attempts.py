"""Retries: job_container.retries and .retry_delay_seconds, job.attempt and .not_before, and the history of
the attempts that were retried (job_attempt)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import oco.db.types

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_KEEP_IDS = {"sqlite_autoincrement": True}
"""A batch operation that rebuilds a table on SQLite keeps its ids never reused (0015)."""


def upgrade() -> None:
    with op.batch_alter_table("job_container", schema=None, table_kwargs=_KEEP_IDS) as batch_op:
        batch_op.add_column(sa.Column("retries", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("retry_delay_seconds", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("job", schema=None, table_kwargs=_KEEP_IDS) as batch_op:
        batch_op.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("not_before", oco.db.types.UTCDateTime(), nullable=True))
    op.create_table(
        "job_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("state", sa.Integer(), nullable=False),
        sa.Column("return_code", sa.BigInteger(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("started", oco.db.types.UTCDateTime(), nullable=True),
        sa.Column("finished", oco.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_job_attempt_job_id_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_attempt")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("job_attempt", schema=None, table_kwargs=_KEEP_IDS) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_attempt_job_id"), ["job_id"], unique=False)


def downgrade() -> None:
    op.drop_table("job_attempt")  # with its index (MariaDB refuses to drop one a foreign key needs)
    with op.batch_alter_table("job", schema=None, table_kwargs=_KEEP_IDS) as batch_op:
        batch_op.drop_column("not_before")
        batch_op.drop_column("attempt")
    with op.batch_alter_table("job_container", schema=None, table_kwargs=_KEEP_IDS) as batch_op:
        batch_op.drop_column("retry_delay_seconds")
        batch_op.drop_column("retries")
