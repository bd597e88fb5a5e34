"""What every part of one import run shares: the transaction, the source, the report, helpers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from oco.config import Settings
from oco.db.models import ImportMapping
from oco.depot import StoredPayload
from oco.domain import ocoimport as rules
from oco.domain.ocoimport import ImportKind, ImportReport
from oco.services.ocoimport.source import OcoSource, Row

SOURCE = "oco-server"
"""The `import_mapping.source` of what this use case carries."""
FLUSH_EVERY = 500
"""Rows added between flushes (and progress reports)."""

Progress = Callable[[str, int, int], None]
"""Called as rows are carried: kind, rows done, rows of that kind at the source."""


@dataclass(frozen=True, slots=True)
class OcoImportRequest:
    """What to import and how: the source database, OCO's package directory, its time zone."""

    database_url: str
    payloads: Path | None = None
    dry_run: bool = False
    time_zone: str | None = None
    """The zone OCO-Server wrote its (naive) times in; default: our configured `time_zone`."""


def mapping_of(session: Session, kind: ImportKind) -> dict[int, int]:
    """OCO's id → ours, of every row of `kind` imported before."""
    rows = session.execute(
        select(ImportMapping.source_id, ImportMapping.target_id).where(
            ImportMapping.source == SOURCE, ImportMapping.kind == str(kind)
        )
    )
    return {source_id: target_id for source_id, target_id in rows}


def text_of(value: Any, limit: int | None = 255) -> str:
    """A value of OCO's as our text: NULL is empty, cut to `limit` characters (None: no limit)."""
    text = "" if value is None else str(value)
    return text[:limit] if limit is not None else text


def pairs_of(session: Session, query: Any) -> set[tuple[int, Any]]:
    """The rows of a two-column query as a set of pairs (what exists here already)."""
    return {(first, second) for first, second in session.execute(query)}


class ImportContext:
    """One import run inside the caller's transaction: what its parts share."""

    def __init__(
        self,
        session: Session,
        source: OcoSource,
        report: ImportReport,
        zone: ZoneInfo,
        now: datetime,
        payloads: dict[int, StoredPayload],
        progress: Progress | None,
        settings: Settings,
    ) -> None:
        self.session = session
        self.settings = settings
        self.source = source
        self.report = report
        self.zone = zone
        self.now = now
        self.payloads = payloads
        self.progress = progress
        self.users = self._system_users()
        self.without_payload: list[str] = []
        self._catalog: dict[int, Row] | None = None
        self._users_by_id: dict[int, str] | None = None

    def _utc(self, value: datetime | None) -> datetime | None:
        return rules.utc(value, self.zone)

    def _remember(self, kind: ImportKind, pairs: Sequence[tuple[int, int]]) -> None:
        if pairs:
            self.session.execute(
                insert(ImportMapping),
                [{"source": SOURCE, "kind": str(kind), "source_id": s, "target_id": t} for s, t in pairs],
            )
        self.report.kind(kind).imported += len(pairs)

    def _tick(self, kind: ImportKind, done: int, total: int) -> None:
        if self.progress is not None and (done % FLUSH_EVERY == 0 or done == total):
            self.progress(str(kind), done, total)

    def _system_users(self) -> dict[int, str]:
        if not self.source.has("system_user"):
            return {}
        return {row["id"]: text_of(row["username"]) for row in self.source.rows("system_user", ["username"])}

    def _author(self, row: Row) -> str:
        user_id = row.get("created_by_system_user_id")
        if user_id is not None and user_id in self.users:
            return self.users[user_id]
        return text_of(row.get("author"))

    def _grouped(
        self, table: str, columns: Sequence[str], by: str, ids: Sequence[int], *aliases: tuple[str, ...]
    ) -> dict[int, list[Row]]:
        """The rows of `table` whose column `by` holds one of `ids`, by that column."""
        grouped: dict[int, list[Row]] = defaultdict(list)
        if self.source.has(table) and ids:
            for row in self.source.rows(table, [*columns, by], *aliases, where=(by, ids)):
                grouped[row[by]].append(row)
        return grouped
