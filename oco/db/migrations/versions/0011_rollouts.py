"""Safe rollouts: job.phase, job_container.open_phase and .windows, computer.time_zone, the rollout of a
container and its events

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 02:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import oco.db.types

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phase", sa.Integer(), nullable=True))
    with op.batch_alter_table("job_container", schema=None) as batch_op:
        batch_op.add_column(sa.Column("open_phase", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("windows", sa.Text(), nullable=True))
    with op.batch_alter_table("computer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("time_zone", sa.String(length=64), nullable=False, server_default=""))
    op.create_table(
        "rollout",
        sa.Column("container_id", sa.Integer(), nullable=False),
        sa.Column("phases", sa.String(length=255), nullable=False),
        sa.Column("pilot_group_id", sa.Integer(), nullable=True),
        sa.Column("pilot_group", sa.String(length=255), nullable=False),
        sa.Column("phase_count", sa.Integer(), nullable=False),
        sa.Column("success_percent", sa.Integer(), nullable=False),
        sa.Column("soak_seconds", sa.Integer(), nullable=False),
        sa.Column("halt_failure_rate", sa.Integer(), nullable=True),
        sa.Column("halt_min_finished", sa.Integer(), nullable=False),
        sa.Column("current_phase", sa.Integer(), nullable=False),
        sa.Column("phase_opened", oco.db.types.UTCDateTime(), nullable=True),
        sa.Column("phase_met", oco.db.types.UTCDateTime(), nullable=True),
        sa.Column("counted_since", oco.db.types.UTCDateTime(), nullable=False),
        sa.Column("halted", oco.db.types.UTCDateTime(), nullable=True),
        sa.Column("halted_by", sa.String(length=255), nullable=False),
        sa.Column("halt_details", oco.db.types.JSONText(), nullable=True),
        sa.Column("completed", oco.db.types.UTCDateTime(), nullable=True),
        sa.Column("canceled_by", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["container_id"],
            ["job_container.id"],
            name=op.f("fk_rollout_container_id_job_container"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("container_id", name=op.f("pk_rollout")),
    )
    op.create_table(
        "rollout_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("container_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("at", oco.db.types.UTCDateTime(), nullable=False),
        sa.Column("payload", oco.db.types.JSONText(), nullable=True),
        sa.Column("delivered", oco.db.types.UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout_event")),
    )
    with op.batch_alter_table("rollout_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rollout_event_container_id"), ["container_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rollout_event_delivered"), ["delivered"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rollout_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rollout_event_delivered"))
        batch_op.drop_index(batch_op.f("ix_rollout_event_container_id"))
    op.drop_table("rollout_event")
    op.drop_table("rollout")
    with op.batch_alter_table("computer", schema=None) as batch_op:
        batch_op.drop_column("time_zone")
    with op.batch_alter_table("job_container", schema=None) as batch_op:
        batch_op.drop_column("windows")
        batch_op.drop_column("open_phase")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("phase")
