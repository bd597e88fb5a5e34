"""computer.hostname_key: look hostnames up without regard to case through an index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from oco.domain.hostnames import hostname_key
from oco.errors import Conflict

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("computer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hostname_key", sa.String(length=255), nullable=True))
    connection = op.get_bind()
    keys: dict[str, tuple[int, str]] = {}
    for computer_id, hostname in connection.execute(sa.text("SELECT id, hostname FROM computer")):
        key = hostname_key(hostname)
        if key in keys:
            raise Conflict(
                f"computers {keys[key][1]!r} (id {keys[key][0]}) and {hostname!r} (id {computer_id}) "
                "differ only in case: delete one of them, then upgrade again"
            )
        keys[key] = (computer_id, hostname)
    if keys:
        connection.execute(
            sa.text("UPDATE computer SET hostname_key = :key WHERE id = :id"),
            [{"key": key, "id": computer_id} for key, (computer_id, _name) in keys.items()],
        )
    with op.batch_alter_table("computer", schema=None) as batch_op:
        batch_op.alter_column("hostname_key", existing_type=sa.String(length=255), nullable=False)
        batch_op.create_unique_constraint("uq_computer_hostname_key", ["hostname_key"])


def downgrade() -> None:
    with op.batch_alter_table("computer", schema=None) as batch_op:
        batch_op.drop_constraint("uq_computer_hostname_key", type_="unique")
        batch_op.drop_column("hostname_key")
