"""The agent's cycle: check in, inventory when asked, run the jobs in order, report, post-actions."""

from __future__ import annotations

import logging
import random
import shutil
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oco.agent.client import AgentClient, ProtocolError, ServerUnreachable
from oco.agent.config import AgentConfig, load_config
from oco.agent.downloader import download_payload
from oco.agent.inventory import hello_data, inventory
from oco.agent.power import PowerBackend, RecordingPowerBackend, SystemPowerBackend
from oco.agent.runner import run_procedure
from oco.agent.state import JobJournal, JournalEntry
from oco.agent.unpack import safe_extract
from oco.domain.protocol import AgentMethod
from oco.domain.states import DOWNLOAD_PROGRESS_UNPACKING, AgentJobState, ReturnCode, SequenceMode

log = logging.getLogger("oco.agent")
JITTER = 0.1
BACKOFF_CAP_S = 900
SHELL_COULD_NOT_RUN = (126, 127)
"""POSIX shells' exit codes for "not executable" and "command not found"."""
RESTARTED_WHILE_EXECUTING = "agent restarted while the job was executing; its result is unknown"


@dataclass(frozen=True, slots=True)
class JobOrder:
    """One entry of `software-jobs`."""

    id: int
    container_id: int
    package_id: int
    download: bool
    procedure: str
    sequence_mode: SequenceMode
    restart: int | None
    shutdown: int | None
    exit: int | None

    @classmethod
    def from_wire(cls, entry: dict[str, Any]) -> JobOrder:
        return cls(
            id=int(entry["id"]),
            container_id=int(entry["container-id"]),
            package_id=int(entry["package-id"]),
            download=bool(entry["download"]),
            procedure=str(entry["procedure"]),
            sequence_mode=SequenceMode(int(entry.get("sequence-mode") or 0)),
            restart=entry.get("restart"),
            shutdown=entry.get("shutdown"),
            exit=entry.get("exit"),
        )


