"""The signed client: request bodies and signatures, timestamps that only go up, key learning, and the
checks on the server's answers. The server is an in-process httpx.MockTransport (no network)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from oco.agent.client import AgentClient, ProtocolError, ServerRefused, ServerUnreachable
from oco.agent.config import AgentConfig, load_config, save_config
from oco.domain.protocol import SIGNATURE_HEADER_AGENT, SIGNATURE_HEADER_SERVER, AgentMethod, sign

REGISTRATION_KEY = "registration"
AGENT_KEY = "a" * 40
SERVER_KEY = "s" * 40


class Server:
    """Answers every call with `params`, signed with `signing_key`, at the next `timestamp`."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.params: dict[str, Any] = {"update": 0, "software-jobs": []}
        self.signing_key = ""
        self.timestamp = 1000.0
        self.status = 200

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status != 200:
            return httpx.Response(self.status, text="Nope")
        self.timestamp += 1
        body = json.dumps(
            {"jsonrpc": "2.0", "id": 1, "result": {"timestamp": self.timestamp, "params": self.params}}
        )
        headers = {SIGNATURE_HEADER_SERVER: sign(self.signing_key, body.encode())} if self.signing_key else {}
        return httpx.Response(200, content=body.encode(), headers=headers)

    def body(self, index: int = -1) -> dict[str, Any]:
        return dict(json.loads(self.requests[index].content))


def make_client(
    tmp_path: Path, server: Callable[[httpx.Request], httpx.Response], **settings: Any
) -> AgentClient:
    config = AgentConfig(
        server_url="http://127.0.0.1:9",
        registration_key=REGISTRATION_KEY,
        hostname="pc1.example.org",
        uid="uid-1",
        state_dir=str(tmp_path / "state"),
        **settings,
    )
    save_config(tmp_path / "agent.toml", config)
    return AgentClient(config, tmp_path / "agent.toml", httpx.MockTransport(server))


def test_a_call_is_signed_json_rpc_with_the_registration_key_before_keys_exist(tmp_path: Path) -> None:
    server = Server()
    client = make_client(tmp_path, server)

    client.call(AgentMethod.HELLO, {"agent_version": "1"})

    request = server.requests[0]
    assert request.method == "POST" and request.url.path == "/api-agent.php"
    assert request.headers["content-type"] == "application/json"
    assert request.headers[SIGNATURE_HEADER_AGENT] == sign(REGISTRATION_KEY, request.content)
    body = server.body()
    assert body["jsonrpc"] == "2.0" and body["method"] == "oco.agent.hello"
    assert body["params"]["uid"] == "uid-1" and body["params"]["hostname"] == "pc1"
    assert isinstance(body["params"]["timestamp"], float)
    assert body["params"]["data"] == {"agent_version": "1"}


def test_keys_from_hello_are_stored_and_used_but_never_replaced(tmp_path: Path) -> None:
    server = Server()
    client = make_client(tmp_path, server)
    server.params = {"update": 1, "software-jobs": [], "agent-key": AGENT_KEY, "server-key": SERVER_KEY}
    server.signing_key = SERVER_KEY  # the first answer is signed with the key it hands out

    client.call(AgentMethod.HELLO, {})
    stored = load_config(tmp_path / "agent.toml")
    assert (stored.agent_key, stored.server_key) == (AGENT_KEY, SERVER_KEY)

    server.params = {"update": 0, "software-jobs": [], "agent-key": "b" * 40, "server-key": None}
    client.call(AgentMethod.HELLO, {})
    assert server.requests[-1].headers[SIGNATURE_HEADER_AGENT] == sign(AGENT_KEY, server.requests[-1].content)
    assert load_config(tmp_path / "agent.toml").agent_key == AGENT_KEY


def test_the_registration_key_is_forgotten_once_the_agent_has_its_own_keys(tmp_path: Path) -> None:
    server = Server()
    client = make_client(tmp_path, server)
    server.params = {"update": 1, "software-jobs": [], "agent-key": AGENT_KEY, "server-key": SERVER_KEY}
    server.signing_key = SERVER_KEY

    client.call(AgentMethod.HELLO, {})

    stored = load_config(tmp_path / "agent.toml")
    assert (stored.agent_key, stored.server_key, stored.registration_key) == (AGENT_KEY, SERVER_KEY, "")
    assert f'"{REGISTRATION_KEY}"' not in (tmp_path / "agent.toml").read_text()


def test_an_older_configuration_with_keys_drops_its_registration_key_at_the_next_answer(
    tmp_path: Path,
) -> None:
    server = Server()
    server.signing_key = SERVER_KEY
    client = make_client(tmp_path, server, agent_key=AGENT_KEY, server_key=SERVER_KEY)

    client.call(AgentMethod.HELLO, {})

    assert server.requests[0].headers[SIGNATURE_HEADER_AGENT] == sign(AGENT_KEY, server.requests[0].content)
    assert load_config(tmp_path / "agent.toml").registration_key == ""


