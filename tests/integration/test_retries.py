"""Retries on every database: a -9999 report sets the job waiting for its retry in the report's own
transaction, the check-in hands it out only from its time, its attempts are kept, the -8888 cascade and a
rollout's halt rule wait for the final outcome; and the phases plan, windows and retries of an existing
container change with an edit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from oco.db.models import AuditLog, Job, JobAttempt
from oco.domain.dispatch import Hold
from oco.domain.errors import InvalidRetries, InvalidRollout, InvalidWindow
from oco.domain.phases import RolloutEdit, RolloutRules, parse_phases
from oco.domain.retries import RetryPolicy
from oco.domain.states import AgentJobState, JobState, ReturnCode, SequenceMode
from oco.domain.windows import WindowZone, parse_windows
from oco.errors import InvalidInput
from oco.services import containers, deployments, jobs, rollouts
from oco.services.containers import ContainerEdit
from oco.services.deployments import ContainerOptions, DeploymentRequest
from oco.services.runtime import Runtime
from oco.services.targets import Targets
from tests.conftest import Clock
from tests.integration.test_deployments import add_computers, add_package, report
from tests.integration.test_rollouts import _handed_out, _jobs

AGENT_ERROR = int(ReturnCode.AGENT_ERROR)


def _deploy(rt: Runtime, computer_ids: list[int], package_ids: list[int], **options: Any) -> int:
    request = DeploymentRequest(
        ContainerOptions(name=options.pop("name", "Retried"), **options),
        Targets(computers=computer_ids, packages=package_ids),
    )
    return deployments.create_deployment(rt, request, "admin").id


def _error(rt: Runtime, computer_id: int, job_id: int) -> bool:
    return report(rt, computer_id, job_id, AgentJobState.ERROR, AGENT_ERROR)


def test_a_minus_9999_job_is_retried_after_its_delay_and_its_attempts_are_kept(
    rt: Runtime, clock: Clock
) -> None:
    [pc] = add_computers(rt, "pc1")
    container = _deploy(rt, [pc], [add_package(rt)], retry=RetryPolicy(2, 600))
    [job] = _jobs(rt, container)

    report(rt, pc, job.id, AgentJobState.DOWNLOADING, None)
    assert _error(rt, pc, job.id) is False
    [waiting] = _jobs(rt, container)
    assert waiting.state is JobState.WAITING and waiting.attempt == 2
    assert waiting.return_code is None and waiting.not_before == clock.current + timedelta(minutes=10)
    assert waiting.waiting is not None and waiting.waiting.hold is Hold.RETRY
    assert (waiting.waiting.retry, waiting.waiting.retries) == (1, 2)
    assert _handed_out(rt, pc) == []

    clock.advance(minutes=10)
    assert _handed_out(rt, pc) == [job.id]
    _error(rt, pc, job.id)
    clock.advance(minutes=10)
    report(rt, pc, job.id, AgentJobState.FINISHED, 0)

    [done] = containers.container_detail(rt, container).jobs
    assert done.state is JobState.SUCCEEDED and done.attempt == 3
    assert [(a.attempt, a.state, a.return_code) for a in done.attempts] == [
        (1, JobState.FAILED, AGENT_ERROR),
        (2, JobState.FAILED, AGENT_ERROR),
    ]
    assert done.attempts[0].started is not None and done.attempts[0].message == "output"


def test_other_codes_are_never_retried_and_the_last_attempt_is_final(rt: Runtime, clock: Clock) -> None:
    pc1, pc2 = add_computers(rt, "pc1", "pc2")
    container = _deploy(rt, [pc1, pc2], [add_package(rt)], retry=RetryPolicy(1, 0))
    first, second = _jobs(rt, container)

    report(rt, first.computer_id, first.id, AgentJobState.FINISHED, 3)
    _error(rt, second.computer_id, second.id)
    assert _error(rt, second.computer_id, second.id) is False  # the retry failed too: final

    by_id = {job.id: job for job in containers.container_detail(rt, container).jobs}
    assert (by_id[first.id].state, by_id[first.id].return_code, by_id[first.id].attempts) == (
        JobState.FAILED,
        3,
        [],
    )
    assert (by_id[second.id].state, by_id[second.id].return_code) == (JobState.FAILED, AGENT_ERROR)
    assert len(by_id[second.id].attempts) == 1


def test_the_cascade_waits_for_the_last_attempt_and_later_jobs_wait_behind_the_retry(
    rt: Runtime, clock: Clock
) -> None:
    [pc] = add_computers(rt, "pc1")
    first, second = add_package(rt, "Runtime"), add_package(rt, "App")
    container = _deploy(
        rt, [pc], [first, second], sequence_mode=SequenceMode.ABORT_AFTER_FAILED, retry=RetryPolicy(1, 300)
    )
    runtime_job, app_job = sorted(_jobs(rt, container), key=lambda job: job.sequence)
    assert _handed_out(rt, pc) == [runtime_job.id, app_job.id]

    _error(rt, pc, runtime_job.id)
    rows = {job.id: job for job in _jobs(rt, container)}
    assert {i: job.state for i, job in rows.items()} == {
        runtime_job.id: JobState.WAITING,
        app_job.id: JobState.WAITING,
    }  # no -8888 yet
    behind = rows[app_job.id].waiting
    assert behind is not None and behind.hold is Hold.BEHIND_RETRY
    assert behind.since == clock.current + timedelta(minutes=5)
    assert _handed_out(rt, pc) == []  # the app waits behind the retried runtime
    clock.advance(minutes=5)
    assert _handed_out(rt, pc) == [runtime_job.id, app_job.id]

    _error(rt, pc, runtime_job.id)  # the retry failed as well: now the cascade aborts the app
    final = {job.id: (job.state, job.return_code) for job in _jobs(rt, container)}
    assert final == {
        runtime_job.id: (JobState.FAILED, AGENT_ERROR),
        app_job.id: (JobState.FAILED, int(ReturnCode.ABORTED_AFTER_FAILED_JOB)),
    }


def test_a_retried_failure_does_not_count_for_the_halt_rule(rt: Runtime, clock: Clock) -> None:
    [pc] = add_computers(rt, "pc1")
    container = _deploy(
        rt,
        [pc],
        [add_package(rt)],
        rollout=RolloutRules(halt_failure_rate=0, halt_min_finished=1),
        retry=RetryPolicy(1, 0),
    )
    [job] = _jobs(rt, container)
    _error(rt, pc, job.id)
    assert not rollouts.container_summary(rt, container).halted  # the job waits for its retry
    _error(rt, pc, job.id)
    assert rollouts.container_summary(rt, container).halted  # its final outcome halts the rollout


def test_renewing_a_job_gives_it_the_retries_again(rt: Runtime, clock: Clock) -> None:
    [pc] = add_computers(rt, "pc1")
    container = _deploy(rt, [pc], [add_package(rt)], retry=RetryPolicy(1, 0))
    [job] = _jobs(rt, container)
    _error(rt, pc, job.id)
    _error(rt, pc, job.id)
    containers.renew_failed(rt, container, "admin")
    _error(rt, pc, job.id)
    [renewed] = _jobs(rt, container)
    assert renewed.state is JobState.WAITING and renewed.attempt == 2


def test_the_preview_states_the_retries_and_bad_ones_are_refused(rt: Runtime) -> None:
    [pc] = add_computers(rt, "pc1")
    package = add_package(rt)
    request = DeploymentRequest(
        ContainerOptions(name="Retried", retry=RetryPolicy(3, 600)),
        Targets(computers=[pc], packages=[package]),
    )
    assert (
        "retried up to 3 times, 10m after each failure" in deployments.preview_deployment(rt, request).retries
    )
    with pytest.raises(InvalidRetries):
        _deploy(rt, [pc], [package], retry=RetryPolicy(11, 0))


def test_retries_and_windows_change_with_an_edit_and_are_audited(rt: Runtime) -> None:
    [pc] = add_computers(rt, "pc1")
    container = _deploy(rt, [pc], [add_package(rt)])
    windows = parse_windows(["Mon-Fri 18:00-06:00"], WindowZone.SERVER)
    edited = containers.edit_container(
        rt, container, ContainerEdit(retries=2, retry_delay_seconds=900, windows=windows), "admin"
    )
    assert (edited.retries, edited.retry_delay, edited.windows) == (2, "15m", ["Mon-Fri 18:00-06:00"])
    assert edited.window_zone is WindowZone.SERVER
    rezoned = containers.edit_container(
        rt, container, ContainerEdit(window_zone=WindowZone.COMPUTER), "admin"
    )
    assert rezoned.window_zone is WindowZone.COMPUTER and rezoned.windows == ["Mon-Fri 18:00-06:00"]
    cleared = containers.edit_container(rt, container, ContainerEdit(clear_windows=True), "admin")
    assert cleared.windows == []
    with pytest.raises(InvalidWindow):
        containers.edit_container(
            rt, container, ContainerEdit(windows=parse_windows(["Mon 25:00-26:00"])), "admin"
        )
    with pytest.raises(InvalidRetries):
        containers.edit_container(rt, container, ContainerEdit(retries=-1), "admin")
    with rt.reading() as session:
        details = [
            entry.details
            for entry in session.scalars(
                select(AuditLog).where(AuditLog.action == "container.edit").order_by(AuditLog.id)
            )
        ]
    assert details[0]["retries"] == [0, 2] and details[0]["retry_delay"] == ["0s", "15m"]
    assert details[0]["windows"][0] is None and details[2]["windows"][1] is None


def test_a_new_phases_plan_moves_only_the_waiting_jobs(rt: Runtime, clock: Clock) -> None:
    pcs = add_computers(rt, *(f"pc{n:02}" for n in range(10)))
    container = _deploy(rt, pcs, [add_package(rt)], rollout=RolloutRules(steps=parse_phases("50%")))
    first = [job for job in _jobs(rt, container) if _handed_out(rt, job.computer_id)]
    assert len(first) == 5
    report(rt, first[0].computer_id, first[0].id, AgentJobState.EXECUTING, None)
    report(rt, first[1].computer_id, first[1].id, AgentJobState.FINISHED, 0)

    plan = ContainerEdit(rollout=RolloutEdit(steps=parse_phases("10%,20%"), halt_failure_rate=30))
    previewed = containers.edit_container(rt, container, plan, "admin", dry_run=True)
    assert previewed.rollout is not None and previewed.rollout.phase_count == 3
    unchanged = rollouts.container_summary(rt, container).rollout
    assert unchanged is not None and unchanged.phases == "50%"
    with rt.reading() as session:
        assert session.scalars(select(AuditLog).where(AuditLog.action == "container.edit")).all() == []
    edited = containers.edit_container(rt, container, plan, "admin")
    assert edited.rollout is not None
    assert edited.rollout.phases == "10%,20%" and edited.rollout.phase_count == 3
    assert edited.rollout.halt_failure_rate == 30 and edited.rollout.current_phase == 1
    with rt.reading() as session:
        phase = dict(session.execute(select(Job.id, Job.phase).where(Job.container_id == container)).all())
    assert phase[first[0].id] == 0 and phase[first[1].id] == 0  # handed out: they stay
    waiting = [job for job in _jobs(rt, container) if job.state is JobState.WAITING]
    assert sum(1 for job in waiting if phase[job.id] == 0) <= 1  # 10 % of 10 is one computer
    assert all(_handed_out(rt, job.computer_id) == [] for job in waiting if phase[job.id] > 0)
    with rt.reading() as session:
        entry = session.scalars(select(AuditLog).where(AuditLog.action == "container.edit")).one()
    assert entry.details["phases"] == ["50%", "10%,20%"] and entry.details["halt_failure_rate"] == [None, 30]

    same = containers.edit_container(
        rt, container, ContainerEdit(rollout=RolloutEdit(steps=parse_phases("10%,20%"))), "admin"
    )
    assert same.rollout is not None and same.rollout.phases == "10%,20%"
    with pytest.raises(InvalidRollout):
        containers.edit_container(
            rt, container, ContainerEdit(rollout=RolloutEdit(success_percent=101)), "admin"
        )


def test_phases_make_a_plain_container_a_rollout_and_a_canceled_one_cannot_change(rt: Runtime) -> None:
    pcs = add_computers(rt, *(f"pc{n}" for n in range(4)))
    container = _deploy(rt, pcs, [add_package(rt)])
    edited = containers.edit_container(
        rt, container, ContainerEdit(rollout=RolloutEdit(steps=parse_phases("1,all"))), "admin"
    )
    assert edited.rollout is not None and edited.rollout.phase_count == 2
    assert sum(1 for pc in pcs if _handed_out(rt, pc)) == 1
    rollouts.cancel(rt, container, "admin")
    with pytest.raises(InvalidInput, match="canceled"):
        containers.edit_container(
            rt, container, ContainerEdit(rollout=RolloutEdit(steps=parse_phases("50%"))), "admin"
        )


def test_deleting_a_container_or_a_job_takes_its_attempts_along(rt: Runtime, clock: Clock) -> None:
    pc1, pc2 = add_computers(rt, "pc1", "pc2")
    container = _deploy(rt, [pc1, pc2], [add_package(rt)], retry=RetryPolicy(1, 0))
    first, second = _jobs(rt, container)
    _error(rt, first.computer_id, first.id)
    _error(rt, second.computer_id, second.id)
    jobs.delete_job(rt, first.id, "admin")
    with rt.reading() as session:
        assert session.scalars(select(JobAttempt.job_id)).all() == [second.id]
    containers.delete_container(rt, container, "admin")
    with rt.reading() as session:
        assert session.scalars(select(JobAttempt.id)).all() == []
