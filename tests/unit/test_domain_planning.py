"""Deployment planning: sequence, compatibility, already installed, automatic uninstall, WOL marks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.domain.errors import InvalidDeployment, InvalidIpRange
from oco.domain.planning import (
    ContainerSettings,
    InstalledPackage,
    PackageToDeploy,
    TargetComputer,
    effective_post_action,
    incompatibility,
    plan_deployment,
    plan_uninstall,
    validate_container,
)
from oco.domain.states import JobAction, JobState, PostAction, SequenceMode, UpgradeBehavior

NOW = datetime(2026, 3, 1, tzinfo=UTC)


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
        package_id, family_id, f"F{family_id} {version}", f"{uninstall} {package_id}", "0", PostAction.NONE
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


def summary(plan_jobs: list) -> list[tuple[int, str, int, JobState]]:  # type: ignore[type-arg]
    return [(j.sequence, str(j.action), j.package_id, j.state) for j in plan_jobs]


def test_packages_keep_their_order_and_number_per_computer() -> None:
    plan = plan_deployment([pc(1), pc(2)], [pkg(10, 1), pkg(20, 2)])
    for computer in plan.computers:
        assert summary(list(computer.jobs)) == [
            (1, "install", 10, JobState.WAITING),
            (2, "install", 20, JobState.WAITING),
        ]
    assert plan.counts() == {JobState.WAITING: 4}


def test_explicit_uninstall_comes_first_for_every_other_installed_version() -> None:
    computer = pc(1, installed(1, version="1"), installed(2, version="2"))
    plan = plan_deployment([computer], [pkg(3, version="3")])
    jobs = plan.computers[0].jobs
    assert summary(list(jobs)) == [
        (1, "uninstall", 1, JobState.WAITING),
        (2, "uninstall", 2, JobState.WAITING),
        (3, "install", 3, JobState.WAITING),
    ]
    assert jobs[0].procedure == "uninstall 1" and jobs[0].reason == "uninstall of F1 1 first"


@pytest.mark.parametrize("behavior", [UpgradeBehavior.INSTALLER_REMOVES, UpgradeBehavior.KEEP])
def test_other_behaviours_schedule_no_uninstall(behavior: UpgradeBehavior) -> None:
    plan = plan_deployment([pc(1, installed(1))], [pkg(2, version="2", upgrade_behavior=behavior)])
    assert [j.action for j in plan.jobs] == [JobAction.INSTALL]


def test_other_families_are_left_alone_and_uninstalls_are_not_doubled() -> None:
    computer = pc(1, installed(1, family_id=1), installed(9, family_id=2))
    plan = plan_deployment([computer], [pkg(2, family_id=1, version="2"), pkg(3, family_id=1, version="3")])
    assert [(j.action, j.package_id) for j in plan.jobs] == [
        (JobAction.UNINSTALL, 1),
        (JobAction.INSTALL, 2),
        (JobAction.INSTALL, 3),
    ]


def test_a_version_without_uninstall_procedure_is_noted_not_scheduled() -> None:
    no_uninstall = InstalledPackage(1, 1, "F1 1", " ", "0", PostAction.NONE)
    plan = plan_deployment([pc(1, no_uninstall)], [pkg(2, version="2")])
    assert [j.action for j in plan.jobs] == [JobAction.INSTALL]
    assert plan.computers[0].notes == ("F1 1 has no uninstall procedure and stays installed",)


def test_already_installed_is_skipped_unless_forced() -> None:
    computer = pc(1, installed(5))
    skipped = plan_deployment([computer], [pkg(5)])
    forced = plan_deployment([computer], [pkg(5)], force=True)
    assert [(j.state, j.reason) for j in skipped.jobs] == [(JobState.ALREADY_INSTALLED, "already installed")]
    assert [(j.state, j.reason) for j in forced.jobs] == [(JobState.WAITING, "reinstall (forced)")]
    assert skipped.skipped() == list(skipped.jobs)


@pytest.mark.parametrize(
    ("requirement", "computer", "compatible"),
    [
        ({}, {}, True),
        ({"compatible_os": "windows"}, {}, True),
        ({"compatible_os": "Linux, Windows"}, {}, True),
        ({"compatible_os": "Linux"}, {}, False),
        ({"compatible_os_version": "10.0"}, {}, True),
        ({"compatible_os_version": "6.1"}, {}, False),
        ({"compatible_architecture": "amd64"}, {}, True),
        ({"compatible_architecture": "arm64"}, {}, False),
        ({"compatible_os": "Windows"}, {"os": ""}, False),
    ],
)
def test_compatibility(requirement: dict[str, str], computer: dict[str, str], compatible: bool) -> None:
    reason = incompatibility(pkg(1, **requirement), pc(1, **computer))
    assert (reason is None) is compatible
    plan = plan_deployment([pc(1, **computer)], [pkg(1, **requirement)])
    assert plan.jobs[0].state is (JobState.WAITING if compatible else JobState.OS_INCOMPATIBLE)


def test_incompatibility_says_why() -> None:
    assert incompatibility(pkg(1, compatible_os="Linux"), pc(1)) == (
        "incompatible: needs OS 'Linux', computer has 'Windows 11 Pro'"
    )
    assert "not reported yet" in (incompatibility(pkg(1, compatible_os="Linux"), pc(1, os="")) or "")


def test_wol_wakes_offline_computers_and_marks_only_their_last_runnable_job() -> None:
    online, offline = pc(1, online=True), pc(2, online=False, installed=(installed(7, family_id=3),))
    packages = [pkg(10, 1), pkg(7, 3)]  # the second is already installed on pc2
    plan = plan_deployment([online, offline], packages, wol=True, shutdown_waked=True)
    assert [c.hostname for c in plan.woken] == ["pc2"]
    assert [j.wol_shutdown for j in plan.computers[0].jobs] == [False, False]
    assert [(j.package_id, j.wol_shutdown) for j in plan.computers[1].jobs] == [(10, True), (7, False)]
    assert effective_post_action(PostAction.NONE, True) is PostAction.SHUTDOWN
    assert effective_post_action(PostAction.RESTART, False) is PostAction.RESTART


def test_without_shutdown_waked_nobody_is_marked() -> None:
    plan = plan_deployment([pc(1, online=False)], [pkg(1)], wol=True)
    assert plan.woken and not any(j.wol_shutdown for j in plan.jobs)


def test_plan_uninstall_for_selected_assignments() -> None:
    computer = pc(1, installed(1), installed(2, family_id=2))
    plan = plan_uninstall([computer], {1: [2, 1]})
    assert [(j.sequence, j.action, j.package_id, j.procedure) for j in plan.jobs] == [
        (1, JobAction.UNINSTALL, 2, "uninstall 2"),
        (2, JobAction.UNINSTALL, 1, "uninstall 1"),
    ]


def settings(**changes: object) -> ContainerSettings:
    values: dict[str, object] = {"name": "Rollout", "start": NOW}
    values.update(changes)
    return ContainerSettings(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": "  "}, "name", "name must not be empty"),
        ({"name": "x" * 256}, "name", "at most 255"),
        ({"priority": -101}, "priority", "priority -101 must be between -100 and 100"),
        ({"end": NOW}, "end", "must be after start"),
        ({"end": NOW - timedelta(days=1)}, "end", "must be after start"),
    ],
)
def test_container_settings_are_validated(changes: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(InvalidDeployment, match=message) as raised:
        validate_container(settings(**changes))
    assert raised.value.field == field


def test_valid_settings_are_normalised() -> None:
    validated = validate_container(settings(name=" Rollout ", agent_ip_ranges="10.0.0.1, !::1", priority=100))
    assert (validated.name, validated.agent_ip_ranges) == ("Rollout", "10.0.0.1/32,!::1/128")
    assert validated.sequence_mode is SequenceMode.IGNORE_FAILED
    with pytest.raises(InvalidIpRange):
        validate_container(settings(agent_ip_ranges="10.0.0.0/99"))


assignments = st.lists(st.tuples(st.integers(1, 8), st.integers(1, 3)), max_size=5, unique_by=lambda t: t[0])
deployed = st.lists(
    st.tuples(st.integers(1, 8), st.integers(1, 3), st.sampled_from(list(UpgradeBehavior))),
    min_size=1,
    max_size=4,
    unique_by=lambda t: t[0],
)


@given(current=assignments, wanted=deployed, force=st.booleans())
def test_planning_properties(
    current: list[tuple[int, int]], wanted: list[tuple[int, int, UpgradeBehavior]], force: bool
) -> None:
    computer = pc(1, *(installed(p, f) for p, f in current))
    plan = plan_deployment([computer], [pkg(p, f, upgrade_behavior=b) for p, f, b in wanted], force=force)
    jobs = plan.computers[0].jobs
    assert [j.sequence for j in jobs] == list(range(1, len(jobs) + 1))
    installs = [j for j in jobs if j.action is JobAction.INSTALL]
    assert [j.package_id for j in installs] == [p for p, _, _ in wanted]  # one per package, in order
    uninstalled = [j.package_id for j in jobs if j.action is JobAction.UNINSTALL]
    assert len(uninstalled) == len(set(uninstalled))  # never twice
    installed_ids = {p for p, _ in current}
    assert set(uninstalled) <= installed_ids
    for job in installs:
        if job.package_id in installed_ids and not force:
            assert job.state is JobState.ALREADY_INSTALLED
    for position, job in enumerate(jobs):  # an uninstall precedes the install that asked for it
        if job.action is JobAction.UNINSTALL:
            assert any(later.action is JobAction.INSTALL for later in jobs[position + 1 :])
