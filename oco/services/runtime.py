"""What the use cases run against: settings, database, depot, clock. Built once per process.

A use case opens exactly one unit of work on it: `transaction()` for one that writes (commit at the end,
rollback on any error; `writing()` the same on a Core connection, for the agent endpoint's writes),
`reading()` for one that only reads (a snapshot, no write lock, always rolled back), `read()` for the
check-in's Core reads. Errors the database raises for something a client sent
become `OcoError`s here, so entry points never see SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.util import greenlet_spawn

from oco.config import Settings
from oco.db.engine import (
    SQLITE_BUSY_TIMEOUT_S,
    make_engine,
    make_loop_reader,
    make_reader,
    make_sessionmaker,
    make_snapshot_bind,
    snapshot,
    transaction,
)
from oco.db.types import utcnow
from oco.depot import Depot, open_depot
from oco.errors import ConfigError, Conflict, InvalidInput, Unavailable
from oco.services.ledger import CheckinLedger
from oco.services.slots import SlotBoard

Clock = Callable[[], datetime]
_WriterLock = type(threading.RLock())


class WriterBusy(Exception):
    """SQLite's write lock is taken, by another transaction of this process or by another process
    (`Runtime.writing` when told not to wait)."""


T = TypeVar("T")
P = ParamSpec("P")
READ_ATTEMPTS = 2
_ON_LOOP: ContextVar[bool] = ContextVar("oco_on_loop", default=False)
"""Set while a use case runs on the event loop (`Runtime.on_loop`): its statements use the loop's pool."""


