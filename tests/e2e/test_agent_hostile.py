"""Hostile input at the agent API, through HTTP against a real `oco server` (issue 13, "The agent API's
edges"): every case gets a clear refusal — a JSON-RPC error, or 401 with the fail2ban log line — and
changes nothing in the database; the computers concerned keep working afterwards.

Runs on SQLite, and on PostgreSQL and MariaDB under CI (or OCO_TEST_ALL_DATABASES=1). The setup writes
through the services on the server's database; every hello of the suite carries a new agent version, so
the server answers it on its writing path and a snapshot taken right after it is settled (a plain check-in
would leave its traces to the batched flush).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from oco.agent.config import AgentConfig, load_config, save_config
from oco.domain.protocol import (
    MAX_JSON_DEPTH,
    MAX_LOGINS,
    MAX_NAME_CHARS,
    MAX_NETWORK_INTERFACES,
    MAX_TEXT_CHARS,
)
from oco.domain.states import AgentJobState, JobState
from oco.services import computers, containers, deployments, packages
from oco.services.containers import ContainerEdit
from oco.services.deployments import ContainerOptions, DeploymentRequest
from oco.services.runtime import Runtime
from oco.services.targets import Targets
from tests.agentclient import ProtocolClient
from tests.conftest import empty_tables, make_runtime
from tests.live import REGISTRATION_KEY, LiveServer, start_server
from tests.support import wait_until

HELLO, UPDATE, REPORT, DOWNLOAD = (
    "oco.agent.hello",
    "oco.agent.update",
    "oco.agent.update_job_state",
    "oco.agent.download",
)
TABLES = ("computer", "computer_network", "job", "computer_package", "job_container")


@dataclass
class World:
    server: LiveServer
    rt: Runtime
    backend: str


@pytest.fixture(scope="module", params=["sqlite", "postgres", "mysql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp(f"hostile-{request.param}")
    if request.param == "sqlite":
        shutil.copy(sqlite_template, workdir / "oco.sqlite3")
        url = f"sqlite:///{workdir / 'oco.sqlite3'}"
    else:
        engine = request.getfixturevalue(f"{request.param}_engine")
        empty_tables(engine)
        url = engine.url.render_as_string(hide_password=False)
    server = start_server(
        workdir,
        url,
        self_registration="true",
        housekeeping_interval_seconds="3600",
    )
    rt = make_runtime(url, workdir)
    yield World(server, rt, request.param)
    server.stop()
    rt.close()


_counter = iter(range(1, 1_000_000))


def fresh(prefix: str = "host") -> str:
    return f"{prefix}{next(_counter)}"


def hello(client: ProtocolClient, **data: Any) -> dict[str, Any]:
    """A hello on the server's writing path (a new agent version), so its traces are written at once."""
    return client.hello(agent_version=f"1.1.7-{next(_counter)}", **data)


def agent(world: World, source: str = "127.0.0.1", hostname: str | None = None) -> tuple[ProtocolClient, int]:
    client = ProtocolClient(world.server.url, hostname or fresh(), REGISTRATION_KEY, source_address=source)
    hello(client)
    return client, computers.computer_detail(world.rt, client.hostname).id


def package(world: World, payload: bool = False) -> int:
    store = None
    if payload:
        store = lambda depot: depot.put_upload(io.BytesIO(b"payload" * 100), "setup.bin")  # noqa: E731
    spec = packages.PackageSpec(family=fresh("pkg"), version="1.0", install_procedure="install it")
    return packages.create_package(world.rt, spec, store, "admin").id


def deploy(world: World, computer_id: int, package_id: int, **options: Any) -> tuple[int, int]:
    """A container for one job; returns its id and the job's."""
    request = DeploymentRequest(
        ContainerOptions(name=fresh("rollout"), **options),
        Targets(computers=[computer_id], packages=[package_id]),
    )
    container = deployments.create_deployment(world.rt, request, "admin").id
    return container, containers.container_detail(world.rt, container).jobs[0].id


