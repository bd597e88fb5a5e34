"""Shared fixtures: real databases (SQLite always; PostgreSQL and MariaDB under CI) and a runtime."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import Engine, inspect, text

from oco.config import Settings
from oco.db.engine import make_engine
from oco.db.migrate import upgrade
from oco.db.models import Base
from oco.db.types import utcnow
from oco.services.runtime import Runtime
from tests.live import LiveServer, start_server
from tests.support import WolListener, copy_sqlite_template

# No timed assertions in tests, Hypothesis's per-example deadline included: on a loaded machine a pure
# function's example can take 500 ms. Performance is measured in bench/.
settings.register_profile("oco", deadline=None)
settings.load_profile("oco")

POSTGRES_URL = os.environ.get("OCO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("OCO_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
SERVER_DATABASES_REASON = (
    "{name} tests run under CI=true (or OCO_TEST_ALL_DATABASES=1) against the server on 127.0.0.1"
)


def server_databases_enabled() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("OCO_TEST_ALL_DATABASES") == "1"


class Clock:
    """A clock tests can set and move; the runtime reads time only through it."""

    def __init__(self, now: datetime | None = None) -> None:
        self.current = now or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


# One migrated database per backend and test session; each test starts from empty tables. ----------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "template.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


def _reset_schema(engine: Engine) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        else:
            connection.execute(text("SET FOREIGN_KEY_CHECKS=0"))
            for table in inspect(connection).get_table_names():
                connection.execute(text(f"DROP TABLE `{table}`"))
            connection.execute(text("SET FOREIGN_KEY_CHECKS=1"))
    upgrade(engine)


def _server_engine(name: str, url: str) -> Iterator[Engine]:
    if not server_databases_enabled():
        pytest.skip(SERVER_DATABASES_REASON.format(name=name))
    engine = make_engine(url)
    _reset_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[Engine]:
    yield from _server_engine("PostgreSQL", POSTGRES_URL)


@pytest.fixture(scope="session")
def mysql_engine() -> Iterator[Engine]:
    yield from _server_engine("MariaDB", MYSQL_URL)


def empty_tables(engine: Engine) -> None:
    tables = list(reversed(Base.metadata.sorted_tables))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            connection.execute(text("SET FOREIGN_KEY_CHECKS=0"))
            for table in tables:
                connection.execute(text(f"TRUNCATE TABLE `{table.name}`"))
            connection.execute(text("SET FOREIGN_KEY_CHECKS=1"))


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty database of each backend in turn."""
    if request.param == "sqlite":
        return copy_sqlite_template(sqlite_template, tmp_path)
    engine: Engine = request.getfixturevalue(f"{request.param}_engine")
    empty_tables(engine)
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty SQLite database (for tests that need only one backend)."""
    return copy_sqlite_template(sqlite_template, tmp_path)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_runtime(
    database_url: str, tmp_path: Path, clock: Callable[[], datetime] = utcnow, **overrides: object
) -> Runtime:
    """A runtime over `database_url` with test-safe settings; `clock` defaults to the real time."""
    values: dict[str, object] = {
        "database_url": database_url,
        "depot_path": tmp_path / "depot",
        "agent_registration_key": "registration-key-for-tests",
        # Magic packets never leave loopback in tests: no broadcast, no subnet broadcasts.
        "wol_addresses": ["127.0.0.1"],
        "wol_subnet_broadcasts": False,
        # The test clock stands still (January 2026) while agents sign with the real time: years ahead
        # of it are allowed unless a test checks the limit itself.
        "agent_timestamp_max_ahead_seconds": 10 * 365 * 86400.0,
        **overrides,
    }
    runtime = Runtime.from_settings(Settings(**values))  # type: ignore[arg-type]
    runtime.clock = clock
    return runtime


@pytest.fixture
def rt(database_url: str, tmp_path: Path, clock: Clock) -> Iterator[Runtime]:
    """A runtime over each database backend in turn, with a controllable clock."""
    runtime = make_runtime(database_url, tmp_path, clock)
    yield runtime
    runtime.close()


@pytest.fixture
def live_server(tmp_path: Path, sqlite_url: str) -> Iterator[LiveServer]:
    """A real `oco server` process on a loopback port over a fresh SQLite database."""
    server = start_server(tmp_path, sqlite_url)
    yield server
    server.stop()


@pytest.fixture
def wol_listener() -> Iterator[WolListener]:
    """A UDP listener on 127.0.0.1 for the magic packets a test makes the server send."""
    with WolListener() as listener:
        yield listener
