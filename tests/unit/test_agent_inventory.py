"""What the agent reports about its computer."""

from __future__ import annotations

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
    assert data["software"] == [] and isinstance(data["logins"], list)


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
