"""Lists of the console and the API: which page, how big, sorted by what (the rules, not the queries).

A list is asked for with a page number, a page size and a sort key such as "hostname" or "-last_seen"
(descending). Each list names the keys it can sort by; anything else is refused with the choices, so a
bookmarked or shared address either shows what it says or says why not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from oco.domain.errors import InvalidChoice

PAGE_SIZES = (25, 50, 100, 200)
"""The page sizes offered; any size from 1 to MAX_PAGE_SIZE is accepted."""
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
DESCENDING = "-"


@dataclass(frozen=True, slots=True)
class Sort:
    """A sort key of a list and its direction."""

    key: str
    descending: bool = False

    @property
    def text(self) -> str:
        """How the sort is written in an address ("-last_seen")."""
        return f"{DESCENDING if self.descending else ''}{self.key}"

    def toggled(self, key: str) -> Sort:
        """The sort a click on the column `key` asks for: that column, reversed if it is this one."""
        return Sort(key, not self.descending) if key == self.key else Sort(key)


def parse_sort(text: str | None, keys: Sequence[str], default: str) -> Sort:
    """The sort written `text` ("hostname", "-last_seen"), one of `keys`; empty gives `default`.

    Raises InvalidChoice (field "sort") naming the keys.
    """
    written = (text or "").strip() or default
    descending = written.startswith(DESCENDING)
    key = written.removeprefix(DESCENDING)
    if key not in keys:
        raise InvalidChoice(
            f"sort {written!r} must be one of {', '.join(keys)} (a '-' in front reverses it)", field="sort"
        )
    return Sort(key, descending)


def page_size(value: int | None) -> int:
    """The page size asked for, kept within 1..MAX_PAGE_SIZE; none gives DEFAULT_PAGE_SIZE."""
    if value is None:
        return DEFAULT_PAGE_SIZE
    return max(1, min(value, MAX_PAGE_SIZE))


@dataclass(frozen=True, slots=True)
class PageWindow:
    """Which rows of `total` a page shows: rows [offset, offset + size) of page `number` of `pages`."""

    number: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        """How many pages there are (at least one, even for no rows)."""
        return max(1, -(-self.total // self.size))

    @property
    def offset(self) -> int:
        """The index of the page's first row."""
        return (self.number - 1) * self.size

    @property
    def first(self) -> int:
        """The 1-based number of the page's first row (0 for no rows)."""
        return min(self.offset + 1, self.total)

    @property
    def last(self) -> int:
        """The 1-based number of the page's last row."""
        return min(self.offset + self.size, self.total)


def page_window(number: int | None, size: int | None, total: int) -> PageWindow:
    """The page `number` (1-based, kept within the pages there are) of `total` rows in pages of `size`."""
    rows = page_size(size)
    pages = max(1, -(-total // rows))
    return PageWindow(number=max(1, min(number or 1, pages)), size=rows, total=total)
