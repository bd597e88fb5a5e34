"""`/metrics` of `oco server --workers 2`: whichever process answers the scrape reports all of them."""

from __future__ import annotations

from pathlib import Path

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from tests.agentclient import ProtocolClient
from tests.live import REGISTRATION_KEY, start_server
from tests.support import wait_until

HELLOS = 20
SCRAPE_TOKEN = "a-scrape-token-for-tests"


def scraped(url: str) -> dict[str, float]:
    """One scrape on a new connection (the kernel may hand it to either process): sample name -> value."""
    response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"}, timeout=60)
    assert response.status_code == 200, response.text
    return {
        sample.name + "".join(f"|{k}={v}" for k, v in sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_sum_every_server_process(tmp_path: Path, sqlite_url: str) -> None:
    server = start_server(tmp_path, sqlite_url, server_args=("--workers", "2"), metrics_token=SCRAPE_TOKEN)
    try:
        # start_server waited for one process to answer: wait until both listen on the port.
        wait_until(
            lambda: sum(_listens(child) for child in psutil.Process(server.process.pid).children()) == 2,
            timeout=120,
            message="the second server process did not listen",
        )
        server.oco("computer", "add", "pc1")
        agent = ProtocolClient(server.url, "pc1", REGISTRATION_KEY)
        for _ in range(HELLOS):
            agent.hello()
            agent.close()  # a new connection each time: the kernel spreads them over both processes
        scrapes = [scraped(server.url) for _ in range(6)]
        assert [s["oco_agent_requests_total|outcome=answered"] for s in scrapes] == [HELLOS] * 6
        # Both processes run the housekeeping loop; one of them leads it.
        wait_until(
            lambda: scraped(server.url)["oco_housekeeping_rounds_total"] >= 2,
            timeout=120,
            message="no housekeeping round was counted",
        )
        assert [scraped(server.url)["oco_housekeeping_leader"] for _ in range(6)] == [1] * 6
    finally:
        server.stop()


def _listens(process: psutil.Process) -> bool:
    return any(connection.status == psutil.CONN_LISTEN for connection in process.net_connections("tcp"))
