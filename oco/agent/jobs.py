"""One job, from order to final report: download, verify, unpack, run, report — journalled on disk.

Reports while a job runs (download progress, streamed output) are best effort: a lost one must not
abandon the job. The first report of a phase and the final report are not: when the server cannot be
reached they raise, the journal keeps the job, and the next cycle resumes or delivers it.

After a crash, `JobExecutor.recover` settles the journaled job before anything else: it follows a
procedure that outlived the agent, reads the exit code one left in its run directory, or (only when the
result cannot be known) reports -9999 saying why; `oco.agent.recovery.decide` makes that choice.
"""

from __future__ import annotations

import logging
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from oco.agent.client import AgentClient, ProtocolError, ServerRefused, ServerUnreachable
from oco.agent.downloader import DOWNLOADS_DIR, DownloadAbandoned, DownloadError, download_payload
from oco.agent.recovery import Action, ExitFile, Findings, decide
from oco.agent.runner import (
    CommandFailedToStart,
    ProcessRecord,
    RunResult,
    UnreadableExitCode,
    follow_procedure,
    is_running,
    read_exit_code,
    read_output,
    run_procedure,
)
from oco.agent.state import JobJournal, JournalEntry, Phase
from oco.agent.trust import JobRefused, check_signature
from oco.agent.unpack import UnsafeArchive, safe_extract
from oco.agent.wrapper import STARTED_FILE
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
JOBS_DIR = "jobs"
PAYLOAD_DIR = "payload"
"""In a job's directory `jobs/<id>/`: the unpacked payload, where the procedure runs. Beside it the
wrapper's files: output.log, started, exit-code."""
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

    @classmethod
    def from_journal(cls, data: dict[str, Any] | None) -> JobOrder | None:
        """The order as `asdict` wrote it into the journal; None when there is none or it does not fit."""
        if not data:
            return None
        try:
            payload = data.get("payload")
            return cls(
                **{
                    **data,
                    "sequence_mode": SequenceMode(data["sequence_mode"]),
                    "payload": PayloadDigest(**payload) if isinstance(payload, dict) else None,
                }
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class Recovered:
    """A job a restarted agent settled: its id, its order (when journaled, for the post-action) and the
    server's `job-succeeded`."""

    job_id: int
    order: JobOrder | None
    succeeded: bool


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
        self._stop_noted: set[int] = set()

    @property
    def state_dir(self) -> Path:
        return self.client.config.state_path

    def run(self, order: JobOrder) -> bool:
        """Download, verify, unpack, run and report one job; returns the server's `job-succeeded`.

        Raises ServerUnreachable/ProtocolError when a required report cannot be made, and
        DownloadAbandoned when the agent stops during a download (the partial file is kept).
        """
        job_dir = self.job_dir(order.id)
        workdir = job_dir / PAYLOAD_DIR
        entry = JournalEntry(order.id, order.container_id, str(Phase.DOWNLOADING))
        try:
            shutil.rmtree(job_dir, ignore_errors=True)
            workdir.mkdir(parents=True)
            admit(self.client.config.trust, order)  # before anything is downloaded
            if order.download:
                self.journal.record(entry)
                self.report(order.id, AgentJobState.DOWNLOADING, progress=0)
                self._fetch(order, workdir)
            self.report(order.id, AgentJobState.EXECUTING)
            entry = self.journal.advance(
                entry, Phase.STARTING, order=asdict(order), timeout_s=self.client.config.job_timeout
            )
            final = self._execute(order, entry, workdir)
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
            shutil.rmtree(job_dir, ignore_errors=True)
        self.journal.advance(entry, Phase.FINISHED, final)
        succeeded = self.deliver(order.id, final)
        self.journal.clear()
        return succeeded

    def recover(self) -> Recovered | None:
        """Settle what a crashed or stopped run left in the journal, never re-running a job whose procedure
        may have started; returns the settled job, or None when there was none or it will run again.

        Finished → its report is sent again. Executing → a procedure still running is followed to its
        end (output streamed, its timeout counted from its start); the exit code it recorded is reported
        as usual; -9999 only when there is no code and no process. Downloading, or the procedure never
        received its go → nothing ran: the job is handed out again (a download resumes).
        """
        entry = self.journal.current()
        if entry is None:
            return None
        job_dir = self.job_dir(entry.job_id)
        final = self._settle(entry, job_dir)
        if final is None:
            log.info("job %s: nothing ran before the agent stopped; it runs when handed out", entry.job_id)
            shutil.rmtree(job_dir, ignore_errors=True)
            self.journal.clear()
            return None
        if entry.phase != Phase.FINISHED:
            entry = self.journal.advance(entry, Phase.FINISHED, final)
            shutil.rmtree(job_dir, ignore_errors=True)
        try:
            succeeded = self.deliver(entry.job_id, final)
        except ServerRefused as exc:  # the job is gone or final: the server will not take the report
            log.warning("dropping the pending report of job %s: %s", entry.job_id, exc)
            self.journal.clear()
            return None
        self.journal.clear()
        return Recovered(entry.job_id, JobOrder.from_journal(entry.order), succeeded)

    def job_dir(self, job_id: int) -> Path:
        """The job's directory: `payload/` (where the procedure runs) and the wrapper's files."""
        return self.state_dir / JOBS_DIR / str(job_id)

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

    def _execute(self, order: JobOrder, entry: JournalEntry, workdir: Path) -> dict[str, Any]:
        timeout = self.client.config.job_timeout

        def journal_the_process(record: ProcessRecord) -> None:
            self.journal.advance(
                entry, Phase.EXECUTING, pid=record.pid, process_start=record.start, launched_at=time.time()
            )

        result = run_procedure(
            order.procedure,
            workdir,
            self.job_dir(order.id),
            timeout,
            on_output=lambda output: self._stream(order.id, output),
            output_interval_s=self.output_interval_s,
            cancel=self.abort,
            on_start=journal_the_process,
        )
        return outcome_report(result, timeout)

    # Recovery ---------------------------------------------------------------------------------

    def _settle(self, entry: JournalEntry, job_dir: Path) -> dict[str, Any] | None:
        """The final report of a journaled job (following its procedure while it runs); None: nothing ran."""
        decision = decide(self._findings(entry, job_dir))
        timeout = self._timeout(entry)
        while decision.action is Action.FOLLOW:
            result = self._follow(entry, job_dir)
            if result.timed_out or result.canceled:
                return outcome_report(result, timeout)
            decision = decide(self._findings(entry, job_dir))
        if decision.action is Action.RESUME:
            return None
        if decision.action is Action.DELIVER and entry.report is not None:
            return entry.report
        output = read_output(job_dir)
        code = self._recorded_code(job_dir) if decision.action is Action.COLLECT else None
        if code is not None:
            log.info("job %s: its procedure ended while the agent was away, with code %s", entry.job_id, code)
            return outcome_report(RunResult(code, output), timeout)
        log.warning("job %s: %s: %s", entry.job_id, RESTARTED_WHILE_EXECUTING, decision.reason)
        detail = f" (job started {entry.started_at})"
        return agent_error(f"{RESTARTED_WHILE_EXECUTING}: {decision.reason}{detail}\n{output}".rstrip("\n"))

    def _findings(self, entry: JournalEntry, job_dir: Path) -> Findings:
        record = self._record(entry)
        try:
            exit_file = ExitFile.ABSENT if read_exit_code(job_dir) is None else ExitFile.RECORDED
        except UnreadableExitCode:
            exit_file = ExitFile.UNREADABLE
        return Findings(
            phase=Phase(entry.phase),
            has_report=entry.report is not None,
            process_recorded=record is not None,
            process_running=record is not None and is_running(record),
            run_dir_exists=job_dir.is_dir(),
            started=(job_dir / STARTED_FILE).exists(),
            exit_file=exit_file,
            pid=entry.pid,
        )

    def _follow(self, entry: JournalEntry, job_dir: Path) -> RunResult:
        record = self._record(entry)
        assert record is not None  # decide() follows only a recorded process
        timeout = self._timeout(entry)
        launched = entry.launched_at if entry.launched_at is not None else time.time()
        remaining = timeout - (time.time() - launched)
        log.info(
            "job %s: its procedure (pid %s) is still running; following it (%.0f s of its %s s timeout left)",
            entry.job_id,
            record.pid,
            max(remaining, 0),
            timeout,
        )
        return follow_procedure(
            record,
            job_dir,
            remaining,
            on_output=lambda output: self._stream(entry.job_id, output),
            output_interval_s=self.output_interval_s,
            cancel=self.abort,
        )

    @staticmethod
    def _recorded_code(job_dir: Path) -> int | None:
        try:
            return read_exit_code(job_dir)
        except UnreadableExitCode:
            return None

    @staticmethod
    def _record(entry: JournalEntry) -> ProcessRecord | None:
        if entry.pid is None or not entry.process_start:
            return None
        return ProcessRecord(entry.pid, entry.process_start)

    def _timeout(self, entry: JournalEntry) -> int:
        return int(entry.timeout_s) if entry.timeout_s is not None else self.client.config.job_timeout

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
        if self.stopping.is_set() and job_id not in self._stop_noted:
            self._stop_noted.add(job_id)
            log.info(
                "stopping once job %s's procedure ends (a second stop kills it; if the agent is killed"
                " first, its next start follows the procedure or reports the exit code it recorded)",
                job_id,
            )
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
