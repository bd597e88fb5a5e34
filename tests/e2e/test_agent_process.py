"""The agent as a process: enrolment, clean SIGTERM, backoff while the server is unreachable."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from oco.agent.config import load_config
from tests.live import REGISTRATION_KEY, LiveServer, free_port
from tests.support import wait_until


def enroll(config: Path, server: str, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "oco",
            "agent",
            "enroll",
            "--config",
            str(config),
            "--server",
            server,
            "--registration-key",
            REGISTRATION_KEY,
            "--state-dir",
            str(state),
            "--hostname",
            "enrolled-pc",
            "--query-interval",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def end(process: subprocess.Popen[bytes]) -> None:
    """Kill an agent process a failed test left running."""
    if process.poll() is None:
        process.kill()
        process.wait()


def test_enroll_writes_a_config_and_the_first_check_in_learns_the_keys(
    live_server: LiveServer, tmp_path: Path
) -> None:
    config = tmp_path / "agent.toml"
    assert enroll(config, live_server.url, tmp_path / "state").returncode == 0
    assert load_config(config).agent_key == ""
    live_server.oco("computer", "add", "enrolled-pc")

    run = subprocess.run(
        [sys.executable, "-m", "oco", "agent", "--config", str(config), "--once"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert run.returncode == 0, run.stderr
    learned = load_config(config)
    assert len(learned.agent_key) >= 32 and len(learned.server_key) >= 32
    assert "enrolled-pc" in live_server.oco("computer", "list").stdout


def test_sigterm_stops_the_agent_cleanly(live_server: LiveServer, tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    enroll(config, live_server.url, tmp_path / "state")
    live_server.oco("computer", "add", "enrolled-pc")
    process = subprocess.Popen(
        [sys.executable, "-m", "oco", "agent", "--config", str(config)], stderr=subprocess.PIPE
    )
    try:
        wait_until(lambda: load_config(config).agent_key, interval=0.2, message="the agent learned no keys")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        end(process)


def test_an_unreachable_server_means_backoff_not_a_crash(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    enroll(config, f"http://127.0.0.1:{free_port()}", tmp_path / "state")
    log = tmp_path / "agent.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "oco", "agent", "--config", str(config)], stderr=stderr
        )
    try:
        wait_until(  # start-up and a first failed check-in
            lambda: "next try in" in log.read_text(), timeout=60, message="the agent logged no backoff"
        )
        assert process.poll() is None  # still running, waiting to retry
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    finally:
        end(process)
    errors = log.read_text()
    assert process.returncode == 0
    assert "check-in failed" in errors and "next try in" in errors


def test_once_against_an_unreachable_server_fails_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    enroll(config, f"http://127.0.0.1:{free_port()}", tmp_path / "state")
    run = subprocess.run(
        [sys.executable, "-m", "oco", "agent", "--config", str(config), "--once"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert run.stderr.strip().startswith("error: check-in failed:") and "Traceback" not in run.stderr
