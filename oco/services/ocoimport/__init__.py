"""Use case `oco import oco-server`: carry a running OCO-Server's data over, once, resumably safe.

What it carries (in this order, later kinds refer to earlier ones): computers with their agent and
server keys, uid, last agent timestamp and inventory (OS, version, architecture, networks with MACs,
logins, software); computer groups and their members; package families; packages with their payloads
(`--payloads`: OCO-Server's package directory, `<id>.zip` per package) hashed into our depot; package
groups with their order; assignments; job containers with their jobs (pending ones stay pending and run
here, finished ones are history). The values are turned into ours by `oco.domain.ocoimport`.

Idempotent: every row carried is remembered in `import_mapping` (source "oco-server", kind, OCO's id,
ours), so a second run finds it and changes nothing; rows new at the source are added. A row that
clashes with one of ours (a hostname, a package version, a group name that exists here already) is
skipped with its reason, as is one that refers to a row not carried.

One transaction: the database part commits whole or not at all. Payloads are stored in the depot before
(they are large and streamed) and removed again if the transaction fails, unless a package uses them.
A dry run does all of it in a transaction that is rolled back, and stores no payload (it reads and hashes
the files), so what it reports is what a real run would do.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from oco.domain.ocoimport import ImportReport
from oco.errors import InvalidInput
from oco.services import audit, payloadlock
from oco.services.ocoimport.computers import ComputerImport
from oco.services.ocoimport.context import OcoImportRequest, Progress
from oco.services.ocoimport.deployments import DeploymentImport
from oco.services.ocoimport.groups import GroupImport
from oco.services.ocoimport.packages import PackageImport, store_payloads
from oco.services.ocoimport.source import NOT_CARRIED, open_source
from oco.services.packages import remove_unused_payload
from oco.services.runtime import Runtime

__all__ = ["OcoImportRequest", "Progress", "import_oco_server"]


class _DryRun(Exception):
    """Rolls the dry run's transaction back."""


def import_oco_server(
    rt: Runtime, request: OcoImportRequest, actor: str, progress: Progress | None = None
) -> ImportReport:
    """Carry an OCO-Server database's data over (see the module's text); answers with what was done,
    or with a dry run, what would be."""
    zone = _zone(request.time_zone, rt)
    if request.payloads is not None and not request.payloads.is_dir():
        raise InvalidInput(f"payload directory {str(request.payloads)!r} does not exist", field="payloads")
    report = ImportReport(dry_run=request.dry_run)
    stored: list[str] = []
    with open_source(request.database_url) as source:
        try:
            with payloadlock.storing(rt):
                payloads = store_payloads(rt, source, request, stored, progress)
                try:
                    with rt.transaction() as session:
                        _Importer(
                            session, source, report, zone, rt.now(), payloads, progress, rt.settings
                        ).run()
                        if request.dry_run:
                            raise _DryRun
                        audit.record(session, actor, "import.oco-server", "import", None, **_summary(report))
                except _DryRun:
                    pass
        finally:  # on failure every payload stored goes again; on success those of skipped packages
            for digest in stored:
                remove_unused_payload(rt, digest)
    return report


def _zone(name: str | None, rt: Runtime) -> ZoneInfo:
    if name is None:
        return rt.settings.zone
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r}", field="time_zone") from None


def _summary(report: ImportReport) -> dict[str, Any]:
    return {
        kind: {
            "imported": r.imported,
            "already_imported": r.already_imported,
            "updated": r.updated,
            "skipped": len(r.skipped),
        }
        for kind, r in report.kinds.items()
    }


class _Importer(ComputerImport, GroupImport, PackageImport, DeploymentImport):
    """One import run: every kind, in the order later kinds need."""

    def run(self) -> None:
        self.computers()
        self.computer_groups()
        self.families()
        self.packages()
        self.package_groups()
        self.assignments()
        self.containers()
        self.jobs()
        self.not_carried()

    def not_carried(self) -> None:
        if self.without_payload:
            shown = ", ".join(repr(name) for name in self.without_payload[:5])
            more = f" and {len(self.without_payload) - 5} more" if len(self.without_payload) > 5 else ""
            self.report.notes.append(
                f"{len(self.without_payload)} package(s) carried without a payload (no <id>.zip in the "
                f"--payloads directory): {shown}{more}"
            )
        for table, what in NOT_CARRIED.items():
            if self.source.has(table):
                count = self.source.count(table)
                if count:
                    self.report.notes.append(f"not carried: {count} {what}")
