"""Success return codes: a comma-separated list of integers; empty means any code succeeds."""

from __future__ import annotations

import re
from collections.abc import Set

from oco.domain.errors import InvalidReturnCodes

SEPARATOR = ","
FIELD = "success_codes"
_INTEGER = re.compile(r"[+-]?[0-9]+")


def parse_codes(text: str | None) -> frozenset[int]:
    """Parse "0, 3010" into {0, 3010}; None or "" gives the empty set (any code succeeds).

    Whitespace and empty items are ignored; an item that is not a plain decimal integer raises
    InvalidReturnCodes (field "success_codes") naming it.
    """
    codes: set[int] = set()
    for item in (text or "").split(SEPARATOR):
        entry = item.strip()
        if not entry:
            continue
        if not _INTEGER.fullmatch(entry):
            raise InvalidReturnCodes(f"return code {entry!r} in {text!r} is not an integer", field=FIELD)
        codes.add(int(entry))
    return frozenset(codes)


def format_codes(codes: Set[int]) -> str:
    """The stored text of a code set: ascending, comma-separated, no spaces ("" for any code)."""
    return SEPARATOR.join(str(code) for code in sorted(codes))


def normalize_codes(text: str | None) -> str:
    """The canonical text of a code list ("3010, 0" gives "0,3010"); raises like `parse_codes`."""
    return format_codes(parse_codes(text))


def is_success(codes: Set[int], return_code: int | None) -> bool:
    """A return code succeeds when it is listed, or when the list is empty (then even a missing one)."""
    if not codes:
        return True
    return return_code is not None and return_code in codes
