"""An agent that dies mid-job, for the crash-recovery tests: `crash_during(...)` starts a helper process
that runs one job with the agent's own JobExecutor (journal, wrapper, go) against a server that accepts
every report, and kills it with SIGKILL once its procedure has started. The procedure lives on, an
orphan, exactly as after a crash of the agent; the journal and the job's directory are as it left them.

`python -m tests.agentcrash STATE_DIR JOB_JSON TIMEOUT` is the helper process itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from oco.agent.config import AgentConfig
from oco.agent.jobs import JobExecutor, JobOrder
from oco.agent.runner import ProcessRecord
from oco.agent.state import JobJournal, JournalEntry, Phase
from oco.agent.wrapper import STARTED_FILE
from oco.domain.states import SequenceMode
from tests.support import wait_until

REPO = Path(__file__).resolve().parents[1]


class AcceptingClient:
    """Stands in for AgentClient in the helper process: every report is accepted, nothing is sent."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config

    def call(self, _method: str, _data: dict[str, Any]) -> dict[str, Any]:
        return {"job-succeeded": True}


def order(job_id: int, procedure: str, container_id: int = 1, **post_actions: int | None) -> JobOrder:
    """A job without payload, as the server would hand it out."""
    return JobOrder(
        id=job_id,
        container_id=container_id,
        package_id=job_id,
        download=False,
        procedure=procedure,
        sequence_mode=SequenceMode.IGNORE_FAILED,
        restart=post_actions.get("restart"),
        shutdown=post_actions.get("shutdown"),
        exit=post_actions.get("exit"),
    )


def crash_during(
    state_dir: Path,
    job: JobOrder,
    timeout_s: int = 120,
    env: Mapping[str, str] | None = None,
) -> JournalEntry:
    """Run `job` in a helper agent process and SIGKILL that process once the procedure has started;
    returns the journal entry the dead agent left (phase executing, the wrapper's pid and start mark)."""
    helper = subprocess.Popen(
        [sys.executable, "-m", "tests.agentcrash", str(state_dir), json.dumps(_wire(job)), str(timeout_s)],
        cwd=REPO,
        env=dict(env) if env is not None else None,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    journal = JobJournal(state_dir)
    started = state_dir / "jobs" / str(job.id) / STARTED_FILE

    def procedure_started() -> JournalEntry | None:
        if helper.poll() is not None:
            raise AssertionError(f"the helper agent ended by itself with status {helper.returncode}")
        entry = journal.current()
        return entry if entry and entry.pid and started.exists() else None

    try:
        entry = wait_until(procedure_started, timeout=60, message="the helper agent started no procedure")
    finally:
        helper.kill()
        helper.wait()
    assert entry.phase == Phase.EXECUTING and entry.process_start
    return entry


def record_of(entry: JournalEntry) -> ProcessRecord:
    assert entry.pid is not None and entry.process_start is not None
    return ProcessRecord(entry.pid, entry.process_start)


def end_orphan(entry: JournalEntry | None) -> None:
    """Kill what is left of an orphaned procedure (a failed test's): the processes of its wrapper's
    process group, found by that group's id (the wrapper's recorded pid)."""
    if entry is None or entry.pid is None:
        return
    for process in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(process.pid) == entry.pid:
                process.kill()


def kill_group(entry: JournalEntry) -> None:
    """SIGKILL the wrapper and its procedure at once, as systemd's final kill of a unit's processes does."""
    assert entry.pid is not None
    os.killpg(entry.pid, signal.SIGKILL)


def _wire(job: JobOrder) -> dict[str, Any]:
    return {
        "id": job.id,
        "container-id": job.container_id,
        "package-id": job.package_id,
        "download": job.download,
        "procedure": job.procedure,
        "sequence-mode": int(job.sequence_mode),
        "restart": job.restart,
        "shutdown": job.shutdown,
        "exit": job.exit,
    }


def main(argv: list[str]) -> None:
    state_dir, wire, timeout = Path(argv[1]), json.loads(argv[2]), int(argv[3])
    config = AgentConfig(server_url="http://127.0.0.1:1", state_dir=str(state_dir), job_timeout=timeout)
    executor = JobExecutor(
        AcceptingClient(config),  # type: ignore[arg-type]
        JobJournal(state_dir),
        threading.Event(),
        threading.Event(),
        output_interval_s=0.1,
    )
    executor.run(JobOrder.from_wire(wire))


if __name__ == "__main__":
    main(sys.argv)
