"""The agent's cycle against an in-process fake server (httpx.MockTransport, no network): jobs in order,
reports, sequence mode, agent errors, crash recovery, post-actions, inventory, backoff and stopping."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from oco.agent.config import AgentConfig, save_config
from oco.agent.jobs import RESTARTED_WHILE_EXECUTING, STOPPED_WHILE_EXECUTING
from oco.agent.loop import BACKOFF_CAP_S, Agent, next_delay, run_agent
from oco.agent.power import RecordingPowerBackend
from oco.agent.recovery import NO_PROCESS_RECORD, killed
from oco.agent.runner import is_running
from oco.agent.state import JobJournal, JournalEntry, Phase
from oco.agent.wrapper import EXIT_CODE_FILE
from oco.domain.protocol import SHA256_HEADER, SIGNATURE_HEADER_SERVER, AgentMethod, sign
from oco.domain.states import ReturnCode
from tests.agentcrash import crash_during, end_orphan, kill_group, order, record_of
from tests.live import free_port
from tests.support import wait_until, zip_bytes

REGISTRATION_KEY = "registration"
AGENT_KEY, SERVER_KEY = "a" * 40, "s" * 40
FINAL_STATES = (3, -1)


def job(
    job_id: int, container: int = 1, package: int = 0, procedure: str = "true", **extra: Any
) -> dict[str, Any]:
    return {
        "id": job_id,
        "container-id": container,
        "package-id": package or job_id,
        "download": bool(package),
        "procedure": procedure,
        "sequence-mode": 0,
        "restart": None,
        "shutdown": None,
        "exit": None,
        **extra,
    }


def wait_for_marker(name: str) -> str:
    """Shell that waits until the test creates $MARKERS/`name` (the agent kills it at the job timeout)."""
    return f'until [ -e "$MARKERS/{name}" ]; do sleep 0.05; done'


Report = dict[str, Any]
"""The `data` of an `oco.agent.update_job_state`."""


class FakeServer:
    """Just enough of the server: hands out `jobs` until they are reported final, serves `payloads`
    (with Range), signs its answers; a final state 3 with return code 0 counts as success.

    `on_report` sees each job report as it arrives, in the agent's thread: the point where a test acts
    (stops the agent, lets a procedure go on) once the agent has got that far."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.payloads: dict[int, bytes] = {}
        self.calls: list[tuple[str, dict[str, Any], httpx.Request]] = []
        self.update = 0
        self.timestamp = 1000.0
        self.refuse_reports_for: set[int] = set()
        self.unreachable = False
        self.on_report: Callable[[Report], None] = lambda data: None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.unreachable:
            raise httpx.ConnectError("connection refused", request=request)
        document = json.loads(request.content)
        method, params = document["method"], document["params"]
        self.calls.append((method, params, request))
        if method == AgentMethod.DOWNLOAD:
            return self._download(params["package-id"], request.headers.get("range"))
        if method == AgentMethod.UPDATE_JOB_STATE:
            data = params["data"]
            self.on_report(data)
            if data["job-id"] in self.refuse_reports_for:
                return httpx.Response(401, text="job does not belong to this computer")
            result = {"job-succeeded": data["state"] == 3 and data["return-code"] == 0}
            if data["state"] in FINAL_STATES:
                self.jobs = [j for j in self.jobs if j["id"] != data["job-id"]]
        elif method == AgentMethod.HELLO:
            result = {
                "update": self.update,
                "software-jobs": [self._with_payload_digest(j) for j in self.jobs],
                "logins-since": "",
                "events": [],
            }
        else:
            result = {"policies": {}}
        self.timestamp += 1
        body = json.dumps(
            {"jsonrpc": "2.0", "id": 1, "result": {"timestamp": self.timestamp, "params": result}}
        )
        return httpx.Response(
            200, content=body.encode(), headers={SIGNATURE_HEADER_SERVER: sign(SERVER_KEY, body.encode())}
        )

    def _with_payload_digest(self, entry: dict[str, Any]) -> dict[str, Any]:
        """A job with a payload names its SHA-256 and size, as our server's jobs do."""
        payload = self.payloads.get(entry["package-id"])
        if not entry["download"] or payload is None or "payload-sha256" in entry:
            return entry
        return {**entry, "payload-sha256": hashlib.sha256(payload).hexdigest(), "payload-size": len(payload)}

    def _download(self, package_id: int, byte_range: str | None) -> httpx.Response:
        payload = self.payloads[package_id]
        start = int(byte_range.removeprefix("bytes=").rstrip("-")) if byte_range else 0
        headers = {SHA256_HEADER: hashlib.sha256(payload).hexdigest(), "etag": '"ignored"'}
        return httpx.Response(206 if start else 200, content=payload[start:], headers=headers)

    def reports(self) -> list[tuple[int, int, int | None, Any]]:
        """(job id, state, return code, download progress or message) of each update_job_state."""
        result = []
        for method, params, _ in self.calls:
            if method == AgentMethod.UPDATE_JOB_STATE:
                data = params["data"]
                detail = data.get("download-progress", data["message"])
                result.append((data["job-id"], data["state"], data["return-code"], detail))
        return result

    def finals(self) -> dict[int, tuple[int, int | None, str]]:
        return {r[0]: (r[1], r[2], r[3]) for r in self.reports() if r[1] in FINAL_STATES}

    def methods(self) -> list[str]:
        return [method for method, _, _ in self.calls]

    def running(self, job_id: int) -> Callable[[Report], bool]:
        """Whether a report is one streamed while the job's procedure runs: a state 2 (executing)
        report after the one that opened the phase (which comes just before the procedure starts)."""

        def streamed(data: Report) -> bool:
            executing = [r for r in self.reports() if r[0] == job_id and r[1] == 2]
            return data["job-id"] == job_id and data["state"] == 2 and len(executing) >= 2

        return streamed


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    save_config(
        path,
        AgentConfig(
            server_url="http://127.0.0.1:1",
            registration_key=REGISTRATION_KEY,
            agent_key=AGENT_KEY,
            server_key=SERVER_KEY,
            hostname="pc1",
            state_dir=str(tmp_path / "state"),
            query_interval=1,
            job_timeout=30,
            power_backend="record",
        ),
    )
    return path


