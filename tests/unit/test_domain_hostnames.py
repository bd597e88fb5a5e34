"""Hostnames: stored without their domain part, compared without regard to case."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.domain.errors import InvalidHostname
from oco.domain.hostnames import HOSTNAME_MAX, hostname_key, normalize_hostname

# DNS names are ASCII (internationalized ones travel as punycode); NetBIOS names too.
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


@pytest.mark.parametrize(
    ("given_name", "stored"),
    [
        ("pc01", "pc01"),
        (" PC01.example.org ", "PC01"),
        ("pc01.", "pc01"),
        ("x" * HOSTNAME_MAX, "x" * HOSTNAME_MAX),
    ],
)
def test_the_domain_part_and_surrounding_blanks_are_dropped(given_name: str, stored: str) -> None:
    assert normalize_hostname(given_name) == stored


@given(HOSTNAMES)
def test_normalizing_twice_changes_nothing(hostname: str) -> None:
    assert normalize_hostname(normalize_hostname(hostname)) == normalize_hostname(hostname)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("", "hostname must not be empty"),
        ("  ", "hostname must not be empty"),
        (".example.org", "hostname must not be empty"),
        ("pc 01", "hostname 'pc 01' is not valid"),
        ("pc\t01", "is not valid"),
        ("x" * (HOSTNAME_MAX + 1), "is not valid"),
    ],
)
def test_what_is_no_hostname_is_refused(bad: str, message: str) -> None:
    with pytest.raises(InvalidHostname, match=message) as raised:
        normalize_hostname(bad)
    assert raised.value.field == "hostname"
