"""Migrations on every database: the hostname key of migration 0003, and a schema that is the models'."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, Table, insert, text

from oco.db.engine import make_engine
from oco.db.migrate import current_revision, downgrade, upgrade
from oco.errors import Conflict
from oco.services import computers, containers, deployments, packages
from oco.services.deployments import ContainerOptions, DeploymentRequest
from oco.services.packages import PackageSpec
from oco.services.runtime import Runtime
from oco.services.targets import Targets
from tests.conftest import Clock, make_runtime


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


def test_ids_are_never_reused(rt: Runtime) -> None:
    """A deleted container's id never names the next one (SQLite reused the newest id before 0015)."""
    computers.add_computer(rt, "reuse-pc", "admin")
    package = packages.create_package(
        rt, PackageSpec(family="Reuse", version="1", install_procedure="true"), None, "admin"
    )
    request = DeploymentRequest(
        ContainerOptions(name="first"), Targets(computers=["reuse-pc"], packages=[package.id])
    )
    first = deployments.create_deployment(rt, request, "admin")
    containers.delete_container(rt, first.id, "admin")
    second = deployments.create_deployment(rt, request, "admin")
    assert second.id > first.id


def test_the_rebuild_for_autoincrement_keeps_every_row_and_reference(sqlite_url: str, tmp_path: Path) -> None:
    rt = make_runtime(sqlite_url, tmp_path, Clock())
    computers.add_computer(rt, "kept-pc", "admin")
    package = packages.create_package(
        rt, PackageSpec(family="Kept", version="1", install_procedure="true"), None, "admin"
    )
    request = DeploymentRequest(
        ContainerOptions(name="kept"), Targets(computers=["kept-pc"], packages=[package.id])
    )
    container = deployments.create_deployment(rt, request, "admin")
    rt.close()
    engine = make_engine(sqlite_url)
    try:
        for step in (lambda: downgrade(engine, "-1"), lambda: upgrade(engine)):
            step()
            with engine.connect() as connection:
                assert (
                    connection.execute(
                        text("SELECT count(*) FROM job WHERE container_id = :c"), {"c": container.id}
                    ).scalar()
                    == 1
                )
                assert connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
                assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        with engine.connect() as connection:
            ddl = connection.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'job_container'"
            ).scalar()
        assert "AUTOINCREMENT" in ddl
    finally:
        engine.dispose()


def test_existing_users_become_administrators_and_audit_entries_name_their_user(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        downgrade(engine, "0013-1")  # just before the roles
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO user_account (username, full_name, password_hash, enabled, created)"
                    " VALUES ('alice', '', 'x', :yes, :now)"
                ),
                {"yes": True, "now": datetime(2026, 1, 5, 9, 0)},
            )
            for actor in ("web:alice", "api:alice", "cli:root", "agent"):
                connection.execute(
                    text(
                        "INSERT INTO audit_log (at, actor, action, object_type)"
                        " VALUES (:now, :actor, 'x', '')"
                    ),
                    {"now": datetime(2026, 1, 5, 9, 0), "actor": actor},
                )

        upgrade(engine)

        with engine.connect() as connection:
            assert connection.execute(text("SELECT role FROM user_account")).scalar_one() == "administrator"
            rows = connection.execute(text("SELECT actor, username, role FROM audit_log ORDER BY id"))
            assert [tuple(row) for row in rows] == [
                ("web:alice", "alice", "administrator"),
                ("api:alice", "alice", "administrator"),
                ("cli:root", None, None),
                ("agent", None, None),
            ]
    finally:
        upgrade(engine)
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM audit_log"))
            connection.execute(text("DELETE FROM user_account"))
        engine.dispose()
