"""What a restarted agent does with the job its journal recorded: a pure decision over what it found.

The agent gathers the facts (the journal entry, the job's run directory, whether the recorded process
still lives) into `Findings`; `decide` says what to do. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from oco.agent.state import Phase


class ExitFile(StrEnum):
    """What the run directory's exit-code file says."""

    ABSENT = "absent"
    RECORDED = "recorded"
    UNREADABLE = "unreadable"


class Action(StrEnum):
    """What to do with the recorded job."""

    RESUME = "resume"
    """Nothing ran: forget the entry; the server hands the job out again and it runs from the start."""
    DELIVER = "deliver"
    """The journal holds the final report: send it (again)."""
    COLLECT = "collect"
    """The procedure ended and recorded its exit code: report that code and its output."""
    FOLLOW = "follow"
    """The procedure still runs: wait for it (streaming its output, within its timeout), then decide again."""
    UNKNOWN = "unknown"
    """The result cannot be known: report -9999 with `Decision.reason`."""


@dataclass(frozen=True, slots=True)
class Findings:
    """What a restarted agent knows about its recorded job."""

    phase: Phase
    has_report: bool = False
    """The journal holds a final report (phase finished)."""
    process_recorded: bool = False
    """The journal holds the wrapper's pid and start mark."""
    process_running: bool = False
    """A process with that pid and that start mark is alive."""
    run_dir_exists: bool = True
    started: bool = False
    """The wrapper's `started` file exists: it received the go and began the procedure."""
    exit_file: ExitFile = ExitFile.ABSENT
    pid: int | None = None
    """For the messages only."""


@dataclass(frozen=True, slots=True)
class Decision:
    """An action, and for UNKNOWN the reason the report gives."""

    action: Action
    reason: str = ""


NO_REPORT = "the journal says the job finished but holds no report"
NO_PROCESS_RECORD = (
    "the journal holds no process record (an agent version without the exit-code wrapper ran it)"
)
RUN_DIR_GONE = "the job's directory, where the procedure records its exit code, is gone"
EXIT_FILE_UNREADABLE = "the procedure's exit-code file is unreadable"


def killed(pid: int | None) -> str:
    """The reason for a procedure that ended without recording its exit code."""
    return (
        f"the procedure (wrapper pid {pid}) ended without recording an exit code: it was killed before it"
        " finished (with the agent's whole service, by a shutdown, or by the out-of-memory killer)"
    )


def decide(found: Findings) -> Decision:
    """What to do with a journaled job after a restart; UNKNOWN only when the result cannot be known.

    A job is never run again once its procedure may have started: RESUME only when the journal was
    written before the launch, or the wrapper never received its go (no `started` file, no exit code,
    no process).
    """
    if found.phase in (Phase.DOWNLOADING, Phase.STARTING):
        return Decision(Action.RESUME)
    if found.phase == Phase.FINISHED:
        return Decision(Action.DELIVER) if found.has_report else Decision(Action.UNKNOWN, NO_REPORT)
    if not found.process_recorded:
        return Decision(Action.UNKNOWN, NO_PROCESS_RECORD)
    if found.process_running:
        return Decision(Action.FOLLOW)
    if found.exit_file == ExitFile.RECORDED:
        return Decision(Action.COLLECT)
    if found.exit_file == ExitFile.UNREADABLE:
        return Decision(Action.UNKNOWN, EXIT_FILE_UNREADABLE)
    if not found.run_dir_exists:
        return Decision(Action.UNKNOWN, RUN_DIR_GONE)
    if not found.started:
        return Decision(Action.RESUME)
    return Decision(Action.UNKNOWN, killed(found.pid))
