"""The database schema: migrate it, and say at which revision it is."""

from __future__ import annotations

from oco.db import migrate
from oco.services.runtime import Runtime, database_errors


def upgrade(rt: Runtime, revision: str = "head") -> None:
    """Create or upgrade the schema to `revision` (Alembic's migrations, on every database)."""
    with database_errors():
        migrate.upgrade(rt.engine, revision)


def current_revision(rt: Runtime) -> str | None:
    """The schema revision of the database, or None for an empty one."""
    with database_errors():
        return migrate.current_revision(rt.engine)