def snapshot(world: World) -> dict[str, list[tuple[Any, ...]]]:
    with world.rt.engine.connect() as connection:
        return {
            table: [tuple(row) for row in connection.execute(text(f"SELECT * FROM {table} ORDER BY id"))]
            for table in TABLES
        }


def document(method: str, params: dict[str, Any]) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).encode()


def params_of(client: ProtocolClient, data: Any = None, **params: Any) -> dict[str, Any]:
    return {
        "uid": client.uid,
        "hostname": client.hostname,
        "timestamp": client.next_timestamp(),
        **({"data": data} if data is not None else {}),
        **params,
    }


def json_rpc_error(response: httpx.Response, message: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert isinstance(error["code"], int) and message in error["message"], error


def auth_failure(world: World, response: httpx.Response, message: str) -> None:
    assert response.status_code == 401, response.text
    assert message in response.text
    wait_until(
        lambda: any(
            "oco-agent authentication failure" in line and message in line
            for line in world.server.log.read_text(errors="replace").splitlines()
        ),
        message=f"no fail2ban line for {message!r}",
    )


def refused_unchanged(world: World, send: Any, check: Any) -> None:
    """Send a hostile request: `check` its answer, and nothing in the database changed."""
    before = snapshot(world)
    check(send())
    assert snapshot(world) == before


# 1. The registration key admits one thing: the first hello of a computer without keys --------------


@pytest.mark.parametrize("method", [UPDATE, REPORT, DOWNLOAD])
def test_the_registration_key_acts_for_no_computer_that_has_not_enrolled(world: World, method: str) -> None:
    victim = fresh("victim")
    victim_id = computers.add_computer(world.rt, victim, "admin").id
    package_id = package(world, payload=True)
    _, job_id = deploy(world, victim_id, package_id)
    attacker = ProtocolClient(world.server.url, victim, REGISTRATION_KEY, uid="attacker-uid")
    calls: dict[str, tuple[dict[str, Any] | None, dict[str, Any]]] = {
        UPDATE: ({"os": "Pwned OS", "os_version": "666", "networks": [], "logins": []}, {}),
        REPORT: ({"job-id": job_id, "state": 3, "return-code": 0, "message": "done"}, {}),
        DOWNLOAD: (None, {"package-id": package_id}),
    }
    data, extra = calls[method]

    def send() -> httpx.Response:
        body = document(method, params_of(attacker, data, **extra))
        return attacker.send(body, key=REGISTRATION_KEY, http_method="GET" if method == DOWNLOAD else "POST")

    refused_unchanged(world, send, lambda r: auth_failure(world, r, "registration key admits only the first"))
    # The computer still enrolls with its first hello, and is then itself.
    owner = ProtocolClient(world.server.url, victim, REGISTRATION_KEY)
    assert "agent-key" in hello(owner)
    assert computers.computer_detail(world.rt, victim).registered
    assert computers.computer_detail(world.rt, victim).uid == owner.uid


def test_the_registration_key_says_no_hello_for_a_computer_with_keys(world: World) -> None:
    client, _ = agent(world)
    intruder = ProtocolClient(world.server.url, client.hostname, REGISTRATION_KEY, uid="other")
    refused_unchanged(
        world,
        lambda: intruder.send(document(HELLO, params_of(intruder, {})), key=REGISTRATION_KEY),
        lambda r: auth_failure(world, r, "signature does not match the computer's agent key"),
    )


# 2. Timestamps ------------------------------------------------------------------------------------


@pytest.mark.parametrize("timestamp", [1e308, 4_102_444_800.0, "ahead-by-two-days"])
def test_a_timestamp_far_ahead_is_refused_and_locks_nobody_out(world: World, timestamp: Any) -> None:
    client, _ = agent(world)
    if timestamp == "ahead-by-two-days":
        timestamp = datetime.now(UTC).timestamp() + 2 * 86400

    def send() -> httpx.Response:
        return client.send(
            document(HELLO, {**params_of(client, {"agent_version": "9"}), "timestamp": timestamp})
        )

    refused_unchanged(world, send, lambda r: auth_failure(world, r, "ahead of the server's clock"))
    client.last_timestamp = 0.0
    assert hello(client)["update"] in (0, 1)  # the computer goes on checking in


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("1" + "0" * 400, "params.timestamp is an integer beyond 64 bits"),
        ("1e400", "params.timestamp must be a finite number"),
        ("Infinity", "Infinity is not a JSON number"),
        ("-Infinity", "-Infinity is not a JSON number"),
        ("NaN", "NaN is not a JSON number"),
    ],
)
def test_a_timestamp_no_float_holds_is_a_json_rpc_error(world: World, raw: str, message: str) -> None:
    client, _ = agent(world)
    params = params_of(client, {"agent_version": "9"})
    body = document(HELLO, {**params, "timestamp": "@"}).replace(b'"@"', raw.encode())
    refused_unchanged(world, lambda: client.send(body), lambda r: json_rpc_error(r, message))
    assert hello(client)["update"] in (0, 1)


