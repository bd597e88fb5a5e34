"""Deployments as the seed tells them: install, update with automatic uninstall, uninstall, renew, purge."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from oco.db.models import Computer
from oco.domain.errors import InvalidDeployment, InvalidIpRange
from oco.domain.states import (
    AgentJobState,
    ContainerStatus,
    JobAction,
    JobState,
    ReturnCode,
    SequenceMode,
    UpgradeBehavior,
)
from oco.errors import InvalidInput, NotFound
from oco.services import agent_jobs, assignments, computers, containers, deployments, groups, jobs, packages
from oco.services.containers import ContainerEdit
from oco.services.deployments import ContainerOptions, DeploymentRequest, UninstallRequest
from oco.services.runtime import Runtime
from oco.services.targets import Targets
from tests.conftest import Clock


def add_package(rt: Runtime, family: str = "Firefox", version: str = "1.0", **changes: object) -> int:
    spec = packages.PackageSpec(
        family=family,
        version=version,
        install_procedure=f"install {family} {version}",
        uninstall_procedure=f"uninstall {family} {version}",
        **changes,  # type: ignore[arg-type]
    )
    return packages.create_package(rt, spec, None, "admin").id


def add_computers(rt: Runtime, *hostnames: str, os: str = "Linux") -> list[int]:
    """Computers as an agent's inventory would leave them, online now."""
    ids = [computers.add_computer(rt, hostname, "admin").id for hostname in hostnames]
    with rt.transaction() as session:
        for computer_id in ids:
            computer = session.get(Computer, computer_id)
            assert computer is not None
            computer.os, computer.os_version, computer.architecture = os, "12", "x86_64"
            computer.last_seen = rt.now()
    return ids


def deploy(rt: Runtime, computer_ids: list[int], package_ids: list[int], **options: object) -> int:
    force = bool(options.pop("force", False))
    request = DeploymentRequest(
        options=ContainerOptions(name=str(options.pop("name", "Rollout")), **options),  # type: ignore[arg-type]
        targets=Targets(computers=computer_ids, packages=package_ids),
        force=force,
    )
    return deployments.create_deployment(rt, request, "admin").id


def jobs_of(rt: Runtime, container_id: int) -> list[tuple[str, str, str, int, JobState]]:
    return [
        (j.computer, j.package, j.action, j.sequence, j.state)
        for j in containers.container_detail(rt, container_id).jobs
    ]


def job_ids(rt: Runtime, container_id: int, computer_id: int | None = None) -> list[int]:
    jobs = containers.container_detail(rt, container_id).jobs
    return [j.id for j in jobs if computer_id is None or j.computer_id == computer_id]


def run_all(rt: Runtime, container_id: int, return_code: int = 0) -> None:
    """Play the agent: report every waiting job of the container as finished with `return_code`."""
    pending = [
        (j.id, j.computer_id)
        for j in containers.container_detail(rt, container_id).jobs
        if j.state is JobState.WAITING
    ]
    for job_id, computer_id in sorted(pending, key=lambda pair: pair[0]):
        report(rt, computer_id, job_id, AgentJobState.FINISHED, return_code)


def report(rt: Runtime, computer_id: int, job_id: int, state: AgentJobState, code: int | None) -> bool:
    with rt.transaction() as session:
        computer = session.get(Computer, computer_id)
        data = {"job-id": job_id, "state": int(state), "return-code": code, "message": "output"}
        return agent_jobs.report_job_state(session, rt.settings, computer, data, rt.now(), "127.0.0.1")  # type: ignore[arg-type]


def installed(rt: Runtime, computer_id: int) -> list[str]:
    return sorted(a.package for a in computers.computer_detail(rt, computer_id).installed_packages)


