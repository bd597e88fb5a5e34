"""The admin REST API over HTTP against a real server: tokens, packages, deployments, errors."""

from __future__ import annotations

import io
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live import LiveServer, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("admin-api")
    shutil.copy(sqlite_template, workdir / "oco.sqlite3")
    live = start_server(workdir, f"sqlite:///{workdir / 'oco.sqlite3'}")
    live.oco("user", "add", "admin", "--password-stdin", stdin="a long password\n")
    yield live
    live.stop()


@pytest.fixture(scope="module")
def api(server: LiveServer) -> Iterator[httpx.Client]:
    token = server.oco("token", "create", "--name", "tests").stdout.strip()
    with httpx.Client(
        base_url=f"{server.url}/api/v1", headers={"authorization": f"Bearer {token}"}
    ) as client:
        yield client


def test_requests_without_a_valid_token_are_refused(server: LiveServer) -> None:
    assert httpx.get(f"{server.url}/api/v1/packages").status_code == 401
    wrong = httpx.get(f"{server.url}/api/v1/packages", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "invalid or revoked API token"


def test_a_revoked_token_stops_working(server: LiveServer) -> None:
    token = server.oco("token", "create", "--name", "short-lived").stdout.strip()
    headers = {"authorization": f"Bearer {token}"}
    assert httpx.get(f"{server.url}/api/v1/computers", headers=headers).status_code == 200
    token_id = [
        line.split()[0] for line in server.oco("token", "list").stdout.splitlines() if "short-lived" in line
    ]
    server.oco("token", "revoke", token_id[0])
    assert httpx.get(f"{server.url}/api/v1/computers", headers=headers).status_code == 401


def test_the_openapi_spec_and_docs_page_are_served(server: LiveServer) -> None:
    spec = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    assert "/deployments/preview" in spec["paths"]
    page = httpx.get(f"{server.url}/api/v1/docs")
    assert page.status_code == 200 and "/api/v1/deployments" in page.text
    # Each operation names its body and answers, each schema lists its fields with their types.
    assert 'Request body: <a href="#schema-NewDeployment">NewDeployment</a>' in page.text
    assert 'id="schema-NewDeployment"' in page.text and "<code>computer_ids</code>" in page.text
    assert "array of integer" in page.text and 'href="#schema-PlanSummaryPublic"' in page.text
    assert "<style" not in page.text and "<script" not in page.text


def test_package_upload_deploy_preview_show_edit_renew_delete(api: httpx.Client) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("install.sh", "exit 0\n")
    created = api.post(
        "/packages",
        data={
            "family": "Tool",
            "version": "1.0",
            "install_procedure": "sh install.sh",
            "install_success_codes": "0,3010",
        },
        files={"payload": ("tool.zip", buffer.getvalue(), "application/zip")},
    )
    assert created.status_code == 201, created.text
    package = created.json()
    assert package["payload_size"] == len(buffer.getvalue()) and package["install_success_codes"] == "0,3010"
    computer = api.post("/computers", json={"hostname": "api-pc1"}).json()

    body = {
        "name": "Tool rollout",
        "computer_ids": [computer["id"]],
        "package_ids": [package["id"]],
        "priority": 7,
    }
    preview = api.post("/deployments/preview", json=body).json()
    assert preview["summary"]["jobs"] == 1
    assert api.get("/deployments").json() == []

    container = api.post("/deployments", json=body)
    assert container.status_code == 201
    shown = api.get(f"/deployments/{container.json()['id']}").json()
    assert shown["priority"] == 7 and shown["job_counts"] == {"waiting": 1} and "jobs" not in shown
    jobs = api.get(f"/deployments/{shown['id']}/jobs").json()
    assert (jobs["total"], [j["state"] for j in jobs["items"]]) == (1, ["waiting"])
    assert jobs["items"][0]["computer"] == "api-pc1" and jobs["items"][0]["waiting"]["hold"] == "offline"

    edited = api.patch(
        f"/deployments/{shown['id']}", json={"enabled": False, "agent_ip_ranges": "10.0.0.0/8"}
    )
    assert edited.json()["enabled"] is False and edited.json()["agent_ip_ranges"] == "10.0.0.0/8"
    renew = api.post(f"/deployments/{shown['id']}/renew", json={})
    assert renew.status_code == 400 and "no failed jobs" in renew.json()["detail"]
    assert api.delete(f"/deployments/{shown['id']}").status_code == 204
    assert api.delete(f"/packages/{package['id']}").status_code == 204


def test_a_large_deployment_answers_compactly_and_its_jobs_come_a_page_at_a_time(
    api: httpx.Client, server: LiveServer
) -> None:
    package = api.post(
        "/packages", data={"family": "Big", "version": "1", "install_procedure": "true"}
    ).json()["id"]
    hosts = [f"big-{i:03d}" for i in range(120)]
    computer_ids = [api.post("/computers", json={"hostname": host}).json()["id"] for host in hosts]
    body = {"name": "Big rollout", "computer_ids": computer_ids, "package_ids": [package], "wol": True}

    preview = api.post("/deployments/preview", json=body).json()
    assert preview["summary"] == {
        "computers": 120,
        "jobs": 120,
        "skipped": 0,
        "woken": 0,
        "cannot_wake": 120,  # none of them was ever seen: no MAC address to wake them with
        "held_back": 0,
        "states": {"waiting": 120},
        "sentence": "120 jobs to run on 120 computers;"
        " 120 offline computers cannot be woken (no MAC address known).",
    }
    assert len(preview["computers"]) == 100  # the first 100 unless asked for more
    assert len(api.post("/deployments/preview?limit=5", json=body).json()["computers"]) == 5
    assert api.post("/deployments/preview?limit=-1", json=body).status_code == 422

    created = api.post("/deployments", json=body).json()
    assert created["job_counts"] == {"waiting": 120} and "jobs" not in created
    first = api.get(f"/deployments/{created['id']}/jobs", params={"size": 50, "sort": "-computer"}).json()
    assert (first["total"], first["pages"], first["sort"]) == (120, 3, "-computer")
    assert [j["computer"] for j in first["items"][:2]] == ["big-119", "big-118"]
    last = api.get(f"/deployments/{created['id']}/jobs", params={"size": 50, "page": 3}).json()
    assert len(last["items"]) == 20
    found = api.get(f"/deployments/{created['id']}/jobs", params={"q": "big-00"}).json()
    assert found["total"] == 10
    assert api.get(f"/deployments/{created['id']}/jobs", params={"outcome": "failed"}).json()["total"] == 0
    for params, message in (
        ({"sort": "nonsense"}, "sort"),
        ({"outcome": "broken"}, "outcome"),
        ({"size": 0}, "size"),
        ({"page": 0}, "page"),
    ):
        refused = api.get(f"/deployments/{created['id']}/jobs", params=params)
        assert refused.status_code in (400, 422) and message in refused.text, refused.text
    assert api.get("/deployments/999/jobs").status_code == 404
    api.delete(f"/deployments/{created['id']}")


def test_computers_join_and_leave_a_group_by_id_and_by_filter(api: httpx.Client) -> None:
    ids = [api.post("/computers", json={"hostname": f"join-{i}"}).json()["id"] for i in range(4)]
    group = api.post("/computer-groups", json={"name": "Grp"}).json()["id"]
    added = api.post(f"/computer-groups/{group}/members", json={"ids": ids[:2]}).json()
    assert (added["size"], added["changed"]) == (2, 2)
    matching = {"ids": [ids[0]], "matching": {"search": "join-", "presence": "never-seen"}}
    added = api.post(f"/computer-groups/{group}/members", json=matching).json()
    assert (added["size"], added["changed"]) == (4, 2)
    removed = api.post(
        f"/computer-groups/{group}/members/remove", json={"matching": {"search": "join-3"}}
    ).json()
    assert (removed["size"], removed["changed"]) == (3, 1)
    assert api.delete(f"/computer-groups/{group}/members/{ids[3]}").status_code == 404  # not a member
    for body, status in (
        ({}, 422),
        ({"ids": []}, 422),
        ({"ids": [999_999]}, 404),
        ({"matching": {"x": 1}}, 422),
    ):
        assert api.post(f"/computer-groups/{group}/members", json=body).status_code == status, body
    api.delete(f"/computer-groups/{group}")
    for computer_id in ids:
        api.delete(f"/computers/{computer_id}")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("post", "/computers", {"hostname": "err-pc"}, 409, "already exists"),
        ("get", "/packages/999", None, 404, "package 999 does not exist"),
        (
            "post",
            "/deployments",
            {"name": "x", "computer_ids": [1], "package_ids": [999]},
            404,
            "package 999",
        ),
        (
            "post",
            "/deployments",
            {"name": "x", "computer_ids": [1], "package_ids": []},
            400,
            "at least one package",
        ),
        (
            "post",
            "/deployments/preview",
            {"name": "x", "computer_ids": [1], "package_ids": [1], "agent_ip_ranges": "1.2.3.4/40"},
            400,
            "prefix length",
        ),
        ("post", "/assignments", {"computer_id": 1, "package_id": 999}, 404, "package 999"),
    ],
)
def test_errors_are_4xx_with_a_message(
    api: httpx.Client,
    method: str,
    path: str,
    body: dict | None,
    status: int,
    message: str,  # type: ignore[type-arg]
) -> None:
    api.post("/computers", json={"hostname": "err-pc"})
    api.post("/packages", data={"family": "F", "version": "1", "install_procedure": "x"})
    response = api.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_groups_members_are_added_removed_and_ordered(api: httpx.Client) -> None:
    pcs = [api.post("/computers", json={"hostname": f"grp-pc{i}"}).json()["id"] for i in range(2)]
    forms = [{"family": f"Grp{i}", "version": "1", "install_procedure": "x"} for i in range(3)]
    pkgs = [api.post("/packages", data=form).json()["id"] for form in forms]
    lab = api.post("/computer-groups", json={"name": "Grp lab"}).json()["id"]
    base = api.post("/package-groups", json={"name": "Grp base"}).json()["id"]
    api.post(f"/computer-groups/{lab}/members", json={"ids": pcs}).raise_for_status()
    api.post(f"/package-groups/{base}/members", json={"ids": pkgs}).raise_for_status()

    left = api.delete(f"/computer-groups/{lab}/members/{pcs[0]}")
    assert left.status_code == 200 and (left.json()["size"], left.json()["changed"]) == (1, 1)
    [group] = [g for g in api.get("/computer-groups").json() if g["id"] == lab]
    assert [c["id"] for c in group["computers"]] == [pcs[1]]
    assert api.delete(f"/computer-groups/{lab}/members/{pcs[0]}").status_code == 404
    ordered = api.put(f"/package-groups/{base}/order", json={"ids": [pkgs[2], pkgs[0], pkgs[1]]})
    assert ordered.status_code == 200, ordered.text
    assert [(p["id"], p["sequence"]) for p in ordered.json()["packages"]] == [
        (pkgs[2], 1),
        (pkgs[0], 2),
        (pkgs[1], 3),
    ]
    incomplete = api.put(f"/package-groups/{base}/order", json={"ids": [pkgs[0], pkgs[1]]})
    assert incomplete.status_code == 400 and "each of its packages once" in incomplete.json()["detail"]
    shorter = api.delete(f"/package-groups/{base}/members/{pkgs[2]}")
    assert [p["id"] for p in shorter.json()["packages"]] == [pkgs[0], pkgs[1]]


