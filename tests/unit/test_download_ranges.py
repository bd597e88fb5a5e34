"""HTTP byte ranges for resumable payload downloads."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oco.api.download import byte_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=990-5000", (990, 999)),
        ("bytes=-5000", (0, 999)),
        ("items=0-1", None),
        ("bytes=0-1,5-6", None),
    ],
)
def test_ranges(header: str | None, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=500-100", "bytes=-0"])
def test_unsatisfiable_ranges_raise(header: str) -> None:
    with pytest.raises(ValueError):
        byte_range(header, 1000)


@given(size=st.integers(1, 10_000), start=st.integers(0, 20_000), length=st.integers(1, 20_000))
def test_a_satisfiable_range_stays_inside_the_payload(size: int, start: int, length: int) -> None:
    header = f"bytes={start}-{start + length - 1}"
    if start >= size:
        with pytest.raises(ValueError):
            byte_range(header, size)
        return
    first, last = byte_range(header, size) or (0, size - 1)
    assert first == start
    assert first <= last <= size - 1
    assert last == min(start + length - 1, size - 1)
