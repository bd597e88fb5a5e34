"""The console over HTTP (in process): login, CSRF, escaping, field errors, the assistant, actions."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from oco.application import create_app
from oco.db.models import Job
from oco.services import assignments, computers, containers, deployments, groups, listing, packages, users
from oco.services.runtime import Runtime
from oco.services.targets import Targets
from tests.conftest import Clock, make_runtime

PASSWORD = "a long password"


@pytest.fixture
def console(sqlite_url: str, tmp_path: Path, clock: Clock) -> Iterator[tuple[TestClient, Runtime]]:
    rt = make_runtime(sqlite_url, tmp_path, clock)
    users.add_user(rt, "admin", PASSWORD, "tests", "Ada Admin")
    with TestClient(create_app(rt, run_housekeeping=False), follow_redirects=False) as client:
        yield client, rt
    rt.close()


def login(client: TestClient) -> str:
    page = client.get("/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    response = client.post(
        "/login", data={"username": "admin", "password": PASSWORD, "login_csrf": token, "next": "/jobs"}
    )
    assert response.status_code == 303 and response.headers["location"] == "/jobs"
    return csrf(client.get("/jobs").text)


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def test_pages_require_a_login(console: tuple[TestClient, Runtime]) -> None:
    client, _ = console
    response = client.get("/computers?x=1")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/computers%3Fx%3D1"


def test_wrong_password_is_refused(console: tuple[TestClient, Runtime]) -> None:
    client, _ = console
    token = re.search(r'name="login_csrf" value="([^"]+)"', client.get("/login").text).group(1)  # type: ignore[union-attr]
    response = client.post("/login", data={"username": "admin", "password": "nope", "login_csrf": token})
    assert response.status_code == 401 and "wrong user name or password" in response.text


def test_forms_without_the_csrf_token_are_refused(console: tuple[TestClient, Runtime]) -> None:
    client, rt = console
    login(client)
    response = client.post("/computers", data={"hostname": "pc1"})
    assert response.status_code == 403 and "security token" in response.text
    assert computers.list_computers(rt) == []


def test_logout_ends_the_session(console: tuple[TestClient, Runtime]) -> None:
    client, _ = console
    token = login(client)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/jobs").status_code == 303


def test_user_strings_are_escaped(console: tuple[TestClient, Runtime]) -> None:
    client, rt = console
    token = login(client)
    hostile = "<script>alert(1)</script>"
    client.post("/computers", data={"csrf_token": token, "hostname": hostile})
    packages.create_package(rt, packages.PackageSpec(hostile, hostile, "x"), None, "tests")
    for page in ("/computers", "/packages", "/jobs/new"):
        html = client.get(page).text
        assert hostile not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_errors_are_shown_next_to_their_field_and_values_are_kept(
    console: tuple[TestClient, Runtime],
) -> None:
    client, rt = console
    token = login(client)
    response = client.post(
        "/packages/new",
        data={
            "csrf_token": token,
            "family": "Firefox",
            "version": "1",
            "install_procedure": "x",
            "install_success_codes": "0,x",
        },
    )
    assert response.status_code == 400
    assert re.search(r"Install success codes.*?field-error[^>]*>[^<]*&#39;x&#39;", response.text, re.S)
    assert 'value="Firefox"' in response.text
    assert packages.list_packages(rt) == []


def test_the_assistant_previews_then_creates(console: tuple[TestClient, Runtime]) -> None:
    client, rt = console
    token = login(client)
    pc = computers.add_computer(rt, "pc1", "tests").id
    v1 = packages.create_package(rt, packages.PackageSpec("Firefox", "1", "i1", "u1"), None, "tests").id
    v2 = packages.create_package(rt, packages.PackageSpec("Firefox", "2", "i2", "u2"), None, "tests").id
    assignments.add_assignment(rt, pc, v1, "t")
    form = {
        "csrf_token": token,
        "name": "Update",
        "computer": str(pc),
        "package": str(v2),
        "priority": "0",
        "restart_timeout": "20",
        "sequence_mode": "ignore",
        "agent_ip_ranges": "",
        "auto_uninstall": "on",
    }
    assert 'name="auto_uninstall" checked' in client.get(f"/jobs/new?computer={pc}").text  # on by default

    preview = client.post("/jobs/new", data={**form, "action": "preview"})
    assert preview.status_code == 200 and "uninstall of Firefox 1 first" in preview.text
    unticked = {k: v for k, v in form.items() if k != "auto_uninstall"}
    kept = client.post("/jobs/new", data={**unticked, "action": "preview"})
    assert "uninstall of Firefox 1 first" not in kept.text and 'name="auto_uninstall" >' in kept.text
    bad = client.post("/jobs/new", data={**form, "agent_ip_ranges": "10.0.0.0/40", "action": "create"})
    assert (
        bad.status_code == 400 and "prefix length must be 0..32" in bad.text and 'value="Update"' in bad.text
    )

    created = client.post("/jobs/new", data={**form, "action": "create"})
    assert created.status_code == 303
    page = client.get(created.headers["location"]).text
    assert "Update" in page and page.count("data-job=") == 2
    state = client.get(created.headers["location"] + "/state").json()
    assert [j["action"] for j in sorted(state["jobs"], key=lambda job: job["sequence"])] == [
        "uninstall",
        "install",
    ]


def test_inline_ip_range_validation(console: tuple[TestClient, Runtime]) -> None:
    client, _ = console
    login(client)
    assert client.get("/jobs/validate-ip-ranges", params={"value": "10.0.0.0/8,!10.1.0.0/16"}).json()["ok"]
    answer = client.get("/jobs/validate-ip-ranges", params={"value": "10.0.0.0/8,nope"}).json()
    assert answer == {"ok": False, "message": "IP range 'nope': 'nope' is not an IPv4 or IPv6 address"}


def test_uninstall_and_remove_assignment_from_the_computer_page(console: tuple[TestClient, Runtime]) -> None:
    client, rt = console
    token = login(client)
    tool = packages.create_package(rt, packages.PackageSpec("Tool", "1", "i", "u"), None, "tests").id
    pc_id = computers.add_computer(rt, "pc1", "tests").id
    first = assignments.add_assignment(rt, pc_id, tool, "t").id
    page = client.get(f"/computers/{pc_id}").text
    assert (
        "Uninstall Package" in page and "Remove Assignment" in page and f"/jobs/new?computer={pc_id}" in page
    )

    uninstall = client.post(
        "/jobs/uninstall", data={"csrf_token": token, "assignment": str(first), "back": f"/computers/{pc_id}"}
    )
    assert uninstall.status_code == 303
    assert "Uninstall Tool" in client.get(uninstall.headers["location"]).text

    removed = client.post(
        "/assignments/remove",
        data={"csrf_token": token, "assignment": str(first), "back": f"/computers/{pc_id}"},
    )
    assert removed.status_code == 303
    assert computers.computer_detail(rt, pc_id).installed_packages == []


def test_live_state_carries_output_of_running_jobs_only(console: tuple[TestClient, Runtime]) -> None:
    client, rt = console
    login(client)
    pc = computers.add_computer(rt, "pc1", "tests").id
    tool = packages.create_package(rt, packages.PackageSpec("Tool", "1", "i", "u"), None, "tests").id
    other = packages.create_package(rt, packages.PackageSpec("Other", "1", "i", "u"), None, "tests").id
    request = deployments.DeploymentRequest(
        deployments.ContainerOptions(name="Live"), Targets(computers=[pc], packages=[tool, other])
    )
    container_id = deployments.create_deployment(rt, request, "t").id
    with rt.transaction() as session:  # as an agent's reports would leave them
        first, second = session.scalars(select(Job).where(Job.container_id == container_id).order_by(Job.id))
        first.state, first.message = 3, "finished output"
        second.state, second.message = 2, "running output"
        first_id = first.id

    state = client.get(f"/jobs/{container_id}/state").json()
    by_id = sorted(state["jobs"], key=lambda job: job["id"])
    assert [(j["final"], j["message"]) for j in by_id] == [(True, None), (False, "running output")]
    assert [j["state_label"] for j in by_id] == ["Succeeded", "Executing"]
    assert [j["id"] for j in state["jobs"]] == [by_id[1]["id"], by_id[0]["id"]]  # what runs comes first
    assert state["status_label"] == "In progress"
    assert client.get(f"/jobs/{container_id}/jobs/{first_id}/output").text == "finished output"
    assert client.get(f"/jobs/{container_id + 1}/jobs/{first_id}/output").status_code == 404


def test_groups_are_managed_in_the_console(console: tuple[TestClient, Runtime]) -> None:
    client, rt = console
    token = login(client)
    pcs = [computers.add_computer(rt, name, "t").id for name in ("pc1", "pc2")]
    first = packages.create_package(rt, packages.PackageSpec("A", "1", "i"), None, "t").id
    second = packages.create_package(rt, packages.PackageSpec("B", "1", "i"), None, "t").id

    assert client.post("/groups/computer", data={"csrf_token": token, "name": "Lab"}).status_code == 303
    assert client.post("/groups/package", data={"csrf_token": token, "name": "Base"}).status_code == 303
    duplicate = client.post("/groups/computer", data={"csrf_token": token, "name": "Lab"})
    assert duplicate.status_code == 409 and "already exists" in duplicate.text
    lab = groups.computer_group(rt, "Lab").id
    base = groups.package_group(rt, "Base").id
    members = {"csrf_token": token, "action": "add", "member": [str(i) for i in pcs]}
    client.post(f"/groups/computer/{lab}/members", data=members)
    client.post(
        f"/groups/package/{base}/members",
        data={"csrf_token": token, "action": "add", "member": [str(second), str(first)]},
    )
    client.post(
        f"/groups/computer/{lab}/members",
        data={"csrf_token": token, "action": "remove", "member": str(pcs[0])},
    )

    assert [m.hostname for m in groups.computer_group(rt, "Lab").computers] == ["pc2"]
    assert [m.id for m in groups.package_group(rt, "Base").packages] == [second, first]
    page = client.get("/groups").text
    assert "Lab" in page and "1. B 1" in page and "2. A 1" in page
    assert 'aria-label="Move A 1 up"' in page

    moved = client.post(f"/groups/package/{base}/move?package={first}&steps=-1", data={"csrf_token": token})
    assert moved.status_code == 303
    assert [m.id for m in groups.package_group(rt, "Base").packages] == [first, second]
    stray = client.post(f"/groups/package/{base}/move?package=999&steps=1", data={"csrf_token": token})
    assert stray.status_code == 404 and "is not in group" in stray.text
    forged = client.post(f"/groups/package/{base}/move?package={first}&steps=1", data={"csrf_token": "x"})
    assert forged.status_code == 403
    assert client.post(f"/groups/computer/{lab}/delete", data={"csrf_token": token}).status_code == 303
    assert client.post("/groups/other", data={"csrf_token": token, "name": "x"}).status_code == 404


def test_every_filtered_list_downloads_as_csv(
    console: tuple[TestClient, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A download holds what the filter matches, on every page, read a few rows at a time."""
    monkeypatch.setattr(listing, "EXPORT_BATCH", 2)
    client, rt = console
    login(client)
    names = [f"pc{i}" for i in range(5)] + ["lab"]
    pcs = [computers.add_computer(rt, name, "t", notes='room 2, "north"').id for name in names]
    package = packages.create_package(rt, packages.PackageSpec("Editor", "2", "i"), None, "t").id
    for computer_id in pcs[:3]:
        assignments.add_assignment(rt, computer_id, package, "t")
    lab = groups.add_computer_group(rt, "Lab", "t").id
    groups.add_computers_to_group(rt, lab, pcs[1:], "t")
    container = deployments.create_deployment(
        rt,
        deployments.DeploymentRequest(
            options=deployments.ContainerOptions(name="Rollout"),
            targets=Targets(computers=pcs, packages=[package]),
        ),
        "t",
    ).id

    def download(path: str) -> list[list[str]]:
        response = client.get(path)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        return list(csv.reader(io.StringIO(response.text)))

    every = download("/computers?format=csv&page=2&size=25")  # the page does not matter: all that match
    assert every[0][:2] == ["id", "hostname"] and every[1][-1] == 'room 2, "north"'  # quoted as CSV must
    assert [row[1] for row in every[1:]] == sorted(names)
    assert [row[1] for row in download("/computers?q=pc&format=csv")[1:]] == names[:5]
    assert [row[1] for row in download(f"/groups/computer/{lab}?format=csv")[1:]] == sorted(names[1:])
    assert download("/groups?format=csv&q=la") == [["id", "name", "size"], [str(lab), "Lab", "5"]]
    installed = download(f"/packages/{package}?format=csv")
    assert [row[1] for row in installed[1:]] == names[:3] and installed[1][3] == "Editor 2"
    assert [row[1] for row in download(f"/packages/{package}?format=csv&q=pc2")[1:]] == ["pc2"]
    jobs_csv = download(f"/jobs/{container}?format=csv")
    assert sorted(row[1] for row in jobs_csv[1:]) == sorted(names)
    assert [row[5] for row in jobs_csv[1:]] == ["waiting"] * 3 + ["already_installed"] * 3  # in words
    assert [row[1] for row in download("/jobs?format=csv")[1:]] == ["Rollout"]
    assert [row[0] for row in download("/packages?format=csv")[1:]] != []
    audit_rows = download("/audit?format=csv")[1:]
    assert [int(row[0]) for row in audit_rows] == sorted((int(row[0]) for row in audit_rows), reverse=True)
    assert len(audit_rows) >= len(names) + 1
    assert client.get("/jobs/999?format=csv").status_code == 404
    assert client.get("/groups/computer/999?format=csv").status_code == 404
    assert client.get("/packages/999?format=csv").status_code == 404


