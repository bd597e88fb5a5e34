"""One job, from order to final report: download, verify, unpack, run, report — journalled on disk.

Reports while a job runs (download progress, streamed output) are best effort: a lost one must not
abandon the job. The first report of a phase and the final report are not: when the server cannot be
reached they raise, the journal keeps the job, and the next cycle resumes or delivers it.
"""

from __future__ import annotations

import logging
import shutil
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oco.agent.client import AgentClient, ProtocolError, ServerRefused, ServerUnreachable
from oco.agent.downloader import DOWNLOADS_DIR, DownloadAbandoned, DownloadError, download_payload
from oco.agent.runner import CommandFailedToStart, RunResult, run_procedure
from oco.agent.state import JobJournal, JournalEntry, Phase
from oco.agent.trust import JobRefused, check_signature
from oco.agent.unpack import UnsafeArchive, safe_extract
from oco.domain.dispatch import WIRE_ACTION, PayloadDigest, payload_from_wire
from oco.domain.protocol import AgentMethod
from oco.domain.signing import WIRE_SIGNATURE, JobClaim, TrustPolicy
from oco.domain.states import (
    DOWNLOAD_PROGRESS_UNPACKING,
    AgentJobState,
    PostAction,
    ReturnCode,
    SequenceMode,
)

log = logging.getLogger("oco.agent")

SHELL_COULD_NOT_RUN = (9009,) if sys.platform == "win32" else (126, 127)
"""Exit codes of the shell itself for "not executable" / "command not found" (cmd: 9009)."""
RESTARTED_WHILE_EXECUTING = "agent restarted while the job was executing; result unknown"
STOPPED_WHILE_EXECUTING = "agent stopped while the job was executing; process tree killed"
EXPECTED_FAILURES = (DownloadError, UnsafeArchive, CommandFailedToStart, JobRefused)
"""Agent-side failures with a clear message of their own: logged without a stack trace."""


