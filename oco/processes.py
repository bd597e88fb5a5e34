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
import sys
import tempfile
import threading
from types import FrameType
from typing import Any

import uvicorn

APP = "oco.application:create_app"
MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's multi-process directory (the same name as `oco.services.metrics`'s)."""
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


def serve(host: str, port: int, workers: int = 1) -> None:
    """Serve until interrupted; with `workers` > 1, in that many processes."""
    if workers == 1:
        uvicorn.run(APP, host=host, port=port, **UVICORN_OPTIONS)
    elif sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT"):
        _supervise(host, port, workers)
    else:
        uvicorn.run(APP, host=host, port=port, workers=workers, **UVICORN_OPTIONS)


def _supervise(host: str, port: int, workers: int) -> None:
    """Start the processes, stop them all on SIGTERM/SIGINT or when one of them ends."""
    metrics_directory = _metrics_directory()
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_serve_one, args=(host, port), name=f"oco-server-{index}")
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
        if metrics_directory is not None:
            shutil.rmtree(metrics_directory, ignore_errors=True)
    if not stopping.is_set():
        raise SystemExit("a server process ended unexpectedly; all were stopped")


def _metrics_directory() -> str | None:
    """Where the processes write their metrics for `/metrics` to sum (prometheus-client's multi-process
    mode): the administrator's `PROMETHEUS_MULTIPROC_DIR`, or a fresh directory removed at the end."""
    if os.environ.get(MULTIPROCESS_DIRECTORY):
        return None
    directory = tempfile.mkdtemp(prefix="oco-metrics-")
    os.environ[MULTIPROCESS_DIRECTORY] = directory  # the spawned processes inherit it
    return directory


def _serve_one(host: str, port: int) -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    family, kind, protocol, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    listener = socket.socket(family, kind, protocol)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(address)
    listener.listen(BACKLOG)
    config = uvicorn.Config(APP, host=host, port=port, **UVICORN_OPTIONS)
    uvicorn.Server(config).run(sockets=[listener])
