"""Importing package families, packages with their payloads, and assignments."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from oco.db.models import ComputerPackage, Package, PackageFamily
from oco.depot import StoredPayload
from oco.domain import ocoimport as rules
from oco.domain.ocoimport import ImportKind, ImportReport
from oco.errors import OcoError
from oco.services.listing import chunks
from oco.services.ocoimport.context import (
    FLUSH_EVERY,
    ImportContext,
    OcoImportRequest,
    Progress,
    mapping_of,
    pairs_of,
    text_of,
)
from oco.services.ocoimport.source import OcoSource, Row
from oco.services.runtime import Runtime


def store_payloads(
    rt: Runtime,
    source: OcoSource,
    request: OcoImportRequest,
    report: ImportReport,
    stored: list[str],
    progress: Progress | None,
) -> dict[int, StoredPayload]:
    """The payload of every package not carried yet (or carried without one) whose file is in OCO's
    package directory: stored in the depot (a dry run only hashes it)."""
    if request.payloads is None:
        return {}
    with rt.reading() as session:
        carried = mapping_of(session, ImportKind.PACKAGE)
        without = set(session.scalars(select(Package.id).where(Package.payload_sha256.is_(None))))
    found: dict[int, StoredPayload] = {}
    package_ids = [
        row["id"]
        for row in source.rows("package", [])
        if row["id"] not in carried or carried[row["id"]] in without
    ]
    for done, package_id in enumerate(package_ids, start=1):
        path = request.payloads / f"{int(package_id)}.zip"
        if path.is_file():
            if request.dry_run:
                found[package_id] = _hashed(path)
            else:
                payload = rt.depot.put_file(path)
                stored.append(payload.sha256)
                found[package_id] = payload
        if progress is not None and (done % FLUSH_EVERY == 0 or done == len(package_ids)):
            progress("payload", done, len(package_ids))
    return found


def _hashed(path: Path) -> StoredPayload:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return StoredPayload(digest.hexdigest(), size)


class PackageImport(ImportContext):
    """Package families, packages and assignments."""

    def families(self) -> None:
        kind = ImportKind.PACKAGE_FAMILY
        mapped = mapping_of(self.session, kind)
        ours: dict[str, int | PackageFamily] = {
            name: family_id
            for name, family_id in self.session.execute(select(PackageFamily.name, PackageFamily.id))
        }
        rows = list(self.source.rows("package_family", ["name", "notes", "icon"]))
        carried: list[tuple[int, int | PackageFamily]] = []
        for done, row in enumerate(rows, start=1):
            name = text_of(row["name"]).strip()
            if row["id"] in mapped:
                self.report.kind(kind).already_imported += 1
            elif not name:
                self.report.skip(kind, row["id"], "", "the package family has no name")
            elif name in ours:  # the same software: its versions join the family of that name
                carried.append((row["id"], ours[name]))
            else:
                family = PackageFamily(
                    name=name, notes=text_of(row["notes"], None), icon=_icon(row["icon"]), created=self.now
                )
                self.session.add(family)
                ours[name] = family
                carried.append((row["id"], family))
            self._tick(kind, done, len(rows))
        self.session.flush()
        self._remember(kind, [(s, t if isinstance(t, int) else t.id) for s, t in carried])

    def packages(self) -> None:
        kind = ImportKind.PACKAGE
        mapped = mapping_of(self.session, kind)
        families = mapping_of(self.session, ImportKind.PACKAGE_FAMILY)
        family_names = {
            family_id: name
            for family_id, name in self.session.execute(select(PackageFamily.id, PackageFamily.name))
        }
        taken = pairs_of(self.session, select(Package.family_id, Package.version))
        total = self.source.count("package")
        new: list[tuple[int, Package]] = []
        late: list[int] = []
        for done, row in enumerate(self.source.rows("package", _PACKAGE_COLUMNS), start=1):
            version = text_of(row["version"]).strip()
            family_id = families.get(row["package_family_id"])
            label = f"{family_names.get(family_id or -1, '?')} {version}"
            if row["id"] in mapped:
                self.report.kind(kind).already_imported += 1
                late.append(row["id"])
            elif family_id is None:
                self.report.skip(kind, row["id"], label, "its package family was not imported")
            elif not version:
                self.report.skip(kind, row["id"], label, "the package has no version")
            elif (family_id, version) in taken:
                self.report.skip(kind, row["id"], label, f"package {label!r} exists here already")
            else:
                package = self._package(row, family_id, version, label)
                if package is not None:
                    taken.add((family_id, version))
                    self.session.add(package)
                    new.append((row["id"], package))
            self._tick(kind, done, total)
        self.session.flush()
        self._remember(kind, [(source_id, package.id) for source_id, package in new])
        self._attach_late_payloads(mapped, late)

    def _attach_late_payloads(self, mapped: dict[int, int], source_ids: Sequence[int]) -> None:
        """Packages carried before without a payload get theirs once its file is there (a first run
        without --payloads)."""
        for source_id in source_ids:
            payload = self.payloads.get(source_id)
            package = self.session.get(Package, mapped[source_id]) if payload is not None else None
            if payload is None or package is None or package.payload_sha256 is not None:
                continue
            package.payload_sha256, package.payload_size = payload.sha256, payload.size
            self.report.kind(ImportKind.PACKAGE).updated += 1

    def _package(self, row: Row, family_id: int, version: str, label: str) -> Package | None:
        try:
            values = {
                "install_success_codes": rules.success_codes(row["install_procedure_success_return_codes"]),
                "uninstall_success_codes": rules.success_codes(
                    row["uninstall_procedure_success_return_codes"]
                ),
                "install_post_action": int(rules.post_action(row["install_procedure_post_action"])),
                "uninstall_post_action": int(rules.post_action(row["uninstall_procedure_post_action"])),
                "upgrade_behavior": str(rules.upgrade_behavior(row["upgrade_behavior"])),
            }
        except OcoError as exc:
            self.report.skip(ImportKind.PACKAGE, row["id"], label, exc.message)
            return None
        payload = self.payloads.get(row["id"])
        if payload is None:
            self.without_payload.append(label)
        return Package(
            family_id=family_id,
            version=version[:255],
            notes=text_of(row["notes"], None),
            install_procedure=text_of(row["install_procedure"], None),
            uninstall_procedure=text_of(row["uninstall_procedure"], None),
            compatible_os=rules.compatibility(row["compatible_os"])[:255],
            compatible_os_version=rules.compatibility(row["compatible_os_version"])[:255],
            compatible_architecture=rules.compatibility(row["compatible_architecture"])[:255],
            download_for_uninstall=bool(row["download_for_uninstall"]),
            payload_sha256=payload.sha256 if payload else None,
            payload_size=payload.size if payload else None,
            author=self._author(row),
            created=self._utc(row["created"]) or self.now,
            **values,
        )

    def assignments(self) -> None:
        kind = ImportKind.ASSIGNMENT
        mapped = mapping_of(self.session, kind)
        computers = mapping_of(self.session, ImportKind.COMPUTER)
        packages = mapping_of(self.session, ImportKind.PACKAGE)
        self._drop_removed_assignments(mapped)
        seen = pairs_of(self.session, select(ComputerPackage.computer_id, ComputerPackage.package_id))
        total = self.source.count("computer_package")
        new: list[tuple[int, ComputerPackage]] = []
        for done, row in enumerate(
            self.source.rows("computer_package", ["computer_id", "package_id", "installed"]), start=1
        ):
            label = f"package {row['package_id']} on computer {row['computer_id']}"
            if row["id"] in mapped:
                self.report.kind(kind).already_imported += 1
            elif row["computer_id"] not in computers:
                self.report.skip(kind, row["id"], label, "its computer was not imported")
            elif row["package_id"] not in packages:
                self.report.skip(kind, row["id"], label, "its package was not imported")
            elif (computers[row["computer_id"]], packages[row["package_id"]]) in seen:
                self.report.skip(kind, row["id"], label, "the package is assigned to the computer already")
            else:
                pair = (computers[row["computer_id"]], packages[row["package_id"]])
                seen.add(pair)
                assignment = ComputerPackage(
                    computer_id=pair[0], package_id=pair[1], installed=self._utc(row["installed"]) or self.now
                )
                self.session.add(assignment)
                new.append((row["id"], assignment))
            if len(new) % FLUSH_EVERY == 0:
                self.session.flush()
            self._tick(kind, done, total)
        self.session.flush()
        self._remember(kind, [(source_id, a.id) for source_id, a in new])

    def _drop_removed_assignments(self, mapped: dict[int, int]) -> None:
        """Assignments carried before that OCO-Server has removed since (its agent uninstalled the
        package there) are removed here too; those removed here stay removed."""
        present = {row["id"] for row in self.source.rows("computer_package", [])}
        gone = [target for source_id, target in mapped.items() if source_id not in present]
        removed = 0
        for chunk in chunks(gone):
            result = self.session.execute(delete(ComputerPackage).where(ComputerPackage.id.in_(chunk)))
            removed += int(getattr(result, "rowcount", 0) or 0)
        self.report.kind(ImportKind.ASSIGNMENT).updated += removed


def _icon(value: Any) -> str | None:
    if not value:
        return None
    data = value if isinstance(value, bytes) else str(value).encode()
    return "data:image/png;base64," + base64.b64encode(data).decode()


_PACKAGE_COLUMNS = (
    "package_family_id",
    "version",
    "notes",
    "author",
    "created_by_system_user_id",
    "install_procedure",
    "install_procedure_success_return_codes",
    "install_procedure_post_action",
    "upgrade_behavior",
    "uninstall_procedure",
    "uninstall_procedure_success_return_codes",
    "download_for_uninstall",
    "uninstall_procedure_post_action",
    "compatible_os",
    "compatible_os_version",
    "compatible_architecture",
    "created",
)