class Agent:
    """One managed computer's agent; `stop` (SIGTERM) ends it after the current step."""

    def __init__(self, config_path: Path, power: PowerBackend | None = None) -> None:
        self.config_path = config_path
        config = load_config(config_path)
        self.client = AgentClient(config, config_path)
        self.power = power or _power_backend(config)
        self.journal = JobJournal(config.state_path)
        self.stopping = threading.Event()
        self.exit_requested = False

    @property
    def config(self) -> AgentConfig:
        return self.client.config

    def stop(self, *_args: object) -> None:
        self.stopping.set()

    # The cycle --------------------------------------------------------------------------------

    def run_once(self) -> None:
        """One check-in: deliver what a previous run left, then run the jobs handed out."""
        self._recover()
        params = self.client.call(AgentMethod.HELLO, hello_data())
        if params.get("update"):
            self.client.call(AgentMethod.UPDATE, inventory(self.power.logged_in_users()))
        aborted: set[int] = set()
        for entry in params.get("software-jobs", []):
            order = JobOrder.from_wire(entry)
            if order.container_id in aborted or self.stopping.is_set() or self.exit_requested:
                continue
            succeeded = self.run_job(order)
            if not succeeded and order.sequence_mode is SequenceMode.ABORT_AFTER_FAILED:
                aborted.add(order.container_id)  # the server fails the rest with -8888
            if succeeded and self._post_action(order):
                break

    def run_forever(self) -> int:
        """Poll until stopped; back off exponentially while the server cannot be reached."""
        failures = 0
        while not self.stopping.is_set() and not self.exit_requested:
            try:
                self.run_once()
                failures = 0
                delay = self.config.query_interval
            except (ServerUnreachable, ProtocolError) as exc:
                failures += 1
                delay = min(BACKOFF_CAP_S, self.config.query_interval * 2 ** min(failures, 10))
                log.warning("check-in failed (%s); next try in %.0f s", exc, delay)
            self.stopping.wait(delay * random.uniform(1 - JITTER, 1 + JITTER))
        self.client.close()
        return 0

    # Jobs -------------------------------------------------------------------------------------

    def run_job(self, order: JobOrder) -> bool:
        """Download, unpack, run and report one job; returns the server's `job-succeeded`."""
        workdir = self.config.state_path / "jobs" / str(order.id)
        downloads = self.config.state_path / "downloads"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        try:
            if order.download:
                self.journal.record(JournalEntry(order.id, order.container_id, "downloading"))
                self._report(order.id, AgentJobState.DOWNLOADING, None, "", 0)
                archive = download_payload(
                    self.client,
                    order.package_id,
                    downloads,
                    lambda percent: self._report(order.id, AgentJobState.DOWNLOADING, None, "", percent),
                )
                self._report(order.id, AgentJobState.DOWNLOADING, None, "", DOWNLOAD_PROGRESS_UNPACKING)
                safe_extract(archive, workdir)
                archive.unlink(missing_ok=True)
            final = self._execute(order, workdir)
        except (ServerUnreachable, ProtocolError):
            raise
        except Exception as exc:
            log.exception("job %s failed in the agent", order.id)
            final = self._final(AgentJobState.ERROR, int(ReturnCode.AGENT_ERROR), f"agent error: {exc}")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        self.journal.record(JournalEntry(order.id, order.container_id, "finished", final))
        succeeded = self._deliver(order.id, final)
        self.journal.clear()
        return succeeded

    def _execute(self, order: JobOrder, workdir: Path) -> dict[str, Any]:
        self.journal.record(JournalEntry(order.id, order.container_id, "executing"))
        self._report(order.id, AgentJobState.EXECUTING, None, "")
        result = run_procedure(
            order.procedure,
            workdir,
            self.config.job_timeout,
            on_output=lambda out: self._stream(order.id, out),
        )
        if result.timed_out:
            message = (
                f"timed out after {self.config.job_timeout} s: "
                "the procedure and all its processes were killed\n"
                f"{result.output}"
            )
            return self._final(AgentJobState.ERROR, int(ReturnCode.AGENT_ERROR), message)
        if result.exit_code in SHELL_COULD_NOT_RUN:
            message = (
                f"the command could not be executed (shell exit code {result.exit_code}):\n{result.output}"
            )
            return self._final(AgentJobState.ERROR, int(ReturnCode.AGENT_ERROR), message)
        return self._final(AgentJobState.FINISHED, result.exit_code, result.output)

    def _stream(self, job_id: int, output: str) -> None:
        """Output while the procedure runs is best effort: a lost report must not abandon the process."""
        try:
            self._report(job_id, AgentJobState.EXECUTING, None, output)
        except (ServerUnreachable, ProtocolError) as exc:
            log.warning("job %s: could not stream output (%s); the procedure keeps running", job_id, exc)

    @staticmethod
    def _final(state: AgentJobState, code: int | None, message: str) -> dict[str, Any]:
        return {"state": int(state), "return-code": code, "message": message}

    def _report(
        self, job_id: int, state: AgentJobState, code: int | None, message: str, progress: int | None = None
    ) -> bool:
        data: dict[str, Any] = {
            "job-id": job_id,
            "state": int(state),
            "return-code": code,
            "message": message,
        }
        if progress is not None:
            data["download-progress"] = progress
        return bool(self.client.call(AgentMethod.UPDATE_JOB_STATE, data).get("job-succeeded"))

    def _deliver(self, job_id: int, final: dict[str, Any]) -> bool:
        return self._report(job_id, AgentJobState(final["state"]), final["return-code"], final["message"])

    def _recover(self) -> None:
        """Report what a crashed or stopped run left behind, never re-running a half-done install."""
        entry = self.journal.current()
        if entry is None:
            return
        if entry.phase == "finished" and entry.report is not None:
            self._deliver(entry.job_id, entry.report)
        elif entry.phase == "executing":
            final = self._final(AgentJobState.ERROR, int(ReturnCode.AGENT_ERROR), RESTARTED_WHILE_EXECUTING)
            self._deliver(entry.job_id, final)
        # "downloading": nothing ran; the job comes again and the download resumes from its partial file.
        self.journal.clear()

    # Post-actions -----------------------------------------------------------------------------

    def _post_action(self, order: JobOrder) -> bool:
        """Restart, shut down or exit after a successful job; True when no further job should run now."""
        if order.exit is not None:
            if order.exit >= 0:
                self.exit_requested = True
            return self.exit_requested
        for minutes, action, verb in (
            (order.restart, self.power.restart, "restart"),
            (order.shutdown, self.power.shutdown, "shut down"),
        ):
            if minutes is None:
                continue
            if minutes < 0:
                return False
            self._wait_for_users(minutes, verb)
            if self.stopping.is_set():
                return True
            action()
            return True
        return False

    def _wait_for_users(self, minutes: int, verb: str) -> None:
        users = self.power.logged_in_users()
        if not users or minutes == 0:
            return
        self.power.notify(
            f"This computer will {verb} in {minutes} minute(s) to finish a software installation."
        )
        self.stopping.wait(minutes * self.config.post_action_minute_seconds)


def _power_backend(config: AgentConfig) -> PowerBackend:
    if config.power_backend == "record":
        return RecordingPowerBackend(config.state_path / "power_actions.jsonl", config.recorded_users)
    return SystemPowerBackend()


def install_signal_handlers(stop: Callable[..., None]) -> None:
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
