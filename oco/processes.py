"""Running `oco server`: the application in one process, or in several sharing the port.

uvicorn's own workers accept on one shared socket, so long-lived connections (a reverse proxy's keep-alive
pool, agents keeping theirs) pile up on whichever process accepted first and the others idle. On Linux,
`serve` gives each process its own socket with `SO_REUSEPORT` instead, and the kernel spreads connections
evenly across them. Elsewhere it falls back to uvicorn's workers.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

APP = "oco.application:create_app"
METRICS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
"""Where the processes write what `/metrics` sums (prometheus-client's multi-process mode)."""
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
BACKLOG = 2048
SHUTDOWN_TIMEOUT_S = 30
UVICORN_OPTIONS: dict[str, Any] = {
    "factory": True,
    "proxy_headers": False,
    "access_log": False,
    "log_level": "info",
    # Live pages hold Server-Sent Event streams open: a stopping server ends them after this long.
    "timeout_graceful_shutdown": 5,
}

log = logging.getLogger("oco.server")


class TlsError(Exception):
    """The certificate or key given for TLS cannot be used."""


@dataclass(frozen=True, slots=True)
class Tls:
    """The certificate chain and private key `oco server` serves HTTPS with (PEM files)."""

    cert_file: Path
    key_file: Path

    def check(self) -> None:
        """Load the pair once, so a wrong file stops the command with one line instead of a traceback."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(
                f"TLS certificate {str(self.cert_file)!r} with key {str(self.key_file)!r}: {exc}"
            ) from None

    @property
    def options(self) -> dict[str, Any]:
        """Uvicorn's options for this pair."""
        return {"ssl_certfile": str(self.cert_file), "ssl_keyfile": str(self.key_file)}


def tls_of(cert_file: Path | None, key_file: Path | None) -> Tls | None:
    """The TLS pair from a certificate and a key file, None for neither; TlsError for only one of them."""
    if cert_file is None and key_file is None:
        return None
    if cert_file is None or key_file is None:
        raise TlsError("TLS needs both a certificate (--tls-cert) and its private key (--tls-key)")
    tls = Tls(cert_file, key_file)
    tls.check()
    return tls


def serve(host: str, port: int, workers: int = 1, tls: Tls | None = None) -> None:
    """Serve until interrupted; with `workers` > 1, in that many processes; HTTPS with `tls`."""
    options = {**UVICORN_OPTIONS, **(tls.options if tls else {})}
    if workers == 1:
        uvicorn.run(APP, host=host, port=port, **options)
        return
    with _shared_metrics():
        if sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT"):
            _supervise(host, port, workers, tls)
        else:
            uvicorn.run(APP, host=host, port=port, workers=workers, **options)


@contextmanager
def _shared_metrics() -> Iterator[None]:
    """A fresh directory the processes started inside write their metrics to, so that each answers
    `/metrics` for all of them; removed at the end. An administrator's `PROMETHEUS_MULTIPROC_DIR` is
    used as it is (it must be emptied before each start)."""
    if os.environ.get(METRICS_DIRECTORY):
        yield
        return
    directory = tempfile.mkdtemp(prefix="oco-metrics-")
    os.environ[METRICS_DIRECTORY] = directory  # the processes started from here inherit it
    try:
        yield
    finally:
        del os.environ[METRICS_DIRECTORY]
        shutil.rmtree(directory, ignore_errors=True)


def _supervise(host: str, port: int, workers: int, tls: Tls | None) -> None:
    """Start the processes, stop them all on SIGTERM/SIGINT or when one of them ends."""
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_serve_one, args=(host, port, tls), name=f"oco-server-{index}")
        for index in range(workers)
    ]
    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping %d server processes", signal.Signals(signum).name, workers)
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for process in processes:
            process.start()
        while not stopping.is_set() and all(process.is_alive() for process in processes):
            stopping.wait(0.5)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn shuts the application down gracefully
        for process in processes:
            process.join(SHUTDOWN_TIMEOUT_S)
            if process.is_alive():
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not stopping.is_set():
        raise SystemExit("a server process ended unexpectedly; all were stopped")


def _serve_one(host: str, port: int, tls: Tls | None) -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    family, kind, protocol, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    listener = socket.socket(family, kind, protocol)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(address)
    listener.listen(BACKLOG)
    config = uvicorn.Config(APP, host=host, port=port, **UVICORN_OPTIONS, **(tls.options if tls else {}))
    uvicorn.Server(config).run(sockets=[listener])
