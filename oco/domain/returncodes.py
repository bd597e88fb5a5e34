"""Success return codes: a comma-separated list of integers; empty means any code succeeds."""

from __future__ import annotations

from oco.domain.errors import InvalidReturnCodes


def parse_codes(text: str | None) -> frozenset[int]:
    """Parse "0, 3010" into {0, 3010}; "" gives the empty set (any code succeeds)."""
    codes: set[int] = set()
    for item in (text or "").split(","):
        entry = item.strip()
        if not entry:
            continue
        try:
            codes.add(int(entry))
        except ValueError:
            raise InvalidReturnCodes(
                f"return code {entry!r} in {text!r} is not an integer", field="success_codes"
            ) from None
    return frozenset(codes)


def format_codes(codes: frozenset[int]) -> str:
    """The stored text of a code set: ascending, comma-separated, no spaces."""
    return ",".join(str(code) for code in sorted(codes))


def is_success(codes: frozenset[int], return_code: int | None) -> bool:
    """A return code succeeds when it is listed, or when the list is empty."""
    if not codes:
        return True
    return return_code is not None and return_code in codes