def test_a_phased_rollout_with_windows_through_the_api(server: LiveServer, api: httpx.Client) -> None:
    ids = [api.post("/computers", json={"hostname": f"api-phase-{n}"}).json()["id"] for n in range(4)]
    package = api.post(
        "/packages", data={"family": "ApiPhased", "version": "1", "install_procedure": "true"}
    ).json()["id"]
    body = {
        "name": "API rollout",
        "computer_ids": ids,
        "package_ids": [package],
        "phases": "1,all",
        "halt_failure_rate": 10,
        "phase_soak": "30m",
        "windows": ["Mon-Fri 18:00-06:00", "Sat,Sun 00:00-24:00"],
        "window_zone": "server",
    }
    preview = api.post("/deployments/preview", json=body).json()
    assert [(p["label"], p["computers"]) for p in preview["phases"]] == [("phase 1", 1), ("phase 2", 3)]
    assert preview["windows"]["zone"] == "server" and preview["windows"]["server_time_computers"] == 0
    bad = api.post("/deployments/preview", json={**body, "phases": "50%,10%"})
    assert bad.status_code == 400 and bad.json()["field"] == "phases"
    bad_window = api.post("/deployments/preview", json={**body, "windows": ["Mon 18:00"]})
    assert bad_window.status_code == 400 and bad_window.json()["field"] == "windows"
    created = api.post("/deployments", json=body)
    assert created.status_code == 201
    container = created.json()["id"]
    shown = api.get(f"/deployments/{container}").json()
    assert shown["windows"] == ["Mon-Fri 18:00-06:00", "Sat,Sun 00:00-24:00"]
    assert shown["window_zone"] == "server"
    assert shown["rollout"]["phases"] == "1,100%" and shown["rollout"]["soak"] == "30m"
    assert [p["status"] for p in shown["rollout"]["phase_list"]] == ["open", "waiting"]
    assert api.post(f"/deployments/{container}/resume", json={}).status_code == 400  # not halted
    halted = api.post(f"/deployments/{container}/halt").json()
    assert halted["halted"] is True and halted["rollout"]["halted_by"] == "api:admin"
    resumed = api.post(f"/deployments/{container}/resume", json={"reopen": True}).json()
    assert resumed["halted"] is False
    canceled = api.post(f"/deployments/{container}/cancel").json()
    assert canceled["rollout"]["canceled_by"] == "api:admin"
    assert canceled["job_counts"] == {"expired": 4}


