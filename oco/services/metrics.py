"""What `/metrics` reports, in the Prometheus text format (prometheus-client).

Counters, histograms and gauges are kept by the process that measures them; recording one costs a few
microseconds and never touches the database. With several server processes on one host
(`oco server --workers N`), `oco.processes` gives them one `PROMETHEUS_MULTIPROC_DIR` before they start,
and `render` sums what all of them wrote there, whichever process answers the scrape. Replicas on other
hosts (or ports) are scraped one by one (docs/scaling.md). Jobs by state are counted in the database at
each scrape, so every process reports the same figures.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

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
"""prometheus-client's multi-process directory: set, every process of this host writes its metrics there."""
CONTENT_TYPE = CONTENT_TYPE_LATEST
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


class AgentOutcome(StrEnum):
    """How the server answered an agent request (`oco_agent_requests_total{outcome=…}`)."""

    ANSWERED = "answered"
    """A result (a check-in's jobs, a report taken, a payload sent)."""
    REFUSED = "refused"
    """401: a bad signature, an unknown computer, a replayed timestamp."""
    INVALID = "invalid"
    """Another 4xx: a malformed request or parameters the server refused."""
    ERROR = "error"
    """5xx: the database did not answer, or the server failed."""

    @classmethod
    def of_status(cls, status: int) -> AgentOutcome:
        """The outcome an HTTP status stands for."""
        if status < 400:
            return cls.ANSWERED
        if status == 401:
            return cls.REFUSED
        return cls.INVALID if status < 500 else cls.ERROR


_AGENT_REQUESTS = Counter(
    "oco_agent_requests",
    "Agent requests by outcome; check-ins (oco.agent.hello) are nearly all of them.",
    ["outcome"],
)
_BY_OUTCOME = {outcome: _AGENT_REQUESTS.labels(outcome.value) for outcome in AgentOutcome}
_AGENT_SECONDS = Histogram(
    "oco_agent_request_duration_seconds",
    "Time from an agent request's arrival to its answer's status line, on the server.",
    buckets=_SECONDS,
)
_FLUSH_SECONDS = Histogram(
    "oco_checkin_batch_duration_seconds",
    "Time one batch of plain check-ins takes to be written to the database (locked read, update, commit).",
    buckets=_SECONDS,
)
_FLUSH_SIZE = Histogram(
    "oco_checkin_batch_size", "Plain check-ins written to the database by one batch.", buckets=_SIZES
)
_DOWNLOADS_IN_FLIGHT = Gauge(
    "oco_downloads_in_flight", "Payload downloads being sent now.", multiprocess_mode="livesum"
)
_LEADS_HOUSEKEEPING = Gauge(
    "oco_housekeeping_leader",
    "1 while a process of this server leads housekeeping (exactly one server of a site should).",
    multiprocess_mode="livesum",
)
_HOUSEKEEPING_ROUNDS = Counter("oco_housekeeping_rounds", "Housekeeping rounds this server ran.")


def observe_agent_request(outcome: AgentOutcome, seconds: float) -> None:
    """Count one agent request and its time to answer."""
    _BY_OUTCOME[outcome].inc()
    _AGENT_SECONDS.observe(seconds)


def observe_flush(seconds: float, size: int) -> None:
    """Count one batch of plain check-ins written to the database: how long it took, how many it held."""
    _FLUSH_SECONDS.observe(seconds)
    _FLUSH_SIZE.observe(size)


def observe_housekeeping(leads: bool, ran: bool) -> None:
    """Whether this process leads housekeeping now, and whether it ran a round."""
    _LEADS_HOUSEKEEPING.set(1 if leads else 0)
    if ran:
        _HOUSEKEEPING_ROUNDS.inc()


@contextmanager
def download_in_flight() -> Iterator[None]:
    """Count a download while its body is being sent."""
    _DOWNLOADS_IN_FLIGHT.inc()
    try:
        yield
    finally:
        _DOWNLOADS_IN_FLIGHT.dec()


class _JobsByState(Collector):
    """`oco_jobs{state=…}`: jobs in the database by state, counted at each scrape."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("oco_jobs", "Jobs in the database, by state.", labels=["state"])
        with self.runtime.reading() as session:
            rows = session.execute(select(Job.state, func.count()).group_by(Job.state))
            counts: dict[int, int] = {int(state): count for state, count in rows}
        for state in JobState:
            family.add_metric([state.text], counts.get(int(state), 0))
        yield family


def render(runtime: Runtime) -> bytes:
    """The metrics of this server (all its processes on this host) in the Prometheus text format."""
    jobs = CollectorRegistry(auto_describe=False)
    jobs.register(_JobsByState(runtime))
    if os.environ.get(MULTIPROCESS_DIRECTORY):
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)  # type: ignore[no-untyped-call]
        return generate_latest(processes) + generate_latest(jobs)
    return generate_latest(REGISTRY) + generate_latest(jobs)
