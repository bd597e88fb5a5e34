"""Importing computer and package groups (nested ones named by their path) and their members."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable

from sqlalchemy import select

from oco.db.models import ComputerGroup, ComputerGroupMember, PackageGroup, PackageGroupMember
from oco.domain import ocoimport as rules
from oco.domain.ocoimport import ImportKind
from oco.services.ocoimport.context import ImportContext, mapping_of, pairs_of, text_of


class GroupImport(ImportContext):
    """Computer groups, package groups and their members."""

    def computer_groups(self) -> None:
        groups = self._groups(
            ImportKind.COMPUTER_GROUP, "computer_group", "parent_computer_group_id", ComputerGroup
        )
        computers = mapping_of(self.session, ImportKind.COMPUTER)
        self._members(
            ImportKind.COMPUTER_GROUP_MEMBER,
            "computer_group_member",
            ("computer_group_id", "computer_id"),
            groups,
            computers,
            lambda group_id, computer_id, _: ComputerGroupMember(group_id=group_id, computer_id=computer_id),
        )

    def package_groups(self) -> None:
        groups = self._groups(
            ImportKind.PACKAGE_GROUP, "package_group", "parent_package_group_id", PackageGroup
        )
        packages = mapping_of(self.session, ImportKind.PACKAGE)
        rows = list(self.source.rows("package_group_member", ["package_group_id", "package_id", "sequence"]))
        by_group: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
        for row in rows:
            by_group[row["package_group_id"]].append((row["id"], row["package_id"], row["sequence"] or 0))
        position = {
            member_id: index
            for members in by_group.values()
            for index, member_id in enumerate(rules.package_group_order(members), start=1)
        }
        existing = Counter(
            self.session.scalars(select(PackageGroupMember.group_id))
        )  # groups carried before keep their numbering after their members
        self._members(
            ImportKind.PACKAGE_GROUP_MEMBER,
            "package_group_member",
            ("package_group_id", "package_id"),
            groups,
            packages,
            lambda group_id, package_id, member_id: PackageGroupMember(
                group_id=group_id, package_id=package_id, sequence=existing[group_id] + position[member_id]
            ),
        )

    def _groups(
        self,
        kind: ImportKind,
        table: str,
        parent: str,
        model: type[ComputerGroup] | type[PackageGroup],
    ) -> dict[int, int]:
        mapped = mapping_of(self.session, kind)
        rows = list(self.source.rows(table, ["name", parent]))
        names = rules.group_names(rules.GroupRow(r["id"], text_of(r["name"], None), r[parent]) for r in rows)
        taken = set(self.session.scalars(select(model.name)))
        new: list[tuple[int, ComputerGroup | PackageGroup]] = []
        for done, row in enumerate(rows, start=1):
            if row["id"] in mapped:
                self.report.kind(kind).already_imported += 1
                continue
            name = names[row["id"]][:255]
            if not name:
                self.report.skip(kind, row["id"], "", "the group has no name")
            elif name in taken:
                self.report.skip(kind, row["id"], name, f"a group named {name!r} exists here already")
            else:
                taken.add(name)
                group = model(name=name, created=self.now)
                self.session.add(group)
                new.append((row["id"], group))
            self._tick(kind, done, len(rows))
        self.session.flush()
        self._remember(kind, [(source_id, group.id) for source_id, group in new])
        return {**mapped, **{source_id: group.id for source_id, group in new}}

    def _members(
        self,
        kind: ImportKind,
        table: str,
        keys: tuple[str, str],
        groups: dict[int, int],
        targets: dict[int, int],
        make: Callable[[int, int, int], ComputerGroupMember | PackageGroupMember],
    ) -> None:
        mapped = mapping_of(self.session, kind)
        group_key, target_key = keys
        if kind is ImportKind.COMPUTER_GROUP_MEMBER:
            present = select(ComputerGroupMember.group_id, ComputerGroupMember.computer_id)
        else:
            present = select(PackageGroupMember.group_id, PackageGroupMember.package_id)
        seen = pairs_of(self.session, present)
        new: list[tuple[int, ComputerGroupMember | PackageGroupMember]] = []
        rows = list(self.source.rows(table, list(keys)))
        noun = "computer" if kind is ImportKind.COMPUTER_GROUP_MEMBER else "package"
        for done, row in enumerate(rows, start=1):
            label = f"{noun} {row[target_key]} in group {row[group_key]}"
            if row["id"] in mapped:
                self.report.kind(kind).already_imported += 1
            elif row[group_key] not in groups:
                self.report.skip(kind, row["id"], label, "its group was not imported")
            elif row[target_key] not in targets:
                self.report.skip(kind, row["id"], label, f"its {noun} was not imported")
            elif (groups[row[group_key]], targets[row[target_key]]) in seen:
                self.report.skip(kind, row["id"], label, f"the {noun} is in the group already")
            else:
                pair = (groups[row[group_key]], targets[row[target_key]])
                seen.add(pair)
                member = make(*pair, row["id"])
                self.session.add(member)
                new.append((row["id"], member))
            self._tick(kind, done, len(rows))
        self.session.flush()
        self._remember(kind, [(source_id, member.id) for source_id, member in new])
