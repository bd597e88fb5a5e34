"""The agent's configuration file: round trip, private mode, atomic replacement, enrolment."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oco.agent.config import (
    AgentConfig,
    AgentConfigError,
    enroll,
    load_config,
    save_config,
    write_private,
)


def test_the_config_round_trips_privately(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "oco-agent.toml"
    config = AgentConfig(
        server_url="http://127.0.0.1:8000",
        registration_key='k"ey\\',
        uid="u-1",
        recorded_users=["alice", "bob"],
        post_action_minute_seconds=0.25,
        source_address="127.0.0.2",
    )
    save_config(path, config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_config(path) == config
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


@settings(max_examples=50, deadline=None)
@given(st.text(), st.lists(st.text(max_size=8), max_size=3))
def test_any_text_survives_the_writer(
    tmp_path_factory: pytest.TempPathFactory, key: str, users: list[str]
) -> None:
    path = tmp_path_factory.mktemp("cfg") / "agent.toml"
    config = AgentConfig(server_url="http://x", registration_key=key, uid="u", recorded_users=users)
    save_config(path, config)
    assert load_config(path) == config


def test_a_failed_write_keeps_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "agent.toml"
    save_config(path, AgentConfig(server_url="http://old", uid="u"))

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_private(path, b"server_url = 'http://new'\n")
    monkeypatch.undo()
    assert load_config(path).server_url == "http://old"
    assert list(tmp_path.iterdir()) == [path]


def test_the_uid_is_generated_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('server_url = "http://127.0.0.1:1"\n')
    first = load_config(path, persist_uid=True)
    assert first.uid
    assert load_config(path).uid == first.uid
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('registration_key = "k"', "'server_url' is required"),
        ('server_url = "x"\nbogus = 1', "unknown setting 'bogus'"),
        ('server_url = "x"\nquery_interval = "60"', "'query_interval' must be of type int"),
        ('server_url = "x"\nquery_interval = true', "'query_interval' must be of type int"),
        ('server_url = "x"\njob_timeout = 0', "'job_timeout' must be positive"),
        ('server_url = "x"\npower_backend = "reboot"', "'power_backend' must be one of system, record"),
        ("server_url = ", "configuration file"),
    ],
)
def test_bad_configs_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(AgentConfigError, match=message):
        load_config(path)


def test_a_missing_config_is_named(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_the_hostname_loses_its_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    assert AgentConfig(server_url="x", hostname="pc1.corp.example").effective_hostname == "pc1"
    monkeypatch.setattr("socket.gethostname", lambda: "desk7.example.org")
    assert AgentConfig(server_url="x").effective_hostname == "desk7"


def test_the_endpoint_is_oco_s_path() -> None:
    assert AgentConfig(server_url="https://oco.example/").endpoint == "https://oco.example/api-agent.php"


def test_enroll_writes_a_config_and_keeps_learned_keys(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    enroll(path, "http://127.0.0.1:9", "reg", tmp_path / "state", hostname="pc9", query_interval=5)
    written = load_config(path)
    assert (written.server_url, written.registration_key, written.hostname) == (
        "http://127.0.0.1:9",
        "reg",
        "pc9",
    )
    assert written.query_interval == 5 and written.uid and written.agent_key == ""
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    save_config(path, replace(written, agent_key="a" * 32, server_key="s" * 32))
    enroll(path, "http://127.0.0.1:10", "reg2", tmp_path / "state")
    again = load_config(path)
    assert (again.agent_key, again.server_key, again.uid) == ("a" * 32, "s" * 32, written.uid)
    assert (again.server_url, again.hostname) == ("http://127.0.0.1:10", "pc9")


def test_enroll_refuses_a_bad_value_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    with pytest.raises(AgentConfigError, match="'query_interval' must be positive"):
        enroll(path, "http://127.0.0.1:9", "reg", tmp_path / "state", query_interval=0)
    assert not path.exists()


@pytest.mark.parametrize(
    "content",
    [
        'server_url = "http://127.0.0.1:9"\nagent_key = "a"\nuid = "u"\n]]garbage',
        'server_url = "http://127.0.0.1:9"\nagent_key = "a"\nsetting_of_a_newer_agent = 1\n',
        'agent_key = "learned"\n',
    ],
)
def test_enroll_over_a_config_it_cannot_read_refuses_and_keeps_it(tmp_path: Path, content: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(content)
    with pytest.raises(AgentConfigError, match="not replacing it, because it may hold the keys and uid"):
        enroll(path, "http://127.0.0.1:9", "reg", tmp_path / "state")
    assert path.read_text() == content


def test_enroll_takes_the_settings_that_needed_hand_edits_and_keeps_them_on_re_enrolment(
    tmp_path: Path,
) -> None:
    path = tmp_path / "agent.toml"
    enroll(
        path,
        "http://127.0.0.1:9",
        "reg",
        tmp_path / "state",
        source_address="127.0.0.5",
        power_backend="record",
        recorded_users=["anna"],
        post_action_minute_seconds=0.5,
    )
    written = load_config(path)
    assert (written.source_address, written.power_backend, written.recorded_users) == (
        "127.0.0.5",
        "record",
        ["anna"],
    )
    assert written.post_action_minute_seconds == 0.5

    enroll(path, "http://127.0.0.1:9", "reg", tmp_path / "state", source_address=None, power_backend=None)
    assert load_config(path).source_address == "127.0.0.5" and load_config(path).power_backend == "record"

    with pytest.raises(AgentConfigError, match="'power_backend' must be one of"):
        enroll(path, "http://127.0.0.1:9", "reg", tmp_path / "state", power_backend="reboot-now")
    assert load_config(path).power_backend == "record"