def test_install_a_package_on_computers(rt: Runtime) -> None:
    pcs = add_computers(rt, "pc1", "pc2")
    firefox = add_package(rt)

    container_id = deploy(rt, pcs, [firefox])

    assert jobs_of(rt, container_id) == [
        ("pc1", "Firefox 1.0", "install", 1, JobState.WAITING),
        ("pc2", "Firefox 1.0", "install", 1, JobState.WAITING),
    ]
    run_all(rt, container_id)
    assert installed(rt, pcs[0]) == installed(rt, pcs[1]) == ["Firefox 1.0"]
    summary = containers.container_detail(rt, container_id)
    assert (summary.status, summary.progress) == (ContainerStatus.SUCCEEDED, 100)


def test_update_packages_uninstalls_the_old_version_first(rt: Runtime) -> None:
    """Seed "Update Packages": v1 on three computers, deploy v2: 3 uninstall + 3 install jobs in order."""
    pcs = add_computers(rt, "pc1", "pc2", "pc3")
    v1 = add_package(rt, version="1.0")
    run_all(rt, deploy(rt, pcs, [v1], name="v1"))
    v2 = add_package(rt, version="2.0")

    update = deploy(rt, pcs, [v2], name="v2")

    assert jobs_of(rt, update) == [
        (pc, name, action, seq, JobState.WAITING)
        for pc in ("pc1", "pc2", "pc3")
        for name, action, seq in (("Firefox 1.0", "uninstall", 1), ("Firefox 2.0", "install", 2))
    ]
    run_all(rt, update)
    assert [installed(rt, pc) for pc in pcs] == [["Firefox 2.0"]] * 3
    packages.remove_package(rt, v1, "admin")  # the old version can go now
    with pytest.raises(NotFound):
        packages.package_detail(rt, v1)
    assert [j[1] for j in jobs_of(rt, update)][:1] == ["Firefox 1.0"]  # history keeps the name


def test_installer_removes_other_versions_drops_their_assignments(rt: Runtime) -> None:
    [pc] = add_computers(rt, "pc1")
    v1 = add_package(rt, version="1.0")
    run_all(rt, deploy(rt, [pc], [v1]))
    v2 = add_package(rt, version="2.0", upgrade_behavior=UpgradeBehavior.INSTALLER_REMOVES)

    container = deploy(rt, [pc], [v2])

    assert [j[2] for j in jobs_of(rt, container)] == ["install"]
    run_all(rt, container)
    assert installed(rt, pc) == ["Firefox 2.0"]


def test_keep_other_versions_installs_side_by_side(rt: Runtime) -> None:
    [pc] = add_computers(rt, "pc1")
    run_all(rt, deploy(rt, [pc], [add_package(rt, version="1.0")]))
    container = deploy(rt, [pc], [add_package(rt, version="2.0", upgrade_behavior=UpgradeBehavior.KEEP)])
    run_all(rt, container)
    assert installed(rt, pc) == ["Firefox 1.0", "Firefox 2.0"]


def test_already_installed_is_skipped_unless_forced(rt: Runtime) -> None:
    [pc] = add_computers(rt, "pc1")
    firefox = add_package(rt)
    run_all(rt, deploy(rt, [pc], [firefox]))

    skipped = deploy(rt, [pc], [firefox])
    forced = deploy(rt, [pc], [firefox], force=True)

    assert [j[4] for j in jobs_of(rt, skipped)] == [JobState.ALREADY_INSTALLED]
    assert [j[4] for j in jobs_of(rt, forced)] == [JobState.WAITING]
    assert containers.container_detail(rt, skipped).status is ContainerStatus.SUCCEEDED


def test_incompatible_computers_get_state_minus_3(rt: Runtime) -> None:
    linux = add_computers(rt, "linux1")
    windows = add_computers(rt, "win1", os="Windows 11 Pro")
    package = add_package(rt, compatible_os="Windows")

    container = deploy(rt, linux + windows, [package])

    assert [(j[0], j[4]) for j in jobs_of(rt, container)] == [
        ("linux1", JobState.OS_INCOMPATIBLE),
        ("win1", JobState.WAITING),
    ]


