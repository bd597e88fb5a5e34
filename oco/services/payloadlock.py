"""The depot's lock, across every process and replica that shares the depot.

Storing a payload until the package referring to it has committed holds it shared; deciding that a payload
is unused and deleting it holds it exclusively, so a payload uploaded again while its last package is
deleted is never lost. The depot's own file lock covers the processes that share its lock file (one
machine, or a shared directory); replicas on several machines, each with its own spool (an object-store
depot), meet in the database: a PostgreSQL advisory lock (shared or exclusive), a MariaDB named lock
(`GET_LOCK`, exclusive only: uploads of several replicas then wait for each other). SQLite is one machine's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

from oco.errors import Unavailable
from oco.services.runtime import Runtime

LOCK_KEY = 0x0C1_0000
"""The PostgreSQL advisory lock key of the depot (beside housekeeping's range, 0x0C00000…0x0C0FFFF)."""
LOCK_NAME = "oco-depot"
MARIADB_WAIT_S = 3600
"""How long a MariaDB upload or deletion waits for another replica's (longer: 503, try again)."""


@contextmanager
def storing(runtime: Runtime) -> Iterator[None]:
    """Hold from storing a payload until the package referring to it is committed (shared)."""
    with runtime.depot.storing(), _database_lock(runtime.engine, shared=True):
        yield


@contextmanager
def removing(runtime: Runtime) -> Iterator[None]:
    """Hold while deciding that a payload is unused and deleting it (exclusive: waits for `storing`)."""
    with runtime.depot.removing(), _database_lock(runtime.engine, shared=False):
        yield


@contextmanager
def _database_lock(engine: Engine, *, shared: bool) -> Iterator[None]:
    dialect = engine.dialect.name
    if dialect == "postgresql":
        mode = "_shared" if shared else ""
        take, release = f"SELECT pg_advisory_lock{mode}(:key)", f"SELECT pg_advisory_unlock{mode}(:key)"
    elif dialect == "mysql":
        take, release = "SELECT GET_LOCK(:name, :wait)", "SELECT RELEASE_LOCK(:name)"
    else:
        yield
        return
    parameters = {"key": LOCK_KEY, "name": LOCK_NAME, "wait": MARIADB_WAIT_S}
    with engine.connect() as connection:  # a connection of its own, outside the use case's transaction
        held = connection.execute(text(take), parameters).scalar()
        connection.commit()
        if dialect == "mysql" and held != 1:
            raise Unavailable(f"the depot is busy (another replica held its lock for {MARIADB_WAIT_S} s)")
        try:
            yield
        finally:
            connection.execute(text(release), parameters)
            connection.commit()
