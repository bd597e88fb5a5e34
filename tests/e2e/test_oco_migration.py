"""Migrating from OCO-Server: import its database with `oco import oco-server`, then the OCO agent that
was registered there checks in against a real `oco server` with its old keys — no re-enrolment — and
receives and reports its pending jobs (tests/agentclient.py behaves as the OCO agent does).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from oco.domain.states import AgentJobState, JobState
from oco.services import computers
from tests import live
from tests.agentclient import ProtocolClient
from tests.conftest import make_runtime
from tests.live import REGISTRATION_KEY, start_server
from tests.ocoserver import AGENT_KEY, AGENT_TIMESTAMP, SERVER_KEY, OcoServer, oco_server


@pytest.fixture
def oco(tmp_path: Path) -> Iterator[OcoServer]:
    with oco_server(tmp_path) as server:
        yield server


def test_an_oco_agent_continues_against_oco_server_with_its_keys(
    oco: OcoServer, tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "STARTUP_TIMEOUT_S", 120)  # a loaded machine starts servers slowly
    shutil.copy(sqlite_template, tmp_path / "oco.sqlite3")
    url = f"sqlite:///{tmp_path / 'oco.sqlite3'}"
    server = start_server(tmp_path, url)
    rt = make_runtime(url, tmp_path)
    try:
        args = ("import", "oco-server", "--database", oco.url, "--payloads", str(oco.payloads))
        dry = server.oco(*args, "--time-zone", "UTC", "--dry-run")
        assert "Dry run: nothing was changed." in dry.stdout
        assert "computer" in dry.stdout and "would import 3" in dry.stdout
        assert "note: not carried: 1 deployment rules" in dry.stdout
        assert "computer: 3/3" in dry.stderr  # progress
        with pytest.raises(Exception, match="does not exist"):
            computers.computer_detail(rt, "PC01")

        server.oco(*args, "--time-zone", "UTC")
        again = json.loads(server.oco(*args, "--time-zone", "UTC", "--json").stdout)
        assert {kind: r["imported"] for kind, r in again["kinds"].items()} == dict.fromkeys(again["kinds"], 0)
        assert again["kinds"]["computer"]["already_imported"] == 3

        agent = ProtocolClient(
            server.url,
            "PC01",
            REGISTRATION_KEY,
            agent_key=AGENT_KEY,
            server_key=SERVER_KEY,
            uid="uid-pc01",
            last_timestamp=AGENT_TIMESTAMP,
        )
        replay = agent.body("oco.agent.hello", {"agent_version": "1.1.7", "networks": []})
        stale = replay.replace(str(agent.last_timestamp).encode(), str(AGENT_TIMESTAMP - 60).encode())
        assert agent.send(stale).status_code == 401  # the carried timestamp still guards against replays

        hello = agent.hello()  # signed with the old agent key, answer checked with the old server key

        assert "agent-key" not in hello and "server-key" not in hello
        uninstall, install = hello["software-jobs"]
        assert (uninstall["procedure"], uninstall["download"]) == ("sh remove.sh", False)
        assert (install["procedure"], install["download"]) == ("sh setup.sh", True)
        assert uninstall["sequence-mode"] == 1

        assert agent.report(uninstall["id"], AgentJobState.FINISHED, 0, "removed") is True
        download = agent.download(install["package-id"])
        assert download.status_code == 200
        assert download.content == (oco.payloads / "2.zip").read_bytes()
        assert agent.report(install["id"], AgentJobState.FINISHED, 0, "installed") is True

        assert agent.hello()["software-jobs"] == []
        shown = computers.computer_detail(rt, "PC01")
        assert [a.package for a in shown.installed_packages] == ["Firefox 120.0"]
        assert shown.uid == "uid-pc01"
        jobs = [j for j in shown.jobs if j.container == "Firefox 120"]
        assert {j.state for j in jobs} == {JobState.SUCCEEDED}
    finally:
        rt.close()
        server.stop()