def test_groups_expand_in_order(rt: Runtime) -> None:
    pcs = add_computers(rt, "pc1", "pc2")
    a, b = add_package(rt, "A"), add_package(rt, "B")
    computer_group = groups.add_computer_group(rt, "Lab", "admin")
    groups.add_computers_to_group(rt, computer_group.id, pcs, "a")
    package_group = groups.add_package_group(rt, "Base", "admin")
    groups.add_packages_to_group(rt, "Base", [b, a], "a")
    request = DeploymentRequest(
        ContainerOptions(name="Group rollout"),
        Targets(computer_groups=["Lab"], package_groups=[package_group.id]),
    )
    container_id = deployments.create_deployment(rt, request, "admin").id
    assert [(j[0], j[1], j[3]) for j in jobs_of(rt, container_id)] == [
        ("pc1", "B 1.0", 1),
        ("pc1", "A 1.0", 2),
        ("pc2", "B 1.0", 1),
        ("pc2", "A 1.0", 2),
    ]


@pytest.mark.parametrize(
    ("moved", "steps", "order"),
    [
        ("C", -1, "ACB"),
        ("C", -5, "CAB"),  # stops at the top
        ("A", -1, "ABC"),
        ("A", 1, "BAC"),
        ("A", 9, "BCA"),  # stops at the bottom
        ("B", 0, "ABC"),
    ],
)
def test_a_moved_package_changes_the_group_and_the_deployment_order(
    rt: Runtime, moved: str, steps: int, order: str
) -> None:
    [pc] = add_computers(rt, "pc1")
    ids = {name: add_package(rt, name) for name in "ABC"}
    group_id = groups.add_package_group(rt, "Base", "admin").id
    groups.add_packages_to_group(rt, group_id, [ids[name] for name in "ABC"], "admin")
    groups.move_package_in_group(rt, group_id, ids[moved], steps, "admin")

    request = DeploymentRequest(
        ContainerOptions(name="Ordered"), Targets(computers=[pc], package_groups=[group_id])
    )
    container_id = deployments.create_deployment(rt, request, "admin").id
    assert "".join(job[1][0] for job in jobs_of(rt, container_id)) == order


def test_the_preview_is_what_gets_created_and_writes_nothing(rt: Runtime) -> None:
    pcs = add_computers(rt, "pc1", "pc2")
    v1 = add_package(rt, version="1.0")
    run_all(rt, deploy(rt, pcs[:1], [v1]))
    v2 = add_package(rt, version="2.0")
    request = DeploymentRequest(ContainerOptions(name="v2"), Targets(computers=pcs, packages=[v2]))
    containers_before = len(containers.list_containers(rt))

    plan = deployments.preview_deployment(rt, request)

    assert [(j.package, j.action, j.reason) for j in plan.computers[0].jobs] == [
        ("Firefox 1.0", JobAction.UNINSTALL, "uninstall of Firefox 1.0 first"),
        ("Firefox 2.0", JobAction.INSTALL, ""),
    ]
    assert len(containers.list_containers(rt)) == containers_before
    created = deployments.create_deployment(rt, request, "admin").id
    assert [(j[1], j[2]) for j in jobs_of(rt, created)] == [
        (j.package, j.action) for computer in plan.computers for j in computer.jobs
    ]


@pytest.mark.parametrize(
    ("options", "error", "field"),
    [
        ({"name": " "}, InvalidDeployment, "name"),
        ({"priority": 101}, InvalidDeployment, "priority"),
        ({"agent_ip_ranges": "10.0.0.0/33"}, InvalidIpRange, "agent_ip_ranges"),
    ],
)
def test_bad_deployments_are_refused_and_write_nothing(
    rt: Runtime, options: dict[str, object], error: type[Exception], field: str
) -> None:
    pcs = add_computers(rt, "pc1")
    package = add_package(rt)
    with pytest.raises(error) as raised:
        deploy(rt, pcs, [package], **options)
    assert getattr(raised.value, "field", None) == field
    assert containers.list_containers(rt) == []


