"""Agent API conformance, authentication part: registration, keys, signatures, replay, bad requests.

Every test talks HTTP to a real `oco server` process with the signing client of tests/agentclient.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.agentclient import ProtocolClient
from tests.live import REGISTRATION_KEY, LiveServer, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sqlite_template) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    import shutil

    workdir = tmp_path_factory.mktemp("agent-auth")
    shutil.copy(sqlite_template, workdir / "oco.sqlite3")
    live = start_server(workdir, f"sqlite:///{workdir / 'oco.sqlite3'}", self_registration="true")
    yield live
    live.stop()


def computer(server: LiveServer, hostname: str) -> dict:  # type: ignore[type-arg]
    return json.loads(server.oco("computer", "show", hostname, "--json").stdout)


def test_self_registration_issues_keys_once_and_asks_for_inventory(server: LiveServer) -> None:
    agent = ProtocolClient(server.url, "selfreg1.example.org", REGISTRATION_KEY)

    first = agent.hello()

    assert first["update"] == 1
    assert first["software-jobs"] == []
    assert len(first["agent-key"]) >= 32 and len(first["server-key"]) >= 32
    assert first["events"] == [] and isinstance(first["logins-since"], str)
    assert "update-passwords" not in first
    second = agent.hello()
    assert "agent-key" not in second and "server-key" not in second
    assert computer(server, "selfreg1")["registered"] is True


def test_inventory_update_is_stored(server: LiveServer) -> None:
    agent = ProtocolClient(server.url, "inventory1", REGISTRATION_KEY)
    agent.hello(
        networks=[
            {
                "addr": "127.0.0.5",
                "netmask": "255.0.0.0",
                "broadcast": "",
                "mac": "AA:BB:CC:00:11:22",
                "interface": "eth0",
            }
        ]
    )
    reply = agent.call(
        "oco.agent.update",
        {
            "os": "Debian GNU/Linux",
            "os_version": "12",
            "architecture": "x86_64",
            "kernel_version": "6.1.0",
            "cpu": "Test CPU",
            "ram": 1024,
            "networks": [
                {
                    "address": "127.0.0.5",
                    "netmask": "255.0.0.0",
                    "mac": "aa:bb:cc:00:11:22",
                    "interface": "eth0",
                }
            ],
            "logins": [{"username": "alice", "console": "tty1", "timestamp": "2026-01-01 08:00:00"}],
            "software": [],
            "unknown_field": {"kept": True},
        },
    )
    assert reply == {"policies": {}}
    shown = computer(server, "inventory1")
    assert (shown["os"], shown["os_version"], shown["architecture"]) == ("Debian GNU/Linux", "12", "x86_64")
    assert shown["networks"][0]["mac"] == "aa:bb:cc:00:11:22"
    assert shown["logins"][0]["username"] == "alice"
    assert agent.hello()["update"] == 0


def test_a_precreated_computer_registers_with_the_registration_key(server: LiveServer) -> None:
    server.oco("computer", "add", "precreated1")
    agent = ProtocolClient(server.url, "precreated1", REGISTRATION_KEY)
    assert "agent-key" in agent.hello()


def test_a_wrong_signature_is_refused_and_changes_nothing(server: LiveServer) -> None:
    agent = ProtocolClient(server.url, "wrongsig1", REGISTRATION_KEY)
    agent.hello()
    before = computer(server, "wrongsig1")

    response = agent.send(agent.body("oco.agent.hello", {"agent_version": "9.9"}), key="not-the-key")

    assert response.status_code == 401
    assert computer(server, "wrongsig1") == before
    assert "authentication failure" in server.log.read_text()


def test_the_registration_key_does_not_work_once_a_computer_has_its_own(server: LiveServer) -> None:
    agent = ProtocolClient(server.url, "keyed1", REGISTRATION_KEY)
    agent.hello()
    response = agent.send(agent.body("oco.agent.hello", {}), key=REGISTRATION_KEY)
    assert response.status_code == 401


def test_a_replayed_request_is_refused_on_every_method(server: LiveServer) -> None:
    agent = ProtocolClient(server.url, "replay1", REGISTRATION_KEY)
    agent.hello()
    body = agent.body("oco.agent.update", {"os": "Linux"})
    assert agent.send(body).status_code == 200
    replayed = agent.send(body)
    assert replayed.status_code == 401
    assert "replay" in replayed.text
    old = agent.body("oco.agent.hello", {})
    agent.hello()
    assert agent.send(old).status_code == 401


def test_unknown_computers_are_refused_when_self_registration_is_off(live_server: LiveServer) -> None:
    agent = ProtocolClient(live_server.url, "stranger", REGISTRATION_KEY)
    response = agent.send(agent.body("oco.agent.hello", {}))
    assert response.status_code == 401
    assert response.text == "Client self-registration is disabled"


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b"{", "application/json", "not valid JSON"),
        (b"[]", "application/json", "request object"),
        (b'{"jsonrpc":"2.0","id":1,"method":"oco.agent.hello"}', "text/plain", "content type"),
        (b'{"jsonrpc":"2.0","id":1,"method":"oco.nope","params":{}}', "application/json", "unknown method"),
        (b'{"jsonrpc":"2.0","id":1,"method":"oco.agent.hello","params":[]}', "application/json", "params"),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"oco.agent.hello","params":{"hostname":5}}',
            "application/json",
            "hostname",
        ),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"oco.agent.hello","params":{"hostname":"x","timestamp":"now"}}',
            "application/json",
            "timestamp",
        ),
    ],
)
def test_malformed_requests_get_400_with_a_clear_message(
    server: LiveServer, content: bytes, content_type: str, message: str
) -> None:
    response = httpx.post(f"{server.url}/api/agent", content=content, headers={"content-type": content_type})
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_a_huge_body_is_refused(server: LiveServer) -> None:
    body = b'{"jsonrpc":"2.0","id":1,"method":"oco.agent.hello","params":{"pad":"' + b"x" * 9_000_000 + b'"}}'
    response = httpx.post(
        f"{server.url}/api-agent.php", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code in (400, 413)


def test_x_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    live = start_server(tmp_path, sqlite_url, self_registration="true", trusted_proxies="127.0.0.2")
    try:
        direct = ProtocolClient(live.url, "xff-direct", REGISTRATION_KEY, source_address="127.0.0.3")
        direct.hello()
        spoof = direct.body("oco.agent.hello", {})
        assert direct.send(spoof, **{"x-forwarded-for": "203.0.113.7"}).status_code == 200
        proxied = ProtocolClient(live.url, "xff-proxied", REGISTRATION_KEY, source_address="127.0.0.2")
        proxied.hello()
        body = proxied.body("oco.agent.hello", {})
        assert proxied.send(body, **{"x-forwarded-for": "198.51.100.9, 127.0.0.2"}).status_code == 200
        shown = {
            name: json.loads(live.oco("computer", "show", name, "--json").stdout)["remote_address"]
            for name in ("xff-direct", "xff-proxied")
        }
        assert shown == {"xff-direct": "127.0.0.3", "xff-proxied": "198.51.100.9"}
    finally:
        live.stop()
