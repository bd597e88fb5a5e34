"""The admin API: a deployment with retries (preview, creation, a job's attempts), and a container's
retries, phases plan and windows changed with PATCH, refused with the bad field named."""

from __future__ import annotations

import httpx

from tests.e2e.test_admin_api import api, server  # noqa: F401


def test_retries_phases_and_windows_through_the_api(api: httpx.Client) -> None:  # noqa: F811
    ids = [api.post("/computers", json={"hostname": f"api-retry-{n}"}).json()["id"] for n in range(4)]
    package = api.post(
        "/packages", data={"family": "ApiRetried", "version": "1", "install_procedure": "true"}
    ).json()["id"]
    body = {
        "name": "API retries",
        "computer_ids": ids,
        "package_ids": [package],
        "retries": 2,
        "retry_delay": "10m",
    }
    preview = api.post("/deployments/preview", json=body).json()
    assert "retried up to 2 times, 10m after each failure" in preview["retries"]
    bad = api.post("/deployments/preview", json={**body, "retry_delay": "8d"})
    assert bad.status_code == 400 and bad.json()["field"] == "retry_delay"
    assert api.post("/deployments/preview", json={**body, "retries": 11}).status_code == 422
    container = api.post("/deployments", json=body).json()["id"]
    shown = api.get(f"/deployments/{container}").json()
    assert (shown["retries"], shown["retry_delay"]) == (2, "10m")
    jobs = api.get(f"/deployments/{container}/jobs").json()["items"]
    assert {(job["attempt"], len(job["attempts"])) for job in jobs} == {(1, 0)}

    dry = api.patch(f"/deployments/{container}", json={"phases": "1,all", "dry_run": True}).json()
    assert [p["computers"] for p in dry["rollout"]["phase_list"]] == [1, 3]
    assert api.get(f"/deployments/{container}").json()["rollout"] is None  # nothing saved
    edited = api.patch(
        f"/deployments/{container}",
        json={"retries": 1, "retry_delay": "90s", "phases": "1,all", "halt_failure_rate": 20,
              "windows": ["Sat,Sun 00:00-24:00"], "window_zone": "server"},
    )  # fmt: skip
    assert edited.status_code == 200, edited.text
    changed = edited.json()
    assert (changed["retries"], changed["retry_delay"]) == (1, "90s")
    assert changed["windows"] == ["Sat,Sun 00:00-24:00"] and changed["window_zone"] == "server"
    assert changed["rollout"]["phases"] == "1,100%" and changed["rollout"]["halt_failure_rate"] == 20
    assert [p["computers"] for p in changed["rollout"]["phase_list"]] == [1, 3]
    cleared = api.patch(
        f"/deployments/{container}", json={"windows": [], "clear_halt_failure_rate": True}
    ).json()
    assert cleared["windows"] == [] and cleared["rollout"]["halt_failure_rate"] is None
    bad_phases = api.patch(f"/deployments/{container}", json={"phases": "50%,10%"})
    assert bad_phases.status_code == 400 and bad_phases.json()["field"] == "phases"
    bad_window = api.patch(f"/deployments/{container}", json={"windows": ["Mon 18:00"]})
    assert bad_window.status_code == 400 and bad_window.json()["field"] == "windows"
    assert api.patch(f"/deployments/{container}", json={"retries": -1}).status_code == 422
