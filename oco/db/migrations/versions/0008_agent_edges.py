"""job.return_code holds 64 bits; computer.hostname_key compares hostnames after NFKC

A Windows exit code is an unsigned 32-bit number (0xC0000005 = 3221225477 for an access violation), which a
32-bit INTEGER cannot hold; the agent API admits any 64-bit integer. Hostname keys are recomputed with the
rule of `oco.domain.hostnames` (NFKC, case-folded): a computer whose new key another computer already has
(a look-alike registered before the rule, such as "pc01" in full-width letters beside "pc01") keeps its
old key, so nothing is lost — an admin deletes the look-alike.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from oco.domain.hostnames import hostname_key

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "sqlite":  # SQLite's INTEGER already holds 64 bits
        with op.batch_alter_table("job", schema=None) as batch_op:
            batch_op.alter_column("return_code", existing_type=sa.Integer(), type_=sa.BigInteger())
    rows = [
        tuple(row) for row in connection.execute(sa.text("SELECT id, hostname, hostname_key FROM computer"))
    ]
    taken = {key for _id, _hostname, key in rows}
    changes = []
    for computer_id, hostname, key in sorted(rows):
        new_key = hostname_key(hostname)
        if new_key != key and new_key not in taken:
            taken.discard(key)
            taken.add(new_key)
            changes.append({"key": new_key, "id": computer_id})
    if changes:
        connection.execute(sa.text("UPDATE computer SET hostname_key = :key WHERE id = :id"), changes)


def downgrade() -> None:
    # Recomputed keys stay: the older rule finds every computer whose key is ASCII as before.
    if op.get_bind().dialect.name != "sqlite":
        with op.batch_alter_table("job", schema=None) as batch_op:
            batch_op.alter_column("return_code", existing_type=sa.BigInteger(), type_=sa.Integer())
