"""What `/metrics` reports, in the Prometheus text format (prometheus-client).

Counters and histograms are kept by the process that counts them. With several server processes on one
host (`oco server --workers N`), `oco.processes` gives them one `PROMETHEUS_MULTIPROC_DIR` before they
start, and `render` sums what all of them wrote there, whichever process answers the scrape. Replicas on
other hosts are scraped one by one (docs/scaling.md). Jobs by state are counted in the database at each
scrape, so every process reports the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from oco.db.models import Job
from oco.domain.states import JobState
from oco.services.runtime import Runtime

MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CHECK_INS = Counter(
    "oco_checkins",
    "Agent check-ins (oco.agent.hello) by outcome: answered, refused (401: signature, replay), error.",
    ["outcome"],
)
CHECK_IN_SECONDS = Histogram(
    "oco_checkin_duration_seconds",
    "Time from a check-in's parsed request to its answer, on the server.",
    buckets=_LATENCY_BUCKETS,
)
CONFIRM_SECONDS = Histogram(
    "oco_checkin_confirm_duration_seconds",
    "Time one batch of plain check-ins takes to be confirmed in the database (locked read, write, commit).",
    buckets=_LATENCY_BUCKETS,
)
CONFIRM_BATCH = Histogram(
    "oco_checkin_confirm_batch_size",
    "Check-ins confirmed per batch.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
)
DOWNLOADS_IN_FLIGHT = Gauge(
    "oco_downloads_in_flight",
    "Payload downloads being sent to agents now.",
    multiprocess_mode="livesum",
)


@contextmanager
def download_in_flight() -> Iterator[None]:
    """Count a download while its body is being sent."""
    DOWNLOADS_IN_FLIGHT.inc()
    try:
        yield
    finally:
        DOWNLOADS_IN_FLIGHT.dec()


class _JobsByState(Collector):
    """`oco_jobs{state=…}`: jobs in the database by state, counted at each scrape (one indexed query)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("oco_jobs", "Jobs in the database, by state.", labels=["state"])
        with self.runtime.reading() as session:
            rows = session.execute(select(Job.state, func.count()).group_by(Job.state))
            counts: dict[int, int] = {state: count for state, count in rows}
        for state in JobState:
            family.add_metric([state.text], counts.get(int(state), 0))
        yield family


def render(runtime: Runtime) -> bytes:
    """The metrics of this server (all its processes on this host) in the Prometheus text format."""
    jobs = CollectorRegistry()
    jobs.register(_JobsByState(runtime))
    if os.environ.get(MULTIPROCESS_DIRECTORY):
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)  # type: ignore[no-untyped-call]
        return generate_latest(processes) + generate_latest(jobs)
    return generate_latest(REGISTRY) + generate_latest(jobs)


def process_ended(pid: int) -> None:
    """A server process ended: its live gauges no longer count (multi-process mode only)."""
    if os.environ.get(MULTIPROCESS_DIRECTORY):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
