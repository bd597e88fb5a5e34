"""End to end: a phased rollout with real agent processes. The pilot's failure halts it (by the report,
in the server process), the others get nothing; an admin fixes the cause and resumes it from the CLI,
re-opening the pilot phase; the server's housekeeping then opens the next phase and the rest install."""

from __future__ import annotations

import json

from oco.domain.phases import RolloutRules
from oco.domain.states import JobState
from oco.services import audit, deployments, groups
from oco.services.audit import AuditQuery
from oco.services.computers import ComputerSelection
from oco.services.deployments import ContainerOptions, DeploymentRequest
from oco.services.listing import PageRequest
from oco.services.targets import Targets
from tests.e2e.test_agent_e2e import World, add_package, jobs, make_agent, world  # noqa: F401
from tests.support import wait_until


def test_a_failing_pilot_halts_the_rollout_and_a_resume_continues(world: World) -> None:  # noqa: F811
    pilot = make_agent(world, "pilot-pc")
    others = [make_agent(world, f"office-{n}") for n in range(3)]
    package = add_package(
        world,
        "Tool",
        "1",
        install_procedure='[ -e "$MARKERS/fixed" ] || { echo "broken here"; exit 3; }; ./install.sh',
    )
    group = groups.add_computer_group(world.rt, "Pilots", "admin")
    groups.add_computers_to_group(world.rt, group.id, ComputerSelection(references=["pilot-pc"]), "admin")
    request = DeploymentRequest(
        ContainerOptions(
            name="Tool rollout", rollout=RolloutRules(halt_failure_rate=0), pilot_group="Pilots"
        ),
        Targets(computers=["pilot-pc", *(a.hostname for a in others)], packages=[package]),
    )
    container = deployments.create_deployment(world.rt, request, "admin").id

    for agent in others:  # their phase is closed: nothing handed out
        assert agent.run().returncode == 0
    assert pilot.run().returncode == 0
    states = {computer: state for computer, _p, _a, state, _c, _m in jobs(world, container)}
    assert states == {
        "pilot-pc": JobState.FAILED,
        "office-0": JobState.WAITING,
        "office-1": JobState.WAITING,
        "office-2": JobState.WAITING,
    }
    shown = json.loads(world.server.oco("container", "rollout", str(container), "--json").stdout)
    assert shown["halted"] is True
    assert shown["rollout"]["halt_details"]["failed"] == 1
    text = world.server.oco("container", "rollout", str(container)).stdout
    assert "HALTED by housekeeping: pilot: 1 of 1 finished jobs failed (100 %, more than 0 %)" in text
    for agent in others:
        agent.run()
    assert {s for c, _p, _a, s, _c, _m in jobs(world, container) if c != "pilot-pc"} == {JobState.WAITING}

    (pilot.marker_dir / "fixed").write_text("")
    for agent in others:
        (agent.marker_dir / "fixed").write_text("")
    world.server.oco("container", "resume", str(container), "--reopen")
    assert pilot.run().returncode == 0

    def rest_installed() -> bool:
        for agent in others:
            agent.run()
        return {s for _c, _p, _a, s, _c2, _m in jobs(world, container)} == {JobState.SUCCEEDED}

    wait_until(rest_installed, message="the next phase did not open after the pilot succeeded")
    assert all((agent.marker_dir / "Tool-1").exists() for agent in [pilot, *others])
    final = json.loads(world.server.oco("container", "rollout", str(container), "--json").stdout)
    assert final["rollout"]["completed"] is not None or final["rollout"]["current_phase"] == 2
    entries = audit.search_audit(world.rt, AuditQuery(action="rollout"), PageRequest(1, 50, ""))
    assert {"rollout.halt", "rollout.resume"} <= {entry.action for entry in entries.items}
