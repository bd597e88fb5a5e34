"""Alembic environment: the engine comes from `oco.db.migrate`, or from OCO settings when run by alembic."""

from __future__ import annotations

from alembic import context

from oco.db.models import Base

engine = context.config.attributes.get("engine")
if engine is None:
    from oco.config import load_settings
    from oco.db.engine import make_engine

    engine = make_engine(load_settings().database_url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
