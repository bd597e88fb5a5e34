"""Download slots: job_container.max_downloads and the download_slot places

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from oco.db.types import UTCDateTime

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job_container") as batch:
        batch.add_column(sa.Column("max_downloads", sa.Integer(), nullable=True))
    op.create_table(
        "download_slot",
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("computer_id", sa.Integer(), nullable=True),
        sa.Column("expires", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name="fk_download_slot_job_id_job", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("scope", "number", name="pk_download_slot"),
    )
    op.create_index("ix_download_slot_job_id", "download_slot", ["job_id"])


def downgrade() -> None:
    op.drop_table("download_slot")  # with its index (MariaDB refuses to drop the foreign key's alone)
    # SQLite drops a column by rebuilding the table: keep its AUTOINCREMENT (migration 0015).
    with op.batch_alter_table("job_container", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("max_downloads")
