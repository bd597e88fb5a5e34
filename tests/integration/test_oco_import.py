"""`oco import oco-server`: an OCO-Server 1.x database in MariaDB carried into ours (every backend).

The OCO database is built from OCO-Server's schema facts (tests/ocoserver.py); without MariaDB (CI or
OCO_TEST_ALL_DATABASES) these tests skip and say why.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from oco.db.models import (
    Computer,
    ComputerGroup,
    ComputerPackage,
    ImportMapping,
    Job,
    JobContainer,
    Package,
    PackageFamily,
    PackageGroup,
    WolTarget,
)
from oco.domain.ocoimport import PACKAGE_CONFLICT_NOTE, ImportReport
from oco.domain.states import JobState, PostAction, SequenceMode
from oco.errors import InvalidInput
from oco.services import computers
from oco.services.ocoimport import OcoImportRequest, import_oco_server
from oco.services.ocoimport.deployments import DeploymentImport
from oco.services.runtime import Runtime
from tests.ocoserver import AGENT_KEY, AGENT_TIMESTAMP, SERVER_KEY, OcoServer, oco_server

ZONE = "Europe/Berlin"


@pytest.fixture
def oco(tmp_path: Path) -> Iterator[OcoServer]:
    with oco_server(tmp_path) as server:
        yield server


def run(rt: Runtime, oco: OcoServer, *, dry_run: bool = False, payloads: bool = True) -> ImportReport:
    request = OcoImportRequest(
        database_url=oco.url, payloads=oco.payloads if payloads else None, dry_run=dry_run, time_zone=ZONE
    )
    return import_oco_server(rt, request, "admin")


def counts(report: ImportReport) -> dict[str, tuple[int, int, int]]:
    return {k: (r.imported, r.already_imported, len(r.skipped)) for k, r in report.kinds.items()}


def table_counts(rt: Runtime) -> dict[str, int]:
    models: list[Any] = [Computer, ComputerGroup, PackageFamily, Package, PackageGroup, ComputerPackage]
    models += [JobContainer, Job, ImportMapping]
    with rt.reading() as session:
        return {m.__tablename__: session.scalar(select(func.count()).select_from(m)) for m in models}


EXPECTED = {
    "computer": (2, 0, 1),
    "computer-group": (2, 0, 0),
    "computer-group-member": (3, 0, 1),
    "package-family": (2, 0, 0),
    "package": (2, 0, 1),
    "package-group": (1, 0, 0),
    "package-group-member": (2, 0, 0),
    "assignment": (1, 0, 1),
    "job-container": (2, 0, 0),
    "job": (4, 0, 0),
}


def test_every_kind_is_carried_with_its_values(rt: Runtime, oco: OcoServer) -> None:
    computers.add_computer(rt, "existing", "admin")

    report = run(rt, oco)

    assert counts(report) == EXPECTED
    reasons = {s.reason for r in report.kinds.values() for s in r.skipped}
    assert "a computer named 'existing' exists here already" in reasons
    assert any("'x'" in reason for reason in reasons)  # package 3's success codes
    assert any("deployment rules" in note for note in report.notes)
    with rt.reading() as session:
        pc01 = session.scalars(select(Computer).where(Computer.hostname == "PC01")).one()
        assert (pc01.agent_key, pc01.server_key, pc01.uid) == (AGENT_KEY, SERVER_KEY, "uid-pc01")
        assert pc01.last_agent_timestamp == AGENT_TIMESTAMP
        assert pc01.last_seen == datetime(2026, 6, 1, 8, 0, tzinfo=UTC)  # 10:00 in Berlin, summer
        assert (pc01.os, pc01.os_version, pc01.architecture) == ("Ubuntu", "24.04", "x86_64")
        assert [(n.address, n.mac) for n in pc01.networks] == [
            ("10.0.0.1", "aa:bb:cc:dd:ee:01"),
            ("fe80::1", "aa:bb:cc:dd:ee:01"),
        ]
        assert pc01.logins == [
            {"username": "bob", "console": "tty7", "timestamp": "2026-05-31 06:00:00"},
            {"username": "bob", "console": "tty7", "timestamp": "2026-05-30 06:00:00"},
        ]
        assert pc01.newest_login == datetime(2026, 5, 31, 6, 0, tzinfo=UTC)
        assert sorted((s.name, s.version) for s in pc01.software) == [
            ("LibreOffice", "7.6"),
            ("Mozilla Firefox", "119.0"),
        ]
        assert pc01.inventory is not None and pc01.inventory["cpu"] == "Intel i5"

        groups = {
            g.name: sorted(m.computer.hostname for m in g.members)
            for g in session.scalars(select(ComputerGroup))
        }
        assert groups == {"Site A": ["PC01"], "Site A / Floor 2": ["PC01", "pc02"]}

        packages = {p.version: p for p in session.scalars(select(Package))}
        assert set(packages) == {"119.0", "120.0"}
        firefox = packages["119.0"]
        assert firefox.family.name == "Firefox" and firefox.author == "alice"
        assert (firefox.install_success_codes, firefox.install_post_action) == ("0,3010", PostAction.RESTART)
        assert (firefox.compatible_os, firefox.compatible_architecture) == ("Ubuntu, Debian", "x86_64")
        assert firefox.upgrade_behavior == "explicit-uninstall" and firefox.payload_sha256 is None
        assert firefox.download_for_uninstall is True
        newer = packages["120.0"]
        assert newer.upgrade_behavior == "installer-removes"
        assert newer.uninstall_post_action == PostAction.SHUTDOWN and newer.download_for_uninstall is False
        zipped = (oco.payloads / "2.zip").read_bytes()
        assert newer.payload_sha256 == hashlib.sha256(zipped).hexdigest()
        assert rt.depot.exists(newer.payload_sha256)

        base = session.scalars(select(PackageGroup)).one()
        assert [m.package.version for m in base.members] == ["119.0", "120.0"]
        assignments = session.scalars(select(ComputerPackage)).all()
        assert [(a.computer.hostname, a.package.version) for a in assignments] == [("PC01", "119.0")]

        upgrade = session.scalars(select(JobContainer).where(JobContainer.name == "Firefox 120")).one()
        assert (upgrade.priority, upgrade.sequence_mode, upgrade.restart_timeout) == (
            5,
            SequenceMode.ABORT_AFTER_FAILED,
            10,
        )
        assert upgrade.agent_ip_ranges == "127.0.0.0/8" and upgrade.author == "alice"
        assert [(j.action, j.state, j.package_name) for j in upgrade.jobs] == [
            ("uninstall", JobState.WAITING, "Firefox 119.0"),
            ("install", JobState.WAITING, "Firefox 120.0"),
        ]
        history = session.scalars(select(JobContainer).where(JobContainer.name == "Firefox 119")).one()
        done, conflict = history.jobs
        assert (done.state, done.return_code, done.message) == (JobState.SUCCEEDED, 0, "installed")
        assert done.execution_finished == datetime(2026, 5, 1, 7, 2, tzinfo=UTC)
        assert (conflict.state, conflict.message) == (JobState.FAILED, PACKAGE_CONFLICT_NOTE)


def test_a_second_run_changes_nothing(rt: Runtime, oco: OcoServer) -> None:
    computers.add_computer(rt, "existing", "admin")
    run(rt, oco)
    before = table_counts(rt)

    again = run(rt, oco)

    assert {k: r.imported for k, r in again.kinds.items()} == dict.fromkeys(EXPECTED, 0)
    assert {k: r.already_imported for k, r in again.kinds.items()} == {k: v[0] for k, v in EXPECTED.items()}
    assert table_counts(rt) == before


def test_what_is_new_at_the_source_comes_on_the_next_run(rt: Runtime, oco: OcoServer) -> None:
    run(rt, oco)
    oco.execute(
        """INSERT INTO computer (hostname, os, os_version, os_license, os_locale, kernel_version,
        architecture, cpu, gpu, ram, agent_version, remote_address, serial, manufacturer, model,
        bios_version, boot_type, secure_boot, domain, notes, agent_key, server_key) VALUES
        ('pc04', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', 'k', 's')"""
    )

    report = run(rt, oco)

    assert counts(report)["computer"] == (1, 3, 0)  # "existing" was imported the first time here
    assert computers.computer_detail(rt, "pc04").hostname == "pc04"


