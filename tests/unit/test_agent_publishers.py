"""The agent's trusted publishers: configuration, enrolment, `oco agent publisher …`, and what a job from
the wire must carry before anything of it is downloaded."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from oco.agent.cli import agent_app
from oco.agent.config import (
    AgentConfig,
    AgentConfigError,
    change_publishers,
    enroll,
    load_config,
    save_config,
)
from oco.agent.jobs import JobOrder, admit
from oco.agent.trust import JobRefused
from oco.domain.dispatch import PayloadDigest
from oco.domain.signing import SignedFields, SigningKey, TrustPolicy, trust_policy, wire_signature
from oco.domain.states import PostAction

OLD = SigningKey(Ed25519PrivateKey.generate())
NEW = SigningKey(Ed25519PrivateKey.generate())
SHA = hashlib.sha256(b"zip").hexdigest()


# Configuration -------------------------------------------------------------------------------------


def test_publishers_round_trip_through_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    config = AgentConfig(
        server_url="http://127.0.0.1:1",
        uid="u",
        trusted_publishers=[OLD.public.text, NEW.public.text],
        revoked_publishers=[OLD.public.key_id],
    )
    save_config(path, config)
    loaded = load_config(path)
    assert loaded == config
    assert loaded.trust == trust_policy([OLD.public.text, NEW.public.text], [OLD.public.key_id])
    assert AgentConfig(server_url="http://x").trust == TrustPolicy()  # off unless configured


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('trusted_publishers = ["ssh-ed25519 AAAA"]', "setting 'trusted_publishers': public key"),
        ('revoked_publishers = ["xyz"]', "setting 'revoked_publishers': key id 'xyz'"),
        ("trusted_publishers = [1]", "'trusted_publishers' must be a list of texts"),
        ('trusted_publishers = "ed25519:x"', "'trusted_publishers' must be of type list"),
    ],
)
def test_a_bad_publisher_setting_is_refused_with_its_name(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(f'server_url = "http://127.0.0.1:1"\nuid = "u"\n{line}\n')
    with pytest.raises(AgentConfigError, match=message):
        load_config(path)


def test_enrolling_pins_publishers_and_enrolling_again_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    enroll(path, "http://127.0.0.1:1", "reg", tmp_path / "state", trusted_publishers=[f" {OLD.public.text} "])
    assert load_config(path).trusted_publishers == [OLD.public.text]

    enroll(path, "http://127.0.0.1:2", "reg", tmp_path / "state")  # no pins given: the old ones stay

    assert load_config(path).trusted_publishers == [OLD.public.text]
    with pytest.raises(AgentConfigError, match="trusted_publishers"):
        enroll(path, "http://127.0.0.1:2", "reg", tmp_path / "state", trusted_publishers=["nope"])
    assert load_config(path).server_url == "http://127.0.0.1:2"  # the refused enrolment wrote nothing


def test_trust_and_revoke_add_once_and_keep_everything_else(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    save_config(path, AgentConfig(server_url="http://127.0.0.1:1", uid="u", agent_key="k" * 40))
    change_publishers(path, trust=OLD.public.text)
    change_publishers(path, trust=NEW.public.text)
    change_publishers(path, trust=NEW.public.text)
    change_publishers(path, revoke=OLD.public.key_id.upper())
    config = change_publishers(path, revoke=OLD.public.text)

    assert config.trusted_publishers == [OLD.public.text, NEW.public.text]
    assert config.revoked_publishers == [OLD.public.key_id]
    assert load_config(path) == config and config.agent_key == "k" * 40
    with pytest.raises(AgentConfigError, match="revoked_publishers"):
        change_publishers(path, revoke="not-an-id")


def test_the_publisher_commands(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    save_config(path, AgentConfig(server_url="http://127.0.0.1:1", uid="u"))
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(agent_app, ["publisher", *args, "--config", str(path)])

    assert "no trusted publishers" in run("list").output
    assert f"trusted  {OLD.public.key_id}  {OLD.public.text}" in run("trust", OLD.public.text).output
    listed = run("revoke", OLD.public.key_id).output
    assert f"revoked  {OLD.public.key_id}  {OLD.public.text}" in listed and "next start" in listed
    refused = run("trust", "ed25519:broken")
    assert refused.exit_code == 2 and refused.output.startswith("error: setting 'trusted_publishers'")


def test_enroll_takes_repeated_publisher_options(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    args = ["enroll", "--config", str(path), "--server", "http://127.0.0.1:1", "--registration-key", "r"]
    args += ["--state-dir", str(tmp_path / "state")]
    args += ["--trusted-publisher", OLD.public.text, "--trusted-publisher", NEW.public.text]
    result = CliRunner().invoke(agent_app, [*args, "--revoked-publisher", OLD.public.key_id])
    assert result.exit_code == 0, result.output
    config = load_config(path)
    assert config.trusted_publishers == [OLD.public.text, NEW.public.text]
    assert config.revoked_publishers == [OLD.public.key_id]


# Jobs from the wire --------------------------------------------------------------------------------


def wire_job(**extra: Any) -> dict[str, Any]:
    return {
        "id": 1,
        "container-id": 2,
        "package-id": 3,
        "download": True,
        "procedure": "./install.sh",
        "sequence-mode": 0,
        "restart": None,
        "shutdown": None,
        "exit": None,
        **extra,
    }


FIELDS = SignedFields("1", "./install.sh", "0", PostAction.NONE, "", "0", PostAction.NONE, SHA)


def signed(key: SigningKey = OLD) -> dict[str, Any]:
    signature = key.sign(FIELDS)
    return wire_signature(signature.key_id, signature.signature, FIELDS)


def test_a_job_of_our_server_carries_its_action_payload_and_signature() -> None:
    order = JobOrder.from_wire(
        wire_job(
            action="install", **{"payload-sha256": SHA, "payload-size": 9, "package-signature": signed()}
        )
    )
    assert (order.action, order.payload) == ("install", PayloadDigest(SHA, 9))
    admit(trust_policy([OLD.public.text]), order)  # nothing to refuse


def test_a_job_as_oco_s_server_sends_it_parses_but_its_download_is_refused() -> None:
    order = JobOrder.from_wire(wire_job())
    assert (order.action, order.payload, order.signature) == (None, None, None)
    with pytest.raises(JobRefused, match="names no payload SHA-256"):
        admit(TrustPolicy(), order)
    admit(TrustPolicy(), JobOrder.from_wire(wire_job(download=False)))  # no payload: runs as before


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({}, "the package is not signed"),
        ({"package-signature": "junk"}, "malformed signature"),
        ({"package-signature": signed(NEW)}, "does not trust"),
        ({"package-signature": signed(), "procedure": "rm -rf ~"}, "not the signed install procedure"),
        ({"package-signature": signed(), "shutdown": None, "exit": 0}, "post-action (exit)"),
    ],
)
def test_a_pinning_agent_refuses_before_downloading(extra: dict[str, Any], reason: str) -> None:
    payload = {"payload-sha256": SHA, "payload-size": 9}
    order = JobOrder.from_wire(wire_job(action="install", **payload, **extra))
    with pytest.raises(JobRefused, match=f"^package signature invalid: .*{re.escape(reason)}"):
        admit(trust_policy([OLD.public.text]), order)