def test_timestamps_strictly_increase_even_when_the_clock_stands_still_or_goes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Server()
    client = make_client(tmp_path, server)
    monkeypatch.setattr("time.time", lambda: 5000.0)
    stamps = [client.next_timestamp() for _ in range(3)]
    monkeypatch.setattr("time.time", lambda: 10.0)
    stamps.append(client.next_timestamp())
    assert stamps == sorted(set(stamps)) and stamps[0] == 5000.0

    restarted = make_client(tmp_path, server)  # the last timestamp is persisted in the state directory
    assert restarted.next_timestamp() > stamps[-1]


def test_a_bad_server_signature_is_rejected(tmp_path: Path) -> None:
    server = Server()
    client = make_client(tmp_path, server, agent_key=AGENT_KEY, server_key=SERVER_KEY)
    server.signing_key = "someone else"
    with pytest.raises(ProtocolError, match="signature does not match"):
        client.call(AgentMethod.HELLO, {})
    server.signing_key = ""
    with pytest.raises(ProtocolError, match="signature does not match"):
        client.call(AgentMethod.HELLO, {})


def test_an_answer_that_is_not_newer_than_the_last_is_a_replay(tmp_path: Path) -> None:
    server = Server()
    server.signing_key = SERVER_KEY
    client = make_client(tmp_path, server, agent_key=AGENT_KEY, server_key=SERVER_KEY)
    client.call(AgentMethod.HELLO, {})
    server.timestamp -= 1  # the next answer carries the same timestamp as the last one
    with pytest.raises(ProtocolError, match="not newer"):
        client.call(AgentMethod.HELLO, {})
    restarted = make_client(tmp_path, server, agent_key=AGENT_KEY, server_key=SERVER_KEY)
    server.timestamp -= 1
    with pytest.raises(ProtocolError, match="not newer"):  # the last server timestamp survives a restart
        restarted.call(AgentMethod.HELLO, {})


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, ServerRefused), (400, ServerRefused), (500, ServerUnreachable), (503, ServerUnreachable)],
)
def test_http_errors_are_told_apart(tmp_path: Path, status: int, error: type[Exception]) -> None:
    server = Server()
    server.status = status
    client = make_client(tmp_path, server)
    with pytest.raises(error, match=str(status)):
        client.call(AgentMethod.HELLO, {})


def test_an_unreachable_server_is_server_unreachable(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ServerUnreachable, match="connection refused"):
        make_client(tmp_path, refuse).call(AgentMethod.HELLO, {})


def test_a_malformed_answer_is_a_protocol_error(tmp_path: Path) -> None:
    client = make_client(tmp_path, lambda request: httpx.Response(200, json={"result": {"params": {}}}))
    with pytest.raises(ProtocolError, match="malformed"):
        client.call(AgentMethod.HELLO, {})


def test_a_download_is_a_get_with_a_json_body_and_a_range(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def depot(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(206, content=b"rest")

    client = make_client(tmp_path, depot, agent_key=AGENT_KEY)
    response = client.open_download(42, offset=10)
    assert response.read() == b"rest"
    request = seen[0]
    body = json.loads(request.content)
    assert request.method == "GET" and body["method"] == "oco.agent.download"
    assert body["params"]["package-id"] == 42 and "data" not in body["params"]
    assert request.headers["range"] == "bytes=10-"
    assert request.headers[SIGNATURE_HEADER_AGENT] == sign(AGENT_KEY, request.content)


def test_a_refused_download_says_why(tmp_path: Path) -> None:
    client = make_client(tmp_path, lambda request: httpx.Response(401, text="no eligible job"))
    with pytest.raises(ServerRefused, match="no eligible job") as caught:
        client.open_download(42)
    assert caught.value.status_code == 401


def test_requests_leave_from_the_configured_source_address(tmp_path: Path) -> None:
    """Several agents can share one test host on 127.0.0.x: the server sees each one's own address."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.client_address[0])
            self.send_response(401)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    config = AgentConfig(
        server_url=f"http://127.0.0.1:{server.server_address[1]}",
        registration_key=REGISTRATION_KEY,
        uid="u",
        state_dir=str(tmp_path / "state"),
        source_address="127.0.0.2",
    )
    client = AgentClient(config, tmp_path / "agent.toml")
    try:
        with pytest.raises(ServerRefused):
            client.call(AgentMethod.HELLO, {})
    finally:
        client.close()
        server.shutdown()
        server.server_close()
    assert seen == ["127.0.0.2"]
