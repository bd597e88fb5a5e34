"""What a restarted agent does with its journaled job: every combination of what it can find."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from oco.agent.recovery import (
    EXIT_FILE_UNREADABLE,
    NO_PROCESS_RECORD,
    NO_REPORT,
    RUN_DIR_GONE,
    Action,
    ExitFile,
    Findings,
    decide,
    killed,
)
from oco.agent.state import Phase


def every_finding() -> Iterator[Findings]:
    for phase, report, recorded, running, run_dir, started, exit_file in itertools.product(
        Phase, *[(False, True)] * 5, ExitFile
    ):
        yield Findings(phase, report, recorded, running, run_dir, started, exit_file, pid=42)


ALL = list(every_finding())


def test_every_combination_is_covered() -> None:
    assert len(ALL) == len(Phase) * 2**5 * len(ExitFile) == 384


def test_nothing_ran_before_the_procedure_was_let_go_and_a_finished_job_is_delivered() -> None:
    for found in ALL:
        action = decide(found).action
        if found.phase in (Phase.DOWNLOADING, Phase.STARTING):
            assert action is Action.RESUME, found
        if found.phase == Phase.FINISHED:
            assert action is (Action.DELIVER if found.has_report else Action.UNKNOWN), found


def test_an_executing_job_runs_again_only_when_its_wrapper_died_before_its_go() -> None:
    for found in ALL:
        if found.phase != Phase.EXECUTING:
            continue
        never_let_go = (
            found.process_recorded
            and not found.process_running
            and found.run_dir_exists
            and not found.started
            and found.exit_file == ExitFile.ABSENT
        )
        assert (decide(found).action is Action.RESUME) == never_let_go, found


def test_the_reason_names_what_is_missing() -> None:
    for found in ALL:
        decision = decide(found)
        if decision.action is not Action.UNKNOWN:
            continue
        if found.phase == Phase.FINISHED:
            expected = NO_REPORT
        elif not found.process_recorded:
            expected = NO_PROCESS_RECORD
        elif found.exit_file == ExitFile.UNREADABLE:
            expected = EXIT_FILE_UNREADABLE
        elif not found.run_dir_exists:
            expected = RUN_DIR_GONE
        else:
            expected = killed(42)
        assert decision.reason == expected, found


def test_a_job_that_may_have_run_is_never_run_again() -> None:
    for found in ALL:
        may_have_run = found.phase == Phase.FINISHED or (
            found.phase == Phase.EXECUTING
            and (
                found.started
                or found.exit_file != ExitFile.ABSENT
                or found.process_running
                or not found.process_recorded
                or not found.run_dir_exists
            )
        )
        if may_have_run:
            assert decide(found).action is not Action.RESUME, found


def test_unknown_only_without_a_code_or_a_living_process_and_always_with_a_reason() -> None:
    for found in ALL:
        decision = decide(found)
        assert bool(decision.reason) == (decision.action is Action.UNKNOWN), found
        if decision.action is Action.UNKNOWN and found.phase == Phase.EXECUTING and found.process_recorded:
            assert not found.process_running and found.exit_file != ExitFile.RECORDED, found


def test_a_living_recorded_procedure_is_always_followed_and_a_recorded_code_always_used() -> None:
    for found in ALL:
        if found.phase != Phase.EXECUTING or not found.process_recorded:
            continue
        if found.process_running:
            assert decide(found).action is Action.FOLLOW, found
        elif found.exit_file == ExitFile.RECORDED:
            assert decide(found).action is Action.COLLECT, found


def test_the_stories() -> None:
    executing = Findings(Phase.EXECUTING, process_recorded=True, pid=7)
    assert decide(Findings(Phase.DOWNLOADING)).action is Action.RESUME
    assert decide(Findings(Phase.FINISHED, has_report=True)).action is Action.DELIVER
    # Killed mid-install, the procedure lives on: follow it.
    assert (
        decide(Findings(Phase.EXECUTING, process_recorded=True, process_running=True)).action is Action.FOLLOW
    )
    # It ended while the agent was down: its recorded code.
    done = Findings(Phase.EXECUTING, process_recorded=True, started=True, exit_file=ExitFile.RECORDED)
    assert decide(done).action is Action.COLLECT
    # Killed with the agent (no code, no process): unknown, and why.
    lost = decide(Findings(Phase.EXECUTING, process_recorded=True, started=True, pid=7))
    assert lost.action is Action.UNKNOWN and "pid 7" in lost.reason and "killed" in lost.reason
    # The agent died between recording the wrapper and its go: nothing ran.
    assert decide(executing).action is Action.RESUME
    # A journal from an agent without the wrapper.
    assert decide(Findings(Phase.EXECUTING)).reason == NO_PROCESS_RECORD
