"""Replicas behind a real load balancer: two `oco server` processes on their own ports behind HAProxy
(contrib/haproxy.cfg, as shipped but for addresses), one PostgreSQL database, one depot directory, and
real `oco agent` processes that know only HAProxy's address.

Jobs run end to end; housekeeping rounds run in one replica only; killing a replica (SIGKILL, by its PID)
in the middle of a deployment loses no report and runs no job twice; the killed replica restarts on its
port and HAProxy sends it requests again. A package uploaded through one replica is downloaded through the
other: they share the depot directory.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from oco.agent.config import AgentConfig, save_config
from oco.domain.protocol import SHA256_HEADER
from oco.domain.states import JobState
from oco.services import computers, containers, deployments, packages, users
from oco.services.deployments import ContainerOptions, DeploymentRequest
from oco.services.runtime import Runtime
from oco.services.targets import Targets
from tests.agentclient import ProtocolClient
from tests.conftest import empty_tables, make_runtime
from tests.live import HTTP_TIMEOUT_S, REGISTRATION_KEY, LiveServer, free_port, start_server
from tests.support import wait_until, zip_bytes

HAPROXY = shutil.which("haproxy")
NO_HAPROXY = (
    "haproxy is not installed (Debian package `haproxy`, which .ci/run installs): "
    "the replica tests need a real load balancer"
)
CONFIG = Path(__file__).resolve().parents[2] / "contrib" / "haproxy.cfg"
AGENTS = 4
PACKAGES = 3
SCRAPE_TOKEN = "a-scrape-token-for-tests"


def haproxy() -> str:
    """The haproxy command; outside CI its absence skips the test, under CI it fails it."""
    if HAPROXY is None:
        if os.environ.get("CI") == "true":
            pytest.fail(NO_HAPROXY)
        pytest.skip(NO_HAPROXY)
    return HAPROXY


@dataclass
class Balancer:
    """HAProxy running contrib/haproxy.cfg, pointed at the replicas' ports."""

    process: subprocess.Popen[bytes]
    url: str
    stats_socket: Path
    log: Path

    def servers(self) -> dict[str, dict[str, str]]:
        """The backend's servers as the runtime API's `show stat` reports them (status, sessions, ...)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(10)
            client.connect(str(self.stats_socket))
            client.sendall(b"show stat\n")
            chunks = []
            while chunk := client.recv(65536):
                chunks.append(chunk)
        text = b"".join(chunks).decode().lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {row["svname"]: row for row in rows if row["pxname"] == "oco" and row["svname"] != "BACKEND"}

    def status(self, name: str) -> str:
        return self.servers()[name]["status"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def start_balancer(workdir: Path, ports: list[int]) -> Balancer:
    """contrib/haproxy.cfg with only the listen address, the replicas' addresses and the socket changed."""
    front = free_port()
    stats_socket = workdir / "haproxy.sock"
    config = CONFIG.read_text()
    config = config.replace("bind 127.0.0.1:8000", f"bind 127.0.0.1:{front}")
    config = config.replace("/run/haproxy/oco.sock", str(stats_socket))
    servers = re.findall(r"^    server oco\d+ 127\.0\.0\.1:\d+$", config, flags=re.MULTILINE)
    assert len(servers) == 2, "contrib/haproxy.cfg lists the two replicas the test replaces"
    replaced = "\n".join(f"    server oco{index + 1} 127.0.0.1:{port}" for index, port in enumerate(ports))
    config = config.replace("\n".join(servers), replaced)
    path = workdir / "haproxy.cfg"
    path.write_text(config)
    log = workdir / "haproxy.log"
    process = subprocess.Popen(
        [haproxy(), "-db", "-f", str(path)], stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    balancer = Balancer(process, f"http://127.0.0.1:{front}", stats_socket, log)
    wait_until(
        lambda: stats_socket.exists() or process.poll() is not None,
        timeout=60,
        message="haproxy did not start",
    )
    assert process.poll() is None, log.read_text()
    return balancer


@dataclass
class Agent:
    hostname: str
    process: subprocess.Popen[bytes]
    markers: Path
    log: Path


def start_agent(workdir: Path, url: str, hostname: str, source_address: str) -> Agent:
    """A real agent process polling through the balancer every second, from its own loopback address."""
    base = workdir / "agents" / hostname
    markers = base / "markers"
    markers.mkdir(parents=True)
    config = AgentConfig(
        server_url=url,
        registration_key=REGISTRATION_KEY,
        hostname=hostname,
        state_dir=str(base / "state"),
        query_interval=1,
        job_timeout=60,
        power_backend="record",
        source_address=source_address,
    )
    save_config(base / "agent.toml", config)
    log = base / "agent.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "oco.agent", "--config", str(base / "agent.toml")],
        env={"PATH": "/usr/bin:/bin", "MARKERS": str(markers)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return Agent(hostname, process, markers, log)


def add_package(rt: Runtime, family: str) -> int:
    """A package whose procedure takes a moment and leaves one line per run in the agent's marker dir."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("install.sh")
        info.external_attr = 0o755 << 16
        archive.writestr(info, f'sleep 1\necho "installing {family}"\necho run >> "$MARKERS/{family}"\n')
    spec = packages.PackageSpec(family=family, version="1", install_procedure="./install.sh")
    payload = buffer.getvalue()
    return packages.create_package(rt, spec, lambda d: d.put_upload(io.BytesIO(payload), "p.zip"), "admin").id


def deploy(rt: Runtime, name: str, hostnames: list[str], package_ids: list[int]) -> int:
    request = DeploymentRequest(
        ContainerOptions(name=name), Targets(computers=hostnames, packages=package_ids)
    )
    return deployments.create_deployment(rt, request, "admin").id


def states(rt: Runtime, container_id: int) -> list[JobState]:
    return [job.state for job in containers.container_detail(rt, container_id).jobs]


@dataclass
class Site:
    url: str
    workdir: Path
    rt: Runtime
    replicas: list[LiveServer]
    ports: list[int]
    balancer: Balancer
    agents: list[Agent]

    def replica(self, index: int, **settings: str) -> LiveServer:
        return start_server(
            self.workdir,
            self.url,
            server_args=("--no-migrate",),
            port=self.ports[index],
            trusted_proxies="127.0.0.1",
            metrics_token=SCRAPE_TOKEN,
            **settings,
        )


@pytest.fixture
def site(postgres_engine: Engine, tmp_path: Path) -> Iterator[Site]:
    haproxy()
    empty_tables(postgres_engine)
    url = postgres_engine.url.render_as_string(hide_password=False)
    rt = make_runtime(url, tmp_path)  # the depot directory the replicas share: tmp_path/depot
    ports = [free_port(), free_port()]
    site = Site(url, tmp_path, rt, [], ports, None, [])  # type: ignore[arg-type]
    try:
        for index in range(2):  # one by one, so that a failure stops those already started
            site.replicas.append(site.replica(index))
        site.balancer = start_balancer(tmp_path, ports)
        wait_until(
            lambda: all(site.balancer.status(f"oco{i + 1}") == "UP" for i in range(2)),
            timeout=60,
            message="haproxy did not see both replicas up",
        )
        yield site
    finally:
        for agent in site.agents:
            if agent.process.poll() is None:
                agent.process.send_signal(signal.SIGTERM)
        for agent in site.agents:
            try:
                agent.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                agent.process.kill()
                agent.process.wait()
        if site.balancer is not None:
            site.balancer.stop()
        for replica in site.replicas:
            replica.stop()
        rt.close()


def logs(site: Site) -> str:
    parts = [
        f"--- {path.name}\n{path.read_text()[-3000:]}" for path in sorted(site.workdir.glob("server-*.log"))
    ]
    parts += [f"--- {agent.hostname}\n{agent.log.read_text()[-2000:]}" for agent in site.agents]
    return "\n".join(parts)


def scraped(replica: LiveServer) -> dict[str, float]:
    """A replica's own /metrics, scraped directly as Prometheus does (HAProxy denies it): name -> value."""
    response = httpx.get(
        f"{replica.url}/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"}, timeout=HTTP_TIMEOUT_S
    )
    assert response.status_code == 200, response.text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if not sample.labels
    }


