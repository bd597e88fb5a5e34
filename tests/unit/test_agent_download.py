"""Payload downloads resume with Range after an interruption and are verified before use.

The server here is a small HTTP server on 127.0.0.1 that cuts its first answer midway.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from oco.agent.client import AgentClient
from oco.agent.config import AgentConfig
from oco.agent.downloader import ChecksumMismatch, DownloadInterrupted, download_payload

PAYLOAD = bytes(range(256)) * 8192  # 2 MiB


class FlakyDepot(http.server.BaseHTTPRequestHandler):
    payload = PAYLOAD
    announced = hashlib.sha256(PAYLOAD).hexdigest()
    cut_next = True
    ranges: list[str | None] = []

    def do_GET(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        FlakyDepot.ranges.append(self.headers.get("range"))
        start = int(self.headers["range"].split("=")[1].rstrip("-")) if self.headers.get("range") else 0
        body = self.payload[start:]
        self.send_response(206 if start else 200)
        self.send_header("content-length", str(len(body)))
        self.send_header("x-oco-payload-sha256", self.announced)
        self.end_headers()
        if FlakyDepot.cut_next:
            FlakyDepot.cut_next = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def client(tmp_path: Path) -> Iterator[AgentClient]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyDepot)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FlakyDepot.cut_next, FlakyDepot.ranges = True, []
    FlakyDepot.payload, FlakyDepot.announced = PAYLOAD, hashlib.sha256(PAYLOAD).hexdigest()
    config = AgentConfig(
        server_url=f"http://127.0.0.1:{server.server_address[1]}",
        registration_key="k",
        state_dir=str(tmp_path / "state"),
        hostname="pc1",
    )
    agent_client = AgentClient(config, tmp_path / "agent.toml")
    yield agent_client
    agent_client.close()
    server.shutdown()


def test_an_interrupted_download_resumes_where_it_stopped(client: AgentClient, tmp_path: Path) -> None:
    progress: list[int] = []
    with pytest.raises(DownloadInterrupted, match="interrupted after"):
        download_payload(client, 7, tmp_path / "dl", progress.append)
    partial = tmp_path / "dl" / "7.part"
    assert 0 < partial.stat().st_size < len(PAYLOAD)

    done = download_payload(client, 7, tmp_path / "dl", progress.append)

    assert FlakyDepot.ranges == [
        None,
        f"bytes={partial.stat().st_size if partial.exists() else len(PAYLOAD) // 2}-",
    ]
    assert done.read_bytes() == PAYLOAD and done.name == "7.zip"
    assert progress[-1] == 100


def test_a_payload_that_does_not_match_its_sha256_is_deleted(client: AgentClient, tmp_path: Path) -> None:
    FlakyDepot.cut_next = False
    FlakyDepot.announced = "0" * 64
    with pytest.raises(ChecksumMismatch, match="server announced 0000"):
        download_payload(client, 8, tmp_path / "dl", lambda _p: None)
    assert list((tmp_path / "dl").iterdir()) == []
