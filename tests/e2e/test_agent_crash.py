"""End to end: a real `oco agent` process killed with SIGKILL in the middle of an install, against a real
`oco server`; the procedure (a harmless script waiting for a marker file) outlives it, and the restarted
agent reports what really happened: the real exit code and output, or -9999 saying why it cannot know.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from oco.agent.recovery import killed
from oco.agent.runner import is_running
from oco.agent.state import JobJournal, JournalEntry
from oco.agent.wrapper import EXIT_CODE_FILE, OUTPUT_FILE, STARTED_FILE
from oco.domain.states import JobState, ReturnCode
from oco.services import containers, packages
from tests.agentcrash import end_orphan, kill_group, record_of
from tests.conftest import make_runtime
from tests.e2e.test_agent_e2e import RealAgent, World, deploy, installed, jobs, make_agent
from tests.live import start_server
from tests.support import wait_until, zip_bytes

INSTALL = """echo "installing"
until [ -e "$MARKERS/go" ]; do sleep 0.05; done
echo "installed"
exit {code}
"""


@pytest.fixture
def world(tmp_path: Path, sqlite_template: Path) -> Iterator[World]:
    shutil.copy(sqlite_template, tmp_path / "oco.sqlite3")
    url = f"sqlite:///{tmp_path / 'oco.sqlite3'}"
    server = start_server(tmp_path, url, self_registration="true")
    rt = make_runtime(url, tmp_path)
    yield World(server, rt, tmp_path)
    server.stop()
    rt.close()


@pytest.fixture
def leftovers() -> Iterator[list[subprocess.Popen[bytes] | JournalEntry]]:
    """Agent processes and orphaned procedures a failed test may leave: ended by their pids at the end."""
    started: list[subprocess.Popen[bytes] | JournalEntry] = []
    yield started
    for item in started:
        if isinstance(item, JournalEntry):
            end_orphan(item)
        elif item.poll() is None:
            item.kill()
            item.wait()


def waiting_package(world: World, code: int) -> int:
    """A package whose install script says it began, waits for $MARKERS/go, then exits with `code`."""
    payload = zip_bytes({"install.sh": INSTALL.format(code=code)})
    spec = packages.PackageSpec(family="Slow", version=str(code), install_procedure="./install.sh")
    return packages.create_package(
        world.rt, spec, lambda d: d.put_upload(io.BytesIO(payload), "p.zip"), "admin"
    ).id


def start_agent(agent: RealAgent, log: Path) -> subprocess.Popen[bytes]:
    """A real agent process for one cycle (`--once`), logging to `log`."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "oco.agent", "--config", str(agent.config_path), "--once"],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin", "MARKERS": str(agent.marker_dir)},
        )


def kill_mid_install(
    world: World, code: int, leftovers: list[subprocess.Popen[bytes] | JournalEntry]
) -> tuple[RealAgent, int, JournalEntry]:
    """Deploy the waiting package to a new agent, start the agent, and SIGKILL it once the install
    script runs; returns the agent, the container and the journal entry the agent left."""
    agent = make_agent(world, f"pc-crash-{code}", job_timeout=900)
    container = deploy(world, [agent], [waiting_package(world, code)])
    [job_id] = [j.id for j in containers.container_detail(world.rt, container).jobs]
    job_dir = agent.state_dir / "jobs" / str(job_id)
    process = start_agent(agent, world.root / "agent-1.log")
    leftovers.append(process)

    def installing() -> JournalEntry | None:
        entry = JobJournal(agent.state_dir).current()
        output = job_dir / OUTPUT_FILE
        return (
            entry if entry and entry.pid and output.exists() and "installing" in output.read_text() else None
        )

    entry = wait_until(installing, timeout=120, message="the install script did not start")
    leftovers.append(entry)
    process.kill()  # SIGKILL: no handler, no cleanup, no report
    process.wait()
    assert is_running(record_of(entry))  # the procedure outlived the agent
    [(_, _, _, state, _, _)] = jobs(world, container)
    assert state == JobState.EXECUTING
    return agent, container, entry


@pytest.mark.parametrize(("code", "final"), [(0, JobState.SUCCEEDED), (3, JobState.FAILED)])
def test_a_restarted_agent_follows_the_surviving_procedure_and_reports_its_real_code(
    world: World, leftovers: list[subprocess.Popen[bytes] | JournalEntry], code: int, final: JobState
) -> None:
    agent, container, entry = kill_mid_install(world, code, leftovers)
    log = world.root / "agent-2.log"
    restarted = start_agent(agent, log)
    leftovers.append(restarted)
    wait_until(
        lambda: "is still running; following it" in log.read_text(),
        timeout=120,
        message="the restarted agent did not follow the procedure",
    )
    (agent.marker_dir / "go").touch()  # only now, with the new agent watching, may the script end
    assert restarted.wait(timeout=180) == 0, log.read_text()

    [(_, _, _, state, return_code, message)] = jobs(world, container)
    assert (state, return_code) == (final, code)
    assert message == "installing\ninstalled\n"
    assert installed(world, agent) == (["Slow 0"] if code == 0 else [])
    assert not is_running(record_of(entry)) and JobJournal(agent.state_dir).current() is None


def test_a_procedure_that_ended_while_the_agent_was_down_is_reported_on_restart(
    world: World, leftovers: list[subprocess.Popen[bytes] | JournalEntry]
) -> None:
    agent, container, entry = kill_mid_install(world, 3, leftovers)
    job_dir = agent.state_dir / "jobs" / str(entry.job_id)
    (agent.marker_dir / "go").touch()
    wait_until(
        lambda: (job_dir / EXIT_CODE_FILE).exists() and not is_running(record_of(entry)),
        timeout=120,
        message="the install script did not end",
    )

    run = agent.run(timeout=180)

    assert run.returncode == 0, run.stderr
    [(_, _, _, state, return_code, message)] = jobs(world, container)
    assert (state, return_code, message) == (JobState.FAILED, 3, "installing\ninstalled\n")
    assert "ended while the agent was away, with code 3" in run.stderr
    assert not job_dir.exists()


def test_without_an_exit_code_or_the_process_the_job_fails_with_the_reason(
    world: World, leftovers: list[subprocess.Popen[bytes] | JournalEntry]
) -> None:
    agent, container, entry = kill_mid_install(world, 0, leftovers)
    job_dir = agent.state_dir / "jobs" / str(entry.job_id)
    kill_group(entry)  # the script dies too, as with systemd's final SIGKILL or a power cut
    wait_until(lambda: not is_running(record_of(entry)), timeout=60, message="the wrapper did not die")
    assert (job_dir / STARTED_FILE).exists() and not (job_dir / EXIT_CODE_FILE).exists()

    run = agent.run(timeout=180)

    assert run.returncode == 0, run.stderr
    [(_, _, _, state, return_code, message)] = jobs(world, container)
    assert (state, return_code) == (JobState.FAILED, ReturnCode.AGENT_ERROR)
    assert message.startswith("agent restarted while the job was executing; result unknown: ")
    assert killed(entry.pid) in message and message.rstrip().endswith("installing")
    assert installed(world, agent) == []
    assert not (agent.marker_dir / "go").exists()  # and it was not run again
