"""A man in the middle on 127.0.0.1: a reverse proxy between agents and a server that passes everything on
and, when told to, replaces payload downloads (with a matching `x-oco-payload-sha256` header, as an
attacker on plain HTTP would). It counts the downloads asked for, so tests can prove none happened."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from types import TracebackType

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}
POLL_S = 0.05


class SwappingProxy:
    """Forwards to `upstream`; with `swap` set, answers `oco.agent.download` with those bytes instead."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.swap: bytes | None = None
        self.announce_swapped_digest = True
        self.methods: list[str] = []
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=60)
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(POLL_S,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def downloads(self) -> int:
        """How many payload downloads agents asked for through the proxy."""
        with self._lock:
            return self.methods.count("oco.agent.download")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def __enter__(self) -> SwappingProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._relay()

            def do_POST(self) -> None:
                self._relay()

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                method = _rpc_method(body)
                with proxy._lock:
                    proxy.methods.append(method)
                if method == "oco.agent.download" and proxy.swap is not None:
                    self._answer(200, {"content-type": "application/octet-stream"}, proxy.swap, swapped=True)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream = proxy._client.request(
                    self.command, proxy.upstream + self.path, content=body, headers=headers
                )
                kept = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
                self._answer(upstream.status_code, kept, upstream.content)

            def _answer(
                self, status: int, headers: dict[str, str], body: bytes, swapped: bool = False
            ) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if swapped and proxy.announce_swapped_digest:
                    digest = hashlib.sha256(body).hexdigest()
                    self.send_header("x-oco-payload-sha256", digest)
                    self.send_header("etag", f'"{digest}"')
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        return Handler


def _rpc_method(body: bytes) -> str:
    try:
        return str(json.loads(body)["method"])
    except (ValueError, KeyError, TypeError):
        return ""
