"""Agent parts without a server: configuration file, safe unzip, procedure runner, journal."""

from __future__ import annotations

import io
import stat
import tempfile
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from oco.agent.config import AgentConfig, AgentConfigError, load_config, save_config
from oco.agent.runner import run_procedure
from oco.agent.state import JobJournal, JournalEntry
from oco.agent.unpack import UnsafeArchive, safe_extract


def test_the_config_round_trips_privately_and_atomically(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "oco-agent.toml"
    config = AgentConfig(server_url="http://127.0.0.1:8000", registration_key='k"ey\\', recorded_users=["a"])
    save_config(path, config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_config(path)
    assert replace(loaded, uid="") == config and loaded.uid  # a uid is generated once
    assert list(path.parent.iterdir()) == [path]  # no temporary file left


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('registration_key = "k"', "'server_url' is required"),
        ('server_url = "x"\nbogus = 1', "unknown setting 'bogus'"),
        ('server_url = "x"\nquery_interval = "60"', "'query_interval' must be of type int"),
        ("server_url = ", "configuration file"),
    ],
)
def test_bad_configs_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(AgentConfigError, match=message):
        load_config(path)


def test_the_hostname_loses_its_domain() -> None:
    assert AgentConfig(server_url="x", hostname="pc1.corp.example").effective_hostname == "pc1"


def archive(*members: tuple[str, str, int], directory: Path | None = None) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, text, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, text)
    path = (directory or Path(tempfile.gettempdir())) / f"oco-test-{time.monotonic_ns()}.zip"
    path.write_bytes(buffer.getvalue())
    return path


def test_extraction_keeps_execute_bits(tmp_path: Path) -> None:
    path = archive(("bin/setup.sh", "exit 0\n", 0o755), ("readme.txt", "hi", 0o644))
    safe_extract(path, tmp_path / "job")
    assert (tmp_path / "job" / "bin" / "setup.sh").stat().st_mode & stat.S_IXUSR
    assert not (tmp_path / "job" / "readme.txt").stat().st_mode & stat.S_IXUSR
    path.unlink()


@pytest.mark.parametrize("name", ["../evil.sh", "/etc/evil", "a/../../evil", "C:\\evil.bat", "..\\evil.bat"])
def test_unsafe_names_are_refused_before_anything_is_written(tmp_path: Path, name: str) -> None:
    path = archive(("fine.txt", "x", 0o644), (name, "x", 0o644))
    with pytest.raises(UnsafeArchive):
        safe_extract(path, tmp_path / "job")
    assert not (tmp_path / "job" / "fine.txt").exists()
    path.unlink()


def test_symbolic_links_are_refused(tmp_path: Path) -> None:
    path = archive(("link", "/etc/passwd", stat.S_IFLNK | 0o777))
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        safe_extract(path, tmp_path / "job")
    path.unlink()


def test_the_runner_reports_exit_code_and_output(tmp_path: Path) -> None:
    result = run_procedure("echo out; echo err >&2; exit 7", tmp_path, timeout_s=10)
    assert (result.exit_code, result.timed_out) == (7, False)
    assert "out" in result.output and "err" in result.output


def test_the_runner_streams_output_while_running(tmp_path: Path) -> None:
    seen: list[str] = []
    run_procedure("echo first; sleep 0.6; echo second", tmp_path, 10, seen.append, output_interval_s=0.2)
    assert seen and "first" in seen[0]


def test_a_timeout_kills_the_whole_tree(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_procedure("sleep 271 & (sleep 271 &) ; sleep 271", tmp_path, timeout_s=1)
    assert result.timed_out and result.exit_code is None
    assert time.monotonic() - started < 15
    time.sleep(0.2)
    assert [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "271"]] == []


def test_the_journal_survives_and_clears(tmp_path: Path) -> None:
    journal = JobJournal(tmp_path)
    assert journal.current() is None
    journal.record(JournalEntry(5, 2, "finished", {"state": 3, "return-code": 0, "message": ""}))
    assert JobJournal(tmp_path).current() == JournalEntry(
        5, 2, "finished", {"state": 3, "return-code": 0, "message": ""}
    )
    (tmp_path / "current-job.json").write_text("{torn")
    assert journal.current() is None
    journal.clear()


def test_output_streaming_survives_an_unreachable_server(tmp_path: Path) -> None:
    """A lost progress report must not abandon a running procedure (it would be left unsupervised)."""
    from oco.agent.config import save_config
    from oco.agent.loop import Agent
    from tests.live import free_port

    config = tmp_path / "agent.toml"
    save_config(
        config, AgentConfig(server_url=f"http://127.0.0.1:{free_port()}", state_dir=str(tmp_path / "s"))
    )
    agent = Agent(config)
    agent._stream(1, "still running")  # connection refused: logged, not raised
    agent.client.close()
