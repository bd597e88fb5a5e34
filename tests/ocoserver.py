"""An OCO-Server 1.x database in MariaDB, for the import tests.

The tables hold the columns OCO-Server 1.x has (its public schema, `sql/SCHEMA.sql`), written down here
in our own words and cut to what the import reads, plus one table it does not carry (deployment rules).
Times are naive, in the server's local zone, as OCO-Server writes them.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import MYSQL_URL, SERVER_DATABASES_REASON, server_databases_enabled

SOURCE_SUFFIX = "_oco"
"""The OCO database sits next to the MariaDB test database, named after it with this suffix."""

DDL = [
    """CREATE TABLE system_user (
        id INT AUTO_INCREMENT PRIMARY KEY, uid VARCHAR(200) NOT NULL, username TEXT NOT NULL,
        display_name TEXT NOT NULL, password TEXT NULL, ldap TINYINT NOT NULL DEFAULT 0,
        system_user_role_id INT NOT NULL DEFAULT 1)""",
    """CREATE TABLE computer (
        id INT AUTO_INCREMENT PRIMARY KEY, uid VARCHAR(200) NULL UNIQUE, hostname VARCHAR(200) NOT NULL,
        os TEXT NOT NULL, os_version TEXT NOT NULL, os_license TEXT NOT NULL, os_locale TEXT NOT NULL,
        kernel_version TEXT NOT NULL, architecture TEXT NOT NULL, cpu TEXT NOT NULL, gpu TEXT NOT NULL,
        ram TEXT NOT NULL, agent_version TEXT NOT NULL, remote_address TEXT NOT NULL, serial TEXT NOT NULL,
        manufacturer TEXT NOT NULL, model TEXT NOT NULL, bios_version TEXT NOT NULL,
        uptime INT NOT NULL DEFAULT 0, boot_type TEXT NOT NULL, secure_boot TEXT NOT NULL,
        domain TEXT NOT NULL, battery_level FLOAT NULL, battery_status TINYINT NULL,
        last_ping DATETIME NULL, last_update DATETIME NULL, force_update TINYINT NOT NULL DEFAULT 0,
        agent_timestamp DOUBLE NOT NULL DEFAULT 0, notes TEXT NOT NULL, agent_key TEXT NOT NULL,
        server_key TEXT NOT NULL, created DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
        created_by_system_user_id INT NULL, KEY hostname (hostname))""",
    """CREATE TABLE computer_network (
        id INT AUTO_INCREMENT PRIMARY KEY, computer_id INT NOT NULL, nic_number INT NOT NULL,
        address TEXT NOT NULL, netmask TEXT NOT NULL, broadcast TEXT NULL, mac TEXT NULL,
        interface TEXT NULL)""",
    """CREATE TABLE software (
        id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(200) NOT NULL, version VARCHAR(200) NOT NULL,
        description VARCHAR(350) NOT NULL, UNIQUE KEY name (name, version, description))""",
    """CREATE TABLE computer_software (
        id INT AUTO_INCREMENT PRIMARY KEY, computer_id INT NOT NULL, software_id INT NOT NULL,
        installed DATETIME NULL)""",
    """CREATE TABLE domain_user (
        id INT AUTO_INCREMENT PRIMARY KEY, uid VARCHAR(200) NULL, domain TEXT NULL, username TEXT NOT NULL,
        display_name TEXT NOT NULL)""",
    """CREATE TABLE domain_user_logon (
        id INT AUTO_INCREMENT PRIMARY KEY, computer_id INT NOT NULL, domain_user_id INT NOT NULL,
        console TEXT NULL, timestamp DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP)""",
    """CREATE TABLE computer_group (
        id INT AUTO_INCREMENT PRIMARY KEY, parent_computer_group_id INT NULL, name TEXT NOT NULL)""",
    """CREATE TABLE computer_group_member (
        id INT AUTO_INCREMENT PRIMARY KEY, computer_id INT NOT NULL, computer_group_id INT NOT NULL)""",
    """CREATE TABLE package_family (
        id INT AUTO_INCREMENT PRIMARY KEY, name TEXT NOT NULL, notes TEXT NOT NULL,
        icon MEDIUMBLOB NULL, license_count INT NULL)""",
    """CREATE TABLE package (
        id INT AUTO_INCREMENT PRIMARY KEY, package_family_id INT NOT NULL, version TEXT NOT NULL,
        notes TEXT NOT NULL, install_procedure TEXT NOT NULL,
        install_procedure_success_return_codes TEXT NOT NULL,
        install_procedure_post_action TINYINT NOT NULL DEFAULT 0,
        upgrade_behavior TINYINT NOT NULL DEFAULT 2, uninstall_procedure TEXT NOT NULL,
        uninstall_procedure_success_return_codes TEXT NOT NULL,
        download_for_uninstall TINYINT NOT NULL DEFAULT 0,
        uninstall_procedure_post_action TINYINT NOT NULL DEFAULT 0, compatible_os TEXT NULL,
        compatible_os_version TEXT NULL, compatible_architecture TEXT NULL, license_count INT NULL,
        created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, created_by_system_user_id INT NULL)""",
    """CREATE TABLE package_group (
        id INT AUTO_INCREMENT PRIMARY KEY, parent_package_group_id INT NULL, name TEXT NOT NULL)""",
    """CREATE TABLE package_group_member (
        id INT AUTO_INCREMENT PRIMARY KEY, package_id INT NOT NULL, package_group_id INT NOT NULL,
        sequence INT NOT NULL DEFAULT 0)""",
    """CREATE TABLE computer_package (
        id INT AUTO_INCREMENT PRIMARY KEY, computer_id INT NOT NULL, package_id INT NOT NULL,
        installed_procedure TEXT NULL, installed DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP)""",
    """CREATE TABLE job_container (
        id INT AUTO_INCREMENT PRIMARY KEY, name TEXT NOT NULL, enabled TINYINT NOT NULL DEFAULT 1,
        start_time DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, end_time DATETIME NULL,
        notes TEXT NOT NULL, wol_sent TINYINT NOT NULL DEFAULT 0,
        shutdown_waked_after_completion TINYINT NOT NULL DEFAULT 0,
        sequence_mode TINYINT NOT NULL DEFAULT 0, priority TINYINT NOT NULL DEFAULT 0,
        agent_ip_ranges TEXT NULL, time_frames TEXT NULL, self_service TINYINT NOT NULL DEFAULT 0,
        created DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, created_by_system_user_id INT NULL)""",
    """CREATE TABLE job_container_job (
        id INT AUTO_INCREMENT PRIMARY KEY, job_container_id INT NOT NULL, computer_id INT NOT NULL,
        package_id INT NOT NULL, `procedure` TEXT NOT NULL, success_return_codes TEXT NOT NULL,
        upgrade_behavior TINYINT NOT NULL DEFAULT 2, is_uninstall TINYINT NOT NULL DEFAULT 0,
        download TINYINT NOT NULL DEFAULT 1, post_action INT NULL, post_action_timeout INT NULL,
        sequence INT NOT NULL DEFAULT 0, state INT NOT NULL DEFAULT 0, download_progress FLOAT NULL,
        return_code BIGINT NULL, message LONGTEXT NOT NULL, wol_shutdown_set DATETIME NULL,
        download_started DATETIME NULL, execution_started DATETIME NULL,
        execution_finished DATETIME NULL)""",
    """CREATE TABLE deployment_rule (
        id INT AUTO_INCREMENT PRIMARY KEY, name TEXT NOT NULL, notes TEXT NOT NULL,
        enabled TINYINT NOT NULL DEFAULT 1, computer_group_id INT NOT NULL, package_group_id INT NOT NULL)""",
]

AGENT_KEY = "oco-agent-key-of-pc01-0123456789abcdef"
SERVER_KEY = "oco-server-key-of-pc01-0123456789abcdef"
AGENT_TIMESTAMP = 1_790_000_000.25
PAYLOAD_FILES = {"setup.sh": "echo installed firefox\n"}


@dataclass
class OcoServer:
    """The OCO database of a test and OCO-Server's package directory."""

    engine: Engine
    url: str
    payloads: Path

    def execute(self, statement: str, **parameters: object) -> None:
        with self.engine.begin() as connection:
            connection.execute(text(statement), parameters)

    def scalar(self, statement: str) -> object:
        with self.engine.connect() as connection:
            return connection.execute(text(statement)).scalar()


