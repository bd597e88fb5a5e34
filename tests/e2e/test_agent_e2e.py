"""End to end: a real `oco server` and real `oco agent` processes (own state dirs and hostnames) on
loopback install, update, uninstall and fail packages whose payloads are harmless scripts.

Power actions go to the agents' recording backend: nothing here restarts or shuts down this machine.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from oco.agent.config import AgentConfig, save_config
from oco.agent.state import JobJournal, JournalEntry
from oco.domain.states import JobState, PostAction, ReturnCode, SequenceMode
from oco.services import computers, containers, deployments, packages
from oco.services.deployments import ContainerOptions, DeploymentRequest, UninstallRequest
from oco.services.runtime import Runtime
from oco.services.targets import Targets
from tests.conftest import make_runtime
from tests.live import REGISTRATION_KEY, LiveServer, start_server


@dataclass
class World:
    server: LiveServer
    rt: Runtime
    root: Path


@pytest.fixture
def world(tmp_path: Path, sqlite_template: Path) -> Iterator[World]:
    shutil.copy(sqlite_template, tmp_path / "oco.sqlite3")
    url = f"sqlite:///{tmp_path / 'oco.sqlite3'}"
    server = start_server(tmp_path, url, self_registration="true")
    rt = make_runtime(url, tmp_path)
    yield World(server, rt, tmp_path)
    server.stop()
    rt.close()


@dataclass
class RealAgent:
    hostname: str
    config_path: Path
    state_dir: Path
    marker_dir: Path

    def run(self, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """One check-in cycle of a real agent process (`python -m oco.agent --once`)."""
        return subprocess.run(
            [sys.executable, "-m", "oco.agent", "--config", str(self.config_path), "--once"],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"PATH": "/usr/bin:/bin", "MARKERS": str(self.marker_dir)},
        )

    @property
    def power_log(self) -> list[dict[str, object]]:
        path = self.state_dir / "power_actions.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def make_agent(world: World, hostname: str, **settings: object) -> RealAgent:
    base = world.root / "agents" / hostname
    markers = base / "markers"
    markers.mkdir(parents=True)
    config = AgentConfig(
        server_url=world.server.url,
        registration_key=REGISTRATION_KEY,
        hostname=hostname,
        state_dir=str(base / "state"),
        query_interval=1,
        job_timeout=60,
        power_backend="record",
        post_action_minute_seconds=0.5,
    )
    config = replace(config, **settings)  # type: ignore[arg-type]
    save_config(base / "agent.toml", config)
    agent = RealAgent(hostname, base / "agent.toml", base / "state", markers)
    assert agent.run().returncode == 0  # registers, learns its keys
    return agent


def zip_payload(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            archive.writestr(info, text)
    return buffer.getvalue()


def add_package(world: World, family: str, version: str, **changes: object) -> int:
    payload = zip_payload(
        {
            "install.sh": f'echo "installing {family} {version}"\n'
            f'echo {version} > "$MARKERS/{family}-{version}"\n',
            "uninstall.sh": f'echo "removing {family} {version}"\nrm "$MARKERS/{family}-{version}"\n',
        }
    )
    values: dict[str, object] = {
        "install_procedure": "./install.sh",
        "uninstall_procedure": "./uninstall.sh",
        "download_for_uninstall": True,  # the uninstall procedure is a script of the payload
    }
    values.update(changes)
    spec = packages.PackageSpec(family=family, version=version, **values)  # type: ignore[arg-type]
    return packages.create_package(
        world.rt, spec, lambda d: d.put_upload(io.BytesIO(payload), "p.zip"), "admin"
    ).id


def deploy(world: World, agents: list[RealAgent], package_ids: list[int], **options: object) -> int:
    request = DeploymentRequest(
        ContainerOptions(name=str(options.pop("name", "rollout")), **options),  # type: ignore[arg-type]
        Targets(computers=[a.hostname for a in agents], packages=package_ids),
    )
    return deployments.create_deployment(world.rt, request, "admin").id


def jobs(world: World, container_id: int) -> list[tuple[str, str, str, JobState, int | None, str]]:
    return [
        (j.computer, j.package, j.action, j.state, j.return_code, j.message)
        for j in containers.container_detail(world.rt, container_id).jobs
    ]


def installed(world: World, agent: RealAgent) -> list[str]:
    return sorted(a.package for a in computers.computer_detail(world.rt, agent.hostname).installed_packages)


def test_install_update_with_automatic_uninstall_then_uninstall(world: World) -> None:
    pcs = [make_agent(world, "pc-a"), make_agent(world, "pc-b")]
    v1 = add_package(world, "Tool", "1")

    first = deploy(world, pcs, [v1])
    for agent in pcs:
        assert agent.run().returncode == 0

    assert [(j[0], j[3], j[4]) for j in jobs(world, first)] == [
        ("pc-a", JobState.SUCCEEDED, 0),
        ("pc-b", JobState.SUCCEEDED, 0),
    ]
    assert "installing Tool 1" in jobs(world, first)[0][5]
    assert all((a.marker_dir / "Tool-1").exists() for a in pcs)

    v2 = add_package(world, "Tool", "2")
    update = deploy(world, pcs, [v2], name="update")
    for agent in pcs:
        agent.run()
    assert [(j[0], j[2], j[3]) for j in jobs(world, update)] == [
        ("pc-a", "uninstall", JobState.SUCCEEDED),
        ("pc-a", "install", JobState.SUCCEEDED),
        ("pc-b", "uninstall", JobState.SUCCEEDED),
        ("pc-b", "install", JobState.SUCCEEDED),
    ]
    assert all(sorted(p.name for p in a.marker_dir.iterdir()) == ["Tool-2"] for a in pcs)
    assert [installed(world, a) for a in pcs] == [["Tool 2"], ["Tool 2"]]
    packages.remove_package(world.rt, v1, "admin")

    selected = [a.id for a in packages.package_detail(world.rt, v2).installed_on]
    request = UninstallRequest(ContainerOptions(name="remove"), selected)
    removal = deployments.create_uninstall(world.rt, request, "admin").id
    for agent in pcs:
        agent.run()
    assert {j[3] for j in jobs(world, removal)} == {JobState.SUCCEEDED}
    assert all(list(a.marker_dir.iterdir()) == [] for a in pcs)
    assert [installed(world, a) for a in pcs] == [[], []]


def test_failure_codes_and_abort_after_failed_job(world: World) -> None:
    agent = make_agent(world, "pc-fail")
    failing = add_package(world, "Broken", "1", install_procedure="echo boom; exit 3")
    never = add_package(world, "Never", "1")
    container = deploy(world, [agent], [failing, never], sequence_mode=SequenceMode.ABORT_AFTER_FAILED)

    agent.run()

    assert [(j[3], j[4]) for j in jobs(world, container)] == [
        (JobState.FAILED, 3),
        (JobState.FAILED, ReturnCode.ABORTED_AFTER_FAILED_JOB),
    ]
    assert not (agent.marker_dir / "Never-1").exists()


def test_agent_errors_are_minus_9999_with_a_reason(world: World) -> None:
    agent = make_agent(world, "pc-err")
    corrupted = add_package(world, "Corrupt", "1")
    missing = add_package(world, "Missing", "1", install_procedure="no-such-installer --quiet")
    digest = packages.package_detail(world.rt, corrupted).payload_sha256 or ""
    stored = world.rt.depot.path(digest)
    stored.write_bytes(stored.read_bytes()[:-10] + b"0123456789")  # the depot file rots

    container = deploy(world, [agent], [corrupted, missing])
    agent.run()

    (_, _, _, state1, code1, message1), (_, _, _, state2, code2, message2) = jobs(world, container)
    assert (state1, code1) == (JobState.FAILED, ReturnCode.AGENT_ERROR)
    assert "SHA-256" in message1
    assert not (agent.marker_dir / "Corrupt-1").exists()  # nothing ran
    assert (state2, code2) == (JobState.FAILED, ReturnCode.AGENT_ERROR)
    assert "could not be executed" in message2 and "not found" in message2


def test_a_procedure_past_its_timeout_is_killed_with_its_children(world: World) -> None:
    agent = make_agent(world, "pc-slow", job_timeout=2)
    hung = add_package(world, "Hung", "1", install_procedure="sleep 313 & sleep 313; echo never")
    container = deploy(world, [agent], [hung])

    agent.run()

    [(_, _, _, state, code, message)] = jobs(world, container)
    assert (state, code) == (JobState.FAILED, ReturnCode.AGENT_ERROR)
    assert "timed out after 2 s" in message
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "313"]]
    assert leftovers == []


def test_restart_waits_for_a_logged_in_user_and_not_for_nobody(world: World) -> None:
    busy = make_agent(world, "pc-busy", recorded_users=["alice"])
    idle = make_agent(world, "pc-idle")
    restart = add_package(world, "Kernel", "1", install_post_action=PostAction.RESTART)
    deploy(world, [busy, idle], [restart], restart_timeout=2)  # 2 "minutes" of 0.5 s each

    busy.run()
    idle.run()

    notify, action = busy.power_log
    assert (notify["action"], action["action"]) == ("notify", "restart")
    waited = datetime.fromisoformat(str(action["at"])) - datetime.fromisoformat(str(notify["at"]))
    assert 0.9 <= waited.total_seconds() < 10
    assert [entry["action"] for entry in idle.power_log] == ["restart"]


def test_a_negative_restart_timeout_skips_the_post_action(world: World) -> None:
    agent = make_agent(world, "pc-never", recorded_users=["bob"])
    deploy(
        world,
        [agent],
        [add_package(world, "Quiet", "1", install_post_action=PostAction.SHUTDOWN)],
        restart_timeout=-1,
    )
    agent.run()
    assert agent.power_log == []


def test_an_agent_restarted_mid_job_reports_instead_of_rerunning(world: World) -> None:
    agent = make_agent(world, "pc-crash")
    container = deploy(world, [agent], [add_package(world, "Half", "1")])
    [job_id] = [j.id for j in containers.container_detail(world.rt, container).jobs]
    JobJournal(agent.state_dir).record(JournalEntry(job_id, container, "executing"))

    agent.run()

    [(_, _, _, state, code, message)] = jobs(world, container)
    assert (state, code) == (JobState.FAILED, ReturnCode.AGENT_ERROR)
    assert "agent restarted while the job was executing" in message
    assert not (agent.marker_dir / "Half-1").exists()