def test_end_must_be_after_start(rt: Runtime, clock: Clock) -> None:
    pcs = add_computers(rt, "pc1")
    with pytest.raises(InvalidDeployment, match="must be after start"):
        deploy(rt, pcs, [add_package(rt)], start=clock.current, end=clock.current - timedelta(hours=1))


def test_unknown_targets_are_named(rt: Runtime) -> None:
    pcs = add_computers(rt, "pc1")
    with pytest.raises(NotFound, match="package 999 does not exist"):
        deploy(rt, pcs, [999])
    with pytest.raises(InvalidInput, match="at least one package"):
        deploy(rt, pcs, [])


def test_uninstall_from_selected_assignments(rt: Runtime) -> None:
    pcs = add_computers(rt, "pc1", "pc2")
    firefox = add_package(rt)
    run_all(rt, deploy(rt, pcs, [firefox]))
    selected = [a.id for a in packages.package_detail(rt, firefox).installed_on]
    created = deployments.create_uninstall(rt, UninstallRequest(ContainerOptions(name=""), selected), "admin")
    container_id = created.id

    assert created.name == "Uninstall Firefox"
    assert [(j[0], j[2]) for j in jobs_of(rt, container_id)] == [("pc1", "uninstall"), ("pc2", "uninstall")]
    run_all(rt, container_id)
    assert installed(rt, pcs[0]) == installed(rt, pcs[1]) == []


def test_an_unlisted_uninstall_code_keeps_the_assignment_until_removed_by_hand(rt: Runtime) -> None:
    """Seed "Remove Package Assignments"."""
    [pc] = add_computers(rt, "pc1")
    firefox = add_package(rt)
    run_all(rt, deploy(rt, [pc], [firefox]))
    selected = [a.id for a in packages.package_detail(rt, firefox).installed_on]
    request = UninstallRequest(ContainerOptions(name="Uninstall"), selected)
    container_id = deployments.create_uninstall(rt, request, "admin").id
    run_all(rt, container_id, return_code=3)
    assert installed(rt, pc) == ["Firefox 1.0"]
    assert assignments.remove_assignments(rt, selected, "admin") == 1
    assert installed(rt, pc) == []


def test_abort_after_failed_job_fails_the_rest_with_minus_8888(rt: Runtime) -> None:
    pcs = add_computers(rt, "pc1", "pc2")
    a, b, c = add_package(rt, "A"), add_package(rt, "B"), add_package(rt, "C")
    container = deploy(rt, pcs, [a, b, c], sequence_mode=SequenceMode.ABORT_AFTER_FAILED)
    first = job_ids(rt, container, pcs[0])[0]

    assert report(rt, pcs[0], first, AgentJobState.FINISHED, 1) is False

    jobs = containers.container_detail(rt, container).jobs
    mine = [(j.state, j.return_code, j.message) for j in jobs if j.computer_id == pcs[0]]
    theirs = {j.state for j in jobs if j.computer_id == pcs[1]}
    assert mine == [
        (JobState.FAILED, 1, "output"),
        (JobState.FAILED, ReturnCode.ABORTED_AFTER_FAILED_JOB, "Aborted after failed job"),
        (JobState.FAILED, ReturnCode.ABORTED_AFTER_FAILED_JOB, "Aborted after failed job"),
    ]
    assert theirs == {JobState.WAITING}  # other computers carry on


def test_ignore_failed_jobs_carries_on(rt: Runtime) -> None:
    [pc] = add_computers(rt, "pc1")
    container = deploy(rt, [pc], [add_package(rt, "A"), add_package(rt, "B")])
    report(rt, pc, job_ids(rt, container)[0], AgentJobState.FINISHED, 1)
    assert [j[4] for j in jobs_of(rt, container)] == [JobState.FAILED, JobState.WAITING]


