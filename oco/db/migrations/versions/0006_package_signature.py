"""package.signature*: a publisher's Ed25519 signature of the package, its key and who stored it

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import oco.db.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("signature", "signature_key_id", "signature_public_key", "signed_by", "signed_at")


def upgrade() -> None:
    with op.batch_alter_table("package", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signature", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("signature_key_id", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("signature_public_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("signed_by", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("signed_at", oco.db.types.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("package", schema=None) as batch_op:
        for column in reversed(COLUMNS):
            batch_op.drop_column(column)
