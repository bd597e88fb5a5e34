"""Signatures of the agent protocol: HMAC-SHA256 of the exact body, compared in constant time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from oco.domain.protocol import AgentMethod, sign, signature_matches

# RFC 4231, test case 2
RFC_KEY, RFC_BODY = "Jefe", b"what do ya want for nothing?"
RFC_MAC = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_sign_is_lowercase_hex_hmac_sha256() -> None:
    assert sign(RFC_KEY, RFC_BODY) == RFC_MAC


def test_a_signature_matches_in_any_case_and_with_blanks_around() -> None:
    assert signature_matches(RFC_KEY, RFC_BODY, RFC_MAC)
    assert signature_matches(RFC_KEY, RFC_BODY, f" {RFC_MAC.upper()}\n")


def test_missing_keys_and_signatures_never_match() -> None:
    assert not signature_matches("", RFC_BODY, sign("", RFC_BODY))
    assert not signature_matches(RFC_KEY, RFC_BODY, None)
    assert not signature_matches(RFC_KEY, RFC_BODY, "")


def test_another_body_or_key_does_not_match() -> None:
    assert not signature_matches(RFC_KEY, RFC_BODY + b" ", RFC_MAC)
    assert not signature_matches("jefe", RFC_BODY, RFC_MAC)


def test_method_names_are_ocos() -> None:
    assert [str(m) for m in AgentMethod] == [
        "oco.agent.hello",
        "oco.agent.update",
        "oco.agent.update_job_state",
        "oco.agent.download",
    ]


@given(key=st.text(min_size=1, max_size=40), body=st.binary(max_size=200), other=st.binary(max_size=200))
def test_a_body_matches_its_own_signature_only(key: str, body: bytes, other: bytes) -> None:
    assert signature_matches(key, body, sign(key, body))
    assert signature_matches(key, other, sign(key, body)) is (other == body)