# 3. Reports only on jobs the computer could have received -----------------------------------------


@pytest.mark.parametrize("hold", ["disabled", "scheduled", "ended", "outside-ip-ranges"])
def test_a_report_on_a_job_not_handed_out_is_refused(world: World, hold: str) -> None:
    client, pc = agent(world, source="127.0.0.2")
    now = datetime.now(UTC)
    options: dict[str, Any] = {
        "disabled": {},
        "scheduled": {"start": now + timedelta(hours=1)},
        "ended": {},
        "outside-ip-ranges": {"agent_ip_ranges": "127.0.0.3/32"},
    }[hold]
    container, job_id = deploy(world, pc, package(world), **options)
    if hold == "disabled":
        containers.edit_container(world.rt, container, ContainerEdit(enabled=False), "t")
    if hold == "ended":
        edit = ContainerEdit(start=now - timedelta(hours=2), end=now - timedelta(hours=1))
        containers.edit_container(world.rt, container, edit, "t")
    assert hello(client)["software-jobs"] == []

    for state, code in [
        (AgentJobState.FINISHED, 0),
        (AgentJobState.EXECUTING, None),
        (AgentJobState.ERROR, -9999),
    ]:
        data = {"job-id": job_id, "state": int(state), "return-code": code, "message": "x"}
        refused_unchanged(
            world,
            lambda data=data: client.send(client.body(REPORT, data)),  # type: ignore[misc]
            lambda r: json_rpc_error(r, f"job {job_id} is not handed out to {client.hostname!r} now"),
        )
    assert computers.computer_detail(world.rt, pc).installed_packages == []


def test_a_started_job_may_finish_after_its_container_ended_or_was_disabled(world: World) -> None:
    client, pc = agent(world)
    container, job_id = deploy(world, pc, package(world))
    assert [job["id"] for job in hello(client)["software-jobs"]] == [job_id]
    client.report(job_id, AgentJobState.EXECUTING, None, "running")
    now = datetime.now(UTC)
    edit = ContainerEdit(start=now - timedelta(hours=2), end=now - timedelta(seconds=1), enabled=False)
    containers.edit_container(world.rt, container, edit, "t")
    assert hello(client)["software-jobs"] == []  # not handed out again…

    assert client.report(job_id, AgentJobState.FINISHED, 0, "installed") is True  # …but it may finish

    job = containers.container_detail(world.rt, container).jobs[0]
    assert (job.state, job.return_code) == (JobState.SUCCEEDED, 0)
    assert len(computers.computer_detail(world.rt, pc).installed_packages) == 1


# 4. Size and shape ---------------------------------------------------------------------------------


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def inventory(**changes: Any) -> dict[str, Any]:
    return {"os": "Linux", "os_version": "12", "networks": [], "logins": [], "software": [], **changes}


