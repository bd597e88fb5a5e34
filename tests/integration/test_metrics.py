"""`/metrics`: the Prometheus text format, on every database (jobs by state are counted in it), read only
with the scrape token or an admin API token."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from oco.api.download import payload_response
from oco.application import create_app
from oco.config import Settings
from oco.domain.roles import Role
from oco.services import metrics, users
from oco.services.agent_jobs import DownloadGrant
from oco.services.metrics import AgentOutcome
from oco.services.runtime import Runtime
from tests.agentclient import PATH
from tests.conftest import make_runtime
from tests.integration.test_checkins import registered, with_one_job

SCRAPE_TOKEN = "a-scrape-token-for-tests"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt, run_housekeeping=False)) as test_client:
        yield test_client


def samples(client: TestClient, token: str) -> Samples:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parsed(response.text)


def parsed(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def test_metrics_count_agent_requests_their_latency_and_jobs_by_state(
    rt: Runtime, client: TestClient
) -> None:
    token = users.create_token(
        rt, users.add_user(rt, "viewer", "a long password", "tests", role=Role.READ_ONLY).username, "t", "t"
    )
    agent = registered(rt, client)
    with_one_job(rt)
    before = samples(client, token)

    agent.hello()  # a plain check-in
    replayed = agent.body("oco.agent.hello", {"agent_version": "1.1.7", "networks": []})
    assert agent.send(replayed).status_code == 200
    assert agent.send(replayed).status_code == 401
    assert client.post(PATH, content=b"{}", headers={"content-type": "text/plain"}).status_code == 400

    def grew(after: Samples, name: str, **labels: str) -> float:
        return after.get(key(name, **labels), 0.0) - before.get(key(name, **labels), 0.0)

    after = samples(client, token)
    assert grew(after, "oco_agent_requests_total", outcome="answered") == 2
    assert grew(after, "oco_agent_requests_total", outcome="refused") == 1
    assert grew(after, "oco_agent_requests_total", outcome="invalid") == 1
    assert grew(after, "oco_agent_requests_total", outcome="error") == 0
    assert grew(after, "oco_agent_request_duration_seconds_count") == 4
    assert grew(after, "oco_agent_request_duration_seconds_bucket", le="+Inf") == 4
    assert 0 < grew(after, "oco_agent_request_duration_seconds_sum") < 4 * 60
    # The two plain check-ins answered were confirmed in batches of their own (one came at a time).
    assert grew(after, "oco_checkin_batch_size_count") == 2
    assert grew(after, "oco_checkin_batch_size_sum") == 2
    assert after[key("oco_jobs", state="waiting")] == 1
    assert after[key("oco_jobs", state="succeeded")] == 0
    assert after[key("oco_downloads_in_flight")] == 0


def test_a_batch_of_check_ins_is_counted_with_its_duration_and_size(rt: Runtime) -> None:
    def figures() -> Samples:
        return parsed(metrics.render(rt).decode())

    before = figures()
    metrics.observe_flush(0.004, 3)
    metrics.observe_flush(0.2, 40)
    after = figures()

    def grew(name: str, **labels: str) -> float:
        return after[key(name, **labels)] - before.get(key(name, **labels), 0.0)

    assert grew("oco_checkin_batch_size_count") == 2
    assert grew("oco_checkin_batch_size_sum") == 43
    assert grew("oco_checkin_batch_size_bucket", le="5.0") == 1
    assert grew("oco_checkin_batch_duration_seconds_sum") == pytest.approx(0.204)
    assert grew("oco_checkin_batch_duration_seconds_bucket", le="0.005") == 1
    assert grew("oco_checkin_batch_duration_seconds_bucket", le="0.25") == 2


def test_only_the_scrape_token_or_an_api_token_reads_metrics(tmp_path: Path, sqlite_url: str) -> None:
    rt = make_runtime(sqlite_url, tmp_path, metrics_token=SCRAPE_TOKEN)
    try:
        with TestClient(create_app(rt, run_housekeeping=False)) as client:
            assert client.get("/metrics").status_code == 401
            for wrong in ("Bearer not-the-token", f"Basic {SCRAPE_TOKEN}", f"Bearer {SCRAPE_TOKEN}x"):
                assert client.get("/metrics", headers={"Authorization": wrong}).status_code == 401
            assert key("oco_jobs", state="waiting") in samples(client, SCRAPE_TOKEN)
            for role in Role:  # any role may see the figures
                users.add_user(rt, role.text, "a long password", "tests", role=role)
                assert samples(client, users.create_token(rt, role.text, "prometheus", "tests"))
    finally:
        rt.close()


def test_a_scrape_token_must_be_long_enough(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="metrics_token"):
        Settings(data_dir=tmp_path, metrics_token="short")
    assert Settings(data_dir=tmp_path, metrics_token="").metrics_token == ""


def test_a_download_counts_while_its_body_is_sent(rt: Runtime) -> None:
    sha256 = rt.depot.put_upload(io.BytesIO(b"x" * 300_000), "p.zip").sha256
    size = rt.depot.size(sha256)

    def in_flight() -> float:
        return parsed(metrics.render(rt).decode())[key("oco_downloads_in_flight")]

    async def send_partly() -> None:
        response = payload_response(rt.depot, DownloadGrant(1, sha256, size), None)
        assert isinstance(response, StreamingResponse)
        body = response.body_iterator
        before = in_flight()
        await anext(body)  # the first chunk is out, the rest not yet
        assert in_flight() == before + 1
        await body.aclose()  # type: ignore[attr-defined]  # an async generator: the agent went away
        assert in_flight() == before

    asyncio.run(send_partly())


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, AgentOutcome.ANSWERED),
        (206, AgentOutcome.ANSWERED),
        (401, AgentOutcome.REFUSED),
        (400, AgentOutcome.INVALID),
        (416, AgentOutcome.INVALID),
        (500, AgentOutcome.ERROR),
        (503, AgentOutcome.ERROR),
    ],
)
def test_each_status_counts_as_its_outcome(status: int, outcome: AgentOutcome) -> None:
    assert AgentOutcome.of_status(status) is outcome
