"""Trust, end to end: real `oco agent` processes against a real `oco server` process on loopback.

- Payload integrity: a man in the middle (tests/proxy.py) replaces a download and announces a matching
  digest; the agent checks the download against the SHA-256 and size in the signed hello answer, refuses
  it (-9999), and nothing is unpacked or run. Without the swap the same path installs.
- Publisher signatures: an agent that pins publishers installs what a trusted key signed, and refuses
  before downloading what is unsigned, changed in the database after signing (as a compromised server
  would), or signed with a revoked key; an agent without pins installs unsigned packages as before.

Payloads are harmless scripts that touch marker files; no post-actions, nothing leaves loopback.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from oco.agent.config import load_config, save_config
from oco.db.models import Job, Package
from oco.domain.states import JobState, ReturnCode
from oco.services import containers, deployments, packages
from oco.services.deployments import ContainerOptions, DeploymentRequest
from oco.services.runtime import Runtime
from oco.services.targets import Targets
from tests.conftest import make_runtime
from tests.live import REGISTRATION_KEY, LiveServer, start_server
from tests.proxy import SwappingProxy
from tests.support import zip_bytes

SIGNATURE_INVALID = "package signature invalid: "
PAYLOAD_MISMATCH = "payload digest does not match the signed job"


@dataclass
class World:
    server: LiveServer
    rt: Runtime
    proxy: SwappingProxy
    root: Path


@pytest.fixture
def world(tmp_path: Path, sqlite_template: Path) -> Iterator[World]:
    shutil.copy(sqlite_template, tmp_path / "oco.sqlite3")
    url = f"sqlite:///{tmp_path / 'oco.sqlite3'}"
    server = start_server(tmp_path, url, self_registration="true")
    rt = make_runtime(url, tmp_path)
    proxy = SwappingProxy(server.url)
    yield World(server, rt, proxy, tmp_path)
    proxy.close()
    server.stop()
    rt.close()


@dataclass
class RealAgent:
    hostname: str
    config: Path
    state: Path
    markers: Path

    def run(self) -> subprocess.CompletedProcess[str]:
        """One check-in cycle of a real agent process."""
        result = subprocess.run(
            [sys.executable, "-m", "oco.agent", "--config", str(self.config), "--once"],
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": "/usr/bin:/bin", "MARKERS": str(self.markers)},
        )
        assert result.returncode == 0, result.stderr
        return result

    def oco(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`oco agent …` with this agent's configuration."""
        return subprocess.run(
            [sys.executable, "-m", "oco", "agent", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def leftovers(self) -> list[str]:
        """What the agent kept of downloads and job directories."""
        return sorted(
            str(path.relative_to(self.state))
            for folder in ("downloads", "jobs")
            if (self.state / folder).is_dir()
            for path in (self.state / folder).iterdir()
        )


def enrolled_agent(world: World, hostname: str, server_url: str, *pins: str) -> RealAgent:
    """Enrol with `oco agent enroll` (pinning `pins`), then register with a first check-in."""
    base = world.root / "agents" / hostname
    markers = base / "markers"
    markers.mkdir(parents=True)
    config = base / "agent.toml"
    args = ["--server", server_url, "--registration-key", REGISTRATION_KEY, "--hostname", hostname]
    args += ["--state-dir", str(base / "state"), "--query-interval", "1", "--job-timeout", "60"]
    for pin in pins:
        args += ["--trusted-publisher", pin]
    enrolled = subprocess.run(
        [sys.executable, "-m", "oco", "agent", "enroll", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert enrolled.returncode == 0, enrolled.stderr
    save_config(config, replace(load_config(config), power_backend="record"))
    agent = RealAgent(hostname, config, base / "state", markers)
    agent.run()
    return agent


def add_package(world: World, name: str, payload: bytes | None = None, **changes: str) -> int:
    """A package whose install script touches $MARKERS/<name>."""
    archive = payload or zip_bytes({"install.sh": f'touch "$MARKERS/{name}"\n'})
    spec = packages.PackageSpec(family=name, version="1", install_procedure="./install.sh", **changes)  # type: ignore[arg-type]
    store = lambda depot: depot.put_upload(io.BytesIO(archive), "payload.zip")  # noqa: E731
    return packages.create_package(world.rt, spec, store, "admin").id


def deploy(world: World, agent: RealAgent, package_ids: list[int]) -> int:
    request = DeploymentRequest(
        ContainerOptions(name=f"rollout {package_ids}"),
        Targets(computers=[agent.hostname], packages=package_ids),
    )
    return deployments.create_deployment(world.rt, request, "admin").id


def outcomes(world: World, container_id: int) -> list[tuple[str, JobState, int | None, str]]:
    return [
        (j.package, j.state, j.return_code, j.message)
        for j in containers.container_detail(world.rt, container_id).jobs
    ]


def downloads_started(world: World, container_id: int) -> list[object]:
    with world.rt.reading() as session:
        return list(session.scalars(select(Job.download_started).where(Job.container_id == container_id)))


def new_key(world: World, name: str) -> tuple[Path, str, str]:
    """`oco signing-key create`: the key file, its public key and key id."""
    path = world.root / f"{name}.pem"
    printed = world.server.oco("signing-key", "create", str(path)).stdout
    public = re.search(r"^public key: (\S+)$", printed, re.MULTILINE)
    key_id = re.search(r"^key id: (\S+)$", printed, re.MULTILINE)
    assert public and key_id, printed
    return path, public.group(1), key_id.group(1)


def sign(world: World, package_id: int, key: Path) -> None:
    world.server.oco("package", "sign", str(package_id), "--key", str(key))


# 1. Payload integrity ------------------------------------------------------------------------------


@pytest.mark.parametrize("announce", [True, False], ids=["matching-header", "no-header"])
def test_a_payload_swapped_between_agent_and_server_is_refused_and_nothing_runs(
    world: World, announce: bool
) -> None:
    agent = enrolled_agent(world, "pc-mitm", world.proxy.url)
    genuine = zip_bytes({"install.sh": 'touch "$MARKERS/genuine"\n'})
    swapped = zip_bytes({"install.sh": 'touch "$MARKERS/swapped"\n'})
    assert len(swapped) == len(genuine) and swapped != genuine  # same size: only the digest tells them apart
    container = deploy(world, agent, [add_package(world, "Tool", genuine)])
    world.proxy.swap, world.proxy.announce_swapped_digest = swapped, announce

    agent.run()

    [(_, state, code, message)] = outcomes(world, container)
    assert (state, code) == (JobState.FAILED, ReturnCode.AGENT_ERROR)
    assert message.startswith(PAYLOAD_MISMATCH)
    assert world.proxy.downloads == 1
    assert list(agent.markers.iterdir()) == []  # neither payload ran
    assert agent.leftovers() == []  # the swapped download was discarded, nothing was unpacked


def test_the_same_path_without_the_swap_installs(world: World) -> None:
    through_proxy = enrolled_agent(world, "pc-proxied", world.proxy.url)
    direct = enrolled_agent(world, "pc-direct", world.server.url)
    package_id = add_package(world, "Tool")
    containers_ = [deploy(world, agent, [package_id]) for agent in (through_proxy, direct)]

    for agent in (through_proxy, direct):
        agent.run()

    for agent, container in zip((through_proxy, direct), containers_, strict=True):
        [(_, state, code, _)] = outcomes(world, container)
        assert (state, code) == (JobState.SUCCEEDED, 0)
        assert (agent.markers / "Tool").exists() and agent.leftovers() == []
    assert world.proxy.downloads == 1


# 2. Publisher signatures ---------------------------------------------------------------------------


def test_a_signed_package_installs_on_a_pinning_agent_and_api_and_console_show_the_key(world: World) -> None:
    key, public, key_id = new_key(world, "publisher")
    agent = enrolled_agent(world, "pc-pinned", world.proxy.url, public)
    package_id = add_package(world, "Signed")
    sign(world, package_id, key)
    container = deploy(world, agent, [package_id])

    agent.run()

    [(_, state, code, _)] = outcomes(world, container)
    assert (state, code) == (JobState.SUCCEEDED, 0)
    assert (agent.markers / "Signed").exists()

    world.server.oco("user", "add", "admin", "--password-stdin", stdin="a long password\n")
    token = world.server.oco("token", "create", "--name", "tests").stdout.strip()
    shown = httpx.get(
        f"{world.server.url}/api/v1/packages/{package_id}", headers={"authorization": f"Bearer {token}"}
    ).json()
    assert (shown["signature_status"], shown["signature_key_id"], shown["signature_public_key"]) == (
        "valid",
        key_id,
        public,
    )
    page = console_page(world.server.url, f"/packages/{package_id}")
    assert 'data-status="valid"' in page and f"Signed by key <code>{key_id}</code>" in page


def console_page(server_url: str, path: str) -> str:
    with httpx.Client(base_url=server_url) as client:
        form = client.get("/login").text
        token = re.search(r'name="login_csrf" value="([^"]+)"', form)
        assert token
        credentials = {"username": "admin", "password": "a long password", "login_csrf": token.group(1)}
        assert client.post("/login", data={**credentials, "next": path}).status_code == 303
        return client.get(path).text


def test_unsigned_and_tampered_packages_are_refused_before_download(world: World) -> None:
    key, public, _ = new_key(world, "publisher")
    new_key(world, "stranger")  # a key that signs, but that no agent trusts
    agent = enrolled_agent(world, "pc-pinned", world.proxy.url, public)
    unsigned = add_package(world, "Unsigned")
    tampered_package = add_package(world, "TamperedPackage")
    tampered_job = add_package(world, "TamperedJob")
    foreign = add_package(world, "Foreign")
    for package_id in (tampered_package, tampered_job):
        sign(world, package_id, key)
    sign(world, foreign, world.root / "stranger.pem")
    evil = 'touch "$MARKERS/evil"'
    with world.rt.transaction() as session:  # a compromised server changes the package after signing
        session.execute(update(Package).where(Package.id == tampered_package).values(install_procedure=evil))
    container = deploy(world, agent, [unsigned, tampered_package, tampered_job, foreign])
    with world.rt.transaction() as session:  # … or the job's copy of the procedure
        session.execute(update(Job).where(Job.package_id == tampered_job).values(procedure=evil))

    agent.run()

    results = {name: (state, code, message) for name, state, code, message in outcomes(world, container)}
    assert {state for state, _, _ in results.values()} == {JobState.FAILED}
    assert {code for _, code, _ in results.values()} == {ReturnCode.AGENT_ERROR}
    assert results["Unsigned 1"][2] == SIGNATURE_INVALID + "the package is not signed"
    assert "does not match the package's fields" in results["TamperedPackage 1"][2]
    assert (
        results["TamperedJob 1"][2]
        == SIGNATURE_INVALID + "the job's procedure is not the signed install procedure"
    )
    assert "which this agent does not trust" in results["Foreign 1"][2]
    assert all(message.startswith(SIGNATURE_INVALID) for _, _, message in results.values())
    assert world.proxy.downloads == 0 and downloads_started(world, container) == [None] * 4
    assert list(agent.markers.iterdir()) == [] and agent.leftovers() == []


def test_key_rotation_then_revocation_of_the_old_key(world: World) -> None:
    old_key, old_public, old_id = new_key(world, "old")
    new_key_file, new_public, new_id = new_key(world, "new")
    agent = enrolled_agent(world, "pc-rotating", world.proxy.url, old_public)
    # Step 1: the new key is trusted beside the old one; packages of either install.
    trusted = agent.oco("publisher", "trust", new_public)
    assert trusted.returncode == 0 and f"trusted  {new_id}" in trusted.stdout
    by_old, by_new = add_package(world, "ByOld"), add_package(world, "ByNew")
    sign(world, by_old, old_key)
    sign(world, by_new, new_key_file)
    first = deploy(world, agent, [by_old, by_new])
    agent.run()
    assert [o[1] for o in outcomes(world, first)] == [JobState.SUCCEEDED, JobState.SUCCEEDED]

    # Step 2: the old key is revoked; what it signed is refused before download, the new key's installs.
    revoked = agent.oco("publisher", "revoke", old_id)
    assert revoked.returncode == 0 and f"revoked  {old_id}" in revoked.stdout
    late_old, late_new = add_package(world, "LateOld"), add_package(world, "LateNew")
    sign(world, late_old, old_key)
    sign(world, late_new, new_key_file)
    downloads_before = world.proxy.downloads
    second = deploy(world, agent, [late_old, late_new])
    agent.run()

    results = outcomes(world, second)
    assert results[0][1:3] == (JobState.FAILED, ReturnCode.AGENT_ERROR)
    assert results[0][3] == f"{SIGNATURE_INVALID}signed with key {old_id}, which this agent has revoked"
    assert results[1][1:3] == (JobState.SUCCEEDED, 0)
    assert world.proxy.downloads == downloads_before + 1  # only the new key's package was downloaded
    assert sorted(p.name for p in agent.markers.iterdir()) == ["ByNew", "ByOld", "LateNew"]


def test_an_agent_without_pins_installs_unsigned_packages_as_before(world: World) -> None:
    agent = enrolled_agent(world, "pc-open", world.server.url)
    container = deploy(world, agent, [add_package(world, "Plain")])

    agent.run()

    [(_, state, code, _)] = outcomes(world, container)
    assert (state, code) == (JobState.SUCCEEDED, 0) and (agent.markers / "Plain").exists()