def test_download_slots_through_the_api(server: LiveServer, api: httpx.Client) -> None:
    ids = [api.post("/computers", json={"hostname": f"api-slots-{n}"}).json()["id"] for n in range(3)]
    package = api.post(
        "/packages",
        data={"family": "ApiSlots", "version": "1", "install_procedure": "sh setup.sh"},
        files={"payload": ("setup.sh", b"echo installed\n")},
    )
    assert package.status_code == 201, package.text
    body = {
        "name": "API slots",
        "computer_ids": ids,
        "package_ids": [package.json()["id"]],
        "max_downloads": 2,
    }
    preview = api.post("/deployments/preview", json=body).json()
    assert preview["downloads"]["at_once"] == 2 and preview["downloads"]["computers_downloading"] == 3
    assert "At most 2 of the 3 computers" in preview["downloads"]["sentence"]
    bad = api.post("/deployments/preview", json={**body, "max_downloads": -1})
    assert bad.status_code == 422 and "max_downloads" in bad.text  # refused by the schema, named
    created = api.post("/deployments", json=body)
    assert created.status_code == 201 and created.json()["max_downloads"] == 2
    container = created.json()["id"]
    changed = api.patch(f"/deployments/{container}", json={"max_downloads": 5})
    assert changed.status_code == 200 and changed.json()["max_downloads"] == 5
    removed = api.patch(f"/deployments/{container}", json={"max_downloads": 0})
    assert removed.json()["max_downloads"] is None
