"""Paged, sorted lists on the database: the queries behind every list of the console and the API.

A list use case builds a filtered SELECT, and `fetch_page` counts what matches, sorts it by a key the
list declares (`oco.domain.listing`), and reads only the page asked for. Rows with no value sort last in
either direction, the same on every database, and the id breaks ties, so pages never overlap.
`export_batches` reads everything a list matches for a download, a batch at a time, after the last key
it read (no offsets, never the whole list in memory).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, false, func, literal_column, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from oco.domain.listing import DEFAULT_PAGE_SIZE, PageWindow, Sort, page_window, parse_sort
from oco.services.runtime import Runtime
from oco.services.views import PagePublic

AnySelect = Select[*tuple[Any, ...]]
"""A SELECT of any columns or entities."""
Column = ColumnElement[Any] | InstrumentedAttribute[Any]
"""A column to sort or search by: a mapped attribute or any SQL expression."""
T = TypeVar("T")
Row = TypeVar("Row")
LIKE_ESCAPE = "\\"


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Which page of a list, how big, sorted how ("-last_seen": descending)."""

    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    sort: str = ""


@dataclass(frozen=True, slots=True)
class Fetched(Generic[Row]):
    """The rows of one page, with the page's place and the sort applied."""

    rows: list[Row]
    window: PageWindow
    sort: Sort

    def page(self, items: list[T]) -> PagePublic[T]:
        """The read model of this page, its rows turned into `items`."""
        return PagePublic[T](
            items=items,
            total=self.window.total,
            page=self.window.number,
            pages=self.window.pages,
            page_size=self.window.size,
            sort=self.sort.text,
        )


def fetch_page(
    session: Session,
    query: AnySelect,
    order: Mapping[str, Column],
    tiebreak: Column,
    request: PageRequest,
    default_sort: str,
    counted: AnySelect | None = None,
    total: int | None = None,
) -> Fetched[Any]:
    """Count the rows of `query`, then read the page `request` asks for, sorted by one of `order`'s keys.

    `query` selects the rows (entities or columns); `order` names the columns a list can be sorted by;
    `counted`, when given, selects as many rows as `query` without the joins that only add columns (a
    million jobs are counted from an index, not joined to their computers to be counted); `total`, when
    the caller counted them already.
    Raises InvalidChoice for a sort key the list does not have.
    """
    sort = parse_sort(request.sort, list(order), default_sort)
    if total is None:
        total = count(session, query if counted is None else counted)
    window = page_window(request.page, request.page_size, total)
    column = order[sort.key]
    direction = column.desc() if sort.descending else column.asc()
    last = tiebreak.desc() if sort.descending else tiebreak
    # Rows without a value last, either way (databases differ); not for columns that always have one,
    # so that their index can give the order.
    ordered = (
        query.order_by(column.is_(None), direction, last)
        if _nullable(column)
        else query.order_by(direction, last)
    )
    rows = list(session.execute(ordered.offset(window.offset).limit(window.size)))
    return Fetched(rows=rows, window=window, sort=sort)


def count(session: Session, query: AnySelect) -> int:
    """How many rows `query` selects."""
    return session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0


def _nullable(column: Column) -> bool:
    expression = column.expression if isinstance(column, InstrumentedAttribute) else column
    return bool(getattr(expression, "nullable", True))


def contains(column: Column, text: str) -> ColumnElement[bool]:
    """`column` contains `text`, without regard to case; `%` and `_` in the text are literal."""
    escaped = text.lower().replace(LIKE_ESCAPE, 2 * LIKE_ESCAPE).replace("%", r"\%").replace("_", r"\_")
    return func.lower(column).like(f"%{escaped}%", escape=LIKE_ESCAPE)


CHUNK = 5000
"""Ids bound in one `IN (…)`: SQLite takes at most 32,766 parameters a statement."""


def chunks(ids: Sequence[T]) -> Iterator[Sequence[T]]:
    """`ids` in slices small enough for one `IN (…)` on every database."""
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def ids_in(column: Column, ids: Sequence[int]) -> ColumnElement[bool]:
    """`column IN (…)` for one chunk of integer ids, written into the statement's text.

    Bound parameters cost SQLAlchemy ~30 µs an id to expand (a deployment to 10,000 computers spent more
    there than in the database); integers need no escaping, and `operator.index` refuses anything else.
    Run such statements with `UNCACHED`: each text is new, and would only crowd the statement cache.
    """
    if not ids:
        return false()
    listed = ",".join(str(operator.index(value)) for value in ids)
    return column.op("IN")(literal_column(f"({listed})"))


UNCACHED = {"compiled_cache": None}
"""Execution options of a statement whose text is made for one execution (`ids_in`)."""


def distinct_words(text: str) -> Sequence[str]:
    """The words of a search, each to be matched on its own."""
    return list(dict.fromkeys(text.split()))


EXPORT_BATCH = 2000
"""Rows a download reads at a time, each batch in a read of its own."""


def export_batches(
    rt: Runtime,
    query: AnySelect,
    keys: Sequence[Column],
    views: Callable[[Session, Sequence[Any]], Sequence[T]],
    *,
    descending: bool = False,
) -> Iterator[T]:
    """Every row of `query` in the order of `keys` (unique together, never NULL, e.g. hostname then id),
    turned into read models by `views`. A batch is read after the keys of the last row read, so
    rows added or removed meanwhile are seen once or not at all, never twice."""
    position = tuple_(*keys)
    order = [key.desc() for key in keys] if descending else list(keys)
    after: tuple[Any, ...] | None = None
    while True:
        batch_query = query.order_by(*order).limit(EXPORT_BATCH)
        if after is not None:
            batch_query = batch_query.where(
                position < tuple_(*after) if descending else position > tuple_(*after)
            )
        with rt.reading() as session:
            rows = session.execute(batch_query.add_columns(*keys)).all()
            made = views(session, [row[: -len(keys)] for row in rows])
        yield from made
        if len(rows) < EXPORT_BATCH:
            return
        after = tuple(rows[-1][-len(keys) :])