def test_success_codes_decide_and_final_states_never_change(rt: Runtime) -> None:
    [pc] = add_computers(rt, "pc1")
    container = deploy(rt, [pc], [add_package(rt, install_success_codes="0,3010")])
    [job_id] = job_ids(rt, container)

    assert report(rt, pc, job_id, AgentJobState.FINISHED, 3010) is True
    assert report(rt, pc, job_id, AgentJobState.ERROR, ReturnCode.AGENT_ERROR) is True  # late report ignored
    assert [j[4] for j in jobs_of(rt, container)] == [JobState.SUCCEEDED]


def test_renew_failed_jobs_in_place_and_into_a_new_container(rt: Runtime) -> None:
    pcs = add_computers(rt, "pc1", "pc2")
    container = deploy(rt, pcs, [add_package(rt)])
    run_all(rt, container, return_code=1)

    same = containers.renew_failed(rt, container, "admin")
    assert same.id == container
    assert same.job_counts == {"waiting": 2}
    assert {j[4] for j in jobs_of(rt, container)} == {JobState.WAITING}

    run_all(rt, container, return_code=1)
    new = containers.renew_failed(rt, container, "admin", into_new_container=True)
    new_id, new_name = new.id, new.name
    assert new_id != container and new_name == "Rollout (renewed)"
    assert {j[4] for j in jobs_of(rt, new_id)} == {JobState.WAITING}
    with pytest.raises(NotFound):  # every job moved on: the emptied container is gone
        containers.container_summary(rt, container)


def test_renewing_some_failed_jobs_into_a_new_container_keeps_the_rest(rt: Runtime) -> None:
    pcs = add_computers(rt, "pc1", "pc2")
    container = deploy(rt, pcs, [add_package(rt)])
    first, second = containers.container_detail(rt, container).jobs
    report(rt, first.computer_id, first.id, AgentJobState.FINISHED, 1)
    report(rt, second.computer_id, second.id, AgentJobState.FINISHED, 0)
    new = containers.renew_failed(rt, container, "admin", into_new_container=True)
    assert containers.container_summary(rt, container).job_counts == {"succeeded": 1}
    assert new.job_counts == {"waiting": 1}


def test_edit_a_container(rt: Runtime, clock: Clock) -> None:
    pcs = add_computers(rt, "pc1")
    container = deploy(rt, pcs, [add_package(rt)])
    edit = ContainerEdit(
        name="Renamed", enabled=False, priority=50, agent_ip_ranges=" 10.0.0.0/8 , !10.1.0.0/16", notes="n"
    )
    answered = containers.edit_container(rt, container, edit, "admin")
    edited = containers.container_detail(rt, container)
    assert (edited.name, edited.enabled, edited.priority) == ("Renamed", False, 50)
    assert edited.agent_ip_ranges == "10.0.0.0/8,!10.1.0.0/16"
    assert answered.model_dump() == edited.model_dump(exclude={"jobs"})
    bad = replace(edit, end=clock.current - timedelta(days=1))
    with pytest.raises(InvalidDeployment):
        containers.edit_container(rt, container, bad, "admin")
    assert containers.container_detail(rt, container).end is None  # nothing of the refused edit stayed


def test_delete_a_container_and_a_job(rt: Runtime) -> None:
    pcs = add_computers(rt, "pc1", "pc2")
    container = deploy(rt, pcs, [add_package(rt)])
    first = job_ids(rt, container)[0]
    with pytest.raises(NotFound):  # a job is deleted only from its own container
        jobs.delete_job(rt, first, "admin", container_id=container + 1)
    jobs.delete_job(rt, first, "admin", container_id=container)
    assert [j[0] for j in jobs_of(rt, container)] == ["pc2"]
    containers.delete_container(rt, container, "admin")
    with pytest.raises(NotFound):
        containers.container_detail(rt, container)
    with pytest.raises(NotFound, match="job container 999 does not exist"):
        containers.delete_container(rt, 999, "admin")
