"""Migrations on every database: the hostname key of migration 0003, and a schema that is the models'."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import Engine, MetaData, Table, insert, text

from oco.db.engine import make_engine
from oco.db.migrate import current_revision, downgrade, upgrade
from oco.errors import Conflict


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    downgrade(engine, "0002")
    yield engine
    upgrade(engine)  # the next test finds the schema it expects
    engine.dispose()


def add_computers(engine: Engine, *hostnames: str, keys: dict[str, str] | None = None) -> None:
    """Insert rows as the schema of the current revision has them: reflected, every required column
    filled (`keys`: the hostname keys, from revision 0003 on)."""
    table = Table("computer", MetaData(), autoload_with=engine)
    blanks: dict[str, object] = {}
    for column in table.columns:
        if column.nullable or column.primary_key or column.server_default is not None:
            continue
        python_type = column.type.python_type
        if python_type is datetime:
            blanks[column.name] = datetime(2026, 1, 5, 9, 0)
        else:
            blanks[column.name] = False if python_type is bool else python_type()
    with engine.begin() as connection:
        rows = [{**blanks, "hostname": hostname} for hostname in hostnames]
        for row in rows:
            if keys:
                row["hostname_key"] = keys[str(row["hostname"])]
        connection.execute(insert(table), rows)


def test_existing_computers_get_their_keys(engine: Engine) -> None:
    add_computers(engine, "PC-01", "laptop7")

    upgrade(engine, "0003")

    assert current_revision(engine) == "0003"
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT hostname, hostname_key FROM computer ORDER BY hostname_key"))
        assert [tuple(row) for row in rows] == [("laptop7", "laptop7"), ("PC-01", "pc-01")]


def test_computers_differing_only_in_case_stop_the_upgrade_with_their_names(engine: Engine) -> None:
    if engine.dialect.name == "mysql":
        pytest.skip("MariaDB's case-insensitive collation never let such computers exist")
    add_computers(engine, "PC-01", "pc-01")

    with pytest.raises(Conflict, match=r"'PC-01'.*'pc-01'.*differ only in case"):
        upgrade(engine)

    with engine.begin() as connection:
        connection.execute(text("DELETE FROM computer WHERE hostname = 'pc-01'"))


def test_hostname_keys_are_recomputed_after_nfkc_and_a_look_alike_keeps_its_own(engine: Engine) -> None:
    add_computers(engine, "pc01", "laptop7")
    upgrade(engine, "0006")
    # Keys as the rule before NFKC wrote them (case-folded only).
    wide_pc01, wide_laptop8 = "\uff50\uff43\uff10\uff11", "\uff2c\uff21\uff30\uff34\uff2f\uff30\uff18"
    add_computers(
        engine, wide_pc01, wide_laptop8, keys={wide_pc01: wide_pc01, wide_laptop8: wide_laptop8.casefold()}
    )

    upgrade(engine, "0008")

    with engine.connect() as connection:
        rows = connection.execute(text("SELECT hostname, hostname_key FROM computer ORDER BY id"))
        assert [tuple(row) for row in rows] == [
            ("pc01", "pc01"),
            ("laptop7", "laptop7"),
            (
                wide_pc01,
                wide_pc01,
            ),  # pc01 has the key already: the look-alike keeps its old one
            (wide_laptop8, "laptop8"),
        ]


def test_the_migrations_build_the_schema_the_models_describe(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from oco.db.models import Base

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []
