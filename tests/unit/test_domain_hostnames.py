"""Hostnames compare without regard to case."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from oco.domain.hostnames import hostname_key

# DNS names are ASCII (internationalised ones travel as punycode); NetBIOS names too.
HOSTNAMES = st.text(
    alphabet=st.characters(categories=["L", "N"], max_codepoint=127, include_characters="-_"), min_size=1
)


@given(HOSTNAMES)
def test_case_does_not_matter(hostname: str) -> None:
    assert hostname_key(hostname.upper()) == hostname_key(hostname.lower()) == hostname_key(hostname)


@given(HOSTNAMES)
def test_a_key_is_its_own_key(hostname: str) -> None:
    assert hostname_key(hostname_key(hostname)) == hostname_key(hostname)


def test_different_names_keep_different_keys() -> None:
    assert hostname_key("PC-01") == "pc-01"
    assert hostname_key("pc-01") != hostname_key("pc-010")
    assert hostname_key("STRASSE") == hostname_key("Straße")  # casefold, not lower
