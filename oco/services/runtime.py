"""What the use cases run against: settings, database, depot. Built once per process."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from oco.config import Settings
from oco.db.engine import make_engine, make_reader, make_sessionmaker, transaction
from oco.db.types import utcnow
from oco.depot import Depot
from oco.services.checkins import CheckinLedger, flush

Clock = Callable[[], datetime]
T = TypeVar("T")
READ_ATTEMPTS = 2


@dataclass
class Runtime:
    """The process-wide resources; `clock` is replaceable so tests can move time."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    depot: Depot
    clock: Clock = field(default_factory=lambda: utcnow)
    checkins: CheckinLedger = field(default_factory=CheckinLedger)
    _writer: AbstractContextManager[object] = field(init=False, repr=False)
    _reader: Engine = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._reader = make_reader(self.engine)
        # SQLite has one writer at a time; queueing this process's transactions on a lock beats its
        # busy handler, which sleeps in growing steps of up to 100 ms while the lock is taken.
        self._writer = threading.RLock() if self.engine.dialect.name == "sqlite" else nullcontext()

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        engine = make_engine(settings.database_url)
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_sessionmaker(engine),
            depot=Depot(settings.depot_path),
        )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One use case: commit at the end of the block, roll back if it raises."""
        with self._writer, transaction(self.sessions) as session:
            yield session

    def read(self, query: Callable[[Connection], T]) -> T:
        """Run a use case that only reads, with Core statements: no write lock, no transaction.

        The check-in's fast path. Its connections are not pinged before use: a connection the database
        dropped fails once, the pool throws its connections away, and the query runs again.
        """
        for attempt in range(READ_ATTEMPTS):
            try:
                with self._reader.connect() as connection:
                    return query(connection)
            except DBAPIError as exc:
                if not exc.connection_invalidated or attempt == READ_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def now(self) -> datetime:
        return self.clock()

    def close(self) -> None:
        """Write what the check-in ledger still holds, then release the database."""
        try:
            flush(self)
        finally:
            self.engine.dispose()
            if self._reader.pool is not self.engine.pool:
                self._reader.dispose()
