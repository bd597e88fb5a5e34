"""End to end, with real agent processes: a job whose command cannot start (-9999) is retried by the
server and then succeeds; and a download that fails once, the container's next job waiting behind the
retry instead of being aborted. The server sets a -9999 job waiting for its retry in the report's
transaction, hands it out only after the delay, and keeps the failed attempt (`oco container show`)."""

from __future__ import annotations

import json
import stat

from oco.domain.dispatch import Hold
from oco.domain.retries import RetryPolicy
from oco.domain.states import JobState, ReturnCode, SequenceMode
from oco.services import containers, packages
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


def test_a_download_that_fails_once_is_retried_and_the_next_job_waits_behind_it(world: World) -> None:  # noqa: F811
    agent = make_agent(world, "pc-download")
    runtime_package = add_package(world, "Runtime", "1")
    app_package = add_package(world, "App", "1")
    digest = packages.package_detail(world.rt, runtime_package).payload_sha256 or ""
    stored = world.rt.depot.path(digest)
    good = stored.read_bytes()
    stored.write_bytes(good[:-10] + b"0123456789")  # the payload the agent gets does not match its SHA-256
    container = deploy(
        world,
        [agent],
        [runtime_package, app_package],
        name="Runtime then app",
        sequence_mode=SequenceMode.ABORT_AFTER_FAILED,
        retry=RetryPolicy(1, 2),
    )

    assert agent.run().returncode == 0
    first, second = sorted(
        containers.container_detail(world.rt, container).jobs, key=lambda job: job.sequence
    )
    assert (first.state, first.attempt) == (JobState.WAITING, 2)
    assert "SHA-256" in first.attempts[0].message
    assert (second.state, second.return_code) == (JobState.WAITING, None)  # not aborted: behind the retry
    assert not (agent.marker_dir / "App-1").exists()

    stored.write_bytes(good)  # the depot is repaired before the retry

    def both_installed() -> bool:
        assert agent.run().returncode == 0
        return {job.state for job in containers.container_detail(world.rt, container).jobs} == {
            JobState.SUCCEEDED
        }

    wait_until(both_installed, message="the retried download and the job behind it did not succeed")
    assert (agent.marker_dir / "Runtime-1").exists() and (agent.marker_dir / "App-1").exists()
