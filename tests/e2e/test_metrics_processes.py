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


def answered(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "oco_checkins_total" and sample.labels == {"outcome": "answered"}
    )


def test_metrics_sum_every_server_process(tmp_path: Path, sqlite_url: str) -> None:
    server = start_server(tmp_path, sqlite_url, server_args=("--workers", "2"))
    try:
        wait_until(
            lambda: len(psutil.Process(server.process.pid).children()) >= 2,
            timeout=60,
            message="the server processes did not start",
        )
        server.oco("computer", "add", "pc1")
        agent = ProtocolClient(server.url, "pc1", REGISTRATION_KEY)
        for _ in range(HELLOS):
            agent.hello()
            agent.close()  # a new connection each time: the kernel spreads them over both processes
        # Each scrape, on a new connection, may reach either process: all report the sum.
        assert [answered(server.url) for _ in range(6)] == [HELLOS] * 6
    finally:
        server.stop()
