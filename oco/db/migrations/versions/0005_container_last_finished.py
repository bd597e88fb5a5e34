"""Index for a container's last finished job (one index seek instead of reading all its jobs)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 00:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_job_container_finished", "job", ["container_id", "execution_finished"])


def downgrade() -> None:
    op.drop_index("ix_job_container_finished", table_name="job")
