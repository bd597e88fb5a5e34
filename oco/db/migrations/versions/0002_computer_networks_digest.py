"""computer.networks_digest: skip reading unchanged network data on check-in

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("computer", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("networks_digest", sa.String(length=64), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("computer", schema=None) as batch_op:
        batch_op.drop_column("networks_digest")