def test_a_dry_run_reports_what_a_run_would_do_and_changes_nothing(rt: Runtime, oco: OcoServer) -> None:
    computers.add_computer(rt, "existing", "admin")
    before = table_counts(rt)

    dry = run(rt, oco, dry_run=True)

    assert dry.dry_run and counts(dry) == EXPECTED
    assert table_counts(rt) == before
    assert not any(p.is_file() for p in rt.depot.root.rglob("*") if not p.name.startswith("."))
    assert counts(run(rt, oco)) == EXPECTED


def test_a_failure_leaves_our_database_and_depot_as_they_were(
    rt: Runtime, oco: OcoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: DeploymentImport) -> None:
        raise InvalidInput("the jobs could not be read")

    monkeypatch.setattr(DeploymentImport, "jobs", broken)
    before = table_counts(rt)

    with pytest.raises(InvalidInput, match="jobs could not be read"):
        run(rt, oco)

    assert table_counts(rt) == before
    assert not any(p.is_file() for p in rt.depot.root.rglob("*") if not p.name.startswith("."))


def test_packages_without_their_payload_file_are_carried_and_named(rt: Runtime, oco: OcoServer) -> None:
    report = run(rt, oco, payloads=False)

    assert counts(report)["package"] == (2, 0, 1)
    assert any("2 package(s) carried without a payload" in note for note in report.notes)