def housekeeping_of(replicas: list[LiveServer]) -> list[tuple[float, float]]:
    """(leads, rounds run) of each replica."""
    figures = [scraped(replica) for replica in replicas]
    return [(f["oco_housekeeping_leader"], f["oco_housekeeping_rounds_total"]) for f in figures]


def the_leader(site: Site) -> int:
    """The index of the replica that leads housekeeping, once one does and has run a round."""
    return (
        wait_until(
            lambda: next(
                (
                    i + 1
                    for i, (leads, rounds) in enumerate(housekeeping_of(site.replicas))
                    if leads and rounds
                ),
                0,
            ),
            timeout=60,
            message=f"no replica leads housekeeping\n{logs(site)}",
        )
        - 1
    )


def rounds_run_once(site: Site, leader: int) -> None:
    """Rounds go on in the leader, every second, and none in the other replica."""
    before = housekeeping_of(site.replicas)
    wait_until(
        lambda: housekeeping_of(site.replicas)[leader][1] >= before[leader][1] + 3,
        timeout=120,
        message="the leading replica ran no more rounds",
    )
    after = housekeeping_of(site.replicas)
    other = 1 - leader
    assert after[other] == (0, 0), f"the other replica ran housekeeping rounds: {after}"
    assert after[leader][0] == 1