def test_the_console_reads_and_shows_times_in_its_zone(sqlite_url: str, tmp_path: Path, clock: Clock) -> None:
    rt = make_runtime(sqlite_url, tmp_path, clock, time_zone="Europe/Berlin")
    users.add_user(rt, "admin", PASSWORD, "tests", "Ada Admin")
    with TestClient(create_app(rt, run_housekeeping=False), follow_redirects=False) as client:
        token = login(client)
        pc = computers.add_computer(rt, "pc1", "tests").id
        package = packages.create_package(rt, packages.PackageSpec("Tool", "1", "i"), None, "tests").id
        form = {
            "csrf_token": token,
            "name": "Night",
            "computer": str(pc),
            "package": str(package),
            "start": "2026-12-01T23:00",
            "end": "2026-12-01T20:00",
            "action": "create",
        }
        refused = client.post("/jobs/new", data=form)
        assert refused.status_code == 400
        assert "end 2026-12-01 20:00 CET must be after start 2026-12-01 23:00 CET" in refused.text
        created = client.post("/jobs/new", data={**form, "end": "2026-12-02T06:00"})
        assert created.status_code == 303
        page = client.get(created.headers["location"]).text
        assert "2026-12-01 23:00" in page and "Europe/Berlin" in page  # every page states its zone
        [container] = containers.list_containers(rt)
        assert container.start.isoformat() == "2026-12-01T22:00:00+00:00"  # the same instant as the CLI's
    rt.close()
