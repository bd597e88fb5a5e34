"""`/metrics`: the Prometheus text format, on every database (jobs by state are counted in it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from oco.services.runtime import Runtime
from tests.integration.test_checkins import registered, with_one_job


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    from oco.application import create_app

    with TestClient(create_app(rt, run_housekeeping=False)) as test_client:
        yield test_client


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_count_check_ins_their_latency_batches_and_jobs_by_state(
    rt: Runtime, client: TestClient
) -> None:
    agent = registered(rt, client)
    with_one_job(rt)
    before = samples(client)

    agent.hello()
    agent.hello()
    replayed = agent.body("oco.agent.hello", {"agent_version": "1.1.7", "networks": []})
    assert agent.send(replayed).status_code == 200
    assert agent.send(replayed).status_code == 401

    after = samples(client)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0.0)

    assert grew("oco_checkins_total", outcome="answered") == 3
    assert grew("oco_checkins_total", outcome="refused") == 1
    assert grew("oco_checkin_duration_seconds_count") == 4
    assert grew("oco_checkin_duration_seconds_bucket", le="+Inf") == 4
    assert grew("oco_checkin_confirm_duration_seconds_count") >= 1  # plain check-ins, in batches
    assert grew("oco_checkin_confirm_batch_size_sum") == 3
    assert after[("oco_jobs", (("state", "waiting"),))] == 1
    assert after[("oco_jobs", (("state", "succeeded"),))] == 0
    assert after[("oco_downloads_in_flight", ())] == 0