SHAPES: list[tuple[str, str, Any, str]] = [
    ("nesting", UPDATE, inventory(deep=_nested(MAX_JSON_DEPTH + 1)), f"nested deeper than {MAX_JSON_DEPTH}"),
    (
        "job-id 2**63",
        REPORT,
        {"job-id": 2**63, "state": 3, "return-code": 0},
        "job-id is an integer beyond 64",
    ),
    ("job-id 2**40", REPORT, {"job-id": 2**40, "state": 3, "return-code": 0}, "'job-id' must be a job id"),
    (
        "return-code 2**63",
        REPORT,
        {"job-id": 1, "state": 3, "return-code": 2**63},
        "return-code is an integer",
    ),
    (
        "interfaces",
        UPDATE,
        inventory(
            networks=[
                {"interface": f"veth{i}", "mac": "aa:bb:cc:dd:ee:ff"}
                for i in range(MAX_NETWORK_INTERFACES + 1)
            ]
        ),
        f"params.data.networks holds {MAX_NETWORK_INTERFACES + 1} entries",
    ),
    (
        "interfaces in a hello",
        HELLO,
        {"networks": [{"interface": "e"}] * (MAX_NETWORK_INTERFACES + 1)},
        "params.data.networks holds",
    ),
    (
        "logins",
        UPDATE,
        inventory(logins=[{"username": "u", "console": "tty1"}] * (MAX_LOGINS + 1)),
        f"params.data.logins holds {MAX_LOGINS + 1} entries",
    ),
    (
        "os",
        UPDATE,
        inventory(os="L" * (MAX_NAME_CHARS + 1)),
        f"params.data.os is longer than {MAX_NAME_CHARS}",
    ),
    ("agent version", HELLO, {"agent_version": "1" * 256}, "params.data.agent_version is longer than 255"),
    ("mac", UPDATE, inventory(networks=[{"mac": "a" * 33}]), "params.data.networks[0].mac is longer than 32"),
    (
        "cpu",
        UPDATE,
        inventory(cpu="x" * (MAX_TEXT_CHARS + 1)),
        f"params.data.cpu is longer than {MAX_TEXT_CHARS}",
    ),
    (
        "software",
        UPDATE,
        inventory(software=[{"name": "y" * (MAX_TEXT_CHARS + 1)}]),
        "software[0].name is longer",
    ),
    ("nul in os", UPDATE, inventory(os="Lin\x00ux"), "params.data.os holds the control character U+0000"),
    ("lone surrogate", UPDATE, inventory(kernel_version="\ud800"), "holds the control character U+D800"),
    ("nul in a key", UPDATE, inventory(**{"k\x00": 1}), "a key of params.data holds the control character"),
]


@pytest.mark.parametrize(("case", "method", "data", "message"), SHAPES, ids=[case[0] for case in SHAPES])
def test_what_breaks_a_limit_is_a_json_rpc_error(
    world: World, case: str, method: str, data: dict[str, Any], message: str
) -> None:
    client, _ = agent(world)
    refused_unchanged(
        world, lambda: client.send(client.body(method, data)), lambda r: json_rpc_error(r, message)
    )
    assert hello(client)["update"] in (0, 1)


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_a_deeply_nested_body_is_a_json_rpc_error(world: World, depth: int) -> None:
    client, _ = agent(world)
    body = (
        b'{"jsonrpc":"2.0","id":1,"method":"oco.agent.update","params":' + b"[" * depth + b"]" * depth + b"}"
    )
    refused_unchanged(world, lambda: client.send(body), lambda r: json_rpc_error(r, "nested deeper than"))


@pytest.mark.parametrize("signature", ["\xe9" * 64, "a" * 63 + "\xff", "ü"])
def test_a_signature_with_a_byte_beyond_ascii_is_an_authentication_failure(
    world: World, signature: str
) -> None:
    client, _ = agent(world)
    body = client.body(HELLO, {"agent_version": "9"})
    headers = {"content-type": "application/json", "x-oco-agent-signature": signature.encode("latin-1")}
    refused_unchanged(
        world,
        lambda: client.http.post("/api-agent.php", content=body, headers=headers),  # type: ignore[arg-type]
        lambda r: auth_failure(world, r, "signature does not match"),
    )


