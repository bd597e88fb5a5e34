"""Reading an OCO-Server 1.x database (MariaDB/MySQL) for `oco import oco-server`.

A separate engine of its own, SQLAlchemy Core only, the tables reflected: OCO-Server's schema changed
across 1.x (the job table was `job` before `job_container_job`, a network address `addr` before
`address`, uid, agent timestamp and architecture came later), so a column that is missing reads as None.
Everything is read in one REPEATABLE READ, read-only transaction: one consistent picture of a running
server. Large tables are read a batch at a time in id order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, MetaData, Table, create_engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from oco.errors import InvalidInput, Unavailable

Row = dict[str, Any]
BATCH = 2000
REQUIRED = (
    "computer",
    "computer_network",
    "computer_group",
    "computer_group_member",
    "computer_package",
    "package_family",
    "package",
    "package_group",
    "package_group_member",
    "job_container",
)
OPTIONAL = (
    "job_container_job",
    "job",
    "software",
    "computer_software",
    "domain_user",
    "domain_user_logon",
    "domainuser",
    "domainuser_logon",
    "system_user",
    "deployment_rule",
    "package_dependency",
    "package_conflict",
    "mobile_device",
)
NOT_CARRIED = {
    "deployment_rule": "deployment rules (recreate them as deployments to groups)",
    "package_dependency": "package dependencies",
    "package_conflict": "package conflicts",
    "mobile_device": "mobile devices",
}
"""Tables of OCO-Server we have nothing for, and how the report names what they hold."""


class OcoSource:
    """An open, consistent read of an OCO-Server database."""

    def __init__(self, connection: Connection, tables: dict[str, Table]) -> None:
        self.connection = connection
        self.tables = tables

    @property
    def job_table(self) -> Table:
        """The jobs of the containers: `job_container_job` since 1.0.x, `job` before."""
        found = self.tables.get("job_container_job")
        return found if found is not None else self.tables["job"]

    def has(self, table: str, column: str | None = None) -> bool:
        """Whether the table (and the column) exists in this OCO-Server's schema."""
        found = self.tables.get(table)
        return found is not None and (column is None or column in found.c)

    def count(self, table: str | Table) -> int:
        """How many rows a table holds."""
        source = self.tables[table] if isinstance(table, str) else table
        return int(self.connection.scalar(select(func.count()).select_from(source)) or 0)

    def rows(
        self,
        table: str | Table,
        columns: Sequence[str],
        *aliases: tuple[str, ...],
        where: tuple[str, Sequence[int]] | None = None,
    ) -> Iterator[Row]:
        """Every row of `table` in id order, a batch at a time, as {column: value}; with `where`
        (column, ids) only the rows whose column holds one of the ids.

        A column the schema lacks reads as None; `aliases` name older spellings of a column, first
        the name we use: ("address", "addr").
        """
        source = self.tables[table] if isinstance(table, str) else table
        wanted: dict[str, tuple[str, ...]] = {name: (name,) for name in columns}
        wanted.update({names[0]: names for names in aliases})
        present = {
            name: next((source.c[n] for n in spellings if n in source.c), None)
            for name, spellings in wanted.items()
        }
        selected = [column.label(name) for name, column in present.items() if column is not None]
        key = source.c["id"]
        last: Any = None
        while True:
            query = select(key.label("_key"), *selected).order_by(key).limit(BATCH)
            if where is not None:
                query = query.where(source.c[where[0]].in_(list(where[1])))
            if last is not None:
                query = query.where(key > last)
            batch = self.connection.execute(query).mappings().all()
            for row in batch:
                yield {name: row.get(name) for name in wanted} | {"id": row["_key"]}
            if len(batch) < BATCH:
                return
            last = batch[-1]["_key"]


def _check_url(url: str) -> None:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInput(f"database URL {url!r} is not valid: {exc}", field="database") from exc
    if parsed.get_backend_name() not in ("mysql", "mariadb"):
        raise InvalidInput(
            f"OCO-Server keeps its data in MariaDB or MySQL; {parsed.get_backend_name()!r} is neither "
            "(use mysql+pymysql://user:password@host/database)",
            field="database",
        )


@contextmanager
def open_source(url: str) -> Iterator[OcoSource]:
    """Connect to an OCO-Server database and hold one consistent, read-only snapshot of it."""
    _check_url(url)
    try:
        engine = create_engine(url, isolation_level="REPEATABLE READ", pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise InvalidInput(f"cannot use database URL: {exc}", field="database") from exc
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")  # applies to the next one
            connection.commit()
            with connection.begin():
                yield OcoSource(connection, _reflect(connection))
    except SQLAlchemyError as exc:
        raise Unavailable(f"reading the OCO-Server database failed: {_first_line(exc)}") from exc
    finally:
        engine.dispose()


def _reflect(connection: Connection) -> dict[str, Table]:
    metadata = MetaData()
    existing = set(connection.dialect.get_table_names(connection))
    missing = [name for name in REQUIRED if name not in existing]
    if missing or not existing & {"job_container_job", "job"}:
        needed = [*missing, *([] if existing & {"job_container_job", "job"} else ["job_container_job"])]
        raise InvalidInput(
            f"not an OCO-Server 1.x database: table(s) {', '.join(needed)} missing", field="database"
        )
    names = [name for name in (*REQUIRED, *OPTIONAL) if name in existing]
    metadata.reflect(connection, only=names)
    return {name: metadata.tables[name] for name in names}


def _first_line(exc: SQLAlchemyError) -> str:
    return str(exc).strip().splitlines()[0]
