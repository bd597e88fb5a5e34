"""Deployments as the seed tells them: install, update with automatic uninstall, uninstall, renew, purge."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

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
from oco.services import agent_jobs, assignments, computers, deployments, packages
from oco.services.deployments import ContainerOptions, DeploymentRequest, Targets
from oco.services.errors import InvalidInput, NotFound
from oco.services.runtime import Runtime
from tests.conftest import Clock


def add_package(rt: Runtime, family: str = "Firefox", version: str = "1.0", **changes: object) -> int:
    spec = packages.PackageSpec(
        family=family,
        version=version,
        install_procedure=f"install {family} {version}",
        uninstall_procedure=f"uninstall {family} {version}",
        **changes,  # type: ignore[arg-type]
    )
    return packages.create_package(rt, spec, None, "admin")


def add_computers(rt: Runtime, *hostnames: str, os: str = "Linux") -> list[int]:
    ids = []
    with rt.transaction() as session:
        for hostname in hostnames:
            computer = computers.add_computer(session, hostname, "admin")
            computer.os, computer.os_version, computer.architecture = os, "12", "x86_64"
            computer.last_seen = rt.now()
            ids.append(computer.id)
    return ids


def deploy(rt: Runtime, computer_ids: list[int], package_ids: list[int], **options: object) -> int:
    force = bool(options.pop("force", False))
    request = DeploymentRequest(
        options=ContainerOptions(name=str(options.pop("name", "Rollout")), **options),  # type: ignore[arg-type]
        targets=Targets(computer_ids=computer_ids, package_ids=package_ids),
        force=force,
    )
    with rt.transaction() as session:
        return deployments.create_deployment(session, rt.settings, request, "admin", rt.now()).id


def jobs_of(rt: Runtime, container_id: int) -> list[tuple[str, str, str, int, JobState]]:
    with rt.transaction() as session:
        container = deployments.get_container(session, container_id)
        return [
            (j.computer.hostname, j.package_name, j.action, j.sequence, JobState(j.state))
            for j in container.jobs
        ]


def run_all(rt: Runtime, container_id: int, return_code: int = 0) -> None:
    """Play the agent: report every waiting job of the container as finished with `return_code`."""
    with rt.transaction() as session:
        pending = [
            (j.id, j.computer_id)
            for j in deployments.get_container(session, container_id).jobs
            if JobState(j.state) is JobState.WAITING
        ]
    for job_id, computer_id in sorted(pending, key=lambda pair: pair[0]):
        report(rt, computer_id, job_id, AgentJobState.FINISHED, return_code)


def report(rt: Runtime, computer_id: int, job_id: int, state: AgentJobState, code: int | None) -> bool:
    with rt.transaction() as session:
        computer = computers.get_computer(session, computer_id)
        data = {"job-id": job_id, "state": int(state), "return-code": code, "message": "output"}
        return agent_jobs.report_job_state(session, rt.settings, computer, data, rt.now())


def installed(rt: Runtime, computer_id: int) -> list[str]:
    with rt.transaction() as session:
        return sorted(
            a.package.display_name for a in computers.get_computer(session, computer_id).assignments
        )


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
    with rt.transaction() as session:
        summary = deployments.container_summary(session, container_id, rt.now())
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
    with rt.transaction() as session, pytest.raises(NotFound):
        packages.get_package(session, v1)
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
    with rt.transaction() as session:
        assert deployments.container_summary(session, skipped, rt.now()).status is ContainerStatus.SUCCEEDED


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
    with rt.transaction() as session:
        computer_group = computers.add_computer_group(session, "Lab", "admin")
        computers.add_computers_to_group(
            session, computer_group, [computers.get_computer(session, i) for i in pcs], "a"
        )
        package_group = computers.add_package_group(session, "Base", "admin")
        computers.add_packages_to_group(
            session, package_group, [packages.get_package(session, b), packages.get_package(session, a)], "a"
        )
        request = DeploymentRequest(
            ContainerOptions(name="Group rollout"),
            Targets(computer_group_ids=[computer_group.id], package_group_ids=[package_group.id]),
        )
        container_id = deployments.create_deployment(session, rt.settings, request, "admin", rt.now()).id
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
    with rt.transaction() as session:
        group = computers.add_package_group(session, "Base", "admin")
        members = [packages.get_package(session, ids[name]) for name in "ABC"]
        computers.add_packages_to_group(session, group, members, "admin")
        group_id = group.id
    with rt.transaction() as session:
        group = computers.find_package_group(session, str(group_id))
        computers.move_package_in_group(session, group, ids[moved], steps, "admin")

    with rt.transaction() as session:
        request = DeploymentRequest(
            ContainerOptions(name="Ordered"), Targets(computer_ids=[pc], package_group_ids=[group_id])
        )
        container_id = deployments.create_deployment(session, rt.settings, request, "admin", rt.now()).id
    assert "".join(job[1][0] for job in jobs_of(rt, container_id)) == order


def test_the_preview_is_what_gets_created_and_writes_nothing(rt: Runtime) -> None:
    pcs = add_computers(rt, "pc1", "pc2")
    v1 = add_package(rt, version="1.0")
    run_all(rt, deploy(rt, pcs[:1], [v1]))
    v2 = add_package(rt, version="2.0")
    request = DeploymentRequest(ContainerOptions(name="v2"), Targets(computer_ids=pcs, package_ids=[v2]))

    with rt.transaction() as session:
        plan = deployments.preview(session, rt.settings, request, rt.now())
        containers_before = len(deployments.list_containers(session, rt.now()))

    assert [(j.package_name, j.action, j.reason) for j in plan.computers[0].jobs] == [
        ("Firefox 1.0", JobAction.UNINSTALL, "uninstall of Firefox 1.0 first"),
        ("Firefox 2.0", JobAction.INSTALL, ""),
    ]
    with rt.transaction() as session:
        assert len(deployments.list_containers(session, rt.now())) == containers_before
        created = deployments.create_deployment(session, rt.settings, request, "admin", rt.now()).id
    assert [(j[1], j[2]) for j in jobs_of(rt, created)] == [
        (j.package_name, str(j.action)) for j in plan.jobs
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
    with rt.transaction() as session:
        assert deployments.list_containers(session, rt.now()) == []


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
    with rt.transaction() as session:
        selected = [a.id for a in packages.installed_on(session, firefox)]
        name = deployments.default_uninstall_name(session, selected)
        request = deployments.UninstallRequest(ContainerOptions(name=name), selected)
        container_id = deployments.create_uninstall(session, rt.settings, request, "admin", rt.now()).id

    assert name == "Uninstall Firefox"
    assert [(j[0], j[2]) for j in jobs_of(rt, container_id)] == [("pc1", "uninstall"), ("pc2", "uninstall")]
    run_all(rt, container_id)
    assert installed(rt, pcs[0]) == installed(rt, pcs[1]) == []


def test_an_unlisted_uninstall_code_keeps_the_assignment_until_removed_by_hand(rt: Runtime) -> None:
    """Seed "Remove Package Assignments"."""
    [pc] = add_computers(rt, "pc1")
    firefox = add_package(rt)
    run_all(rt, deploy(rt, [pc], [firefox]))
    with rt.transaction() as session:
        selected = [a.id for a in packages.installed_on(session, firefox)]
        request = deployments.UninstallRequest(ContainerOptions(name="Uninstall"), selected)
        container_id = deployments.create_uninstall(session, rt.settings, request, "admin", rt.now()).id
    run_all(rt, container_id, return_code=3)
    assert installed(rt, pc) == ["Firefox 1.0"]
    with rt.transaction() as session:
        assignments.remove_assignments(session, selected, "admin")
    assert installed(rt, pc) == []


def test_abort_after_failed_job_fails_the_rest_with_minus_8888(rt: Runtime) -> None:
    pcs = add_computers(rt, "pc1", "pc2")
    a, b, c = add_package(rt, "A"), add_package(rt, "B"), add_package(rt, "C")
    container = deploy(rt, pcs, [a, b, c], sequence_mode=SequenceMode.ABORT_AFTER_FAILED)
    with rt.transaction() as session:
        first = next(j for j in deployments.get_container(session, container).jobs if j.computer_id == pcs[0])

    assert report(rt, pcs[0], first.id, AgentJobState.FINISHED, 1) is False

    with rt.transaction() as session:
        jobs = deployments.get_container(session, container).jobs
        mine = [(JobState(j.state), j.return_code, j.message) for j in jobs if j.computer_id == pcs[0]]
        theirs = {JobState(j.state) for j in jobs if j.computer_id == pcs[1]}
    assert mine == [
        (JobState.FAILED, 1, "output"),
        (JobState.FAILED, ReturnCode.ABORTED_AFTER_FAILED_JOB, "Aborted after failed job"),
        (JobState.FAILED, ReturnCode.ABORTED_AFTER_FAILED_JOB, "Aborted after failed job"),
    ]
    assert theirs == {JobState.WAITING}  # other computers carry on


def test_ignore_failed_jobs_carries_on(rt: Runtime) -> None:
    [pc] = add_computers(rt, "pc1")
    container = deploy(rt, [pc], [add_package(rt, "A"), add_package(rt, "B")])
    with rt.transaction() as session:
        first = deployments.get_container(session, container).jobs[0]
    report(rt, pc, first.id, AgentJobState.FINISHED, 1)
    assert [j[4] for j in jobs_of(rt, container)] == [JobState.FAILED, JobState.WAITING]


def test_success_codes_decide_and_final_states_never_change(rt: Runtime) -> None:
    [pc] = add_computers(rt, "pc1")
    container = deploy(rt, [pc], [add_package(rt, install_success_codes="0,3010")])
    with rt.transaction() as session:
        job_id = deployments.get_container(session, container).jobs[0].id

    assert report(rt, pc, job_id, AgentJobState.FINISHED, 3010) is True
    assert report(rt, pc, job_id, AgentJobState.ERROR, ReturnCode.AGENT_ERROR) is True  # late report ignored
    assert [j[4] for j in jobs_of(rt, container)] == [JobState.SUCCEEDED]


def test_renew_failed_jobs_in_place_and_into_a_new_container(rt: Runtime) -> None:
    pcs = add_computers(rt, "pc1", "pc2")
    container = deploy(rt, pcs, [add_package(rt)])
    run_all(rt, container, return_code=1)

    with rt.transaction() as session:
        same = deployments.renew_failed(session, container, "admin", rt.now()).id
    assert same == container
    assert {j[4] for j in jobs_of(rt, container)} == {JobState.WAITING}

    run_all(rt, container, return_code=1)
    with rt.transaction() as session:
        new = deployments.renew_failed(session, container, "admin", rt.now(), into_new_container=True)
        new_id, new_name = new.id, new.name
    assert new_id != container and new_name == "Rollout (renewed)"
    assert jobs_of(rt, container) == []
    assert {j[4] for j in jobs_of(rt, new_id)} == {JobState.WAITING}


def test_edit_a_container(rt: Runtime, clock: Clock) -> None:
    pcs = add_computers(rt, "pc1")
    container = deploy(rt, pcs, [add_package(rt)])
    edit = deployments.ContainerEdit(
        name="Renamed", enabled=False, priority=50, agent_ip_ranges=" 10.0.0.0/8 , !10.1.0.0/16", notes="n"
    )
    with rt.transaction() as session:
        deployments.edit_container(session, container, edit, "admin")
    with rt.transaction() as session:
        edited = deployments.get_container(session, container)
        assert (edited.name, edited.enabled, edited.priority) == ("Renamed", False, 50)
        assert edited.agent_ip_ranges == "10.0.0.0/8,!10.1.0.0/16"
    bad = replace(edit, end=clock.current - timedelta(days=1))
    with rt.transaction() as session, pytest.raises(InvalidDeployment):
        deployments.edit_container(session, container, bad, "admin")


def test_delete_a_container_and_a_job(rt: Runtime) -> None:
    pcs = add_computers(rt, "pc1", "pc2")
    container = deploy(rt, pcs, [add_package(rt)])
    with rt.transaction() as session:
        first = deployments.get_container(session, container).jobs[0].id
        deployments.delete_job(session, first, "admin")
    assert [j[0] for j in jobs_of(rt, container)] == ["pc2"]
    with rt.transaction() as session:
        deployments.delete_container(session, container, "admin")
    with rt.transaction() as session, pytest.raises(NotFound):
        deployments.get_container(session, container)