def source_url() -> str:
    """Where the OCO database lives: next to the MariaDB test database."""
    base = make_url(os.environ.get("OCO_TEST_MYSQL_URL", MYSQL_URL))
    return base.set(database=f"{base.database}{SOURCE_SUFFIX}").render_as_string(hide_password=False)


@contextmanager
def oco_server(tmp_path: Path) -> Iterator[OcoServer]:
    """A fresh OCO-Server database (created, filled) and package directory; skips without MariaDB."""
    if not server_databases_enabled():
        pytest.skip(SERVER_DATABASES_REASON.format(name="OCO-Server import (MariaDB)"))
    url = source_url()
    name = make_url(url).database
    admin = create_engine(make_url(url).set(database=""))
    with admin.begin() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        connection.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    admin.dispose()
    engine = create_engine(url)
    with engine.begin() as connection:
        for statement in DDL:
            connection.execute(text(statement))
    server = OcoServer(engine, url, tmp_path / "oco-packages")
    server.payloads.mkdir()
    try:
        fill(server)
        yield server
    finally:
        engine.dispose()


def fill(oco: OcoServer) -> None:
    """A small site: two computers (one with a hostname we will already have), nested groups, two
    families with three packages, a package group, assignments, a finished and a pending deployment."""
    oco.execute(
        "INSERT INTO system_user (id, uid, username, display_name) VALUES (1, 'u1', 'alice', 'Alice')"
    )
    oco.execute(
        """INSERT INTO computer (id, uid, hostname, os, os_version, os_license, os_locale, kernel_version,
        architecture, cpu, gpu, ram, agent_version, remote_address, serial, manufacturer, model,
        bios_version, boot_type, secure_boot, domain, last_ping, last_update, agent_timestamp, notes,
        agent_key, server_key, created) VALUES
        (1, 'uid-pc01', 'PC01', 'Ubuntu', '24.04', '', 'en_US', '6.8.0', 'x86_64', 'Intel i5', '',
         '16000000000', '1.1.7', '127.0.0.1', 'SN-1', 'ACME', 'Desk 1', '1.0', 'UEFI', '1', 'example.org',
         '2026-06-01 10:00:00', '2026-06-01 09:00:00', :ts, 'first floor', :ak, :sk, '2025-01-02 03:04:05'),
        (2, 'uid-pc02', 'pc02', 'Windows 11 Pro', '10.0.22631', '', 'de_DE', '', 'AMD64', '', '', '',
         '1.1.7', '10.0.0.2', '', '', '', '', '', '', '', NULL, NULL, 0, '', '', '', '2025-01-02 03:04:05'),
        (3, NULL, 'existing', 'Ubuntu', '22.04', '', '', '', 'x86_64', '', '', '', '1.1.7', '', '', '', '',
         '', '', '', '', NULL, NULL, 0, '', 'k3', 's3', '2025-01-02 03:04:05')""",
        ts=AGENT_TIMESTAMP,
        ak=AGENT_KEY,
        sk=SERVER_KEY,
    )
    oco.execute(
        """INSERT INTO computer_network (computer_id, nic_number, address, netmask, broadcast, mac, interface)
        VALUES (1, 0, '10.0.0.1', '255.255.255.0', '10.0.0.255', 'aa:bb:cc:dd:ee:01', 'eth0'),
               (1, 1, 'fe80::1', 'ffff:ffff:ffff:ffff::', NULL, 'aa:bb:cc:dd:ee:01', 'eth0')"""
    )
    oco.execute(
        """INSERT INTO software (id, name, version, description) VALUES
        (1, 'Mozilla Firefox', '119.0', 'web browser'), (2, 'LibreOffice', '7.6', '')"""
    )
    oco.execute("INSERT INTO computer_software (computer_id, software_id) VALUES (1, 1), (1, 2), (2, 1)")
    oco.execute("INSERT INTO domain_user (id, username, display_name) VALUES (1, 'bob', 'Bob')")
    oco.execute(
        """INSERT INTO domain_user_logon (computer_id, domain_user_id, console, timestamp) VALUES
        (1, 1, 'tty7', '2026-05-30 08:00:00'), (1, 1, 'tty7', '2026-05-31 08:00:00')"""
    )
    oco.execute(
        """INSERT INTO computer_group (id, parent_computer_group_id, name) VALUES
        (1, NULL, 'Site A'), (2, 1, 'Floor 2')"""
    )
    oco.execute(
        """INSERT INTO computer_group_member (computer_id, computer_group_id) VALUES (1, 1), (1, 2), (2, 2),
        (3, 2)"""
    )
    oco.execute(
        """INSERT INTO package_family (id, name, notes, icon) VALUES
        (1, 'Firefox', 'browser', X'89504E47'), (2, 'Tools', '', NULL)"""
    )
    oco.execute(
        """INSERT INTO package (id, package_family_id, version, notes, install_procedure,
        install_procedure_success_return_codes, install_procedure_post_action, upgrade_behavior,
        uninstall_procedure, uninstall_procedure_success_return_codes, download_for_uninstall,
        uninstall_procedure_post_action, compatible_os, compatible_os_version, compatible_architecture,
        created, created_by_system_user_id) VALUES
        (1, 1, '119.0', '', 'sh setup.sh', '0, 3010', 1, 2, 'sh remove.sh', '0', 1, 0,
         'Ubuntu, Debian', '', 'x86_64', '2025-03-01 12:00:00', 1),
        (2, 1, '120.0', '', 'sh setup.sh', '0', 0, 1, 'sh remove.sh', '0', 0, 2, NULL, NULL, NULL,
         '2025-04-01 12:00:00', 1),
        (3, 2, '1', '', 'true', 'x', 0, 2, '', '0', 0, 0, NULL, NULL, NULL, '2025-04-01 12:00:00', NULL)"""
    )
    with zipfile.ZipFile(oco.payloads / "2.zip", "w") as archive:
        for name, content in PAYLOAD_FILES.items():
            archive.writestr(name, content)
    oco.execute("""INSERT INTO package_group (id, parent_package_group_id, name) VALUES (1, NULL, 'Base')""")
    oco.execute(
        """INSERT INTO package_group_member (package_id, package_group_id, sequence) VALUES
        (2, 1, 2), (1, 1, 1)"""
    )
    oco.execute(
        """INSERT INTO computer_package (computer_id, package_id, installed) VALUES
        (1, 1, '2026-05-01 10:00:00'), (2, 3, '2026-05-01 10:00:00')"""
    )
    oco.execute(
        """INSERT INTO job_container (id, name, start_time, end_time, notes, wol_sent, sequence_mode,
        priority, agent_ip_ranges, time_frames, created, created_by_system_user_id) VALUES
        (1, 'Firefox 119', '2026-05-01 09:00:00', NULL, 'done', -1, 0, 0, NULL, NULL,
         '2026-05-01 08:00:00', 1),
        (2, 'Firefox 120', '2026-05-02 09:00:00', NULL, 'upgrade', -1, 1, 5, '127.0.0.0/8', '',
         '2026-05-02 08:00:00', 1)"""
    )
    oco.execute(
        """INSERT INTO job_container_job (job_container_id, computer_id, package_id, `procedure`,
        success_return_codes, is_uninstall, post_action, post_action_timeout, sequence, state,
        return_code, message, execution_started, execution_finished) VALUES
        (1, 1, 1, 'sh setup.sh', '0,3010', 0, 1, 10, 1, 3, 0, 'installed', '2026-05-01 09:01:00',
         '2026-05-01 09:02:00'),
        (1, 2, 1, 'sh setup.sh', '0,3010', 0, 1, 10, 1, -4, NULL, '', NULL, NULL),
        (2, 1, 1, 'sh remove.sh', '0', 1, 0, 10, 1, 0, NULL, '', NULL, NULL),
        (2, 1, 2, 'sh setup.sh', '0', 0, 0, 10, 2, 0, NULL, '', NULL, NULL)"""
    )
    oco.execute(
        "INSERT INTO deployment_rule (name, notes, computer_group_id, package_group_id) "
        "VALUES ('r', '', 1, 1)"
    )


def naive(value: str) -> datetime:
    return datetime.fromisoformat(value)
