"""The console over HTTP (in process): the assistant's retries and its preview, a retried job's attempts
and its "retry 1 of 2 at …", and the edit form's retries, phases plan and windows (errors next to their
field, the new phases shown on the page)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from oco.domain.retries import RetryPolicy
from oco.domain.states import AgentJobState, ReturnCode
from oco.services import computers, deployments, packages
from oco.services.deployments import ContainerOptions, DeploymentRequest
from oco.services.runtime import Runtime
from oco.services.targets import Targets
from tests.integration.test_deployments import report
from tests.integration.test_rollouts import _jobs
from tests.integration.test_web_console import console, login  # noqa: F401

EDIT = {
    "name": "Retried",
    "priority": "0",
    "restart_timeout": "20",
    "sequence_mode": "ignore",
    "agent_ip_ranges": "",
    "enabled": "on",
    "plan": "1",
    "retries": "2",
    "retry_delay": "15m",
    "phases": "",
    "phase_success": "95",
    "phase_soak": "",
    "halt_failure_rate": "",
    "halt_min_finished": "10",
    "windows": "",
    "window_zone": "computer",
}


def _setup(rt: Runtime, retry: RetryPolicy) -> tuple[list[int], int]:
    pcs = [computers.add_computer(rt, f"pc{n}", "tests").id for n in range(4)]
    package = packages.create_package(rt, packages.PackageSpec("Tool", "1", "i1", "u1"), None, "tests").id
    request = DeploymentRequest(
        ContainerOptions(name="Retried", retry=retry), Targets(computers=pcs, packages=[package])
    )
    return pcs, deployments.create_deployment(rt, request, "tests").id


def test_the_assistant_previews_the_retries(console: tuple[TestClient, Runtime]) -> None:  # noqa: F811
    client, rt = console
    token = login(client)
    pc = computers.add_computer(rt, "pc1", "tests").id
    package = packages.create_package(rt, packages.PackageSpec("Tool", "1", "i1", "u1"), None, "tests").id
    form = {
        "csrf_token": token, "name": "With retries", "computer": str(pc), "package": str(package),
        "priority": "0", "restart_timeout": "20", "sequence_mode": "ignore", "retries": "3",
        "retry_delay": "10m", "action": "preview",
    }  # fmt: skip
    preview = client.post("/jobs/new", data=form)
    assert preview.status_code == 200
    assert (
        "a job its agent could not run (-9999) is retried up to 3 times, 10m after each failure"
        in preview.text
    )
    assert 'name="retry_delay" value="10m"' in preview.text
    bad = client.post("/jobs/new", data={**form, "retry_delay": "soon"})
    assert bad.status_code == 400 and "duration &#39;soon&#39; must be like" in bad.text
    created = client.post("/jobs/new", data={**form, "action": "create"})
    assert created.status_code == 303
    assert "retries 3, 10m apart (-9999 only)" in client.get(created.headers["location"]).text


def test_a_retried_job_shows_its_attempts_and_when_it_runs_again(console: tuple[TestClient, Runtime]) -> None:  # noqa: F811
    client, rt = console
    login(client)
    pcs, container = _setup(rt, RetryPolicy(2, 600))
    [job] = [job for job in _jobs(rt, container) if job.computer_id == pcs[0]]
    report(rt, pcs[0], job.id, AgentJobState.ERROR, int(ReturnCode.AGENT_ERROR))
    page = client.get(f"/jobs/{container}").text
    assert re.search(r"retry 1 of 2 at 2026-01-05 \d\d:10", page)  # in the console's zone
    assert f'data-attempts-for="{job.id}"' in page and "Attempts (2 retries allowed)" in page
    assert '<td class="code">-9999</td>' in page


def test_the_edit_form_changes_retries_phases_and_windows(console: tuple[TestClient, Runtime]) -> None:  # noqa: F811
    client, rt = console
    token = login(client)
    _pcs, container = _setup(rt, RetryPolicy())
    form = {**EDIT, "csrf_token": token}
    previewed = client.post(f"/jobs/{container}/edit", data={**form, "phases": "1,all", "action": "preview"})
    assert previewed.status_code == 200 and "Preview of your edit — nothing is saved yet" in previewed.text
    assert "Phase 1 of 2 open" in previewed.text and 'name="phases" value="1,100%"' in previewed.text
    assert 'id="rollout"' not in client.get(f"/jobs/{container}").text  # nothing saved
    saved = client.post(
        f"/jobs/{container}/edit",
        data={**form, "phases": "1,all", "halt_failure_rate": "50", "windows": "daily 00:00-24:00"},
    )
    assert saved.status_code == 303
    page = client.get(f"/jobs/{container}").text
    assert "retries 2, 15m apart" in page
    assert "windows daily 00:00-24:00 (computer time)" in page
    assert "Phase 1 of 2 open" in page and "halts above 50 % failed" in page
    assert 'name="phases" value="1,100%"' in page

    bad = client.post(f"/jobs/{container}/edit", data={**form, "phases": "50%,10%"})
    assert bad.status_code == 400 and 'class="field-error"' in bad.text
    bad_window = client.post(f"/jobs/{container}/edit", data={**form, "windows": "Mon 18:00"})
    assert bad_window.status_code == 400
    cleared = client.post(f"/jobs/{container}/edit", data={**form, "phases": "1,all", "retries": "0"})
    assert cleared.status_code == 303
    page = client.get(f"/jobs/{container}").text
    assert "retries 2" not in page and "windows daily" not in page and "halts above" not in page