@dataclass
class Runtime:
    """The process-wide resources; `clock` is replaceable so tests can move time."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    depot: Depot
    clock: Clock = field(default_factory=lambda: utcnow)
    checkins: CheckinLedger = field(default_factory=CheckinLedger)
    download_slots: SlotBoard = field(default_factory=SlotBoard)
    """What this process last read of the download slots (`oco.services.slots`)."""
    _writer: AbstractContextManager[object] = field(init=False, repr=False)
    _reader: Engine = field(init=False, repr=False)
    _snapshots: Engine = field(init=False, repr=False)
    _loop_reader: AsyncEngine | None = field(init=False, repr=False, default=None)
    _loop: asyncio.AbstractEventLoop | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self._reader = make_reader(self.engine)
        self._loop_reader = make_loop_reader(self.engine)
        self._snapshots = make_snapshot_bind(self.engine)
        # SQLite has one writer at a time; queueing this process's transactions on a lock beats its
        # busy handler, which sleeps in growing steps of up to 100 ms while the lock is taken.
        self._writer = _WriterLock() if self.engine.dialect.name == "sqlite" else nullcontext()

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        """The runtime of a process: engine, sessions and depot as the settings say."""
        engine = make_engine(settings.database_url)
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_sessionmaker(engine),
            depot=depot_of(settings),
        )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One use case that writes: commit at the end of the block, roll back if it raises."""
        with database_errors(), self._writer, transaction(self.sessions) as session:
            yield session

    @contextmanager
    def writing(self, *, wait: bool = True) -> Iterator[Connection]:
        """One use case that writes with Core statements only, no ORM session: the agent endpoint's write
        paths. Commit at the end of the block, roll back if it raises; queued like `transaction()`.
        Not `wait`: raise `WriterBusy` at once if SQLite's write lock is taken (the event loop must not
        wait for a console transaction)."""
        if wait or not isinstance(self._writer, _WriterLock):
            with database_errors(), self._writer, self.engine.begin() as connection:
                yield connection
            return
        if not self._writer.acquire(blocking=False):
            raise WriterBusy
        try:
            with database_errors(), self.engine.connect() as connection:
                # Another process's writer (a replica, an `oco` command) may hold the database's lock:
                # give up at once instead of waiting up to the busy timeout. On the driver's connection:
                # a statement of SQLAlchemy's would begin the transaction first.
                driver = connection.connection.driver_connection
                assert driver is not None
                driver.execute("PRAGMA busy_timeout = 0")
                try:
                    try:
                        transaction = connection.begin()
                    except OperationalError as exc:
                        if "locked" in str(exc.orig):
                            raise WriterBusy from exc
                        raise
                    with transaction:
                        yield connection
                finally:
                    driver.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
        finally:
            self._writer.release()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """One use case that only reads: one snapshot, no write lock, rolled back at the end."""
        with database_errors(), snapshot(self._snapshots) as session:
            yield session

    def read(self, query: Callable[[Connection], T]) -> T:
        """Run a use case that only reads, with Core statements: no write lock, no transaction.

        The check-in's fast path. Its connections are not pinged before use: a connection the database
        dropped fails once, the pool throws its connections away, and the query runs again.
        """
        with database_errors():
            for attempt in range(READ_ATTEMPTS):
                try:
                    with self._readers().connect() as connection:
                        return query(connection)
                except DBAPIError as exc:
                    if not exc.connection_invalidated or attempt == READ_ATTEMPTS - 1:
                        raise
        raise AssertionError("unreachable")

    def at_once(self, statement: Callable[[Connection], T]) -> T:
        """Run a use case that writes with one statement, atomic on its own: on an autocommit connection
        of the readers' pool (PostgreSQL: without waiting for the disk), no BEGIN and COMMIT round trips,
        not queued behind the process's other writers, and not retried — a dropped connection leaves its
        outcome unknown. For network databases (SQLite's writers share one lock: `writing`)."""
        with database_errors(), self._readers().connect() as connection:
            return statement(connection)

    def _readers(self) -> Engine:
        if self._loop_reader is not None and _ON_LOOP.get():
            return self._loop_reader.sync_engine
        return self._reader

    @property
    def reads_on_loop(self) -> bool:
        """PostgreSQL: `read` and `at_once` can wait for the database on the event loop (`on_loop`)."""
        return self._loop_reader is not None

    async def on_loop(
        self, use: Callable[Concatenate[Runtime, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `use` on the event loop, its `read` and `at_once` statements waiting for the database
        without blocking it: while one waits, the loop serves other requests (psycopg's asyncio
        connections, through SQLAlchemy's greenlet bridge). No thread, so no hand-off of the GIL per
        statement. Only for use cases whose statements are all `read` and `at_once` (PostgreSQL)."""
        if self._loop_reader is None:
            raise AssertionError("on_loop needs a database with asyncio connections (PostgreSQL)")
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # connections belong to the loop that opened them (tests run several)
            if self._loop is not None:
                await self._loop_reader.dispose()
            self._loop = loop

        def on_loop() -> T:
            token = _ON_LOOP.set(True)
            try:
                return use(self, *args, **kwargs)
            finally:
                _ON_LOOP.reset(token)

        return await greenlet_spawn(on_loop)

    async def close_loop(self) -> None:
        """Release the event loop's database connections (before `close`, on the loop that used them)."""
        if self._loop_reader is not None:
            await self._loop_reader.dispose()
            self._loop = None

    @property
    def reads_are_local(self) -> bool:
        """SQLite: reads are local and never wait for a writer (WAL), so waiting for one costs nothing."""
        return self.engine.dialect.name == "sqlite"

    def now(self) -> datetime:
        """The current time (timezone-aware UTC) by the runtime's clock."""
        return self.clock()

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()
        if self._reader.pool is not self.engine.pool:
            self._reader.dispose()


@contextmanager
def database_errors() -> Iterator[None]:
    """Turn what the database refuses of a client's request into `OcoError`s with a readable message."""
    try:
        yield
    except IntegrityError as exc:  # a concurrent change won a race the use case's checks could not see
        raise Conflict(
            f"the change conflicts with stored data ({_first_line(exc)}); reload and retry"
        ) from exc
    except DataError as exc:
        raise InvalidInput(f"the database refused a value: {_first_line(exc)}") from exc
    except OperationalError as exc:
        raise Unavailable(
            f"database error: {_first_line(exc)} (is the database migrated? run `oco db upgrade`)"
        ) from exc


def _first_line(exc: DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)


def depot_of(settings: Settings) -> Depot:
    """The depot the settings name: the object store of `depot_url`, else the directory `depot_path`.

    An object-store depot spools uploads in `depot_path` (its lock file lives there too).
    """
    try:
        return open_depot(
            settings.depot_url,
            settings.depot_path,
            settings.depot_reserve_bytes,
            s3_endpoint_url=settings.depot_s3_endpoint_url,
            s3_region=settings.depot_s3_region,
            max_bytes=settings.depot_max_bytes,
        )
    except ImportError as exc:
        raise ConfigError(
            f"depot_url {settings.depot_url!r} needs the S3 client: pip install 'oco-deploy[s3]' ({exc})"
        ) from exc