def test_a_database_that_is_not_oco_servers_is_refused(rt: Runtime, oco: OcoServer) -> None:
    oco.execute("DROP TABLE job_container_job")

    with pytest.raises(InvalidInput, match=r"not an OCO-Server 1\.x database: table.*job_container_job"):
        run(rt, oco)
    assert table_counts(rt)["computer"] == 0


def test_only_mariadb_or_mysql_urls_are_accepted(rt: Runtime, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="MariaDB or MySQL"):
        import_oco_server(rt, OcoImportRequest(database_url=f"sqlite:///{tmp_path}/x.db"), "admin")


def test_a_wake_on_lan_container_not_started_yet_wakes_its_computers_here(
    rt: Runtime, oco: OcoServer
) -> None:
    oco.execute("UPDATE job_container SET wol_sent = 0, shutdown_waked_after_completion = 1 WHERE id = 2")

    run(rt, oco)

    with rt.reading() as session:
        container = session.scalars(select(JobContainer).where(JobContainer.name == "Firefox 120")).one()
        assert (container.wol, container.shutdown_waked, container.wol_sent) == (True, True, None)
        targets = session.scalars(select(WolTarget).where(WolTarget.container_id == container.id)).all()
        assert [(t.sent, t.woken, t.expired) for t in targets] == [(None, None, False)]


def test_a_shutdown_for_a_woken_computer_that_may_still_go_stays_removable(
    rt: Runtime, oco: OcoServer
) -> None:
    oco.execute("UPDATE job_container SET wol_sent = 1, shutdown_waked_after_completion = 1 WHERE id = 2")
    oco.execute(
        "UPDATE job_container_job SET post_action = 2, wol_shutdown_set = '2026-05-02 09:00:00' WHERE id = 4"
    )

    run(rt, oco)

    with rt.reading() as session:
        container = session.scalars(select(JobContainer).where(JobContainer.name == "Firefox 120")).one()
        assert container.wol_sent == container.start_time
        uninstall, install = container.jobs
        assert (install.post_action, install.wol_shutdown) == (PostAction.NONE, True)  # the package's own
        assert uninstall.wol_shutdown is False
        target = session.scalars(select(WolTarget).where(WolTarget.container_id == container.id)).one()
        assert (target.sent, target.woken) == (datetime(2026, 5, 2, 7, 0, tzinfo=UTC), None)


