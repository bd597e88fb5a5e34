"""Inserting tens of thousands of rows at once (a deployment's jobs, a group's members).

SQLAlchemy's executemany prepares every parameter of every row through its type machinery: for a
deployment of 30,000 jobs that cost more than the database's own work. Here the statement is compiled
once per dialect and column set, each column's bind processor applied once per distinct value (a
deployment's rows share their timestamps, packages and procedures), and the rows handed to the driver's
executemany as they are.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Connection, Dialect, Table

from oco.db.models import Base


def insert_rows(connection: Connection, model: type[Base], rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT `rows` (each with the same keys, columns of `model`'s table) in the caller's transaction."""
    if not rows:
        return
    table = cast(Table, model.__table__)
    defaults = _defaults(table, frozenset(rows[0]))
    if defaults:
        rows = [{**defaults, **row} for row in rows]
    columns = tuple(rows[0])
    processors = _processors(connection.dialect, table, columns)
    plain = tuple(name for name in columns if name not in processors)
    sql, positional = _compiled(connection.dialect, table, (*plain, *processors))
    converted = [_converted(rows, name, process) for name, process in processors.items()]
    parameters: list[Any]
    if positional:  # the statement's parameters: the plain columns, then the converted ones
        values = itemgetter(*plain) if plain else (lambda _row: ())
        if len(plain) == 1:
            parameters = [(values(row), *extra) for row, *extra in zip(rows, *converted, strict=True)]
        else:
            parameters = [(*values(row), *extra) for row, *extra in zip(rows, *converted, strict=True)]
    else:
        names = tuple(processors)
        parameters = [
            {**row, **dict(zip(names, extra, strict=True))}
            for row, *extra in zip(rows, *converted, strict=True)
        ]
    connection.exec_driver_sql(sql, parameters)


def _converted(rows: Sequence[Mapping[str, Any]], name: str, process: Callable[[Any], Any]) -> list[Any]:
    """Column `name` of every row through its bind processor, once for each distinct value."""
    seen: dict[Any, Any] = {}
    values = []
    for row in rows:
        value = row[name]
        try:
            values.append(seen[value])
        except KeyError:
            values.append(seen.setdefault(value, process(value)))
        except TypeError:  # not hashable
            values.append(process(value))
    return values


def _defaults(table: Table, given: frozenset[str]) -> dict[str, Any]:
    """The Python-side defaults of the columns not given, as an ORM or Core insert would apply them."""
    defaults = {}
    for column in table.columns:
        default = column.default
        if column.name in given or default is None:
            continue
        if not getattr(default, "is_scalar", False):
            raise ValueError(f"give {table.name}.{column.name}: its default is computed for each row")
        defaults[column.name] = getattr(default, "arg", None)
    return defaults


_PLACEHOLDERS: dict[str, Callable[[int, str], str]] = {
    "qmark": lambda _index, _name: "?",
    "numeric": lambda index, _name: f":{index + 1}",
    "format": lambda _index, _name: "%s",
    "pyformat": lambda _index, name: f"%({name})s",
    "named": lambda _index, name: f":{name}",
}


@functools.lru_cache(maxsize=64)
def _compiled(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> tuple[str, bool]:
    """The INSERT's text in the driver's parameter style, its columns in the order given; and whether
    its parameters are positional (in that order) rather than named."""
    preparer = dialect.identifier_preparer
    style = dialect.paramstyle
    placeholder = _PLACEHOLDERS[style]
    names = ", ".join(preparer.quote(name) for name in columns)
    values = ", ".join(placeholder(index, name) for index, name in enumerate(columns))
    sql = f"INSERT INTO {preparer.format_table(table)} ({names}) VALUES ({values})"
    return sql, style in ("qmark", "numeric", "format")


@functools.lru_cache(maxsize=64)
def _processors(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> dict[str, Callable[[Any], Any]]:
    found: dict[str, Callable[[Any], Any]] = {}
    for name in columns:
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            found[name] = process
    return found
