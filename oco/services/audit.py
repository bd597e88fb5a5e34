"""The audit log: one row per change, written in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from oco.db.models import AuditLog


def record(
    session: Session, actor: str, action: str, object_type: str, object_id: int | None, **details: Any
) -> None:
    """Add an audit entry to the current transaction."""
    session.add(
        AuditLog(
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            details=details or None,
        )
    )
