"""End to end: a job whose command cannot start (-9999) is retried by the server and then succeeds, with a
real agent process. The first run finds no installer tool (the shell cannot run it: the agent reports
-9999); the server sets the job waiting for its retry in the report's transaction, hands it out only after
the delay, and keeps the failed attempt, which `oco container show` prints."""

from __future__ import annotations

import json
import stat

from oco.domain.dispatch import Hold
from oco.domain.retries import RetryPolicy
from oco.domain.states import JobState, ReturnCode
from oco.services import containers
from tests.e2e.test_agent_e2e import World, add_package, deploy, make_agent, world  # noqa: F401
from tests.support import wait_until


def test_a_command_that_could_not_start_is_retried_and_then_succeeds(world: World) -> None:  # noqa: F811
    agent = make_agent(world, "pc-retry")
    package = add_package(world, "Tool", "1", install_procedure='"$MARKERS/setup-tool" && ./install.sh')
    container = deploy(world, [agent], [package], name="Tool with retries", retry=RetryPolicy(2, 3))

    assert agent.run().returncode == 0
    [job] = containers.container_detail(world.rt, container).jobs
    assert (job.state, job.attempt, job.return_code) == (JobState.WAITING, 2, None)
    assert job.not_before is not None
    [attempt] = job.attempts
    assert (attempt.attempt, attempt.state, attempt.return_code) == (
        1,
        JobState.FAILED,
        int(ReturnCode.AGENT_ERROR),
    )
    assert "could not be executed" in attempt.message
    shown = world.server.oco("container", "show", str(container)).stdout
    assert "retry 1 of 2 at" in shown and "attempt 1: failed (code -9999)" in shown
    page = json.loads(world.server.oco("container", "show", str(container), "--json").stdout)
    assert page["retries"] == 2 and page["jobs"][0]["attempts"][0]["return_code"] == -9999

    tool = agent.marker_dir / "setup-tool"  # the cause goes away before the retry
    tool.write_text("#!/bin/sh\necho tool ready\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)

    def succeeded() -> bool:
        assert agent.run().returncode == 0
        [current] = containers.container_detail(world.rt, container).jobs
        if current.state is JobState.WAITING:
            assert current.not_before is not None  # handed out only after its delay
        return current.state is JobState.SUCCEEDED

    wait_until(succeeded, message="the retried job did not succeed")
    [done] = containers.container_detail(world.rt, container).jobs
    assert done.attempt == 2 and [a.attempt for a in done.attempts] == [1]
    assert (agent.marker_dir / "Tool-1").exists()
    assert done.execution_started is not None and done.execution_started >= done.attempts[0].finished
    assert Hold.RETRY.label == "waiting for its retry"
