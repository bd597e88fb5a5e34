"""Pages and sorting of lists: every row on exactly one page, sort keys as a list declares them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.domain.errors import InvalidChoice
from oco.domain.listing import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Sort, page_size, page_window, parse_sort

KEYS = ("hostname", "os", "last_seen")


def test_a_sort_is_a_key_with_an_optional_minus() -> None:
    assert parse_sort("hostname", KEYS, "hostname") == Sort("hostname")
    assert parse_sort("-last_seen", KEYS, "hostname") == Sort("last_seen", descending=True)
    assert parse_sort("", KEYS, "-last_seen") == Sort("last_seen", descending=True)
    assert parse_sort(None, KEYS, "os").text == "os"


def test_an_unknown_sort_names_the_keys() -> None:
    with pytest.raises(InvalidChoice, match="sort 'cpu' must be one of hostname, os, last_seen") as raised:
        parse_sort("cpu", KEYS, "hostname")
    assert raised.value.field == "sort"


def test_clicking_a_column_sorts_by_it_then_reverses() -> None:
    assert Sort("hostname").toggled("os") == Sort("os")
    assert Sort("os").toggled("os") == Sort("os", descending=True)
    assert Sort("os", descending=True).toggled("os") == Sort("os")


def test_page_sizes_stay_within_bounds() -> None:
    assert page_size(None) == DEFAULT_PAGE_SIZE
    assert (page_size(0), page_size(-5), page_size(10**9)) == (1, 1, MAX_PAGE_SIZE)


def test_a_page_past_the_end_shows_the_last_one_and_no_rows_is_one_empty_page() -> None:
    assert page_window(9, 50, 120).number == 3
    empty = page_window(4, 50, 0)
    assert (empty.number, empty.pages, empty.first, empty.last) == (1, 1, 0, 0)


@given(total=st.integers(0, 10_000), size=st.integers(1, 600), number=st.integers(-5, 500))
def test_every_row_is_on_exactly_one_page(total: int, size: int, number: int) -> None:
    window = page_window(number, size, total)
    assert 1 <= window.number <= window.pages
    pages = [page_window(n, size, total) for n in range(1, window.pages + 1)]
    covered = [row for page in pages for row in range(page.offset, page.offset + (page.last - page.offset))]
    assert covered == list(range(total))
    assert window.last - window.offset <= window.size
