"""A real `oco server` process on a free loopback port, for end-to-end and browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

STARTUP_TIMEOUT_S = 180
"""Generous: on a loaded 2-core machine a new interpreter can take half a minute to import the server."""
REGISTRATION_KEY = "registration-key-for-tests"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A server process started by the test; `env` is what admin commands need to reach its data."""

    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path
    extra: dict[str, str] = field(default_factory=dict)

    def oco(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run an admin command against the server's database and depot."""
        result = subprocess.run(
            [sys.executable, "-m", "oco", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"oco {' '.join(args)} failed: {result.stderr}{result.stdout}")
        return result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    workdir: Path,
    database_url: str,
    host: str = "127.0.0.1",
    server_args: tuple[str, ...] = (),
    tls: tuple[Path, Path] | None = None,
    port: int | None = None,
    **settings: str,
) -> LiveServer:
    """Start `oco server` (migrating first) and wait until /healthz answers.

    With `tls` (certificate, key), it serves HTTPS (`--tls-cert`/`--tls-key`) and `url` is https://.
    """
    port = port or free_port()
    if tls is not None:
        server_args = (*server_args, "--tls-cert", str(tls[0]), "--tls-key", str(tls[1]))
    env = {
        **os.environ,
        "OCO_DATABASE_URL": database_url,
        "OCO_DEPOT_PATH": str(workdir / "depot"),
        "OCO_AGENT_REGISTRATION_KEY": REGISTRATION_KEY,
        "OCO_WOL_ADDRESSES": "127.0.0.1",
        "OCO_WOL_SUBNET_BROADCASTS": "false",
        "OCO_WOL_PORT": "9",
        "OCO_HOUSEKEEPING_INTERVAL_SECONDS": "1",
        **{f"OCO_{key.upper()}": value for key, value in settings.items()},
    }
    log = workdir / f"server-{port}.log"
    restarts = 0
    while log.exists():  # a server restarted on its port: its own log
        restarts += 1
        log = workdir / f"server-{port}-{restarts}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "oco", "server", "--host", host, "--port", str(port), *server_args],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url_host = f"[{host}]" if ":" in host else host
    scheme = "https" if tls is not None else "http"
    server = LiveServer(url=f"{scheme}://{url_host}:{port}", env=env, process=process, log=log)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"oco server exited: {log.read_text()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1, verify=False).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"oco server did not start in {STARTUP_TIMEOUT_S} s: {log.read_text()}")