@pytest.fixture
def agent(config_path: Path, server: FakeServer) -> Iterator[Agent]:
    agent = Agent(config_path, transport=httpx.MockTransport(server), output_interval_s=0.05)
    yield agent
    agent.close()


def make_agent(config_path: Path, server: FakeServer, **settings: Any) -> Agent:
    from oco.agent.config import load_config

    save_config(config_path, replace(load_config(config_path), **settings))
    return Agent(config_path, transport=httpx.MockTransport(server), output_interval_s=0.05)


def power_log(agent: Agent) -> list[dict[str, object]]:
    assert isinstance(agent.power, RecordingPowerBackend)
    return agent.power.entries()


# A job from start to end -----------------------------------------------------------------------


def test_a_job_is_downloaded_verified_unpacked_run_and_reported(
    agent: Agent, server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKERS", str(tmp_path))
    server.payloads[5] = zip_bytes(
        {"install.sh": 'echo "installing from $(pwd)"\ntouch "$MARKERS/installed"\n'}
    )
    server.jobs = [job(11, package=5, procedure="./install.sh")]

    agent.run_once()

    reports = server.reports()
    assert reports[0] == (11, 1, None, 0)
    assert (11, 1, None, 101) in reports  # unpacking
    assert (11, 2, None, "") in reports
    state, code, output = server.finals()[11]
    assert (state, code) == (3, 0) and "installing from" in output and "/jobs/11" in output
    assert (tmp_path / "installed").exists()
    state_dir = tmp_path / "state"
    assert not (state_dir / "jobs" / "11").exists() and list((state_dir / "downloads").iterdir()) == []
    assert JobJournal(state_dir).current() is None


def test_a_job_without_payload_runs_in_an_empty_directory(agent: Agent, server: FakeServer) -> None:
    server.jobs = [job(1, procedure="ls -A | wc -l; exit 4")]
    agent.run_once()
    assert server.finals()[1] == (3, 4, "0\n")
    assert "oco.agent.download" not in server.methods()


def test_output_is_streamed_while_the_procedure_runs(
    agent: Agent, server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKERS", str(tmp_path))

    def go_on_once_streamed(data: Report) -> None:
        if "step one" in data["message"]:
            (tmp_path / "streamed").touch()

    server.on_report = go_on_once_streamed
    server.jobs = [job(1, procedure=f"echo step one; {wait_for_marker('streamed')}; echo step two")]
    agent.run_once()
    streamed = [r for r in server.reports() if r[1] == 2 and r[3]]
    assert streamed and all(r[2] is None for r in streamed)
    assert "step one" in streamed[0][3]


def test_jobs_run_in_order_and_sequence_mode_skips_the_failed_container(
    agent: Agent, server: FakeServer
) -> None:
    server.jobs = [
        job(1, container=7, procedure="exit 0"),
        job(2, container=7, procedure="exit 3", **{"sequence-mode": 1}),
        job(3, container=7, procedure="exit 0", **{"sequence-mode": 1}),
        job(4, container=8, procedure="exit 0"),
    ]
    agent.run_once()
    assert [job_id for job_id, state, *_ in server.reports() if state == 3] == [1, 2, 4]


def test_without_sequence_mode_a_failure_does_not_stop_the_container(
    agent: Agent, server: FakeServer
) -> None:
    server.jobs = [job(1, procedure="exit 3"), job(2, procedure="exit 0")]
    agent.run_once()
    assert sorted(server.finals()) == [1, 2]


# Agent errors are -9999 with a reason -----------------------------------------------------------


def test_a_corrupt_download_fails_the_job_and_runs_nothing(
    agent: Agent, server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKERS", str(tmp_path))
    server.payloads[5] = zip_bytes({"install.sh": 'touch "$MARKERS/ran"\n'})
    original = server._download

    def rotten(package_id: int, byte_range: str | None) -> httpx.Response:
        response = original(package_id, byte_range)
        return httpx.Response(200, content=response.content[:-1] + b"!", headers=response.headers)

    server._download = rotten  # type: ignore[method-assign]
    server.jobs = [job(1, package=5, procedure="./install.sh")]
    agent.run_once()
    state, code, message = server.finals()[1]
    assert (state, code) == (-1, ReturnCode.AGENT_ERROR) and "SHA-256" in message
    assert not (tmp_path / "ran").exists()


def test_an_unsafe_payload_fails_the_job(agent: Agent, server: FakeServer) -> None:
    server.payloads[5] = zip_bytes({"../escape.sh": "echo hi"})
    server.jobs = [job(1, package=5, procedure="true")]
    agent.run_once()
    state, code, message = server.finals()[1]
    assert (state, code) == (-1, -9999) and "leaves the job directory" in message


def test_a_command_that_cannot_run_is_an_agent_error(agent: Agent, server: FakeServer) -> None:
    server.jobs = [job(1, procedure="no-such-installer --quiet")]
    agent.run_once()
    state, code, message = server.finals()[1]
    assert (state, code) == (-1, -9999) and "could not be executed" in message and "not found" in message


def test_a_procedure_past_its_timeout_is_killed_and_reported(config_path: Path, server: FakeServer) -> None:
    agent = make_agent(config_path, server, job_timeout=1)
    server.jobs = [job(1, procedure="echo started; sleep 100 & sleep 100")]
    agent.run_once()
    agent.close()
    state, code, message = server.finals()[1]
    assert (state, code) == (-1, -9999)
    assert message.startswith("timed out after 1 s, process tree killed") and "started" in message


# Crash safety ---------------------------------------------------------------------------------


def test_a_job_that_was_executing_at_a_restart_is_reported_not_rerun(
    agent: Agent, server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKERS", str(tmp_path))
    server.jobs = [job(3, procedure='touch "$MARKERS/ran-again"')]  # still "executing" on the server
    JobJournal(tmp_path / "state").record(JournalEntry(3, 1, "executing"))

    agent.run_once()

    assert server.methods()[0] == "oco.agent.update_job_state"  # before the check-in
    state, code, message = server.finals()[3]
    assert (state, code) == (-1, ReturnCode.AGENT_ERROR)
    assert message.startswith(f"{RESTARTED_WHILE_EXECUTING}: {NO_PROCESS_RECORD}")  # an older agent's journal
    assert not (tmp_path / "ran-again").exists()
    assert JobJournal(tmp_path / "state").current() is None


def test_a_job_that_was_downloading_at_a_restart_resumes_its_download(
    agent: Agent, server: FakeServer, tmp_path: Path
) -> None:
    payload = zip_bytes({"install.sh": "echo resumed-install\n" + "#" * 5000})
    server.payloads[5] = payload
    downloads = tmp_path / "state" / "downloads"
    downloads.mkdir(parents=True)
    (downloads / "5.part").write_bytes(payload[:1000])
    (downloads / "5.sha256").write_text(hashlib.sha256(payload).hexdigest())
    JobJournal(tmp_path / "state").record(JournalEntry(9, 1, "downloading"))
    server.jobs = [job(9, package=5, procedure="./install.sh")]

    agent.run_once()

    [download] = [request for method, _, request in server.calls if method == "oco.agent.download"]
    assert download.headers["range"] == "bytes=1000-"
    assert server.finals()[9][:2] == (3, 0) and "resumed-install" in server.finals()[9][2]


def test_partial_downloads_no_job_wants_are_deleted_the_others_kept(
    agent: Agent, server: FakeServer, tmp_path: Path
) -> None:
    downloads = tmp_path / "state" / "downloads"
    downloads.mkdir(parents=True)
    for name in ("5.part", "5.sha256", "7.part", "7.sha256", "8.zip", "notes.txt"):
        (downloads / name).write_text("x")
    server.payloads[5] = zip_bytes({"install.sh": "true\n"})
    (downloads / "5.part").write_bytes(server.payloads[5][:1])  # a resumable start of package 5
    (downloads / "5.sha256").write_text(hashlib.sha256(server.payloads[5]).hexdigest())
    server.jobs = [job(9, package=5, procedure="sh install.sh")]
    seen_at_download: list[list[str]] = []
    serve = server._download

    def download(package_id: int, byte_range: str | None) -> httpx.Response:
        seen_at_download.append(sorted(path.name for path in downloads.iterdir()))
        return serve(package_id, byte_range)

    server._download = download  # type: ignore[method-assign]

    agent.run_once()

    # Package 7's and 8's leftovers went before the jobs ran; package 5's was still there to resume.
    assert seen_at_download[0] == ["5.part", "5.sha256", "notes.txt"]
    assert sorted(path.name for path in downloads.iterdir()) == ["notes.txt"]


def test_a_final_report_that_could_not_be_sent_is_delivered_first_next_time(
    agent: Agent, server: FakeServer
) -> None:
    server.jobs = [job(1, procedure="echo done")]
    lost: list[int] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        data = json.loads(request.content)["params"].get("data", {})
        if data.get("state") in FINAL_STATES and not lost:  # the first final report is lost
            lost.append(data["job-id"])
            raise httpx.ConnectError("network down", request=request)
        return server(request)

    agent.client.http.close()
    agent.client.http = httpx.Client(transport=httpx.MockTransport(flaky))
    with pytest.raises(Exception, match="network down"):
        agent.run_once()
    assert agent.journal.current() is not None and agent.journal.current().phase == "finished"  # type: ignore[union-attr]

    agent.run_once()
    assert server.finals()[1] == (3, 0, "done\n")
    assert server.methods()[-2:] == ["oco.agent.update_job_state", "oco.agent.hello"]
    assert agent.journal.current() is None


def test_a_report_the_server_refuses_is_dropped_after_a_restart(
    agent: Agent, server: FakeServer, tmp_path: Path
) -> None:
    JobJournal(tmp_path / "state").record(JournalEntry(4, 1, "executing"))
    server.refuse_reports_for = {4}
    agent.run_once()
    assert agent.journal.current() is None and server.methods()[-1] == "oco.agent.hello"


def stop_at(agent: Agent, server: FakeServer, *moments: Callable[[Report], bool]) -> None:
    """Call `agent.stop()` once at the first report matching each of `moments` in turn, in the agent's
    own thread, as a SIGTERM handler would: the stops land where the agent is, whatever the load."""
    pending = list(moments)

    def stop_when_due(data: Report) -> None:
        if pending and pending[0](data):
            pending.pop(0)
            agent.stop()

    server.on_report = stop_when_due


def test_sigterm_lets_a_procedure_finish_and_a_second_one_kills_it(
    agent: Agent, server: FakeServer, config_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKERS", str(tmp_path))
    server.jobs = [
        job(1, procedure=f"{wait_for_marker('stopped')}; echo finished"),
        job(2, procedure="echo never"),
    ]
    running = server.running(1)

    def sigterm_while_running(data: Report) -> None:
        if running(data) and not agent.stopping.is_set():
            agent.stop()
            (tmp_path / "stopped").touch()  # only now may the procedure end

    server.on_report = sigterm_while_running
    agent.run_once()
    assert server.finals() == {1: (3, 0, "finished\n")}

    restarted = make_agent(config_path, server)  # stopped agents stay stopped: as after a restart
    try:
        server.jobs = [job(3, procedure="echo begun; sleep 100")]
        stop_at(restarted, server, server.running(3), lambda data: "begun" in data["message"])
        restarted.run_once()
    finally:
        restarted.close()
    state, code, message = server.finals()[3]
    assert (state, code) == (-1, -9999) and message.startswith(STOPPED_WHILE_EXECUTING)


class OverlappingEvent(threading.Event):
    """An event whose `set()` goes through only once `parties` threads are setting it at once."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.meeting = threading.Barrier(parties, timeout=60)

    def set(self) -> None:
        self.meeting.wait()
        super().set()


def test_of_two_stops_at_the_same_moment_one_is_the_second(agent: Agent) -> None:
    """Two SIGTERMs (or stop() calls from two threads) that overlap still kill a running procedure."""
    agent.stopping = OverlappingEvent(2)
    stops = [threading.Thread(target=agent.stop) for _ in range(2)]
    for thread in stops:
        thread.start()
    for thread in stops:
        thread.join(timeout=60)
    assert agent.stopping.is_set() and agent.abort.is_set()


# After a crash of the agent: the procedure outlived it --------------------------------------------

WAIT_FOR_GO = 'echo begun; until [ -e "$MARKERS/go" ]; do sleep 0.05; done; echo ended; exit {code}'


@pytest.fixture
def markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MARKERS", str(tmp_path))
    return tmp_path


@pytest.fixture
def orphans() -> Iterator[list[JournalEntry]]:
    """The journal entries of crashed helper agents: what is left of their procedures is killed at the end."""
    entries: list[JournalEntry] = []
    yield entries
    for entry in entries:
        end_orphan(entry)


def crash(tmp_path: Path, orphans: list[JournalEntry], procedure: str, **post_actions: int) -> JournalEntry:
    entry = crash_during(tmp_path / "state", order(1, procedure, **post_actions))
    orphans.append(entry)
    return entry


@pytest.mark.parametrize("code", [0, 3])
def test_a_procedure_that_outlived_the_agent_is_followed_and_its_real_code_reported(
    agent: Agent, server: FakeServer, tmp_path: Path, markers: Path, orphans: list[JournalEntry], code: int
) -> None:
    entry = crash(tmp_path, orphans, WAIT_FOR_GO.format(code=code), shutdown=5)
    server.jobs = [job(1, procedure="echo ran again", shutdown=5)]  # still executing on the server

    def go_once_streamed(data: Report) -> None:
        if data["state"] == 2 and "begun" in data["message"]:
            (markers / "go").touch()

    server.on_report = go_once_streamed
    assert is_running(record_of(entry))
    agent.run_once()

    assert server.methods()[0] == "oco.agent.update_job_state"  # settled before the check-in
    assert any(r[1] == 2 and "begun" in r[3] for r in server.reports())  # its output was streamed
    assert server.finals()[1] == (3, code, "begun\nended\n")
    assert not is_running(record_of(entry))
    assert agent.journal.current() is None and not (tmp_path / "state" / "jobs" / "1").exists()
    shutdowns = [e["action"] for e in power_log(agent)]
    assert shutdowns == (["shutdown"] if code == 0 else [])  # the post-action, after success only


def test_a_procedure_that_ended_while_the_agent_was_down_is_reported_with_its_code(
    agent: Agent, server: FakeServer, tmp_path: Path, markers: Path, orphans: list[JournalEntry]
) -> None:
    entry = crash(tmp_path, orphans, WAIT_FOR_GO.format(code=3))
    (markers / "go").touch()
    exit_file = tmp_path / "state" / "jobs" / "1" / EXIT_CODE_FILE
    wait_until(lambda: exit_file.exists() and not is_running(record_of(entry)), message="it did not end")
    server.jobs = [job(1, procedure="echo ran again")]

    agent.run_once()

    assert server.reports()[0] == (1, 3, 3, "begun\nended\n")  # the first thing the agent sends
    assert server.methods()[1] == "oco.agent.hello" and server.finals() == {1: (3, 3, "begun\nended\n")}


def test_without_a_recorded_code_or_the_process_the_result_is_unknown_and_says_why(
    agent: Agent, server: FakeServer, tmp_path: Path, markers: Path, orphans: list[JournalEntry]
) -> None:
    entry = crash(tmp_path, orphans, WAIT_FOR_GO.format(code=0))
    kill_group(entry)  # the procedure died with the agent (systemd's final SIGKILL, a shutdown)
    wait_until(lambda: not is_running(record_of(entry)), message="the wrapper did not die")
    server.jobs = [job(1, procedure="echo ran again")]

    agent.run_once()

    state, code, message = server.finals()[1]
    assert (state, code) == (-1, ReturnCode.AGENT_ERROR)
    assert message.startswith(f"{RESTARTED_WHILE_EXECUTING}: {killed(entry.pid)}")
    assert message.endswith("\nbegun")  # what it wrote before it died
    assert "ran again" not in json.dumps(server.reports())


def test_a_wrapper_that_never_got_its_go_means_the_job_runs_normally(
    agent: Agent, server: FakeServer, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    (state_dir / "jobs" / "2").mkdir(parents=True)  # the wrapper's run directory, without `started`
    for entry in (
        JournalEntry(1, 1, Phase.STARTING),  # died before launching
        JournalEntry(2, 1, Phase.EXECUTING, pid=int(dead.stdout), process_start="linux:x:1"),  # before the go
    ):
        JobJournal(state_dir).record(entry)
        server.jobs = [job(entry.job_id, procedure="echo first run")]
        before = len(server.calls)
        agent.run_once()
        assert server.methods()[before] == "oco.agent.hello"  # nothing reported before the check-in
        assert server.finals()[entry.job_id] == (3, 0, "first run\n")


def test_a_followed_procedure_keeps_the_timeout_of_its_start(
    agent: Agent, server: FakeServer, tmp_path: Path, markers: Path, orphans: list[JournalEntry]
) -> None:
    entry = crash(tmp_path, orphans, "echo begun; sleep 300 & sleep 300")
    journal = JobJournal(tmp_path / "state")
    journal.record(replace(entry, launched_at=time.time() - 200, timeout_s=150))  # its 150 s are over
    server.jobs = [job(1)]

    agent.run_once()

    state, code, message = server.finals()[1]
    assert (state, code) == (-1, -9999) and message.startswith("timed out after 150 s, process tree killed")
    assert "begun" in message and not is_running(record_of(entry))


def test_stopping_while_following_lets_it_finish_and_a_second_stop_kills_it(
    config_path: Path, server: FakeServer, tmp_path: Path, markers: Path, orphans: list[JournalEntry]
) -> None:
    agent = make_agent(config_path, server)
    crash(tmp_path, orphans, WAIT_FOR_GO.format(code=0))
    server.jobs = [job(1)]

    def stop_then_go(data: Report) -> None:
        if data["state"] == 2 and not agent.stopping.is_set():
            agent.stop()
            (markers / "go").touch()

    server.on_report = stop_then_go
    agent.run_once()
    agent.close()
    assert server.finals() == {1: (3, 0, "begun\nended\n")}
    assert "oco.agent.hello" not in server.methods()  # stopped: no check-in after the settled job

    (markers / "go").unlink()
    second = make_agent(config_path, server)
    entry = crash(tmp_path, orphans, WAIT_FOR_GO.format(code=0))
    server.jobs = [job(1)]
    stop_at(second, server, lambda data: data["state"] == 2, lambda data: data["state"] == 2)
    try:
        second.run_once()
    finally:
        second.close()
    state, code, message = server.finals()[1]
    assert (state, code) == (-1, -9999) and message.startswith(STOPPED_WHILE_EXECUTING)
    assert not is_running(record_of(entry))


# Post-actions ----------------------------------------------------------------------------------


def test_restart_waits_for_a_logged_in_user(config_path: Path, server: FakeServer) -> None:
    agent = make_agent(config_path, server, recorded_users=["alice"], post_action_minute_seconds=0.01)
    server.jobs = [job(1, restart=2), job(2, procedure="echo after the restart")]
    agent.run_once()
    agent.close()
    notify, restart = power_log(agent)
    assert (notify["action"], restart["action"], restart["delay_seconds"]) == ("notify", "restart", 0.02)
    assert sorted(server.finals()) == [1]  # the next job waits for the next start


def test_shutdown_with_nobody_logged_in_is_immediate(agent: Agent, server: FakeServer) -> None:
    server.jobs = [job(1, shutdown=10)]
    agent.run_once()
    assert [(e["action"], e["delay_seconds"]) for e in power_log(agent)] == [("shutdown", 0.0)]


def test_a_negative_timeout_or_a_failed_job_means_no_post_action(agent: Agent, server: FakeServer) -> None:
    server.jobs = [job(1, restart=-1), job(2, procedure="exit 1", shutdown=0), job(3, exit=-1)]
    agent.run_once()
    assert power_log(agent) == [] and not agent.exit_requested
    assert sorted(server.finals()) == [1, 2, 3]


def test_exit_stops_the_agent_after_reporting(agent: Agent, server: FakeServer) -> None:
    server.jobs = [job(1, exit=0), job(2)]
    assert agent.run_forever() == 0
    assert agent.exit_requested and sorted(server.finals()) == [1]


# Check-in, inventory, polling ---------------------------------------------------------------------


def test_hello_carries_the_networks_and_update_sends_the_inventory(agent: Agent, server: FakeServer) -> None:
    server.update = 1
    agent.run_once()
    assert server.methods() == ["oco.agent.hello", "oco.agent.update"]
    hello = server.calls[0][1]["data"]
    assert {"agent_version", "networks", "uptime", "services"} <= set(hello) and hello["services"] == []
    assert all({"addr", "netmask", "broadcast", "mac", "interface"} <= set(n) for n in hello["networks"])
    inventory = server.calls[1][1]["data"]
    expected = {"os", "os_version", "architecture", "kernel_version", "hostname", "cpu", "ram", "networks"}
    assert expected | {"logins", "software"} <= set(inventory)
    assert inventory["hostname"] == "pc1" and isinstance(inventory["software"], list) and inventory["ram"] > 0


def test_the_delay_is_jittered_and_backs_off_to_a_cap() -> None:
    low, high = (lambda a, b: a), (lambda a, b: b)
    assert next_delay(60, 0, low) == pytest.approx(54) and next_delay(60, 0, high) == pytest.approx(66)
    assert [next_delay(10, n, lambda a, b: 1.0) for n in range(4)] == [10, 20, 40, 80]
    assert next_delay(10, 50, high) == pytest.approx(BACKOFF_CAP_S * 1.1)
    assert next_delay(3600, 3, lambda a, b: 1.0) == 3600  # never more often than the interval when failing


def test_an_unreachable_server_means_backoff_until_stopped(
    agent: Agent, server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.unreachable = True

    def stop_once_backing_off() -> None:
        try:
            wait_until(lambda: "next try in" in caplog.text, message="the agent logged no backoff")
        finally:
            agent.stop()

    stopper = threading.Thread(target=stop_once_backing_off)
    with caplog.at_level(logging.WARNING, logger="oco.agent"):
        stopper.start()
        assert agent.run_forever() == 0
    stopper.join(timeout=60)
    assert "check-in failed" in caplog.text and "next try in" in caplog.text


def test_run_agent_once_reports_an_unreachable_server_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agent.toml"
    save_config(
        config,
        AgentConfig(
            server_url=f"http://127.0.0.1:{free_port()}",
            state_dir=str(tmp_path / "s"),
            power_backend="record",
        ),
    )
    assert run_agent(config, once=True) == 1
    assert capsys.readouterr().err.startswith("error: check-in failed:")


def test_run_agent_refuses_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_agent(tmp_path / "missing.toml", once=True) == 2
    assert "does not exist" in capsys.readouterr().err
