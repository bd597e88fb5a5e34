"""What the agent reports about its computer."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from oco import __version__
from oco.agent import inventory


def test_the_os_comes_from_os_release_on_linux(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = tmp_path / "os-release"
    release.write_text(
        'NAME="Debian GNU/Linux"\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
    )
    monkeypatch.setattr(inventory, "OS_RELEASE", release)
    monkeypatch.setattr("platform.system", lambda: "Linux")
    assert inventory.os_release() == ("Debian GNU/Linux", "12")


def test_without_os_release_the_platform_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inventory, "OS_RELEASE", tmp_path / "missing")
    monkeypatch.setattr("platform.system", lambda: "Linux")
    monkeypatch.setattr("platform.version", lambda: "#1 SMP")
    assert inventory.os_release() == ("Linux", "#1 SMP")


def test_hello_reports_version_uptime_and_each_address_with_its_interface() -> None:
    data = inventory.hello_data()
    assert data["agent_version"] == __version__ and data["uptime"] >= 0 and data["services"] == []
    loopback = [n for n in data["networks"] if n["addr"] == "127.0.0.1"]
    assert loopback and loopback[0]["interface"] and loopback[0]["netmask"] == "255.0.0.0"


def test_logins_are_the_users_logged_in_now(monkeypatch: pytest.MonkeyPatch) -> None:
    users = [SimpleNamespace(name="alice", terminal="pts/0", started=0.0, host="", pid=1)]
    monkeypatch.setattr("psutil.users", lambda: users)
    assert inventory.logins() == [
        {"username": "alice", "console": "pts/0", "timestamp": "1970-01-01 00:00:00"}
    ]


def test_the_inventory_names_the_computer_as_configured() -> None:
    data = inventory.inventory("pc1")
    assert data["hostname"] == "pc1" and data["architecture"] and data["cpu"] and data["ram"] > 0
    assert isinstance(data["software"], list) and isinstance(data["logins"], list)


def _fake_command(directory: Path, name: str, output: str, status: int = 0) -> None:
    script = directory / name
    script.write_text(f"#!/bin/sh\n/bin/cat <<'END'\n{output}END\nexit {status}\n")
    script.chmod(0o755)


def test_software_comes_from_dpkg_where_it_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_command(
        tmp_path,
        "dpkg-query",
        "ii \tfirefox-esr\t115.5.0esr-1~deb12u1\tMozilla Firefox web browser\n"
        "rc \told-tool\t1.0\tremoved, configuration kept\n"
        "ii \tvim\t2:9.0.1378-2\tVi IMproved\n",
    )
    _fake_command(tmp_path, "rpm", "ii \tshould-not-be-asked\t1\t\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("platform.system", lambda: "Linux")
    assert inventory.installed_software() == [
        {
            "name": "firefox-esr",
            "version": "115.5.0esr-1~deb12u1",
            "description": "Mozilla Firefox web browser",
        },
        {"name": "vim", "version": "2:9.0.1378-2", "description": "Vi IMproved"},
    ]


def test_software_comes_from_rpm_without_dpkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_command(tmp_path, "rpm", "ii \tbash\t5.2.15-3.el9\tThe GNU Bourne Again shell\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("platform.system", lambda: "Linux")
    assert inventory.installed_software() == [
        {"name": "bash", "version": "5.2.15-3.el9", "description": "The GNU Bourne Again shell"}
    ]


def test_without_a_package_manager_or_when_it_fails_there_is_no_software(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("platform.system", lambda: "Linux")
    assert inventory.installed_software() == []
    _fake_command(tmp_path, "rpm", "", status=1)
    assert inventory.installed_software() == []


def test_the_real_package_manager_of_this_machine_answers() -> None:
    software = inventory.installed_software()
    if not any(shutil.which(command) for command in ("dpkg-query", "rpm")):
        assert software == []
        return
    assert software and all(entry["name"] and "version" in entry for entry in software)
    assert inventory.inventory("pc")["software"] == software


def test_the_inventory_reports_the_computers_time_zone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from oco.agent import inventory as inv

    monkeypatch.setenv("TZ", "Europe/Berlin")
    assert inv.time_zone() == "Europe/Berlin"
    monkeypatch.delenv("TZ")
    zoneinfo = tmp_path / "usr/share/zoneinfo/America"
    zoneinfo.mkdir(parents=True)
    (zoneinfo / "New_York").write_text("")
    link = tmp_path / "localtime"
    link.symlink_to(zoneinfo / "New_York")
    monkeypatch.setattr(inv, "LOCALTIME", link)
    assert inv.time_zone() == "America/New_York"
    monkeypatch.setattr(inv, "LOCALTIME", tmp_path / "missing")
    offset = inv.time_zone()  # no name to be found: the current offset
    assert len(offset) == 6 and offset[0] in "+-" and offset[3] == ":"
    assert "time_zone" in inv.inventory("pc")
