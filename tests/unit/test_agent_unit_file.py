"""The systemd unit we ship: stopping, restarting or upgrading the agent never kills a procedure it runs."""

from __future__ import annotations

import configparser
from pathlib import Path

UNIT = Path(__file__).resolve().parents[2] / "contrib" / "oco-agent.service"


def test_systemd_stops_the_agent_only_and_gives_a_running_procedure_time() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.read(UNIT)
    service = unit["Service"]
    assert service["KillMode"] == "process"  # not mixed/control-group: they SIGKILL the installer too
    assert service["KillSignal"] == "SIGTERM"  # the agent's first stop: let the procedure finish
    assert int(service["TimeoutStopSec"]) >= 60
    assert service["Restart"] == "always"  # a crashed agent comes back and settles its job