# 5. NUL and control characters never reach the database --------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("uid", "uid\x00", "params.uid holds the control character U+0000"),
        ("uid", "uid\n", "params.uid holds the control character U+000A"),
        ("uid", "\ud83d", "params.uid holds the control character U+D83D"),
        ("hostname", "pc\x0001", "params.hostname holds the control character U+0000"),
    ],
)
def test_control_characters_in_the_identity_are_refused(
    world: World, field: str, value: str, message: str
) -> None:
    client, _ = agent(world)
    body = document(HELLO, {**params_of(client, {"agent_version": "9"}), field: value})
    refused_unchanged(world, lambda: client.send(body), lambda r: json_rpc_error(r, message))


def test_a_nul_in_one_hello_stops_no_other_computer_from_checking_in(world: World) -> None:
    """On PostgreSQL a NUL in `uid` once broke the batched check-in flush for every computer."""
    hostile, _ = agent(world)
    others = [agent(world)[0] for _ in range(3)]
    for other in others:
        other.hello(agent_version=other.hostname)  # its version from now on: plain check-ins follow
    stamps = {other.hostname: other.last_timestamp for other in others}

    body = document(HELLO, {**params_of(hostile, {}), "uid": "evil\x00uid"})
    json_rpc_error(hostile.send(body, key=hostile.agent_key), "params.uid holds the control character U+0000")
    for other in others:
        other.hello(agent_version=other.hostname)  # plain check-ins: written by the flush
        assert other.last_timestamp > stamps[other.hostname]

    def flushed() -> bool:
        with world.rt.engine.connect() as connection:
            rows = dict(connection.execute(text("SELECT hostname, last_agent_timestamp FROM computer")).all())
        return all(rows[other.hostname] == pytest.approx(other.last_timestamp) for other in others)

    wait_until(flushed, message="the other computers' check-ins were not written")
    assert computers.computer_detail(world.rt, hostile.hostname).uid == hostile.uid


def test_control_characters_in_a_procedures_output_are_replaced_not_refused(world: World) -> None:
    client, pc = agent(world)
    container, job_id = deploy(world, pc, package(world))
    hello(client)
    output = "step 1\r\n\x1b[32mok\x1b[0m\x00 done\tend"
    assert client.report(job_id, AgentJobState.FINISHED, 0, output) is True
    job = containers.container_detail(world.rt, container).jobs[0]
    assert job.message == "step 1\r\n\ufffd[32mok\ufffd[0m\ufffd done\tend"


def test_a_windows_exit_code_beyond_32_bits_is_stored(world: World) -> None:
    client, pc = agent(world)
    container, job_id = deploy(world, pc, package(world))
    hello(client)
    assert client.report(job_id, AgentJobState.FINISHED, 3221225477, "access violation") is False
    job = containers.container_detail(world.rt, container).jobs[0]
    assert (job.state, job.return_code) == (JobState.FAILED, 3221225477)


# 6. Hostnames: nothing invisible, look-alikes are the computer they look like -----------------------


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        ("\u200b", "U+200B ZERO WIDTH SPACE"),
        ("\u200d", "U+200D ZERO WIDTH JOINER"),
        ("\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("\u2066", "U+2066 LEFT-TO-RIGHT ISOLATE"),
        ("\u00ad", "U+00AD SOFT HYPHEN"),
    ],
)
def test_invisible_and_bidirectional_characters_register_no_computer(
    world: World, suffix: str, message: str
) -> None:
    name = fresh("pc")
    agent(world, hostname=name)
    for hostname in (name + suffix, suffix + name, name[:2] + suffix + name[2:]):
        impostor = ProtocolClient(world.server.url, hostname, REGISTRATION_KEY)
        refused_unchanged(
            world,
            lambda impostor=impostor: impostor.send(impostor.body(HELLO, {"agent_version": "9"})),  # type: ignore[misc]
            lambda r: json_rpc_error(r, message),
        )


def _full_width(name: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in name)


def test_a_full_width_look_alike_is_the_computer_it_looks_like(world: World) -> None:
    owner, pc = agent(world)
    impostor = ProtocolClient(world.server.url, _full_width(owner.hostname.upper()), REGISTRATION_KEY)
    refused_unchanged(
        world,
        lambda: impostor.send(impostor.body(HELLO, {"agent_version": "9"})),
        lambda r: auth_failure(world, r, "signature does not match the computer's agent key"),
    )
    # The owner's agent may spell its name either way and stays the same computer.
    owner.hostname = _full_width(owner.hostname)
    hello(owner)
    assert computers.computer_detail(world.rt, pc).id == pc


