"""Success return codes: parsing the comma list, its stored form, and which codes succeed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.domain.errors import InvalidReturnCodes
from oco.domain.returncodes import format_codes, is_success, normalize_codes, parse_codes

codes_strategy = st.frozensets(st.integers(-(2**31), 2**32), max_size=8)


def test_a_comma_list_becomes_a_set() -> None:
    assert parse_codes("0,3010") == {0, 3010}
    assert parse_codes(" 0 , 3010 ,, 0, ") == {0, 3010}
    assert parse_codes("-1,+2") == {-1, 2}


def test_an_empty_list_means_any_code() -> None:
    assert parse_codes("") == frozenset() and parse_codes(None) == frozenset() and parse_codes(" , ") == set()
    assert is_success(frozenset(), 123) and is_success(frozenset(), None)


@pytest.mark.parametrize("bad", ["x", "1.0", "0x10", "3_010", "\u0661", "1 2", "--1", "1e3"])
def test_an_item_that_is_not_an_integer_is_named(bad: str) -> None:
    with pytest.raises(InvalidReturnCodes) as raised:
        parse_codes(f"0,{bad}")
    assert str(raised.value) == f"return code {bad!r} in {'0,' + bad!r} is not an integer"
    assert raised.value.field == "success_codes"


def test_the_message_names_the_bad_item_and_the_list() -> None:
    with pytest.raises(InvalidReturnCodes, match="return code 'x' in '0,x' is not an integer"):
        parse_codes("0,x")


def test_listed_codes_succeed_others_fail() -> None:
    assert is_success(frozenset({0, 3010}), 3010)
    assert not is_success(frozenset({0, 3010}), 1603)
    assert not is_success(frozenset({0}), None)


def test_the_stored_text_is_sorted_and_compact() -> None:
    assert format_codes(frozenset({3010, 0, -1})) == "-1,0,3010"
    assert format_codes(frozenset()) == ""
    assert normalize_codes(" 3010, 0,0 ") == "0,3010"


@given(codes_strategy)
def test_codes_round_trip_through_their_text(codes: frozenset[int]) -> None:
    assert parse_codes(format_codes(codes)) == codes
    assert normalize_codes(format_codes(codes)) == format_codes(codes)


@given(codes=codes_strategy, code=st.one_of(st.none(), st.integers(-10_000, 10_000)))
def test_success_is_membership_or_an_empty_list(codes: frozenset[int], code: int | None) -> None:
    assert is_success(codes, code) is (not codes or code in codes)
