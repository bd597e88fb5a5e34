"""Computer groups of fleet size: ten thousand computers join and leave a group in one call, on every
database, with the counts and the audit entry of a small change."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select

from oco.db.models import AuditLog, Computer, ComputerGroupMember
from oco.errors import NotFound
from oco.services import groups
from oco.services.runtime import Runtime

FLEET = 10_000


@pytest.fixture
def fleet(rt: Runtime) -> list[int]:
    """The ids of FLEET computers, by id."""
    with rt.transaction() as session:
        rows = [{"hostname": f"fleet-{i:05d}", "uid": f"fleet-{i:05d}"} for i in range(FLEET)]
        session.execute(insert(Computer), rows)
    with rt.reading() as session:
        return list(session.scalars(select(Computer.id).order_by(Computer.id)))


def audit_entries(rt: Runtime, action: str) -> list[AuditLog]:
    with rt.reading() as session:
        entries = session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))
        return list(entries)


def test_ten_thousand_computers_join_and_leave_a_group(rt: Runtime, fleet: list[int]) -> None:
    group = groups.add_computer_group(rt, "Everyone", "t").id
    added = groups.add_computers_to_group(rt, group, fleet, "t")
    assert (added.size, added.changed) == (FLEET, FLEET)
    again = groups.add_computers_to_group(rt, group, list(reversed(fleet)), "t")
    assert (again.size, again.changed) == (FLEET, 0)

    removed = groups.remove_computers_from_group(rt, group, list(reversed(fleet)), "t")
    assert (removed.id, removed.name, removed.size, removed.changed) == (group, "Everyone", 0, FLEET)
    [entry] = audit_entries(rt, "computer_group.remove")
    assert (entry.object_id, entry.details) == (group, {"computers": fleet})  # sorted, each once
    assert groups.computer_group(rt, group).computers == []


def test_computers_that_are_not_members_are_left_out_of_the_count(rt: Runtime, fleet: list[int]) -> None:
    group = groups.add_computer_group(rt, "Half", "t").id
    members, others = fleet[: FLEET // 2], fleet[FLEET // 2 :]
    groups.add_computers_to_group(rt, group, members, "t")

    removed = groups.remove_computers_from_group(rt, group, others + members[1:], "t")
    assert (removed.size, removed.changed) == (1, len(members) - 1)
    [entry] = audit_entries(rt, "computer_group.remove")
    assert entry.details == {"computers": members[1:]}
    assert [c.id for c in groups.computer_group(rt, group).computers] == members[:1]
    nobody = groups.remove_computers_from_group(rt, group, others, "t")
    assert (nobody.size, nobody.changed) == (1, 0)


def test_a_strict_removal_of_a_non_member_removes_nothing(rt: Runtime, fleet: list[int]) -> None:
    group = groups.add_computer_group(rt, "Strict", "t").id
    groups.add_computers_to_group(rt, group, fleet[:100], "t")
    with pytest.raises(NotFound, match=f"computer {fleet[100]} is not in group 'Strict'"):
        groups.remove_computers_from_group(
            rt, group, [*fleet[:100], fleet[100], fleet[101]], "t", strict=True
        )
    assert len(groups.computer_group(rt, group).computers) == 100
    assert audit_entries(rt, "computer_group.remove") == []
    with pytest.raises(NotFound, match="computer group 'Nowhere' does not exist"):
        groups.remove_computers_from_group(rt, "Nowhere", fleet[:1], "t")


def test_a_group_of_ten_thousand_is_deleted_with_its_memberships_and_its_computers_stay(
    rt: Runtime, fleet: list[int]
) -> None:
    kept = groups.add_computer_group(rt, "Kept", "t").id
    groups.add_computers_to_group(rt, kept, fleet[:10], "t")
    doomed = groups.add_computer_group(rt, "Doomed", "t").id
    groups.add_computers_to_group(rt, doomed, list(reversed(fleet)), "t")
    with rt.reading() as session:
        assert groups.computer_group_members(session, [doomed, kept]) == [*reversed(fleet), *fleet[:10]]

    groups.delete_computer_group(rt, doomed, "t")

    with rt.reading() as session:
        assert session.scalar(select(func.count()).select_from(ComputerGroupMember)) == 10
        assert session.scalar(select(func.count()).select_from(Computer)) == FLEET
    with pytest.raises(NotFound):
        groups.computer_group(rt, doomed)
    [entry] = audit_entries(rt, "computer_group.delete")
    assert (entry.object_id, entry.details) == (doomed, {"name": "Doomed"})
