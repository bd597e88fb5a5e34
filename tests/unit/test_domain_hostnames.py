"""Hostnames: stored without their domain part, compared after NFKC without regard to case; nothing
invisible or reordering in them."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.domain.errors import InvalidHostname
from oco.domain.hostnames import (
    FORBIDDEN_CATEGORIES,
    HOSTNAME_MAX,
    forbidden_character,
    hostname_key,
    normalize_hostname,
)

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


# Look-alikes: invisible and reordering characters refused, compatibility forms matched -------------

INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u200f"]
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]
CONTROL = ["\x00", "\x01", "\x1b", "\x7f", "\x85", "\ud800", "\ue000", "\u2028"]


@pytest.mark.parametrize("char", INVISIBLE + BIDI + CONTROL)
@pytest.mark.parametrize("where", ["end", "middle", "start"])
def test_invisible_bidirectional_and_control_characters_are_refused(char: str, where: str) -> None:
    name = {"end": f"pc01{char}", "middle": f"pc{char}01", "start": f"{char}pc01"}[where]
    if char.isspace() and where != "middle":  # a blank around the name is dropped, as always
        assert normalize_hostname(name) == "pc01"
        return
    with pytest.raises(InvalidHostname, match=f"it holds U\\+{ord(char):04X}"):
        normalize_hostname(name)


def test_full_width_and_other_compatibility_forms_are_the_plain_name() -> None:
    assert normalize_hostname("\uff50\uff43\uff10\uff11") == "pc01"
    assert normalize_hostname("\uff30\uff23\uff10\uff11\uff0eexample\uff0eorg") == "PC01"
    assert hostname_key("\uff50\uff43\uff10\uff11") == hostname_key("PC01") == "pc01"
    assert hostname_key("pc\u2460") == hostname_key("pc1")  # circled digit one
    assert hostname_key("\ufb01le") == hostname_key("FILE")  # ligature


@given(st.text(max_size=20))
def test_a_key_is_normalized_and_case_folded_and_its_own_key(name: str) -> None:
    key = hostname_key(name)
    assert unicodedata.normalize("NFKC", key) == key
    assert hostname_key(key) == key
    assert hostname_key(unicodedata.normalize("NFKC", name)) == key
    assert hostname_key(name.upper()) == hostname_key(name.upper().lower())


@given(st.text(max_size=20))
def test_a_stored_name_holds_nothing_invisible_and_stores_as_itself(name: str) -> None:
    try:
        stored = normalize_hostname(name)
    except InvalidHostname:
        return
    assert forbidden_character(stored) is None
    assert all(unicodedata.category(c) not in FORBIDDEN_CATEGORIES for c in stored)
    assert unicodedata.normalize("NFKC", stored) == stored
    assert normalize_hostname(stored) == stored


@given(HOSTNAMES, st.sampled_from(INVISIBLE + BIDI + CONTROL), st.integers(min_value=0, max_value=30))
def test_no_invisible_character_makes_a_new_name(name: str, char: str, position: int) -> None:
    index = min(position, len(name))
    if char.isspace() and index in (0, len(name)):  # a blank around the name is dropped: put it inside
        name, index = name + "x", 1
    with pytest.raises(InvalidHostname):
        normalize_hostname(name[:index] + char + name[index:])


@given(HOSTNAMES)
def test_the_full_width_form_of_an_ascii_name_is_that_name(name: str) -> None:
    wide = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in name)
    assert hostname_key(normalize_hostname(wide)) == hostname_key(normalize_hostname(name))
