"""What an unmodified OCO agent needs of `oco server` beyond the basics: forced inventories, a login
history, its way of running the rest of a container after an agent error, uninstalls without downloads,
and a software inventory that can be searched.

A real `oco server` process answers; the tests play OCO agents with tests/agentclient.py.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from oco.domain.errors import InvalidVersionCondition
from oco.domain.states import JobState, ReturnCode, SequenceMode
from oco.errors import InvalidInput
from oco.services import computers, containers, deployments, packages
from oco.services.computers import ComputerQuery
from oco.services.deployments import ContainerOptions, DeploymentRequest, UninstallRequest
from oco.services.listing import PageRequest
from oco.services.runtime import Runtime
from oco.services.targets import Targets
from tests.agentclient import ProtocolClient
from tests.conftest import make_runtime
from tests.live import REGISTRATION_KEY, LiveServer, start_server

PAYLOAD = b"setup files " * 1000


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[tuple[LiveServer, Runtime]]:
    workdir = tmp_path_factory.mktemp("oco-dropin")
    shutil.copy(sqlite_template, workdir / "oco.sqlite3")
    url = f"sqlite:///{workdir / 'oco.sqlite3'}"
    server = start_server(workdir, url, self_registration="true", login_history_max="5")
    rt = make_runtime(url, workdir)
    yield server, rt
    server.stop()
    rt.close()


@pytest.fixture
def server(world: tuple[LiveServer, Runtime]) -> LiveServer:
    return world[0]


@pytest.fixture
def rt(world: tuple[LiveServer, Runtime]) -> Runtime:
    return world[1]


_counter = iter(range(1, 10_000))


def oco_agent(server: LiveServer) -> ProtocolClient:
    """A registered OCO agent that sent its first inventory."""
    client = ProtocolClient(server.url, f"oco-pc{next(_counter)}", REGISTRATION_KEY)
    assert client.hello()["update"] == 1
    client.update()
    return client


def package(rt: Runtime, family: str, **changes: object) -> int:
    spec = packages.PackageSpec(
        family=f"{family}-{next(_counter)}",
        version="1.0",
        install_procedure=f"install {family}",
        uninstall_procedure=f"uninstall {family}",
        **changes,  # type: ignore[arg-type]
    )
    store = lambda depot: depot.put_upload(io.BytesIO(PAYLOAD), "setup.bin")  # noqa: E731
    return packages.create_package(rt, spec, store, "admin").id


def deploy(rt: Runtime, hostname: str, package_ids: list[int], **options: object) -> int:
    request = DeploymentRequest(
        ContainerOptions(name="rollout", **options),  # type: ignore[arg-type]
        Targets(computers=[hostname], packages=package_ids),
    )
    return deployments.create_deployment(rt, request, "admin").id


def installed(rt: Runtime, hostname: str) -> list[int]:
    return sorted(a.package_id for a in computers.computer_detail(rt, hostname).installed_packages)


def test_a_forced_hello_asks_for_an_inventory(server: LiveServer) -> None:
    agent = oco_agent(server)
    assert agent.hello()["update"] == 0

    assert agent.hello(force_update=True)["update"] == 1
    assert agent.hello(force_update=False)["update"] == 0


def test_the_login_history_is_kept_and_logins_since_is_its_newest_login(
    server: LiveServer, rt: Runtime
) -> None:
    agent = oco_agent(server)
    first = [
        {"username": "anna", "console": ":0", "timestamp": "2026-11-30 08:00:00"},
        {"username": "bob", "console": "tty2", "timestamp": "2026-11-30 09:30:00"},
    ]
    agent.update(logins=first)
    assert agent.hello()["logins-since"] == "2026-11-30 09:30:00"

    agent.update(logins=[])  # a quiet inventory: nobody logged in since
    agent.update(logins=[first[1], {"username": "anna", "console": ":0", "timestamp": "2026-12-01 07:00:00"}])

    history = computers.computer_detail(rt, agent.hostname).logins
    assert [(login["username"], login["timestamp"]) for login in history] == [
        ("anna", "2026-12-01 07:00:00"),
        ("bob", "2026-11-30 09:30:00"),
        ("anna", "2026-11-30 08:00:00"),
    ]
    assert agent.hello()["logins-since"] == "2026-12-01 07:00:00"


def test_the_login_history_is_capped_as_configured(server: LiveServer, rt: Runtime) -> None:
    agent = oco_agent(server)
    agent.update(
        logins=[{"username": f"u{day}", "timestamp": f"2026-11-{day:02d} 08:00:00"} for day in range(1, 21)]
    )

    history = computers.computer_detail(rt, agent.hostname).logins
    assert [login["username"] for login in history] == [
        "u20",
        "u19",
        "u18",
        "u17",
        "u16",
    ]  # login_history_max 5


def test_a_job_aborted_by_the_cascade_accepts_the_report_of_an_oco_agent_that_ran_it(
    server: LiveServer, rt: Runtime
) -> None:
    agent = oco_agent(server)
    first, second, third = package(rt, "First"), package(rt, "Second"), package(rt, "Third")
    container = deploy(
        rt, agent.hostname, [first, second, third], sequence_mode=SequenceMode.ABORT_AFTER_FAILED
    )
    jobs = agent.hello()["software-jobs"]
    assert [job["package-id"] for job in jobs] == [first, second, third]

    answers = agent.run_like_oco_agent(jobs, {jobs[0]["id"]: None, jobs[2]["id"]: 1})

    assert answers == [False, True, False]
    detail = containers.container_detail(rt, container).jobs
    by_package = {job.package_id: (job.state, job.return_code) for job in detail}
    assert by_package == {
        first: (JobState.FAILED, int(ReturnCode.AGENT_ERROR)),
        second: (JobState.SUCCEEDED, 0),
        third: (JobState.FAILED, 1),
    }
    assert installed(rt, agent.hostname) == [second]


def test_a_job_still_aborted_stays_so_and_a_final_report_is_not_applied_twice(
    server: LiveServer, rt: Runtime
) -> None:
    agent = oco_agent(server)
    first, second = package(rt, "One"), package(rt, "Two")
    container = deploy(rt, agent.hostname, [first, second], sequence_mode=SequenceMode.ABORT_AFTER_FAILED)
    jobs = agent.hello()["software-jobs"]
    agent.report(jobs[0]["id"], 2)
    assert agent.report(jobs[0]["id"], 3, 5) is False  # fails: the cascade aborts the second
    assert [(j.state, j.return_code) for j in containers.container_detail(rt, container).jobs][1] == (
        JobState.FAILED,
        int(ReturnCode.ABORTED_AFTER_FAILED_JOB),
    )
    assert agent.hello()["software-jobs"] == []  # the server does not hand the aborted job out

    assert agent.report(jobs[1]["id"], 3, 0) is True  # but the computer ran it: that wins
    assert agent.report(jobs[1]["id"], 3, 7) is True  # and then it is final like any other
    assert installed(rt, agent.hostname) == [second]


def test_uninstall_jobs_download_the_payload_only_when_the_package_says_so(
    server: LiveServer, rt: Runtime
) -> None:
    agent = oco_agent(server)
    plain, with_files = package(rt, "Plain"), package(rt, "WithFiles", download_for_uninstall=True)
    deploy(rt, agent.hostname, [plain, with_files])
    installs = agent.hello()["software-jobs"]
    assert [job["download"] for job in installs] == [True, True]
    agent.run_like_oco_agent(installs, {})

    deployments.create_uninstall(
        rt,
        UninstallRequest(
            ContainerOptions(name="remove"), computer=agent.hostname, package_ids=[plain, with_files]
        ),
        "admin",
    )
    uninstalls = {job["package-id"]: job["download"] for job in agent.hello()["software-jobs"]}

    assert uninstalls == {plain: False, with_files: True}
    assert packages.package_detail(rt, plain).download_for_uninstall is False


FIREFOX_FLEET = {
    "old": [{"name": "Mozilla Firefox", "version": "115.5.0esr", "description": "Web browser"}],
    "new": [{"name": "Mozilla Firefox", "version": "120.0.1", "description": "Web browser"}],
    "beta": [{"name": "Mozilla Firefox", "version": "121.0~b3", "description": ""}],
    "none": [{"name": "LibreOffice", "version": "7.6.2", "description": "Office suite"}],
}


def test_the_software_inventory_is_stored_and_computers_are_found_by_software_version(
    server: LiveServer, rt: Runtime
) -> None:
    fleet = {}
    for label, software in FIREFOX_FLEET.items():
        agent = oco_agent(server)
        agent.update(software=software, screens=[{"name": "DELL U2720Q", "resolution": "3840x2160"}])
        fleet[label] = agent.hostname

    def found(name: str, condition: str = "") -> set[str]:
        query = ComputerQuery(software=name, software_version=condition)
        return {c.hostname for c in computers.export_computers(rt, query)}

    assert found("firefox", "< 120") == {fleet["old"]}
    assert found("Firefox", ">= 120") == {fleet["new"], fleet["beta"]}
    assert found("firefox", ">= 121.0") == set()  # 121.0~b3 is a pre-release of 121.0
    assert found("firefox") == {fleet["old"], fleet["new"], fleet["beta"]}
    assert found("libre office") == {fleet["none"]}  # each word on its own
    assert found("libre writer") == set()
    assert found("libreoffice", "= 7.6.2") == {fleet["none"]}

    page = computers.computer_page(rt, fleet["old"], PageRequest())
    assert [(s.name, s.version) for s in page.software.items] == [("Mozilla Firefox", "115.5.0esr")]
    assert page.computer.inventory["screens"] == [{"name": "DELL U2720Q", "resolution": "3840x2160"}]
    assert "software" not in page.computer.inventory


def test_a_new_inventory_replaces_the_software_and_keeps_when_an_entry_was_first_seen(
    server: LiveServer, rt: Runtime
) -> None:
    agent = oco_agent(server)
    agent.update(software=[{"name": "Git", "version": "2.39"}, {"name": "Vim", "version": "9.0"}, "junk"])
    first_seen = {s.name: s.first_seen for s in computers.computer_detail(rt, agent.hostname).software}

    agent.update(
        software=[
            {"name": "Git", "version": "2.39"},
            {"name": "Vim", "version": "9.1"},
            {"name": "Git", "version": "2.39"},
        ]
    )

    software = computers.computer_detail(rt, agent.hostname).software
    assert [(s.name, s.version) for s in software] == [("Git", "2.39"), ("Vim", "9.1")]
    assert software[0].first_seen == first_seen["Git"]
    assert software[1].first_seen > first_seen["Vim"]


def test_a_bad_version_condition_is_refused_with_its_text(rt: Runtime) -> None:
    with pytest.raises(InvalidVersionCondition, match="'<< 3'"):
        list(computers.export_computers(rt, ComputerQuery(software="x", software_version="<< 3")))
    with pytest.raises(InvalidInput, match="needs a software name"):
        list(computers.export_computers(rt, ComputerQuery(software_version="< 3")))
