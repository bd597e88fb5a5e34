"""Indexes for the console's lists and dashboard; daily job outcomes kept by housekeeping

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 23:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from oco.db.types import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_computer_last_seen", "computer", ["last_seen"])
    op.create_index("ix_job_state_finished", "job", ["state", "execution_finished"])
    # A container's jobs state by state in id order (pages of large containers without sorting them all).
    op.create_index("ix_job_container_state_id", "job", ["container_id", "state", "id"])
    op.drop_index("ix_job_container_state", table_name="job")
    op.create_table(
        "daily_outcome",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("expired", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_daily_outcome")),
    )
    op.create_table(
        "watermark",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_watermark")),
    )


def downgrade() -> None:
    op.drop_table("watermark")
    op.drop_table("daily_outcome")
    op.create_index("ix_job_container_state", "job", ["container_id", "state"])
    op.drop_index("ix_job_container_state_id", table_name="job")
    op.drop_index("ix_job_state_finished", table_name="job")
    op.drop_index("ix_computer_last_seen", table_name="computer")