@pytest.mark.timeout(1800)  # five server starts and four agents, on a loaded two-core machine
def test_agents_through_haproxy_survive_a_replica_killed_mid_deployment(site: Site) -> None:
    rt = site.rt
    hostnames = [f"replica-pc{index}" for index in range(AGENTS)]
    addresses = {hostname: f"127.0.0.{index + 2}" for index, hostname in enumerate(hostnames)}
    for hostname in hostnames:
        computers.add_computer(rt, hostname, "tests")
    site.agents = [
        start_agent(site.workdir, site.balancer.url, hostname, addresses[hostname]) for hostname in hostnames
    ]
    wait_until(  # every agent registered (through either replica) and checks in
        lambda: all(computers.computer_detail(rt, name).last_seen is not None for name in hostnames),
        timeout=120,
        message=f"the agents did not register through haproxy\n{logs(site)}",
    )
    # HAProxy connects from 127.0.0.1, which the replicas trust: they store the agent's own address.
    for hostname in hostnames:
        assert computers.computer_detail(rt, hostname).remote_address == addresses[hostname]
    served = site.balancer.servers()
    assert all(int(served[f"oco{i + 1}"]["stot"]) > 0 for i in range(2)), "haproxy used one replica only"

    leader = the_leader(site)
    rounds_run_once(site, leader)

    package_ids = [add_package(rt, f"Tool{index}") for index in range(PACKAGES)]
    first = deploy(rt, "rollout", hostnames, package_ids)
    wait_until(  # mid-deployment: some jobs done, most not
        lambda: JobState.SUCCEEDED in states(rt, first),
        timeout=120,
        interval=0.2,
        message=f"no job finished: {states(rt, first)}",
    )
    assert not all(state == JobState.SUCCEEDED for state in states(rt, first))

    killed = site.replicas[leader]
    os.kill(killed.process.pid, signal.SIGKILL)  # kill -9: in-flight requests die with it
    killed.process.wait()
    wait_until(
        lambda: site.balancer.status(f"oco{leader + 1}").startswith("DOWN"),
        timeout=60,
        message="haproxy did not mark the killed replica down",
    )

    wait_until(
        lambda: all(state == JobState.SUCCEEDED for state in states(rt, first)),
        timeout=240,
        interval=0.5,
        message=f"the deployment did not finish after the kill: {states(rt, first)}\n{logs(site)}",
    )
    for job in containers.container_detail(rt, first).jobs:  # every report arrived, with its output
        assert job.return_code == 0
        assert "installing" in job.message, job
    for agent in site.agents:  # and no job ran twice
        for index in range(PACKAGES):
            assert (agent.markers / f"Tool{index}").read_text() == "run\n", agent.hostname
    survivor = 1 - leader
    wait_until(  # the survivor takes the housekeeping lead over
        lambda: housekeeping_of([site.replicas[survivor]])[0][0] == 1,
        timeout=60,
        message=f"the surviving replica did not take the housekeeping lead\n{logs(site)}",
    )

    # The killed replica restarts on its port and rejoins: HAProxy sends it requests again.
    restarted = site.replica(leader)
    site.replicas[leader] = restarted
    wait_until(
        lambda: site.balancer.status(f"oco{leader + 1}") == "UP",
        timeout=60,
        message="haproxy did not take the restarted replica back",
    )
    served_before = int(site.balancer.servers()[f"oco{leader + 1}"]["stot"])
    second = deploy(rt, "after the restart", hostnames, [add_package(rt, "Again")])
    wait_until(
        lambda: all(state == JobState.SUCCEEDED for state in states(rt, second)),
        timeout=240,
        interval=0.5,
        message=f"the second deployment did not finish: {states(rt, second)}\n{logs(site)}",
    )
    assert int(site.balancer.servers()[f"oco{leader + 1}"]["stot"]) > served_before
    rounds_run_once(site, survivor)  # the lead stays where it went
    for agent in site.agents:
        assert (agent.markers / "Again").read_text() == "run\n"


def test_a_package_uploaded_through_one_replica_downloads_through_the_other(site: Site) -> None:
    rt = site.rt
    users.add_user(rt, "admin", "a long password", "tests")
    token = users.create_token(rt, "admin", "upload", "tests")
    payload = zip_bytes({"install.sh": "echo shared\n"})
    upload = httpx.post(
        f"{site.replicas[0].url}/api/v1/packages",
        headers={"Authorization": f"Bearer {token}"},
        data={"family": "Shared", "version": "1", "install_procedure": "./install.sh"},
        files={"payload": ("shared.zip", payload, "application/zip")},
        timeout=HTTP_TIMEOUT_S,
    )
    assert upload.status_code == 201, upload.text
    package_id = upload.json()["id"]
    computers.add_computer(rt, "depot-pc", "tests")
    agent = ProtocolClient(site.replicas[1].url, "depot-pc", REGISTRATION_KEY)  # the other replica
    try:
        agent.hello()
        deploy(rt, "shared depot", ["depot-pc"], [package_id])
        [job] = agent.hello()["software-jobs"]
        assert job["download"] is True
        download = agent.download(package_id)
        assert download.status_code == 200, download.text
        assert download.content == payload
        assert download.headers[SHA256_HEADER] == hashlib.sha256(payload).hexdigest()
    finally:
        agent.close()


def test_the_shipped_haproxy_configuration_is_valid() -> None:
    result = subprocess.run(
        [haproxy(), "-c", "-f", str(CONFIG)], capture_output=True, text=True, env={**os.environ}, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