def test_a_new_computer_with_a_full_width_name_is_stored_under_the_plain_one(world: World) -> None:
    name = fresh("wide")
    client = ProtocolClient(world.server.url, _full_width(name), REGISTRATION_KEY)
    assert "agent-key" in hello(client)
    assert computers.computer_detail(world.rt, name).hostname == name


# 7. Generated hostile requests ----------------------------------------------------------------------

hostile_text = st.one_of(
    st.text(
        alphabet=st.characters(categories=["Cc"], exclude_characters="\t\n\r"), min_size=1, max_size=3
    ).map(lambda s: f"a{s}b"),
    st.sampled_from(["\ud800", "\udfff", "x\ud83dy"]),
    st.integers(MAX_TEXT_CHARS + 1, MAX_TEXT_CHARS + 50).map(lambda n: "z" * n),
)
hostile_number = st.one_of(
    st.integers(min_value=2**63, max_value=2**70),
    st.integers(min_value=-(2**70), max_value=-(2**63) - 1),
)
hostile_value = st.one_of(hostile_text, hostile_number)
places = st.sampled_from(
    [
        (UPDATE, ("os",)),
        (UPDATE, ("serial",)),
        (UPDATE, ("software", 0, "name")),
        (UPDATE, ("networks", 0, "interface")),
        (UPDATE, ("logins", 0, "username")),
        (HELLO, ("agent_version",)),
        (HELLO, ("networks", 0, "mac")),
        (REPORT, ("job-id",)),
        (REPORT, ("download-progress",)),
        (REPORT, ("return-code",)),
    ]
)


INVENTORY_FREE_TEXT = {("serial",), ("software", 0, "name"), ("logins", 0, "username")}


def _place(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    if len(path) == 1:
        return {**data, path[0]: value}
    head, _index, field = path
    return {**data, head: [{field: value}]}


@pytest.fixture(scope="module")
def fuzzed(world: World) -> ProtocolClient:
    return agent(world)[0]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(place=places, value=hostile_value)
def test_generated_hostile_values_are_refused_and_change_nothing(
    world: World, fuzzed: ProtocolClient, place: tuple[str, tuple[Any, ...]], value: Any
) -> None:
    method, path = place
    # An inventory's free text keeps what the computer said, control characters replaced (unit-tested in
    # test_domain_protocol): only its length is refused there.
    assume(not (path in INVENTORY_FREE_TEXT and isinstance(value, str) and len(value) <= MAX_TEXT_CHARS))
    base = {"job-id": 1, "state": 2, "return-code": None, "message": ""} if method == REPORT else inventory()
    data = _place(base, path, value)
    if isinstance(value, int) and path == ("return-code",):
        data["state"] = 3
    before = snapshot(world)
    response = fuzzed.send(fuzzed.body(method, data))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"]
    assert snapshot(world) == before


# 8. Our agent forgets the registration key once enrolled --------------------------------------------


def test_a_real_agent_removes_the_registration_key_from_its_configuration_once_enrolled(
    world: World, tmp_path: Path
) -> None:
    config_path = tmp_path / "agent.toml"
    hostname = fresh("enrolled")
    save_config(
        config_path,
        AgentConfig(
            server_url=world.server.url,
            registration_key=REGISTRATION_KEY,
            hostname=hostname,
            state_dir=str(tmp_path / "state"),
            power_backend="record",
        ),
    )

    def run_once() -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "oco.agent", "--config", str(config_path), "--once"]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin"}
        )

    first = run_once()
    assert first.returncode == 0, first.stderr

    enrolled = load_config(config_path)
    assert enrolled.agent_key and enrolled.server_key
    assert enrolled.registration_key == ""
    assert REGISTRATION_KEY not in config_path.read_text()
    assert computers.computer_detail(world.rt, hostname).registered
    second = run_once()  # and it goes on working with its own keys
    assert second.returncode == 0, second.stderr
