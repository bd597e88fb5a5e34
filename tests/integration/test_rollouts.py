"""Phased rollouts on every database: phases handed out one after the other, the halt on failures, resume,
cancel, the audit entries, and the events a webhook on the loopback receives."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from oco.db.models import AuditLog, Computer, RolloutEvent
from oco.domain.dispatch import Clocks, Hold
from oco.domain.errors import InvalidRollout, InvalidWindow
from oco.domain.phases import RolloutRules, parse_phases
from oco.domain.states import AgentJobState, JobState
from oco.domain.windows import WindowZone, parse_windows
from oco.errors import InvalidInput, NotFound
from oco.services import agent_jobs, containers, deployments, groups, housekeeping, jobs, rollouts
from oco.services.computers import ComputerSelection
from oco.services.deployments import ContainerOptions, DeploymentRequest
from oco.services.jobs import JobQuery
from oco.services.listing import PageRequest
from oco.services.runtime import Runtime
from oco.services.targets import Targets
from tests.conftest import Clock, make_runtime
from tests.integration.test_deployments import add_computers, add_package, report

ADDRESS = "10.0.0.5"


def _request(computer_ids: list[int], package_id: int, **rules: Any) -> DeploymentRequest:
    pilot = rules.pop("pilot_group", None)
    options = ContainerOptions(name="Firefox rollout", rollout=RolloutRules(**rules), pilot_group=pilot)
    return DeploymentRequest(options=options, targets=Targets(computers=computer_ids, packages=[package_id]))


def _handed_out(rt: Runtime, computer_id: int) -> list[int]:
    now = rt.now()
    with rt.reading() as session:
        pending = agent_jobs.pending_jobs(session.connection(), computer_id)
        return [job.candidate.id for job in agent_jobs.eligible_jobs(pending, ADDRESS, now)]


def _jobs(rt: Runtime, container_id: int) -> list[Any]:
    page = jobs.search_jobs(rt, container_id, JobQuery(), PageRequest(1, 500, "computer"))
    return list(page.items)


def _finish(rt: Runtime, job: Any, code: int) -> None:
    report(rt, job.computer_id, job.id, AgentJobState.FINISHED, code)


def _advance(rt: Runtime) -> int | None:
    return housekeeping.run_task(rt, housekeeping.find_task("advance-rollouts"))


def test_phases_open_one_after_the_other_and_failures_halt(rt: Runtime, clock: Clock) -> None:
    pcs = add_computers(rt, *(f"pc{n:02}" for n in range(20)))
    firefox = add_package(rt)
    request = _request(pcs, firefox, steps=parse_phases("10%,50%"), halt_failure_rate=20, halt_min_finished=4)

    preview = deployments.preview_deployment(rt, request)
    assert [(p.label, p.computers) for p in preview.phases] == [
        ("phase 1", 2),
        ("phase 2", 8),
        ("phase 3", 10),
    ]
    container = deployments.create_deployment(rt, request, "admin")
    rows = _jobs(rt, container.id)
    phase_of = {
        row.computer: next(p.number for p in preview.phases if row.computer in p.hostnames) for row in rows
    }

    first = [row for row in rows if phase_of[row.computer] == 1]
    later = [row for row in rows if phase_of[row.computer] > 1]
    assert all(_handed_out(rt, row.computer_id) == [row.id] for row in first)
    assert all(_handed_out(rt, row.computer_id) == [] for row in later)
    assert {row.waiting.hold for row in later} == {Hold.LATER_PHASE}

    for row in first:
        _finish(rt, row, 0)
    assert _advance(rt) == 1  # phase 1 met 95 %: phase 2 opens
    second = [row for row in rows if phase_of[row.computer] == 2]
    assert all(_handed_out(rt, row.computer_id) == [row.id] for row in second)

    _finish(rt, second[0], 1)  # one failure of one finished: below the minimum of 4
    _finish(rt, second[1], 0)
    _finish(rt, second[2], 0)
    assert not rollouts.container_summary(rt, container.id).halted
    _finish(rt, second[3], 1)  # 2 of 4 finished failed: 50 % > 20 %, halted by the report itself
    halted = rollouts.container_summary(rt, container.id)
    assert halted.halted and halted.rollout is not None
    assert halted.rollout.halt_details == {
        "phase": 2, "label": "phase 2", "finished": 4, "failed": 2, "succeeded": 2, "pending": 4,
        "rate": 20, "min_finished": 4,
    }  # fmt: skip
    assert [p.status for p in halted.rollout.phase_list] == ["done", "halted", "waiting"]
    assert all(_handed_out(rt, row.computer_id) == [] for row in second[4:])
    assert {row.waiting.hold for row in _jobs(rt, container.id) if row.state is JobState.WAITING} == {
        Hold.HALTED
    }
    assert _advance(rt) == 0  # a halted rollout stays halted

    resumed = rollouts.resume(rt, container.id, "admin", reopen=True)
    assert not resumed.halted
    assert all(_handed_out(rt, row.computer_id) == [row.id] for row in second[4:])
    assert _handed_out(rt, second[0].computer_id) == [second[0].id]  # reopened: runs again
    with rt.reading() as session:
        actions = session.scalars(select(AuditLog.action).where(AuditLog.object_id == container.id)).all()
        events = session.scalars(
            select(RolloutEvent.kind)
            .where(RolloutEvent.container_id == container.id)
            .order_by(RolloutEvent.id)
        ).all()
    assert "rollout.halt" in actions and "rollout.resume" in actions and "rollout.phase-open" in actions
    assert events == ["phase-opened", "phase-opened", "halted", "resumed"]

    with pytest.raises(InvalidInput, match="not halted"):
        rollouts.resume(rt, container.id, "admin")
    canceled = rollouts.cancel(rt, container.id, "admin")
    assert canceled.rollout is not None and canceled.rollout.completed is not None
    assert canceled.rollout.canceled_by == "admin" and not canceled.halted
    states = {row.state for row in _jobs(rt, container.id)}
    assert JobState.WAITING not in states and JobState.EXPIRED in states


def test_a_pilot_group_goes_first_and_the_soak_delays_the_next_phase(rt: Runtime, clock: Clock) -> None:
    pcs = add_computers(rt, "alpha", "beta", "gamma", "delta")
    group = groups.add_computer_group(rt, "Pilots", "admin")
    groups.add_computers_to_group(rt, group.id, ComputerSelection(references=[pcs[2]]), "admin")
    request = _request(pcs, add_package(rt), pilot_group="Pilots", soak_seconds=1800)
    preview = deployments.preview_deployment(rt, request)
    assert [(p.label, p.hostnames) for p in preview.phases] == [
        ("pilot", ["gamma"]),
        ("phase 2", ["alpha", "beta", "delta"]),
    ]
    container = deployments.create_deployment(rt, request, "admin")
    [pilot] = [row for row in _jobs(rt, container.id) if row.computer == "gamma"]
    assert _handed_out(rt, pcs[0]) == []
    _finish(rt, pilot, 0)
    assert _advance(rt) == 1  # criterion met: the soak starts
    clock.advance(minutes=29)
    assert _advance(rt) == 0
    assert _handed_out(rt, pcs[0]) == []
    clock.advance(minutes=1)
    assert _advance(rt) == 1
    assert len(_handed_out(rt, pcs[0])) == 1


def test_bad_rollout_settings_are_refused(rt: Runtime) -> None:
    pcs = add_computers(rt, "pc1")
    package = add_package(rt)
    with pytest.raises(NotFound, match="computer group 'Nobody'"):
        deployments.preview_deployment(rt, _request(pcs, package, pilot_group="Nobody"))
    groups.add_computer_group(rt, "Empty", "admin")
    with pytest.raises(InvalidInput, match="pilot group 'Empty'") as caught:
        deployments.create_deployment(rt, _request(pcs, package, pilot_group="Empty"), "admin")
    assert caught.value.field == "pilot_group"
    with pytest.raises(InvalidRollout, match="halt failure rate"):
        deployments.create_deployment(rt, _request(pcs, package, halt_failure_rate=120), "admin")
    plain = deployments.create_deployment(rt, _request(pcs, package), "admin")
    assert plain.rollout is None
    with pytest.raises(NotFound, match="not a phased rollout"):
        rollouts.resume(rt, plain.id, "admin")


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_events_reach_the_webhook_as_json(
    tmp_path: Path, sqlite_url: str, clock: Clock, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    rt = make_runtime(sqlite_url, tmp_path, clock, rollout_webhook_url=url)
    pcs = add_computers(rt, "pc1", "pc2")
    container = deployments.create_deployment(
        rt, _request(pcs, add_package(rt), steps=parse_phases("1")), "admin"
    )
    rollouts.halt(rt, container.id, "alice")
    results = housekeeping.run_all(rt)
    assert results["deliver-rollout-events"] == 2
    assert [event["event"] for event in received] == ["phase-opened", "halted"]
    assert received[1]["container"] == {"id": container.id, "name": "Firefox rollout"}
    assert received[1]["label"] == "phase 1"
    assert housekeeping.run_all(rt)["deliver-rollout-events"] == 0  # delivered once
    clock.advance(minutes=1)
    rollouts.resume(rt, container.id, "alice")
    housekeeping.run_all(rt)
    assert received[-1]["event"] == "resumed" and received[-1]["by"] == "alice"


def _set_zone(rt: Runtime, computer_id: int, zone: str) -> None:
    with rt.transaction() as session:
        computer = session.get_one(Computer, computer_id)
        computer.time_zone = zone


def test_windows_in_computer_time_with_the_server_zone_for_agents_that_report_none(
    tmp_path: Path, sqlite_url: str
) -> None:
    clock = Clock(
        datetime(2026, 12, 2, 16, 30, tzinfo=UTC)
    )  # a Wednesday: 17:30 in Berlin, 11:30 in New York
    rt = make_runtime(sqlite_url, tmp_path, clock, time_zone="America/New_York")
    berlin, unknown = add_computers(rt, "berlin-pc", "unknown-pc")
    _set_zone(rt, berlin, "Europe/Berlin")
    windows = parse_windows(["Mon-Fri 18:00-06:00"])
    request = DeploymentRequest(
        options=ContainerOptions(name="Evening update", windows=windows),
        targets=Targets(computers=[berlin, unknown], packages=[add_package(rt)]),
    )
    preview = deployments.preview_deployment(rt, request)
    assert preview.windows is not None
    assert (preview.windows.windows, preview.windows.zone, preview.windows.server_time_computers) == (
        ["Mon-Fri 18:00-06:00"],
        WindowZone.COMPUTER,
        1,
    )
    notes = {computer.hostname: computer.notes for computer in preview.computers}
    assert notes["berlin-pc"] == []
    assert notes["unknown-pc"] == [
        "its window is read in server time (America/New_York): its agent reports no time zone"
    ]
    container = deployments.create_deployment(rt, request, "admin")
    assert container.windows == ["Mon-Fri 18:00-06:00"] and container.window_zone is WindowZone.COMPUTER

    def handed(computer_id: int) -> int:
        now = rt.now()
        with rt.reading() as session:
            zone = session.get_one(Computer, computer_id).time_zone
            pending = agent_jobs.pending_jobs(session.connection(), computer_id)
            return len(agent_jobs.eligible_jobs(pending, ADDRESS, now, Clocks(zone, rt.settings.zone)))

    assert (handed(berlin), handed(unknown)) == (0, 0)
    waits = {row.computer: rt_waiting(row) for row in _jobs(rt, container.id)}
    assert waits == {
        "berlin-pc": "Wed 18:00 computer time",
        "unknown-pc": "Wed 18:00 server time",
    }
    clock.advance(minutes=30)  # 18:00 in Berlin
    assert (handed(berlin), handed(unknown)) == (1, 0)
    clock.advance(hours=6)  # 18:00 in New York, midnight in Berlin
    assert (handed(berlin), handed(unknown)) == (1, 1)
    clock.advance(hours=6)  # 06:00 Thursday in Berlin: closed again
    assert (handed(berlin), handed(unknown)) == (0, 1)
    [job] = [row for row in _jobs(rt, container.id) if row.computer == "berlin-pc"]
    report(rt, berlin, job.id, AgentJobState.FINISHED, 1)
    renewed = containers.renew_failed(rt, container.id, "admin", into_new_container=True)
    assert renewed.windows == ["Mon-Fri 18:00-06:00"]  # the renewed jobs keep their windows


def rt_waiting(row: Any) -> str | None:
    assert row.waiting is not None and row.waiting.hold is Hold.OUTSIDE_WINDOW
    return row.waiting.opens


def test_bad_windows_are_refused_with_their_field(rt: Runtime) -> None:
    with pytest.raises(InvalidWindow, match="'someday' is not a day") as caught:
        parse_windows(["Someday 10:00-11:00"])
    assert caught.value.field == "windows"