@dataclass(frozen=True, slots=True)
class JobOrder:
    """One entry of `software-jobs` in the answer to `oco.agent.hello`."""

    id: int
    container_id: int
    package_id: int
    download: bool
    procedure: str
    sequence_mode: SequenceMode
    restart: int | None
    shutdown: int | None
    exit: int | None
    action: str | None = None
    """Our server's extra keys (OCO's server sends none of them): the job's action, its payload's
    SHA-256 and size, and its package's publisher signature (the raw value, checked by the agent)."""
    payload: PayloadDigest | None = None
    signature: Any = None

    @classmethod
    def from_wire(cls, entry: Any) -> JobOrder:
        """Parse a job as the server sends it; ProtocolError names what is wrong."""
        try:
            return cls(
                id=int(entry["id"]),
                container_id=int(entry["container-id"]),
                package_id=int(entry["package-id"]),
                download=bool(entry["download"]),
                procedure=str(entry["procedure"]),
                sequence_mode=SequenceMode(int(entry.get("sequence-mode") or 0)),
                restart=_minutes(entry.get(PostAction.RESTART.text)),
                shutdown=_minutes(entry.get(PostAction.SHUTDOWN.text)),
                exit=_minutes(entry.get(PostAction.EXIT_AGENT.text)),
                action=entry.get(WIRE_ACTION) if isinstance(entry.get(WIRE_ACTION), str) else None,
                payload=payload_from_wire(entry),
                signature=entry.get(WIRE_SIGNATURE),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProtocolError(f"malformed job in software-jobs: {entry!r} ({exc!r})") from None

    def claim(self) -> JobClaim:
        """What the job asks the agent to do, for the check of its signature."""
        actions = {PostAction.RESTART: self.restart, PostAction.SHUTDOWN: self.shutdown}
        actions[PostAction.EXIT_AGENT] = self.exit
        return JobClaim(
            action=self.action,
            procedure=self.procedure,
            download=self.download,
            payload_sha256=self.payload.sha256 if self.payload else None,
            post_actions=frozenset(action for action, minutes in actions.items() if minutes is not None),
            signature=self.signature,
        )


def _minutes(value: Any) -> int | None:
    return None if value is None else int(value)


def admit(policy: TrustPolicy, order: JobOrder) -> None:
    """Raise JobRefused for a job that must not even be downloaded: not signed as `policy` requires,
    or with a payload the job names no digest for (it could not be verified)."""
    check_signature(policy, order.claim())
    if order.download:
        expected_payload(order)


def expected_payload(order: JobOrder) -> PayloadDigest:
    """The SHA-256 and size the download must have, from the (server-signed) job."""
    if order.payload is None:
        raise JobRefused("the job names no payload SHA-256 and size: its download could not be verified")
    return order.payload


def final_report(state: AgentJobState, return_code: int | None, message: str) -> dict[str, Any]:
    """The `data` of a final `oco.agent.update_job_state`, without the job id."""
    return {"state": int(state), "return-code": return_code, "message": message}


def agent_error(message: str) -> dict[str, Any]:
    """A final report for an agent-side failure: state -1, return code -9999, and what went wrong."""
    return final_report(AgentJobState.ERROR, int(ReturnCode.AGENT_ERROR), message)


class JobExecutor:
    """Runs jobs one at a time for an agent; `stopping` lets a download stop, `abort` kills a procedure."""

    def __init__(
        self,
        client: AgentClient,
        journal: JobJournal,
        stopping: threading.Event,
        abort: threading.Event,
        output_interval_s: float,
    ) -> None:
        self.client = client
        self.journal = journal
        self.stopping = stopping
        self.abort = abort
        self.output_interval_s = output_interval_s

    @property
    def state_dir(self) -> Path:
        return self.client.config.state_path

    def run(self, order: JobOrder) -> bool:
        """Download, verify, unpack, run and report one job; returns the server's `job-succeeded`.

        Raises ServerUnreachable/ProtocolError when a required report cannot be made, and
        DownloadAbandoned when the agent stops during a download (the partial file is kept).
        """
        workdir = self.state_dir / "jobs" / str(order.id)
        entry = JournalEntry(order.id, order.container_id, str(Phase.DOWNLOADING))
        try:
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir(parents=True)
            admit(self.client.config.trust, order)  # before anything is downloaded
            if order.download:
                self.journal.record(entry)
                self.report(order.id, AgentJobState.DOWNLOADING, progress=0)
                self._fetch(order, workdir)
            self.report(order.id, AgentJobState.EXECUTING)
            entry = self.journal.advance(entry, Phase.EXECUTING)
            final = self._execute(order, workdir)
        except (ServerUnreachable, ProtocolError, DownloadAbandoned):
            raise
        except Exception as exc:  # any agent-side failure becomes -9999 with its reason
            log.warning(
                "job %s failed in the agent: %s",
                order.id,
                exc,
                exc_info=not isinstance(exc, EXPECTED_FAILURES),
            )
            final = agent_error(str(exc) if isinstance(exc, JobRefused) else f"agent error: {exc}")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        self.journal.advance(entry, Phase.FINISHED, final)
        succeeded = self.deliver(order.id, final)
        self.journal.clear()
        return succeeded

    def recover(self) -> None:
        """Deliver what a crashed or stopped run left in the journal, never re-running a half-done job.

        Executing → reported failed (-9999, result unknown); finished → its report is sent again;
        downloading → nothing ran: the job is handed out again and its download resumes.
        """
        entry = self.journal.current()
        if entry is None:
            return
        if entry.phase == Phase.DOWNLOADING:
            log.info("job %s was downloading when the agent stopped; the download will resume", entry.job_id)
            self.journal.clear()
            return
        if entry.phase == Phase.EXECUTING:
            report = agent_error(f"{RESTARTED_WHILE_EXECUTING} (job started {entry.started_at})")
        else:
            report = entry.report or agent_error(RESTARTED_WHILE_EXECUTING)
        try:
            self.deliver(entry.job_id, report)
        except ServerRefused as exc:  # the job is gone or final: the server will not take the report
            log.warning("dropping the pending report of job %s: %s", entry.job_id, exc)
        self.journal.clear()

    # Phases -----------------------------------------------------------------------------------

    def _fetch(self, order: JobOrder, workdir: Path) -> None:
        archive = download_payload(
            self.client,
            order.package_id,
            self.state_dir / DOWNLOADS_DIR,
            lambda percent: self._progress(order.id, percent),
            should_stop=self.stopping.is_set,
            expected=expected_payload(order),
        )
        try:
            self.report(order.id, AgentJobState.DOWNLOADING, progress=DOWNLOAD_PROGRESS_UNPACKING)
            safe_extract(archive, workdir)
        finally:
            archive.unlink(missing_ok=True)

    def _execute(self, order: JobOrder, workdir: Path) -> dict[str, Any]:
        timeout = self.client.config.job_timeout
        result = run_procedure(
            order.procedure,
            workdir,
            timeout,
            on_output=lambda output: self._stream(order.id, output),
            output_interval_s=self.output_interval_s,
            cancel=self.abort,
        )
        return outcome_report(result, timeout)

    # Reports ----------------------------------------------------------------------------------

    def report(
        self,
        job_id: int,
        state: AgentJobState,
        code: int | None = None,
        message: str = "",
        progress: int | None = None,
    ) -> bool:
        """Send `oco.agent.update_job_state`; returns the server's `job-succeeded`."""
        data: dict[str, Any] = {
            "job-id": job_id,
            "state": int(state),
            "return-code": code,
            "message": message,
        }
        if progress is not None:
            data["download-progress"] = progress
        return bool(self.client.call(AgentMethod.UPDATE_JOB_STATE, data).get("job-succeeded"))

    def deliver(self, job_id: int, final: dict[str, Any]) -> bool:
        """Send a final report built by `final_report`/`agent_error`."""
        return self.report(job_id, AgentJobState(final["state"]), final["return-code"], final["message"])

    def _progress(self, job_id: int, percent: int) -> None:
        try:
            self.report(job_id, AgentJobState.DOWNLOADING, progress=percent)
        except (ServerUnreachable, ProtocolError) as exc:
            log.warning("job %s: could not report download progress (%s)", job_id, exc)

    def _stream(self, job_id: int, output: str) -> None:
        """Output while the procedure runs is best effort: a lost report must not abandon the process."""
        try:
            self.report(job_id, AgentJobState.EXECUTING, None, output)
        except (ServerUnreachable, ProtocolError) as exc:
            log.warning("job %s: could not stream output (%s); the procedure keeps running", job_id, exc)


def outcome_report(result: RunResult, timeout_s: int) -> dict[str, Any]:
    """The final report for a finished, timed-out, canceled or unstartable procedure."""
    if result.timed_out:
        return agent_error(f"timed out after {timeout_s} s, process tree killed\n{result.output}")
    if result.canceled:
        return agent_error(f"{STOPPED_WHILE_EXECUTING}\n{result.output}")
    if result.exit_code in SHELL_COULD_NOT_RUN:
        return agent_error(
            f"the command could not be executed (shell exit code {result.exit_code}):\n{result.output}"
        )
    return final_report(AgentJobState.FINISHED, result.exit_code, result.output)
