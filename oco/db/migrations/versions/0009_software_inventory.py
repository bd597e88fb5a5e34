"""computer_software (the software inventory), computer.newest_login, package.download_for_uninstall,
server_setting

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 02:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import oco.db.types

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "computer_software",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("computer_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("version_key", oco.db.types.binary_string(512), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("first_seen", oco.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["computer_id"],
            ["computer.id"],
            name=op.f("fk_computer_software_computer_id_computer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_computer_software")),
    )
    with op.batch_alter_table("computer_software", schema=None) as batch_op:
        batch_op.create_index("ix_computer_software_name_computer", ["name", "computer_id"], unique=False)
        batch_op.create_index("ix_computer_software_computer_name", ["computer_id", "name"], unique=False)
    op.create_table(
        "server_setting",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created", oco.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_setting")),
    )
    with op.batch_alter_table("computer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("newest_login", oco.db.types.UTCDateTime(), nullable=True))
    with op.batch_alter_table("package", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("download_for_uninstall", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("package", schema=None) as batch_op:
        batch_op.drop_column("download_for_uninstall")
    with op.batch_alter_table("computer", schema=None) as batch_op:
        batch_op.drop_column("newest_login")
    op.drop_table("server_setting")
    op.drop_table("computer_software")  # its indexes go with it (MariaDB refuses to drop the FK's first)
