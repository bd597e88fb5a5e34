"""The console's lists on every database: search, filters, sorts and pages agree with what is stored,
selections of "all that match" act on exactly those, and the dashboard counts what happened."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from oco.db.models import Computer, Job
from oco.domain.errors import InvalidChoice
from oco.domain.presence import Presence
from oco.domain.states import AgentJobState, ContainerStatus, JobOutcome, JobState, ReturnCode
from oco.domain.status import container_status
from oco.errors import InvalidInput, NotFound
from oco.services import computers, containers, dashboard, groups, housekeeping, jobs, listing, packages
from oco.services.computers import ComputerQuery, ComputerSelection
from oco.services.containers import ContainerEdit, ContainerQuery
from oco.services.jobs import JobQuery, JobSelection
from oco.services.listing import PageRequest
from oco.services.runtime import Runtime
from tests.conftest import Clock
from tests.integration.test_deployments import add_computers, add_package, deploy, report

AgentFinished = AgentJobState.FINISHED


def names(page: object) -> list[str]:
    return [item.hostname for item in page.items]  # type: ignore[attr-defined]


@pytest.fixture
def fleet(rt: Runtime, clock: Clock) -> list[int]:
    """Twelve computers pc00…pc11: pc00 to pc03 online, pc04 to pc07 seen long ago, pc08 to pc11 never."""
    ids = add_computers(rt, *[f"pc{i:02d}" for i in range(12)])
    with rt.transaction() as session:
        for index, computer_id in enumerate(ids):
            computer = session.get(Computer, computer_id)
            assert computer is not None
            computer.os = "Windows 11" if index % 2 else "Debian"
            computer.last_seen = [clock.current, clock.current - timedelta(days=3), None][index // 4]
    return ids


def test_computers_are_searched_filtered_sorted_and_paged(rt: Runtime, fleet: list[int]) -> None:
    everything = computers.search_computers(rt, ComputerQuery(), PageRequest(1, 5, "hostname"))
    assert (everything.total, everything.pages, names(everything)) == (
        12,
        3,
        [f"pc{i:02d}" for i in range(5)],
    )
    last = computers.search_computers(rt, ComputerQuery(), PageRequest(3, 5, "-hostname"))
    assert names(last) == ["pc01", "pc00"]

    online = computers.search_computers(rt, ComputerQuery(presence=Presence.ONLINE), PageRequest())
    offline = computers.search_computers(rt, ComputerQuery(presence=Presence.OFFLINE), PageRequest())
    never = computers.search_computers(rt, ComputerQuery(presence=Presence.NEVER_SEEN), PageRequest())
    assert (names(online), names(offline), names(never)) == (
        ["pc00", "pc01", "pc02", "pc03"],
        ["pc04", "pc05", "pc06", "pc07"],
        ["pc08", "pc09", "pc10", "pc11"],
    )
    windows = computers.search_computers(rt, ComputerQuery(os="windows", search="pc0"), PageRequest())
    assert names(windows) == ["pc01", "pc03", "pc05", "pc07", "pc09"]
    literal = computers.search_computers(rt, ComputerQuery(search="pc_1"), PageRequest())
    assert literal.total == 0  # '_' is a character to find, not a wildcard


def test_never_seen_computers_sort_last_either_way(rt: Runtime, fleet: list[int]) -> None:
    newest = computers.search_computers(rt, ComputerQuery(), PageRequest(1, 12, "-last_seen"))
    oldest = computers.search_computers(rt, ComputerQuery(), PageRequest(1, 12, "last_seen"))
    assert names(newest)[-4:] == ["pc11", "pc10", "pc09", "pc08"]
    assert names(oldest)[-4:] == ["pc08", "pc09", "pc10", "pc11"]
    assert names(newest)[:4] == ["pc03", "pc02", "pc01", "pc00"]  # seen at the same moment: by id


def test_a_group_and_a_package_filter_the_computers(rt: Runtime, fleet: list[int]) -> None:
    lab = groups.add_computer_group(rt, "Lab", "t")
    groups.add_computers_to_group(rt, lab.id, fleet[:3], "t")
    tool = add_package(rt, "Tool")
    from oco.services import assignments

    for computer_id in fleet[1:4]:
        assignments.add_assignment(rt, computer_id, tool, "t")
    both = computers.search_computers(rt, ComputerQuery(group_id=lab.id, package_id=tool), PageRequest())
    assert names(both) == ["pc01", "pc02"]


def test_bad_list_requests_are_refused(rt: Runtime, fleet: list[int]) -> None:
    with pytest.raises(InvalidChoice, match="sort 'cpu' must be one of hostname"):
        computers.search_computers(rt, ComputerQuery(), PageRequest(sort="cpu"))
    assert computers.search_computers(rt, ComputerQuery(), PageRequest(page=99)).page == 1  # one page only


def test_all_that_match_is_what_an_action_gets(rt: Runtime, fleet: list[int]) -> None:
    lab = groups.add_computer_group(rt, "Never seen", "t")
    selection = ComputerSelection(matching=ComputerQuery(presence=Presence.NEVER_SEEN))
    added = groups.add_computers_to_group(rt, lab.id, selection, "t")
    assert (added.size, added.changed) == (4, 4)
    assert [c.hostname for c in groups.computer_group(rt, lab.id).computers] == [
        "pc08",
        "pc09",
        "pc10",
        "pc11",
    ]
    again = groups.add_computers_to_group(rt, lab.id, ComputerSelection([fleet[8], fleet[0]]), "t")
    assert (again.size, again.changed) == (5, 1)  # pc08 was in it already
    removed = groups.remove_computers_from_group(rt, lab.id, ComputerSelection([fleet[0], fleet[1]]), "t")
    assert (removed.size, removed.changed) == (4, 1)  # pc01 was not a member
    assert (
        computers.delete_computers(
            rt, ComputerSelection([fleet[0]], matching=ComputerQuery(search="pc1")), "t"
        )
        == 3
    )
    assert computers.search_computers(rt, ComputerQuery(), PageRequest()).total == 9


def test_container_statuses_in_sql_agree_with_the_domain_rule(
    rt: Runtime, fleet: list[int], clock: Clock
) -> None:
    package = add_package(rt)
    succeeded = deploy(rt, fleet[:1], [package], name="succeeded")
    report(rt, fleet[0], jobs_of_container(rt, succeeded)[0], AgentFinished, 0)
    failed = deploy(rt, fleet[1:2], [package], name="failed")
    report(rt, fleet[1], jobs_of_container(rt, failed)[0], AgentFinished, 1)
    deploy(rt, fleet[2:3], [package], name="in progress")
    deploy(rt, fleet[3:4], [package], name="scheduled", start=clock.current + timedelta(days=1))
    disabled = deploy(rt, fleet[5:6], [package], name="disabled")
    containers.edit_container(rt, disabled, ContainerEdit(enabled=False), "t")
    empty = deploy(rt, fleet[4:5], [package], name="empty")
    with rt.transaction() as session:
        session.execute(Job.__table__.delete().where(Job.container_id == empty))
    by_status = {
        status: [
            c.name
            for c in containers.search_containers(rt, ContainerQuery(status=status), PageRequest()).items
        ]
        for status in ContainerStatus
    }
    assert by_status == {
        ContainerStatus.SUCCEEDED: ["succeeded"],
        ContainerStatus.FAILED: ["failed"],
        ContainerStatus.IN_PROGRESS: ["in progress"],
        ContainerStatus.SCHEDULED: ["scheduled"],
        ContainerStatus.DISABLED: ["disabled"],
        ContainerStatus.EMPTY: ["empty"],
    }
    every = containers.search_containers(rt, ContainerQuery(), PageRequest(1, 50))
    for container in every.items:  # the page's own status is the domain's, by its counts
        counts = {JobState.from_text(state): count for state, count in container.job_counts.items()}
        assert container.status is container_status(counts, container.start, clock.current, container.enabled)
        assert by_status[container.status] == [container.name]


def jobs_of_container(rt: Runtime, container_id: int) -> list[int]:
    return [job.id for job in containers.container_detail(rt, container_id).jobs]


def test_a_containers_jobs_come_failures_first_and_page_the_same_as_a_full_sort(
    rt: Runtime, fleet: list[int]
) -> None:
    package = add_package(rt)
    container = deploy(rt, fleet, [package])
    ids = jobs_of_container(rt, container)
    with rt.transaction() as session:  # what a rollout leaves: some failed, some running, some done
        for index, job_id in enumerate(ids):
            state = [JobState.SUCCEEDED, JobState.FAILED, JobState.WAITING, JobState.EXECUTING][index % 4]
            code = int(ReturnCode.AGENT_ERROR) if state is JobState.FAILED else None
            session.execute(update(Job).where(Job.id == job_id).values(state=int(state), return_code=code))
    pages = [jobs.search_jobs(rt, container, JobQuery(), PageRequest(n, 5)) for n in (1, 2, 3)]
    ordered = [job for page in pages for job in page.items]
    assert [job.state for job in ordered] == sorted(
        (job.state for job in ordered), key=jobs.ATTENTION_ORDER.index
    )
    assert sorted(job.id for job in ordered) == sorted(ids)  # every job once
    by_search = jobs.search_jobs(rt, container, JobQuery(search="pc"), PageRequest(1, 12))  # the full sort
    assert [job.id for job in by_search.items] == [job.id for job in ordered]
    failed = jobs.search_jobs(rt, container, JobQuery(outcome=JobOutcome.FAILED), PageRequest())
    assert failed.total == 3 and {job.meaning_title for job in failed.items} == {"-9999 agent error"}
    by_code = jobs.search_jobs(rt, container, JobQuery(return_code=-9999), PageRequest())
    assert by_code.total == 3
    waiting = jobs.search_jobs(rt, container, JobQuery(outcome=JobOutcome.WAITING), PageRequest())
    assert {job.waiting.hold.text for job in waiting.items if job.waiting} <= {"next-check-in", "offline"}


def test_a_containers_jobs_are_exported_in_batches_failures_first(
    rt: Runtime, fleet: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "EXPORT_BATCH", 2)  # twelve jobs read two at a time
    container = deploy(rt, fleet, [add_package(rt)])
    ids = jobs_of_container(rt, container)
    with rt.transaction() as session:
        for index, job_id in enumerate(ids):
            state = [JobState.SUCCEEDED, JobState.FAILED, JobState.WAITING][index % 3]
            session.execute(update(Job).where(Job.id == job_id).values(state=int(state)))
    exported = list(jobs.export_jobs(rt, container, JobQuery()))
    assert [job.id for job in exported] == [
        job.id for job in jobs.search_jobs(rt, container, JobQuery(search="pc"), PageRequest(1, 12)).items
    ]  # the same order as the list's, every job once
    assert [job.state for job in exported[:4]] == [JobState.FAILED] * 4
    failed = list(jobs.export_jobs(rt, container, JobQuery(outcome=JobOutcome.FAILED)))
    assert len(failed) == 4
    with pytest.raises(NotFound):
        jobs.export_jobs(rt, 999, JobQuery())  # before anything is sent


def test_selected_jobs_are_renewed_moved_and_deleted(rt: Runtime, fleet: list[int]) -> None:
    package = add_package(rt)
    container = deploy(rt, fleet[:4], [package], name="first")
    other = deploy(rt, fleet[4:5], [package], name="other")
    ids = jobs_of_container(rt, container)
    for job_id, computer_id in zip(ids[:2], fleet[:2], strict=True):
        report(rt, computer_id, job_id, AgentFinished, 1)

    renewed = jobs.renew_jobs(rt, container, JobSelection(matching=JobQuery(outcome=JobOutcome.FAILED)), "t")
    assert renewed.id == container and renewed.outcomes["waiting"] == 4
    with pytest.raises(InvalidInput, match="nothing to renew"):
        jobs.renew_jobs(rt, container, JobSelection(ids=ids[2:]), "t")

    moved = jobs.move_jobs(rt, container, JobSelection(ids=ids[:2]), other, "t")
    assert moved.outcomes["waiting"] == 3
    with pytest.raises(NotFound, match=f"job {ids[0]} of job container {container} does not exist"):
        jobs.delete_jobs(rt, container, JobSelection(ids=ids[:1]), "t")  # it lives in the other one now
    assert jobs.delete_jobs(rt, container, JobSelection(matching=JobQuery(search="pc02")), "t") == 1
    assert jobs_of_container(rt, container) == [ids[3]]


def test_outcomes_are_counted_per_day_once_and_outlive_the_purge(
    rt: Runtime, fleet: list[int], clock: Clock
) -> None:
    package = add_package(rt)
    container = deploy(rt, fleet[:3], [package])
    ids = jobs_of_container(rt, container)
    report(rt, fleet[0], ids[0], AgentFinished, 0)
    report(rt, fleet[1], ids[1], AgentFinished, 1)
    count = housekeeping.find_task("count-outcomes")
    assert housekeeping.run_task(rt, count) == 0  # not a minute old yet: its transaction may be open
    clock.advance(minutes=2)
    assert housekeeping.run_task(rt, count) == 2
    assert housekeeping.run_task(rt, count) == 0  # counted once
    report(rt, fleet[2], ids[2], AgentFinished, 0)
    clock.advance(hours=50)  # counted, then the container is purged
    housekeeping.run_all(rt)
    assert containers.list_containers(rt) == []
    today = dashboard.overview(rt).days
    assert sum(day.succeeded for day in today) == 2 and sum(day.failed for day in today) == 1


def test_the_dashboard_shows_fleet_running_and_failures(rt: Runtime, fleet: list[int]) -> None:
    package = add_package(rt)
    container = deploy(rt, fleet[:2], [package], name="Rollout")
    ids = jobs_of_container(rt, container)
    report(rt, fleet[0], ids[0], AgentFinished, 7)
    overview = dashboard.overview(rt)
    assert (overview.fleet.total, overview.fleet.online, overview.fleet.never_seen) == (12, 4, 4)
    assert [c.name for c in overview.running] == ["Rollout"]
    [failure] = overview.failures
    assert (failure.computer, failure.return_code, failure.meaning) == ("pc00", 7, "exit code 7")
    assert len(overview.days) == 30


def test_packages_and_the_audit_log_are_paged(rt: Runtime, fleet: list[int]) -> None:
    for name in ("Alpha", "Beta", "Gamma"):
        add_package(rt, name)
    families = packages.search_families(rt, "a", PageRequest(1, 2, "name")).families
    assert (families.total, [f.name for f in families.items]) == (3, ["Alpha", "Beta"])
    from oco.services import audit

    entries = audit.search_audit(rt, audit.AuditQuery(action="package"), PageRequest(1, 10))
    assert entries.total == 3 and all(e.action == "package.create" for e in entries.items)


def test_computer_groups_are_searched_sorted_by_size_and_paged(rt: Runtime, fleet: list[int]) -> None:
    for name, members in (("Lab north", 3), ("Lab south", 1), ("Office", 2), ("Empty lab", 0)):
        group = groups.add_computer_group(rt, name, "tests").id
        if members:
            groups.add_computers_to_group(rt, group, fleet[:members], "tests")
    labs = groups.groups_page(rt, "lab", PageRequest(1, 2, "-size")).computer_groups
    assert (labs.total, labs.pages) == (3, 2)
    assert [(g.name, g.size) for g in labs.items] == [("Lab north", 3), ("Lab south", 1)]
    last = groups.groups_page(rt, "lab", PageRequest(2, 2, "-size")).computer_groups
    assert [(g.name, g.size) for g in last.items] == [("Empty lab", 0)]
    assert [g.name for g in groups.groups_page(rt).computer_groups.items] == [
        "Empty lab",
        "Lab north",
        "Lab south",
        "Office",
    ]
    assert [g.name for g in groups.export_group_summaries(rt, "south")] == ["Lab south"]
    with pytest.raises(InvalidChoice):
        groups.groups_page(rt, "", PageRequest(1, 10, "members"))


@pytest.mark.parametrize("sort", ["computer", "-computer"])
def test_a_large_containers_jobs_sorted_by_computer_page_as_a_small_ones_do(
    rt: Runtime, fleet: list[int], monkeypatch: pytest.MonkeyPatch, sort: str
) -> None:
    """Beyond `SORTED_IN_MEMORY` jobs the page is found through the computers' name index instead: the
    same jobs in the same order, page after page."""
    container = deploy(rt, fleet, [add_package(rt, "A"), add_package(rt, "B")])

    def every_page() -> list[tuple[str, int]]:
        pages = [jobs.search_jobs(rt, container, JobQuery(), PageRequest(n, 5, sort)) for n in range(1, 6)]
        return [(job.computer, job.id) for page in pages for job in page.items]

    small = every_page()
    monkeypatch.setattr(jobs, "SORTED_IN_MEMORY", 0)
    large = every_page()

    assert large == small
    assert len(large) == 24
    hostnames = [hostname for hostname, _ in large]
    assert hostnames == sorted(hostnames, reverse=sort.startswith("-"))
