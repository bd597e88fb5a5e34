"""Software versions: a total order in the spirit of dpkg, its byte-sortable key, and "< 120" conditions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.domain.errors import InvalidVersionCondition
from oco.domain.versions import (
    VersionCondition,
    compare_versions,
    parse_version_condition,
    version_key,
)

VERSIONS = st.text(alphabet="0123456789.abcRC~-+:_ ", max_size=20)
NUMBERS = st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=6)


@given(VERSIONS)
def test_a_version_equals_itself(version: str) -> None:
    assert compare_versions(version, version) == 0


@given(VERSIONS, VERSIONS)
def test_the_order_is_antisymmetric(left: str, right: str) -> None:
    assert compare_versions(left, right) == -compare_versions(right, left)


@given(VERSIONS, VERSIONS, VERSIONS)
def test_the_order_is_transitive(a: str, b: str, c: str) -> None:
    first, second, third = sorted([a, b, c], key=version_key)
    assert compare_versions(first, second) <= 0
    assert compare_versions(second, third) <= 0
    assert compare_versions(first, third) <= 0


@given(NUMBERS, NUMBERS)
def test_dotted_numbers_compare_as_tuples_of_integers(left: list[int], right: list[int]) -> None:
    expected = (left > right) - (left < right)
    assert compare_versions(".".join(map(str, left)), ".".join(map(str, right))) == expected


@given(NUMBERS)
def test_leading_zeros_and_separators_do_not_matter(numbers: list[int]) -> None:
    dotted = ".".join(map(str, numbers))
    assert compare_versions(dotted, "-".join(f"00{n}" for n in numbers)) == 0


@given(NUMBERS, st.sampled_from(["~b1", "~rc2", "~"]))
def test_a_pre_release_comes_before_its_release(numbers: list[int], suffix: str) -> None:
    release = ".".join(map(str, numbers))
    assert compare_versions(release + suffix, release) == -1


@given(VERSIONS)
def test_case_does_not_matter(version: str) -> None:
    assert compare_versions(version.upper(), version.lower()) == 0


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("119.0.1", "120"),
        ("9", "10"),
        ("120", "120.0"),
        ("120.0", "120.0.1"),
        ("1.0", "1.0a"),
        ("1.0a", "1.0b"),
        ("1.0b", "1.0rc1"),
        ("1.0~rc1", "1.0"),
        ("2.30-1ubuntu1", "2.30-2"),
        ("9:1.0", "10:0.1"),
        ("99.9", "1:0.1"),
        ("", "0"),
    ],
)
def test_known_pairs(older: str, newer: str) -> None:
    assert compare_versions(older, newer) == -1
    assert compare_versions(newer, older) == 1


def test_the_key_is_ascii_so_any_binary_collation_sorts_it() -> None:
    assert version_key("Ünïcode 1.2 ß").isascii()


@pytest.mark.parametrize(
    ("text", "condition"),
    [
        ("< 120", VersionCondition("<", "120")),
        ("<=1.2.3", VersionCondition("<=", "1.2.3")),
        ("== 2", VersionCondition("=", "2")),
        ("2.0", VersionCondition("=", "2.0")),
        ("  != 1:2.3-4 ", VersionCondition("!=", "1:2.3-4")),
        (">120.0b1", VersionCondition(">", "120.0b1")),
    ],
)
def test_conditions_are_read(text: str, condition: VersionCondition) -> None:
    assert parse_version_condition(text) == condition


@pytest.mark.parametrize("text", ["", "  ", "<", "<< 3", "=> 2", "<" + "9" * 300])
def test_bad_conditions_name_the_text(text: str) -> None:
    with pytest.raises(InvalidVersionCondition, match="version condition") as raised:
        parse_version_condition(text, field="software_version")
    assert raised.value.field == "software_version"


@given(VERSIONS.filter(str.strip), st.sampled_from(["<", "<=", "=", "!=", ">=", ">"]), VERSIONS)
def test_a_condition_agrees_with_the_comparison(reference: str, symbol: str, version: str) -> None:
    condition = parse_version_condition(f"{symbol} {reference}")
    order = compare_versions(version, condition.version)
    expected = {
        "<": order < 0,
        "<=": order <= 0,
        "=": order == 0,
        "!=": order != 0,
        ">=": order >= 0,
        ">": order > 0,
    }
    assert condition.matches(version) is expected[symbol]


def test_firefox_older_than_120() -> None:
    condition = parse_version_condition("< 120")
    assert [v for v in ["115.5.0esr", "119.0.1", "120.0", "121.0~b3", "120"] if condition.matches(v)] == [
        "115.5.0esr",
        "119.0.1",
    ]
