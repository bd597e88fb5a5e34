"""How the agent trusts an https:// server: fingerprints, pins, CA files (tests/e2e/test_tls_e2e.py runs
them against a real server)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.agent.config import AgentConfig, AgentConfigError, load_config, save_config
from oco.agent.tls import (
    PinnedContext,
    TlsTrust,
    TlsTrustError,
    client_verify,
    enrollment_trust,
    fingerprint_of,
    normalized_fingerprint,
)
from tests.certificates import make_ca

DIGEST = "AB" * 32


def test_a_fingerprint_reads_as_openssl_prints_it() -> None:
    printed = fingerprint_of(b"certificate")
    assert len(printed) == 95 and printed.count(":") == 31 and printed == printed.upper()


@pytest.mark.parametrize(
    "text",
    [
        DIGEST,
        DIGEST.lower(),
        ":".join([DIGEST[i : i + 2] for i in range(0, 64, 2)]),
        f"sha256:{DIGEST}",
        f"SHA256 Fingerprint={DIGEST}",
    ],
)
def test_a_fingerprint_is_accepted_in_the_usual_spellings(text: str) -> None:
    assert normalized_fingerprint(text) == ":".join(["AB"] * 32)


@given(st.text(max_size=120))
def test_anything_else_is_refused_or_normalized_to_64_hex_digits(text: str) -> None:
    try:
        result = normalized_fingerprint(text)
    except TlsTrustError as exc:
        assert "not a SHA-256 certificate fingerprint" in str(exc)
    else:
        assert len(result.replace(":", "")) == 64


def test_a_pin_makes_a_context_that_trusts_no_ca_and_no_host_name() -> None:
    context = client_verify("", DIGEST, True)
    assert isinstance(context, PinnedContext)
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname
    assert context.pinned == normalized_fingerprint(DIGEST)


def test_a_ca_file_makes_a_verifying_context(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    context = client_verify(str(ca.cert_file), "", True)
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert client_verify("", "", False) is False


def test_plain_http_needs_no_trust_and_refuses_tls_options(tmp_path: Path) -> None:
    assert enrollment_trust("http://127.0.0.1:8000") == TlsTrust()
    with pytest.raises(TlsTrustError, match="https://"):
        enrollment_trust("http://127.0.0.1:8000", fingerprint=DIGEST)


def test_a_given_fingerprint_or_ca_file_is_taken_without_a_connection(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    assert enrollment_trust("https://127.0.0.1:9", fingerprint=DIGEST.lower()).fingerprint == ":".join(
        ["AB"] * 32
    )
    assert enrollment_trust("https://127.0.0.1:9", ca_file=str(ca.cert_file)).ca_file == str(ca.cert_file)


def test_trust_on_first_use_needs_the_server(tmp_path: Path) -> None:
    with pytest.raises(TlsTrustError, match="cannot reach"):
        enrollment_trust("https://127.0.0.1:9")


def test_the_configuration_refuses_a_bad_pin_or_a_missing_ca_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    save_config(path, AgentConfig(server_url="https://x", tls_fingerprint="12:34"))
    with pytest.raises(AgentConfigError, match="'tls_fingerprint'"):
        load_config(path)
    save_config(path, AgentConfig(server_url="https://x", tls_ca_file=str(tmp_path / "missing.pem")))
    with pytest.raises(AgentConfigError, match="'tls_ca_file'"):
        load_config(path)
