"""user_account.role and audit_log.username/role: roles of console users, who did what in the audit log

Every user and so every existing API token (tokens act as their user) becomes an administrator: before
roles, every user could do everything. Existing audit entries of console and API actors ("web:NAME",
"api:NAME") get NAME as their user and the administrator role, for the same reason.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-02 02:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADMINISTRATOR = "administrator"
ACTOR_PREFIX = 4
"""len("web:") == len("api:")"""


def upgrade() -> None:
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("role", sa.String(length=32), nullable=False, server_default=ADMINISTRATOR)
        )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("username", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("role", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_audit_log_username"), ["username"], unique=False)
    audit = sa.table(
        "audit_log",
        sa.column("actor", sa.String),
        sa.column("username", sa.String),
        sa.column("role", sa.String),
    )
    op.execute(
        audit.update()
        .where(sa.or_(audit.c.actor.like("web:%"), audit.c.actor.like("api:%")))
        .values(username=sa.func.substr(audit.c.actor, ACTOR_PREFIX + 1), role=ADMINISTRATOR)
    )


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_username"))
        batch_op.drop_column("role")
        batch_op.drop_column("username")
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.drop_column("role")
