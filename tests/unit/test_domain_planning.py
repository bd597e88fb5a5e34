"""Deployment planning: sequence, compatibility, already installed, automatic uninstall, WOL marks and
uninstall plans."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.domain.errors import InvalidDeployment
from oco.domain.ipranges import parse_ip_ranges
from oco.domain.planning import (
    InstalledPackage,
    PackageToDeploy,
    PlannedJob,
    TargetComputer,
    accepts,
    effective_post_action,
    incompatibility,
    mark_wol_shutdown,
    plan_deployment,
    plan_uninstall,
    wol_shutdown_carrier,
)
from oco.domain.states import JobAction, JobState, PostAction, UpgradeBehavior

NOW = datetime(2026, 3, 1, tzinfo=UTC)
INSTALL, UNINSTALL = JobAction.INSTALL, JobAction.UNINSTALL
WAITING = JobState.WAITING


def pkg(package_id: int, family_id: int = 1, version: str = "1", **changes: object) -> PackageToDeploy:
    values: dict[str, object] = {
        "id": package_id,
        "family_id": family_id,
        "name": f"F{family_id} {version}",
        "install_procedure": f"install {package_id}",
    }
    values.update(changes)
    return PackageToDeploy(**values)  # type: ignore[arg-type]


def installed(
    package_id: int, family_id: int = 1, version: str = "1", uninstall: str = "uninstall"
) -> InstalledPackage:
    return InstalledPackage(
        package_id,
        family_id,
        f"F{family_id} {version}",
        f"{uninstall} {package_id}",
        "0,1605",
        PostAction.RESTART,
    )


def pc(computer_id: int = 1, *assignments: InstalledPackage, **changes: object) -> TargetComputer:
    values: dict[str, object] = {
        "id": computer_id,
        "hostname": f"pc{computer_id}",
        "os": "Windows 11 Pro",
        "os_version": "10.0.22631",
        "architecture": "AMD64",
        "installed": assignments,
    }
    values.update(changes)
    return TargetComputer(**values)  # type: ignore[arg-type]


def summary(jobs: tuple[PlannedJob, ...] | list[PlannedJob]) -> list[tuple[int, str, int, JobState]]:
    return [(j.sequence, str(j.action), j.package_id, j.state) for j in jobs]


# Order and numbering ---------------------------------------------------------------------------


def test_packages_keep_their_order_and_number_per_computer() -> None:
    plan = plan_deployment([pc(1), pc(2)], [pkg(10, 1), pkg(20, 2)])
    assert [c.hostname for c in plan.computers] == ["pc1", "pc2"]
    for computer in plan.computers:
        assert summary(computer.jobs) == [(1, "install", 10, WAITING), (2, "install", 20, WAITING)]
        assert all(job.computer_id == computer.computer_id for job in computer.jobs)
    assert plan.counts() == {WAITING: 4}


def test_an_install_job_copies_the_packages_install_settings() -> None:
    package = pkg(10, install_success_codes="0,3010", install_post_action=PostAction.RESTART)
    (job,) = plan_deployment([pc(1)], [package]).jobs
    assert (job.procedure, job.success_codes, job.post_action, job.package_name) == (
        "install 10",
        "0,3010",
        PostAction.RESTART,
        "F1 1",
    )
    assert (job.reason, job.wol_shutdown) == ("", False)


def test_a_package_given_twice_is_planned_once() -> None:
    plan = plan_deployment([pc(1)], [pkg(10, 1), pkg(20, 2), pkg(10, 1)])
    assert summary(plan.jobs) == [(1, "install", 10, WAITING), (2, "install", 20, WAITING)]


# Upgrade behavior -----------------------------------------------------------------------------


def test_explicit_uninstall_comes_first_for_every_other_installed_version() -> None:
    computer = pc(1, installed(1, version="1"), installed(2, version="2"))
    jobs = plan_deployment([computer], [pkg(3, version="3")]).computers[0].jobs
    assert summary(jobs) == [
        (1, "uninstall", 1, WAITING),
        (2, "uninstall", 2, WAITING),
        (3, "install", 3, WAITING),
    ]
    first = jobs[0]
    assert (first.procedure, first.success_codes, first.post_action) == (
        "uninstall 1",
        "0,1605",
        PostAction.RESTART,
    )
    assert first.reason == "uninstall of F1 1 first"


@pytest.mark.parametrize("behavior", [UpgradeBehavior.INSTALLER_REMOVES, UpgradeBehavior.KEEP])
def test_other_behaviors_schedule_no_uninstall(behavior: UpgradeBehavior) -> None:
    plan = plan_deployment([pc(1, installed(1))], [pkg(2, version="2", upgrade_behavior=behavior)])
    assert summary(plan.jobs) == [(1, "install", 2, WAITING)]


def test_without_automatic_uninstall_jobs_other_versions_stay() -> None:
    computer = pc(1, installed(1))
    plan = plan_deployment([computer], [pkg(2, version="2")], auto_uninstall=False)
    assert summary(plan.jobs) == [(1, "install", 2, WAITING)]
    assert plan.computers[0].notes == ()


def test_other_families_are_left_alone_and_uninstalls_are_not_doubled() -> None:
    computer = pc(1, installed(1, family_id=1), installed(9, family_id=2))
    plan = plan_deployment([computer], [pkg(2, family_id=1, version="2"), pkg(3, family_id=1, version="3")])
    assert [(j.action, j.package_id) for j in plan.jobs] == [(UNINSTALL, 1), (INSTALL, 2), (INSTALL, 3)]


def test_uninstalls_are_planned_per_computer() -> None:
    with_old, without = pc(1, installed(1)), pc(2)
    plan = plan_deployment([with_old, without], [pkg(2, version="2")])
    assert summary(plan.computers[0].jobs) == [(1, "uninstall", 1, WAITING), (2, "install", 2, WAITING)]
    assert summary(plan.computers[1].jobs) == [(1, "install", 2, WAITING)]


def test_a_version_without_uninstall_procedure_is_noted_not_scheduled() -> None:
    no_uninstall = InstalledPackage(1, 1, "F1 1", " ", "0", PostAction.NONE)
    plan = plan_deployment([pc(1, no_uninstall)], [pkg(2, version="2")])
    assert [j.action for j in plan.jobs] == [INSTALL]
    assert plan.computers[0].notes == ("F1 1 has no uninstall procedure and stays installed",)


def test_a_skipped_install_uninstalls_nothing() -> None:
    incompatible = pkg(2, version="2", compatible_os="Linux")
    plan = plan_deployment([pc(1, installed(1))], [incompatible])
    assert summary(plan.jobs) == [(1, "install", 2, JobState.OS_INCOMPATIBLE)]
    already = plan_deployment([pc(1, installed(1), installed(2, version="2"))], [pkg(2, version="2")])
    assert summary(already.jobs) == [(1, "install", 2, JobState.ALREADY_INSTALLED)]


def test_a_forced_reinstall_also_uninstalls_the_other_versions() -> None:
    computer = pc(1, installed(1), installed(2, version="2"))
    plan = plan_deployment([computer], [pkg(2, version="2")], force=True)
    assert summary(plan.jobs) == [(1, "uninstall", 1, WAITING), (2, "install", 2, WAITING)]
    assert plan.jobs[1].reason == "reinstall (forced)"


# Already installed -----------------------------------------------------------------------------


def test_already_installed_is_skipped_unless_forced() -> None:
    computer = pc(1, installed(5))
    skipped = plan_deployment([computer], [pkg(5)])
    forced = plan_deployment([computer], [pkg(5)], force=True)
    assert [(j.state, j.reason) for j in skipped.jobs] == [(JobState.ALREADY_INSTALLED, "already installed")]
    assert [(j.state, j.reason) for j in forced.jobs] == [(WAITING, "reinstall (forced)")]
    assert skipped.skipped() == skipped.jobs


# Compatibility ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requirement", "value", "accepted"),
    [
        ("", "Windows 11 Pro", True),  # empty list: any computer
        ("Windows", "", True),  # not reported yet: accepted, as OCO does
        ("windows", "Windows 11 Pro", True),  # case does not matter
        ("Windows 11 Pro", "windows  11 pro", True),  # nor do repeated blanks
        ("Linux, Windows", "Windows 11 Pro", True),  # comma list
        ("Linux\nWindows", "Windows 11 Pro", True),  # OCO's newline list
        ("Linux", "Windows 11 Pro", False),
        ("Win", "Windows 11 Pro", False),  # a prefix must end at a word boundary
        ("Windows 1", "Windows 11 Pro", False),
        ("10.0", "10.0.22631", True),
        ("10.", "10.0.22631", True),  # an entry ending in a separator is a prefix by itself
        ("12", "12.4", True),
        ("12", "120", False),
        ("12", "12", True),
        ("6.1, 10.0", "10.0.19045", True),
    ],
)
def test_the_compatibility_rule(requirement: str, value: str, accepted: bool) -> None:
    assert accepts(requirement, value) is accepted


@pytest.mark.parametrize(
    ("requirement", "value", "accepted"),
    [
        ("x86_64", "AMD64", True),
        ("amd64", "x86_64", True),
        ("x64", "x86_64", True),
        ("arm64", "aarch64", True),
        ("x86", "x86_64", False),  # "_" joins words: x86 is not a prefix of x86_64
        ("arm", "arm64", False),
        ("arm64", "x86_64", False),
    ],
)
def test_architectures_know_their_aliases(requirement: str, value: str, accepted: bool) -> None:
    assert accepts(requirement, value, architecture=True) is accepted


@pytest.mark.parametrize(
    ("requirement", "computer", "reason"),
    [
        ({}, {}, None),
        ({"compatible_os": "windows"}, {}, None),
        ({"compatible_os": "Linux"}, {}, "incompatible: needs OS 'Linux', computer has 'Windows 11 Pro'"),
        (
            {"compatible_os_version": "6.1"},
            {},
            "incompatible: needs OS version '6.1', computer has '10.0.22631'",
        ),
        (
            {"compatible_architecture": "arm64"},
            {},
            "incompatible: needs architecture 'arm64', computer has 'AMD64'",
        ),
        ({"compatible_architecture": "x86_64"}, {}, None),
        ({"compatible_os": "Linux"}, {"os": ""}, None),
    ],
)
def test_incompatibility_says_why(
    requirement: dict[str, str], computer: dict[str, str], reason: str | None
) -> None:
    assert incompatibility(pkg(1, **requirement), pc(1, **computer)) == reason
    (job,) = plan_deployment([pc(1, **computer)], [pkg(1, **requirement)]).jobs
    assert job.state is (WAITING if reason is None else JobState.OS_INCOMPATIBLE)
    assert job.reason == (reason or "")


def test_incompatibility_is_checked_before_already_installed() -> None:
    (job,) = plan_deployment([pc(1, installed(1))], [pkg(1, compatible_os="Linux")]).jobs
    assert job.state is JobState.OS_INCOMPATIBLE


# Plan helpers ----------------------------------------------------------------------------------


def test_the_plan_summarizes_states_and_lists_skipped_jobs_with_reasons() -> None:
    computer = pc(1, installed(5, family_id=5))
    plan = plan_deployment(
        [computer, pc(2)],
        [pkg(5, family_id=5), pkg(6, family_id=6, compatible_os="Linux"), pkg(7, family_id=7)],
    )
    assert plan.counts() == {JobState.ALREADY_INSTALLED: 1, JobState.OS_INCOMPATIBLE: 2, WAITING: 3}
    assert [(j.computer_id, j.package_id, j.reason) for j in plan.skipped()] == [
        (1, 5, "already installed"),
        (1, 6, "incompatible: needs OS 'Linux', computer has 'Windows 11 Pro'"),
        (2, 6, "incompatible: needs OS 'Linux', computer has 'Windows 11 Pro'"),
    ]


def test_an_empty_plan() -> None:
    plan = plan_deployment([], [pkg(1)])
    assert (plan.jobs, plan.counts(), plan.skipped(), plan.woken) == ([], {}, [], [])


# Wake-on-LAN and the shutdown of woken computers -----------------------------------------------


def test_wol_wakes_offline_computers_and_marks_only_their_last_runnable_job() -> None:
    online, offline = pc(1, online=True), pc(2, online=False, installed=(installed(7, family_id=3),))
    packages = [pkg(10, 1), pkg(7, 3)]  # the second is already installed on pc2
    plan = plan_deployment([online, offline], packages, wol=True, shutdown_waked=True)
    assert [c.hostname for c in plan.woken] == ["pc2"]
    assert [j.wol_shutdown for j in plan.computers[0].jobs] == [False, False]
    assert [(j.package_id, j.wol_shutdown) for j in plan.computers[1].jobs] == [(10, True), (7, False)]


def test_the_wol_shutdown_keeps_the_packages_own_post_action() -> None:
    package = pkg(10, install_post_action=PostAction.RESTART)
    (job,) = plan_deployment([pc(1, online=False)], [package], wol=True, shutdown_waked=True).jobs
    assert (job.post_action, job.wol_shutdown) == (PostAction.RESTART, True)
    assert effective_post_action(job.post_action, job.wol_shutdown) is PostAction.SHUTDOWN
    assert effective_post_action(job.post_action, False) is PostAction.RESTART


def test_without_shutdown_waked_nobody_is_marked() -> None:
    plan = plan_deployment([pc(1, online=False)], [pkg(1)], wol=True)
    assert plan.woken and not any(j.wol_shutdown for j in plan.jobs)


def test_without_wol_nobody_is_woken_or_shut_down() -> None:
    plan = plan_deployment([pc(1, online=False)], [pkg(1)], shutdown_waked=True)
    assert plan.woken == [] and not any(j.wol_shutdown for j in plan.jobs)


def test_a_computer_with_only_skipped_jobs_is_woken_but_not_marked() -> None:
    plan = plan_deployment([pc(1, installed(1), online=False)], [pkg(1)], wol=True, shutdown_waked=True)
    assert plan.woken and [j.wol_shutdown for j in plan.jobs] == [False]


def test_mark_wol_shutdown_flags_only_the_last_waiting_job() -> None:
    jobs = plan_deployment([pc(1)], [pkg(1, 1), pkg(2, 2), pkg(3, 3, compatible_os="Linux")]).jobs
    stale = [replace(jobs[0], wol_shutdown=True), *jobs[1:]]
    assert [j.wol_shutdown for j in mark_wol_shutdown(stale)] == [False, True, False]
    assert mark_wol_shutdown([]) == []


@given(st.lists(st.sampled_from(list(JobState))))
def test_the_wol_shutdown_is_carried_by_the_last_waiting_job_only(states: list[JobState]) -> None:
    carrier = wol_shutdown_carrier(states)
    if JobState.WAITING not in states:
        assert carrier is None
    else:
        assert carrier is not None and states[carrier] is JobState.WAITING
        assert JobState.WAITING not in states[carrier + 1 :]


# Uninstall plans -------------------------------------------------------------------------------


def test_plan_uninstall_for_selected_assignments_in_the_order_given() -> None:
    computer = pc(1, installed(1), installed(2, family_id=2))
    plan = plan_uninstall([computer], {1: [2, 1, 2]})
    assert [(j.sequence, j.action, j.package_id, j.procedure, j.state) for j in plan.jobs] == [
        (1, UNINSTALL, 2, "uninstall 2", WAITING),
        (2, UNINSTALL, 1, "uninstall 1", WAITING),
    ]
    assert plan.jobs[0].post_action is PostAction.RESTART and plan.jobs[0].success_codes == "0,1605"


def test_plan_uninstall_wakes_and_marks_like_a_deployment() -> None:
    computers = [pc(1, installed(1), online=False), pc(2, installed(1))]
    plan = plan_uninstall(computers, {1: [1], 2: [1]}, wol=True, shutdown_waked=True)
    assert [c.hostname for c in plan.woken] == ["pc1"]
    assert [j.wol_shutdown for j in plan.jobs] == [True, False]


def test_plan_uninstall_refuses_what_is_not_installed_or_cannot_be_uninstalled() -> None:
    with pytest.raises(InvalidDeployment, match="package 9 is not installed on 'pc1'") as raised:
        plan_uninstall([pc(1, installed(1))], {1: [9]})
    assert raised.value.field == "assignments"
    with pytest.raises(InvalidDeployment, match="F1 1 has no uninstall procedure"):
        plan_uninstall([pc(1, InstalledPackage(1, 1, "F1 1", "", "0", PostAction.NONE))], {1: [1]})


# Properties ------------------------------------------------------------------------------------

assignments = st.lists(st.tuples(st.integers(1, 8), st.integers(1, 3)), max_size=5, unique_by=lambda t: t[0])
deployed = st.lists(
    st.tuples(st.integers(1, 8), st.integers(1, 3), st.sampled_from(list(UpgradeBehavior)), st.booleans()),
    min_size=1,
    max_size=5,
)


def computer_and_packages(
    current: list[tuple[int, int]], wanted: list[tuple[int, int, UpgradeBehavior, bool]], online: bool = True
) -> tuple[TargetComputer, list[PackageToDeploy]]:
    # a package id stands for one package: its family is the one of its first appearance
    families = {p: f for p, f in current}
    for p, f, _, _ in wanted:
        families.setdefault(p, f)
    computer = pc(1, *(installed(p, families[p]) for p, _ in current), online=online)
    packages = [
        pkg(p, families[p], upgrade_behavior=b, compatible_os="" if compatible else "Linux")
        for p, _, b, compatible in wanted
    ]
    return computer, packages


@given(current=assignments, wanted=deployed, force=st.booleans())
def test_planning_properties(
    current: list[tuple[int, int]], wanted: list[tuple[int, int, UpgradeBehavior, bool]], force: bool
) -> None:
    computer, packages = computer_and_packages(current, wanted)
    jobs = plan_deployment([computer], packages, force=force).computers[0].jobs
    assert [j.sequence for j in jobs] == list(range(1, len(jobs) + 1))
    by_id: dict[int, PackageToDeploy] = {}
    for package in packages:
        by_id.setdefault(package.id, package)  # a repeated package counts once, as first given
    installs = [j for j in jobs if j.action is INSTALL]
    assert [j.package_id for j in installs] == list(by_id)  # one install per package, in order
    uninstalled = [j.package_id for j in jobs if j.action is UNINSTALL]
    assert len(uninstalled) == len(set(uninstalled))  # never twice
    installed_family = {a.package_id: a.family_id for a in computer.installed}
    assert set(uninstalled) <= set(installed_family)  # only what is installed
    for job in installs:
        package = by_id[job.package_id]
        if package.compatible_os:
            assert job.state is JobState.OS_INCOMPATIBLE
        elif job.package_id in installed_family and not force:
            assert job.state is JobState.ALREADY_INSTALLED
        else:
            assert job.state is WAITING
    for position, job in enumerate(jobs):  # an uninstall precedes an explicit-uninstall install of its family
        if job.action is UNINSTALL:
            assert job.state is WAITING
            assert any(
                later.action is INSTALL
                and later.state is WAITING
                and by_id[later.package_id].family_id == installed_family[job.package_id]
                and by_id[later.package_id].upgrade_behavior is UpgradeBehavior.EXPLICIT_UNINSTALL
                for later in jobs[position + 1 :]
            )


@given(current=assignments, wanted=deployed)
def test_every_other_version_is_uninstalled_before_an_explicit_install(
    current: list[tuple[int, int]], wanted: list[tuple[int, int, UpgradeBehavior, bool]]
) -> None:
    computer, packages = computer_and_packages(current, wanted)
    jobs = plan_deployment([computer], packages, force=True).jobs
    for position, job in enumerate(jobs):
        package = next(p for p in packages if p.id == job.package_id) if job.action is INSTALL else None
        if package is None or job.state is not WAITING:
            continue
        if package.upgrade_behavior is UpgradeBehavior.EXPLICIT_UNINSTALL:
            others = {a.package_id for a in computer.installed if a.family_id == package.family_id} - {
                package.id
            }
            earlier = {j.package_id for j in jobs[:position] if j.action is UNINSTALL}
            assert others <= earlier


@given(current=assignments, wanted=deployed, online=st.booleans(), wol=st.booleans(), shutdown=st.booleans())
def test_only_an_offline_computers_last_waiting_job_shuts_it_down(
    current: list[tuple[int, int]],
    wanted: list[tuple[int, int, UpgradeBehavior, bool]],
    online: bool,
    wol: bool,
    shutdown: bool,
) -> None:
    computer, packages = computer_and_packages(current, wanted, online=online)
    plan = plan_deployment([computer], packages, wol=wol, shutdown_waked=shutdown)
    (computer_plan,) = plan.computers
    assert computer_plan.wake is (wol and not online)
    marked = [j for j in computer_plan.jobs if j.wol_shutdown]
    waiting = [j for j in computer_plan.jobs if j.state is WAITING]
    if wol and shutdown and not online and waiting:
        assert marked == [waiting[-1]]
    else:
        assert marked == []


# What the preview says about each computer ---------------------------------------------------------


@given(online=st.booleans(), seen=st.booleans(), mac_known=st.booleans(), wol=st.booleans())
def test_only_an_offline_computer_with_a_known_mac_is_woken(
    online: bool, seen: bool, mac_known: bool, wol: bool
) -> None:
    computer = pc(1, online=online, seen=seen, mac_known=mac_known and seen)
    (computer_plan,) = plan_deployment([computer], [pkg(10)], wol=wol).computers
    wanted = wol and not online
    assert computer_plan.wake is (wanted and computer.mac_known)
    assert bool(computer_plan.cannot_wake) is (wanted and not computer.mac_known)
    if computer_plan.cannot_wake:
        assert computer_plan.cannot_wake.startswith("cannot be woken: no MAC address known")
        assert computer_plan.cannot_wake.endswith("(never checked in)") is (not seen)


@pytest.mark.parametrize(
    ("ranges", "address", "held"),
    [
        ("", "192.0.2.7", False),
        ("10.0.0.0/8", "192.0.2.7", True),
        ("10.0.0.0/8", "10.1.2.3", False),
        ("!10.1.0.0/16", "10.1.2.3", True),
        ("10.0.0.0/8", "", False),  # never checked in: nothing known to hold it back
    ],
)
def test_a_computer_last_seen_outside_the_ip_ranges_is_held_back(
    ranges: str, address: str, held: bool
) -> None:
    computer = pc(1, address=address)
    (computer_plan,) = plan_deployment([computer], [pkg(10)], ip_ranges=parse_ip_ranges(ranges)).computers
    assert bool(computer_plan.held_back) is held
    if held:
        assert computer_plan.held_back == f"will wait: last seen from {address}, outside the agent IP ranges"


def test_the_plan_in_one_sentence() -> None:
    computers = [
        pc(1, installed(10)),
        pc(2, os="Linux"),
        pc(3, online=False),
        pc(4, online=False, mac_known=False, seen=False),
        pc(5, address="192.0.2.9"),
    ]
    packages = [pkg(10, compatible_os="Windows")]
    plan = plan_deployment(computers, packages, wol=True, ip_ranges=parse_ip_ranges("10.0.0.0/8"))
    assert plan.sentence() == (
        "3 jobs to run on 5 computers, 2 jobs skipped (1 incompatible, 1 already installed);"
        " 1 offline computer will be woken; 1 offline computer cannot be woken (no MAC address known);"
        " 1 computer will wait: last seen from outside the agent IP ranges."
    )
    assert plan_deployment([pc(1)], [pkg(10)]).sentence() == "1 job to run on 1 computer."
    assert plan_deployment([], [pkg(10)]).sentence() == "0 jobs to run on 0 computers."
