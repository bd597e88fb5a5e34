"""The agent's cycle: deliver what a previous run left, check in, send the inventory when asked, run the
jobs in order, perform post-actions; and the poll loop around it with jitter and backoff."""

from __future__ import annotations

import itertools
import logging
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from oco.agent.client import AgentClient, ProtocolError, ServerUnreachable
from oco.agent.config import EXIT_CONFIG_ERROR, AgentConfig, AgentConfigError, load_config
from oco.agent.downloader import DOWNLOADS_DIR, DownloadAbandoned, prune_downloads
from oco.agent.inventory import hello_data, inventory
from oco.agent.jobs import JobExecutor, JobOrder
from oco.agent.power import (
    RECORD_FILE,
    PowerAction,
    PowerBackend,
    RecordingPowerBackend,
    perform_power_action,
    system_power_backend,
)
from oco.agent.runner import OUTPUT_INTERVAL_S
from oco.agent.state import JobJournal
from oco.domain.protocol import AgentMethod
from oco.domain.states import SequenceMode

log = logging.getLogger("oco.agent")
JITTER = 0.1
"""Each wait is the nominal delay ±10 %, so that a fleet started together spreads out."""
BACKOFF_CAP_S = 900
MAX_DOUBLINGS = 10
STATE_DIR_MODE = 0o700
EXIT_OK, EXIT_CHECK_IN_FAILED = 0, 1
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def next_delay(
    interval_s: float, failures: int, rng: Callable[[float, float], float] = random.uniform
) -> float:
    """Seconds until the next check-in: the interval after a success, doubling per consecutive failure up
    to BACKOFF_CAP_S (or the interval when it is longer), jittered by ±JITTER."""
    nominal = min(max(BACKOFF_CAP_S, interval_s), interval_s * 2 ** min(failures, MAX_DOUBLINGS))
    return float(nominal * rng(1 - JITTER, 1 + JITTER))


def make_power_backend(config: AgentConfig) -> PowerBackend:
    """The backend `power_backend` names: "record" writes power_actions.jsonl, "system" acts for real."""
    if config.power_backend == "record":
        return RecordingPowerBackend(config.state_path / RECORD_FILE, config.recorded_users)
    return system_power_backend()


