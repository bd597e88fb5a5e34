"""Alembic environment: the engine comes from `oco.db.migrate`, or from OCO settings when run by alembic."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from oco.db.engine import STATEMENT, TRANSACTION_OPTION, WRITE
from oco.db.models import Base

engine = context.config.attributes.get("engine")
if engine is None:
    from oco.config import load_settings
    from oco.db.engine import make_engine

    engine = make_engine(load_settings().database_url)

SQLITE = engine.dialect.name == "sqlite"


def _foreign_keys(connection: Connection, on: bool) -> None:
    """SQLite: foreign keys off while tables are rebuilt (a rebuild drops the old table, which would
    cascade), on again after. The pragma is ignored inside a transaction, so it runs on its own."""
    connection.execution_options(**{TRANSACTION_OPTION: STATEMENT})
    connection.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    connection.commit()
    connection.execution_options(**{TRANSACTION_OPTION: WRITE})


with engine.connect() as connection:
    if SQLITE:
        _foreign_keys(connection, on=False)
    try:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=SQLITE,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        if SQLITE:
            connection.commit()
    finally:
        if SQLITE:
            connection.rollback()
            _foreign_keys(connection, on=True)
