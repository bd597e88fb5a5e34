"""A fresh installation: the server generates its registration key on the first start, keeps it, says
how to connect a computer, and the admin commands find the same data directory wherever they run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from oco.services.agents import issued_key_length
from tests.agentclient import ProtocolClient
from tests.live import start_server
from tests.support import wait_until


def printed_key(log: Path) -> str:
    match = re.search(r"--registration-key (\S+)", log.read_text())
    assert match, log.read_text()
    return match.group(1)


def oco(data_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OCO_")}
    env["OCO_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "oco", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_first_start_generates_a_key_an_oco_agent_registers_with_and_keeps_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    workdir = tmp_path / "run"
    workdir.mkdir()
    url = f"sqlite:///{data / 'oco.sqlite3'}"
    server = start_server(workdir, url, agent_registration_key="", self_registration="true")
    try:
        key = printed_key(server.log)
        assert len(key) == issued_key_length()
        text = server.log.read_text()
        assert f"api-url = {server.url}/api-agent.php" in text and f"agent-key = {key}" in text

        agent = ProtocolClient(server.url, "fresh-pc", key)
        assert agent.hello()["update"] == 1
        assert len(agent.agent_key) == len(key)  # what an OCO agent writes over its ini's key line
    finally:
        server.stop()

    again = start_server(workdir, url, agent_registration_key="", self_registration="true")
    try:
        assert printed_key(again.log) == key
    finally:
        again.stop()


def test_a_configured_key_longer_than_issued_keys_is_warned_about(tmp_path: Path) -> None:
    long_key = "k" * 46
    server = start_server(tmp_path, f"sqlite:///{tmp_path / 'oco.sqlite3'}", agent_registration_key=long_key)
    try:
        wait_until(lambda: "46 characters long" in server.log.read_text(), timeout=60)
        assert "ParsingError" in server.log.read_text()
    finally:
        server.stop()


def test_every_command_uses_the_same_absolute_data_directory_wherever_it_runs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    assert oco(data, here, "db", "upgrade").returncode == 0
    added = oco(data, here, "computer", "add", "pc-7")
    assert added.returncode == 0, added.stderr

    listed = oco(data, elsewhere, "computer", "list")
    assert "pc-7" in listed.stdout
    shown = oco(data, elsewhere, "settings", "show")
    assert f"database_url  sqlite:///{data / 'oco.sqlite3'}  (default)" in re.sub(
        r" {2,}", "  ", shown.stdout
    )
    assert "(environment (OCO_DATA_DIR))" in shown.stdout
    assert not (here / "var").exists() and not (elsewhere / "var").exists()


def test_settings_show_names_the_file_a_setting_came_from(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "oco.toml").write_text("computer_offline_seconds = 600\n")
    shown = oco(data, tmp_path, "settings", "show")
    assert shown.returncode == 0, shown.stderr
    line = next(line for line in shown.stdout.splitlines() if line.startswith("computer_offline_seconds"))
    assert "600" in line and f"(file {data / 'oco.toml'})" in line