def test_a_later_run_catches_up_with_what_the_agents_did_at_the_source(rt: Runtime, oco: OcoServer) -> None:
    run(rt, oco)
    # Meanwhile at OCO-Server: pc02 registered and sent an inventory, PC01 ran its uninstall job there,
    # and its Firefox 119 assignment went with it.
    oco.execute(
        """UPDATE computer SET agent_key = 'k2', server_key = 's2', agent_timestamp = 1790000500,
        last_ping = '2026-06-02 10:00:00', last_update = '2026-06-02 10:00:00', os_version = '10.0.26100'
        WHERE id = 2"""
    )
    oco.execute(
        """UPDATE job_container_job SET state = 3, return_code = 0, message = 'removed',
        execution_finished = '2026-06-02 10:05:00' WHERE id = 3"""
    )
    oco.execute("DELETE FROM computer_package WHERE id = 1")

    report = run(rt, oco)

    updated = {k: r.updated for k, r in report.kinds.items() if r.updated}
    assert updated == {"computer": 1, "job": 1, "assignment": 1}
    assert {k: r.imported for k, r in report.kinds.items() if r.imported} == {}
    with rt.reading() as session:
        pc02 = session.scalars(select(Computer).where(Computer.hostname == "pc02")).one()
        assert (pc02.agent_key, pc02.server_key, pc02.last_agent_timestamp) == ("k2", "s2", 1790000500.0)
        assert pc02.os_version == "10.0.26100"
        assert pc02.inventory_updated == datetime(2026, 6, 2, 8, 0, tzinfo=UTC)
        uninstall = session.scalars(select(Job).where(Job.action == "uninstall")).one()
        assert (uninstall.state, uninstall.return_code, uninstall.message) == (
            JobState.SUCCEEDED,
            0,
            "removed",
        )
        assert session.scalar(select(func.count()).select_from(ComputerPackage)) == 0
    assert all(r.updated == 0 for r in run(rt, oco).kinds.values())


def test_what_happened_here_since_is_not_undone_by_a_later_run(rt: Runtime, oco: OcoServer) -> None:
    run(rt, oco)
    with rt.transaction() as session:  # PC01's agent talks to us now: it started the uninstall here
        pc01 = session.scalars(select(Computer).where(Computer.hostname == "PC01")).one()
        pc01.last_agent_timestamp = AGENT_TIMESTAMP + 10_000
        pc01.agent_key = "issued-here"
        job = session.scalars(select(Job).where(Job.action == "uninstall")).one()
        job.state = int(JobState.EXECUTING)
    oco.execute("UPDATE job_container_job SET state = -1, return_code = 1 WHERE id = 3")

    report = run(rt, oco)

    assert all(r.updated == 0 for r in report.kinds.values())
    with rt.reading() as session:
        pc01 = session.scalars(select(Computer).where(Computer.hostname == "PC01")).one()
        assert (pc01.agent_key, pc01.last_agent_timestamp) == ("issued-here", AGENT_TIMESTAMP + 10_000)
        job = session.scalars(select(Job).where(Job.action == "uninstall")).one()
        assert job.state == JobState.EXECUTING


def test_payloads_left_out_the_first_time_come_with_a_later_run(rt: Runtime, oco: OcoServer) -> None:
    run(rt, oco, payloads=False)

    report = run(rt, oco)

    assert counts(report)["package"] == (0, 2, 1) and report.kinds["package"].updated == 1
    with rt.reading() as session:
        newer = session.scalars(select(Package).where(Package.version == "120.0")).one()
        assert newer.payload_sha256 == hashlib.sha256((oco.payloads / "2.zip").read_bytes()).hexdigest()
        assert rt.depot.exists(newer.payload_sha256)
    assert run(rt, oco).kinds["package"].updated == 0
