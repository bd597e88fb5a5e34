"""Post-actions through the recording backend: nothing here restarts or shuts down this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from oco.agent.config import AgentConfig
from oco.agent.loop import make_power_backend
from oco.agent.power import (
    LinuxPowerBackend,
    MacPowerBackend,
    PowerAction,
    RecordingPowerBackend,
    WindowsPowerBackend,
    perform_power_action,
)


class Clock:
    """A `wait` that records how long it was asked to wait and returns at once."""

    def __init__(self, interrupted: bool = False) -> None:
        self.waits: list[float] = []
        self.interrupted = interrupted

    def __call__(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return self.interrupted


def test_a_logged_in_user_is_warned_and_waited_for(tmp_path: Path) -> None:
    backend = RecordingPowerBackend(tmp_path / "power.jsonl", users=["alice"])
    clock = Clock()

    outcome = perform_power_action(PowerAction.RESTART, 5, backend, clock)

    assert outcome.acted and outcome.delay_seconds == 300 and clock.waits == [300]
    notify, restart = backend.entries()
    assert notify["action"] == "notify" and "restart in 5 minute(s)" in str(notify["message"])
    assert (restart["action"], restart["delay_seconds"], restart["users"]) == ("restart", 300, ["alice"])
    assert "at" in restart


def test_with_nobody_logged_in_the_action_is_immediate(tmp_path: Path) -> None:
    backend = RecordingPowerBackend(tmp_path / "power.jsonl")
    clock = Clock()
    outcome = perform_power_action(PowerAction.SHUTDOWN, 30, backend, clock)
    assert outcome.acted and clock.waits == []
    assert [(e["action"], e["delay_seconds"]) for e in backend.entries()] == [("shutdown", 0.0)]


def test_a_negative_timeout_skips_the_action(tmp_path: Path) -> None:
    backend = RecordingPowerBackend(tmp_path / "power.jsonl", users=["bob"])
    outcome = perform_power_action(PowerAction.RESTART, -1, backend, Clock())
    assert not outcome.acted and "skipped" in outcome.reason
    assert backend.entries() == []


def test_a_zero_timeout_acts_at_once_even_with_users(tmp_path: Path) -> None:
    backend = RecordingPowerBackend(tmp_path / "power.jsonl", users=["bob"])
    clock = Clock()
    assert perform_power_action(PowerAction.RESTART, 0, backend, clock).acted
    assert clock.waits == [] and [e["action"] for e in backend.entries()] == ["restart"]


def test_the_minute_length_is_configurable(tmp_path: Path) -> None:
    backend = RecordingPowerBackend(tmp_path / "power.jsonl", users=["alice"])
    clock = Clock()
    perform_power_action(PowerAction.SHUTDOWN, 2, backend, clock, minute_seconds=0.01)
    assert clock.waits == [0.02] and backend.entries()[-1]["delay_seconds"] == 0.02


def test_a_stopping_agent_abandons_the_action(tmp_path: Path) -> None:
    backend = RecordingPowerBackend(tmp_path / "power.jsonl", users=["alice"])
    outcome = perform_power_action(PowerAction.RESTART, 5, backend, Clock(interrupted=True))
    assert not outcome.acted and "stopping" in outcome.reason
    assert [e["action"] for e in backend.entries()] == ["notify"]


def test_the_record_setting_selects_the_recorder(tmp_path: Path) -> None:
    config = AgentConfig(
        server_url="x", state_dir=str(tmp_path), power_backend="record", recorded_users=["eve"]
    )
    backend = make_power_backend(config)
    assert isinstance(backend, RecordingPowerBackend)
    assert backend.logged_in_users() == ["eve"] and backend.log_path == tmp_path / "power_actions.jsonl"


@pytest.mark.parametrize(
    ("backend", "restart", "shutdown"),
    [
        (LinuxPowerBackend, ("shutdown", "-r", "now"), ("shutdown", "-h", "now")),
        (MacPowerBackend, ("shutdown", "-r", "now"), ("shutdown", "-h", "now")),
        (WindowsPowerBackend, ("shutdown", "/r", "/t", "0"), ("shutdown", "/s", "/t", "0")),
    ],
)
def test_the_system_backends_use_the_platform_commands(
    backend: type[LinuxPowerBackend], restart: tuple[str, ...], shutdown: tuple[str, ...]
) -> None:
    # Only the command lines are inspected: nothing is run.
    assert (backend.restart_command, backend.shutdown_command) == (restart, shutdown)
