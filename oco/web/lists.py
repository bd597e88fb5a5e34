"""What every list page of the console shares: its address keeps the state (search, filters, sort, page,
page size), so a view can be bookmarked and shared; CSV downloads of what a list matches."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.datastructures import FormData

from oco.domain.listing import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PAGE_SIZES, Sort, parse_sort
from oco.domain.states import Vocabulary
from oco.errors import InvalidInput
from oco.services.listing import PageRequest

PAGE, SIZE, SORT, FORMAT, CSV = "page", "size", "sort", "format", "csv"
ALL_MATCHING = "all_matching"


@dataclass(frozen=True, slots=True)
class ListState:
    """The list's state as the address holds it, and links that change one part of it."""

    path: str
    params: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, request: Request) -> ListState:
        """The state of the list the request asks for."""
        return cls(request.url.path, tuple(request.query_params.multi_items()))

    def get(self, name: str, default: str = "") -> str:
        """The value of one parameter (the first, if repeated)."""
        return next((value for key, value in self.params if key == name), default)

    def integer(self, name: str) -> int | None:
        """A whole-number parameter, or None when absent; InvalidInput when it is not a number."""
        text = self.get(name).strip()
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            raise InvalidInput(f"{name} {text!r} is not a whole number", field=name) from None

    def page_request(self) -> PageRequest:
        """Which page, how big, sorted how."""
        return PageRequest(
            page=self.integer(PAGE) or 1,
            page_size=self.integer(SIZE) or DEFAULT_PAGE_SIZE,
            sort=self.get(SORT),
        )

    def url(self, **changes: object) -> str:
        """This list's address with some parameters changed (None removes one). Changing anything but
        the page shows the first page again."""
        kept = [(k, v) for k, v in self.params if k not in changes and k != FORMAT]
        if PAGE not in changes:
            kept = [(k, v) for k, v in kept if k != PAGE]
        added = [(k, str(v)) for k, v in changes.items() if v is not None and v != ""]
        query = urlencode(kept + added)
        return f"{self.path}?{query}" if query else self.path

    def sort_url(self, key: str, keys: Sequence[str], default: str) -> str:
        """The address that sorts by the column `key` (reversed when it is the sort already)."""
        return self.url(sort=self.sort(keys, default).toggled(key).text)

    def sort(self, keys: Sequence[str], default: str) -> Sort:
        """The sort in effect."""
        return parse_sort(self.get(SORT), keys, default)

    def hidden(self, *excluded: str) -> list[tuple[str, str]]:
        """The parameters to carry in a form (a filter form, an action on all that match)."""
        return [(k, v) for k, v in self.params if k not in {*excluded, PAGE, FORMAT}]

    @property
    def wants_csv(self) -> bool:
        """The address asks for a CSV download."""
        return self.get(FORMAT) == CSV

    @property
    def csv_url(self) -> str:
        """The address of a CSV download of everything the list matches."""
        return self.url(**{FORMAT: CSV})


LIST_CONTEXT = {"PAGE_SIZES": PAGE_SIZES, "MAX_PAGE_SIZE": MAX_PAGE_SIZE}


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> StreamingResponse:
    """A CSV download, written row by row."""

    def lines() -> Iterable[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for row in (header, *rows):
            writer.writerow([_cell(value) for value in row])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, Vocabulary):
        return value.text
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def form_state(form: FormData, path: str) -> ListState:
    """The list state a form carried along (an action on all that match a filter)."""
    return ListState(path, tuple((k, v) for k, v in form.multi_items() if isinstance(v, str)))


Cell = Callable[[Any], object]