class Agent:
    """One managed computer's agent. `stop()` (SIGTERM) ends it after the current step; a second
    `stop()` also kills a running procedure and reports it failed."""

    def __init__(
        self,
        config_path: Path,
        power: PowerBackend | None = None,
        transport: httpx.BaseTransport | None = None,
        output_interval_s: float = OUTPUT_INTERVAL_S,
    ) -> None:
        config = load_config(config_path, persist_uid=True)
        config.state_path.mkdir(parents=True, exist_ok=True, mode=STATE_DIR_MODE)
        self.client = AgentClient(config, config_path, transport)
        self.power = power or make_power_backend(config)
        self.journal = JobJournal(config.state_path)
        self.stopping = threading.Event()
        self.abort = threading.Event()
        self._stop_calls = itertools.count()
        self.exit_requested = False
        self.jobs = JobExecutor(self.client, self.journal, self.stopping, self.abort, output_interval_s)

    @property
    def config(self) -> AgentConfig:
        """The current configuration (keys learned at the first check-in included)."""
        return self.client.config

    def stop(self, *_args: object) -> None:
        """Finish the current step, then stop; when already stopping, kill a running procedure too.

        The calls are counted with one `next()`, atomic between threads and signal handlers: of two
        stops at the same moment exactly one is the second (checking `stopping` first could let both
        see it unset, and then the procedure was never killed).
        """
        if next(self._stop_calls):
            self.abort.set()
        self.stopping.set()

    def close(self) -> None:
        """Release the HTTP connections."""
        self.client.close()

    # The cycle --------------------------------------------------------------------------------

    def run_once(self) -> None:
        """One check-in: settle what a previous run left (and its post-action), then run the jobs handed
        out, in order."""
        recovered = self.jobs.recover()
        if recovered is not None:
            outcome = "succeeded" if recovered.succeeded else "failed"
            log.info("job %s finished (%s), settled after a restart", recovered.job_id, outcome)
            if recovered.succeeded and recovered.order is not None and self.post_action(recovered.order):
                return
        if self.stopping.is_set():
            return
        params = self.client.call(AgentMethod.HELLO, hello_data())
        if params.get("update"):
            self.client.call(AgentMethod.UPDATE, inventory(self.config.effective_hostname))
        entries = params.get("software-jobs")
        if not isinstance(entries, list):
            raise ProtocolError("the server's answer has no 'software-jobs' list")
        orders = [JobOrder.from_wire(entry) for entry in entries]
        wanted = {order.package_id for order in orders if order.download}
        for path in prune_downloads(self.config.state_path / DOWNLOADS_DIR, wanted):
            log.info("deleted %s: no job needs that package any more", path.name)
        self.run_jobs(orders)

    def run_jobs(self, orders: list[JobOrder]) -> None:
        """Run jobs in the order received; after a failure in sequence mode "abort after failed job",
        skip the rest of that container (the server fails them with -8888)."""
        aborted: set[int] = set()
        for order in orders:
            if self.stopping.is_set() or self.exit_requested:
                return
            if order.container_id in aborted:
                log.info(
                    "job %s skipped: an earlier job of container %s failed", order.id, order.container_id
                )
                continue
            succeeded = self.jobs.run(order)
            log.info("job %s finished (%s)", order.id, "succeeded" if succeeded else "failed")
            if not succeeded and order.sequence_mode is SequenceMode.ABORT_AFTER_FAILED:
                aborted.add(order.container_id)
            if succeeded and self.post_action(order):
                return

    def run_forever(self) -> int:
        """Poll until stopped or told to exit; back off exponentially while check-ins fail."""
        failures = 0
        while not self.stopping.is_set() and not self.exit_requested:
            problem = ""
            try:
                self.run_once()
                failures = 0
            except DownloadAbandoned:
                break
            except (ServerUnreachable, ProtocolError) as exc:
                failures += 1
                problem = f"check-in failed ({exc})"
            except Exception:  # a bug must not end the service: logged, retried later
                failures += 1
                log.exception("unexpected agent error")
                problem = "unexpected agent error"
            if self.exit_requested:
                break
            delay = next_delay(self.config.query_interval, failures)
            if problem:
                log.warning("%s; next try in %.0f s", problem, delay)
            self.stopping.wait(delay)
        return EXIT_OK

    # Post-actions -----------------------------------------------------------------------------

    def post_action(self, order: JobOrder) -> bool:
        """Restart, shut down or exit after a successful job; True when no further job should run now."""
        if order.exit is not None:
            if order.exit >= 0:
                log.info("job %s asks the agent to exit", order.id)
                self.exit_requested = True
            return self.exit_requested
        for minutes, action in ((order.restart, PowerAction.RESTART), (order.shutdown, PowerAction.SHUTDOWN)):
            if minutes is not None:
                return self._power(order, action, minutes)
        return False

    def _power(self, order: JobOrder, action: PowerAction, minutes: int) -> bool:
        try:
            outcome = perform_power_action(
                action, minutes, self.power, self.stopping.wait, self.config.post_action_minute_seconds
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            log.error("job %s: %s failed: %s", order.id, action, exc)
            return True
        if outcome.acted:
            log.info("job %s: %s after %.0f s", order.id, action, outcome.delay_seconds)
        else:
            log.info("job %s: %s not done: %s", order.id, action, outcome.reason)
        return outcome.acted or self.stopping.is_set()


def run_agent(config_path: Path, once: bool) -> int:
    """Run the agent with the configuration at `config_path`: one cycle with `once`, else until SIGTERM.

    Returns the process exit status: 0, 1 when `once` could not check in, 2 for a bad configuration.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        agent = Agent(config_path)
    except AgentConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    previous = install_signal_handlers(agent.stop)
    try:
        return _run_once(agent) if once else agent.run_forever()
    finally:
        agent.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run_once(agent: Agent) -> int:
    try:
        agent.run_once()
    except DownloadAbandoned:
        pass
    except (ServerUnreachable, ProtocolError) as exc:
        print(f"error: check-in failed: {exc}", file=sys.stderr)
        return EXIT_CHECK_IN_FAILED
    except Exception as exc:
        log.exception("unexpected agent error")
        print(f"error: unexpected agent error: {exc}", file=sys.stderr)
        return EXIT_CHECK_IN_FAILED
    return EXIT_OK


def install_signal_handlers(stop: Callable[..., Any]) -> dict[int, Any]:
    """Make SIGTERM and SIGINT call `stop`; returns the previous handlers by signal number.

    Only the main thread may do this: elsewhere nothing changes and the result is empty.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
