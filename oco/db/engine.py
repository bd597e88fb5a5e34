"""Engine and session set-up for SQLite, PostgreSQL and MariaDB, and the one-transaction helper."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_S = 30
SQLITE_READ_TIMEOUT_S = 2


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for `url`; SQLite gets WAL mode, foreign keys and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "mysql":
        kwargs.setdefault("pool_recycle", 3600)
        # As PostgreSQL does by default: InnoDB's REPEATABLE READ locks the gaps between index entries a
        # statement read, so transactions replacing one computer's rows (its network interfaces, its
        # software) deadlocked with those of its neighbours — 861 of 2,000 changed hellos with two
        # processes. The use cases take the locks they need themselves (conditional UPDATEs, `FOR UPDATE`).
        kwargs.setdefault("isolation_level", "READ COMMITTED")
        if "charset" not in parsed.query:
            url = str(parsed.update_query_dict({"charset": "utf8mb4"}).render_as_string(hide_password=False))
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # Writers take the write lock at the start: two writers then queue instead of failing on upgrade.
    # Snapshot readers begin a deferred transaction: in WAL mode it reads one snapshot, takes no lock that a
    # writer waits for, and never waits for one. Core readers (`make_reader`) run each statement on its own.
    mode = connection.get_execution_options().get(TRANSACTION_OPTION, WRITE)
    if mode == WRITE:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif mode == SNAPSHOT:
        connection.exec_driver_sql("BEGIN")


TRANSACTION_OPTION = "oco_transaction"
WRITE, SNAPSHOT, STATEMENT = "write", "snapshot", "statement"


def make_snapshot_bind(engine: Engine) -> Engine:
    """What read-only sessions are bound to: one consistent snapshot, no write lock.

    SQLite: a deferred `BEGIN` (WAL readers never wait for writers and writers never wait for them).
    PostgreSQL: a READ ONLY transaction, so a read use case that tried to write would fail loudly.
    MariaDB: a REPEATABLE READ transaction (its writers read committed), rolled back at the end.
    """
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{TRANSACTION_OPTION: SNAPSHOT})
    if engine.dialect.name == "postgresql":
        return engine.execution_options(postgresql_readonly=True)
    return engine.execution_options(isolation_level="REPEATABLE READ")


def make_reader(engine: Engine) -> Engine:
    """An engine for use cases that only read, each statement on its own (no BEGIN, no ROLLBACK).

    SQLite: connections of their own that never take the write lock and give up after
    `SQLITE_READ_TIMEOUT_S` on the rare lock a WAL reader can meet (the check-in reads on the event loop,
    which must not wait 30 s); an in-memory database shares its one pool instead. Network databases: a pool
    of autocommit connections not pinged before use (each ping and each BEGIN is a round trip); see
    `Runtime.read` for the retry that replaces the ping. On PostgreSQL they also serve the single-statement
    writes of `Runtime.at_once`.
    """
    if engine.dialect.name == "sqlite":
        if engine.url.database in (None, "", ":memory:"):
            return engine.execution_options(**{TRANSACTION_OPTION: STATEMENT})
        reader = create_engine(
            engine.url, connect_args={"timeout": SQLITE_READ_TIMEOUT_S, "check_same_thread": False}
        )
        event.listen(reader, "connect", _sqlite_pragmas)  # no BEGIN: each statement on its own
        return reader
    kwargs: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"}
    if engine.dialect.name == "mysql":
        kwargs["pool_recycle"] = 3600
    if engine.dialect.name == "postgresql":
        # Its only writes are the check-ins' confirmations (`Runtime.at_once`): seen by every other
        # session at once, lost only if the database server itself crashes within a fraction of a
        # second (docs/architecture.md).
        kwargs["connect_args"] = {"options": "-c synchronous_commit=off"}
    return create_engine(engine.url, **kwargs)


def make_loop_reader(engine: Engine) -> AsyncEngine | None:
    """PostgreSQL: the readers' pool of `make_reader` again (autocommit, not pinged, synchronous_commit
    off), on psycopg's asyncio connections, for the use cases that run on the event loop
    (`Runtime.on_loop`). None elsewhere: SQLite reads on the loop without waiting, MariaDB in threads."""
    if engine.dialect.name != "postgresql":
        return None
    return create_async_engine(
        engine.url, isolation_level="AUTOCOMMIT", connect_args={"options": "-c synchronous_commit=off"}
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit when the block ends, roll back everything if it raises."""
    with factory() as session, session.begin():
        yield session


@contextmanager
def snapshot(bind: Engine) -> Iterator[Session]:
    """A session that only reads (see `make_snapshot_bind`); never committed: closing it rolls back.

    What it loaded stays readable afterwards (closing detaches the objects without expiring them).

    PostgreSQL plans each of its statements for the values it is given: a prepared statement's generic
    plan assumes an average container, and sorted a million jobs for one console page where walking the
    computers in name order reads a few thousand (1.3 s instead of 30 ms).
    """
    with Session(bind, expire_on_commit=False) as session:
        if bind.dialect.name == "postgresql":
            session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        yield session
