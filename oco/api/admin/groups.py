"""`/computer-groups` and `/package-groups`: deployment targets and ordered package sets."""

from __future__ import annotations

from fastapi import APIRouter

from oco.api.admin.schemas import Actor, ComputerMembers, Id, Members, NewGroup, RuntimeDep
from oco.api.auth import allow
from oco.domain.roles import Permission
from oco.services import groups
from oco.services.views import ComputerGroupPublic, MembershipChangePublic, PackageGroupPublic

router = APIRouter(dependencies=[allow(Permission.VIEW)], tags=["groups"])


@router.get("/computer-groups")
def list_computer_groups(runtime: RuntimeDep) -> list[ComputerGroupPublic]:
    """Every computer group with its members."""
    return groups.list_computer_groups(runtime)


@router.post("/computer-groups", status_code=201, dependencies=[allow(Permission.EDIT_GROUPS)])
def add_computer_group(runtime: RuntimeDep, actor: Actor, body: NewGroup) -> ComputerGroupPublic:
    """Create an empty computer group."""
    return groups.add_computer_group(runtime, body.name, actor)


@router.post("/computer-groups/{group_id}/members", dependencies=[allow(Permission.EDIT_GROUPS)])
def add_computer_group_members(
    runtime: RuntimeDep, actor: Actor, group_id: Id, body: ComputerMembers
) -> MembershipChangePublic:
    """Add computers to the group: these ids, and with `matching`, every computer that matches that
    filter; answers with the group's size and how many were added."""
    return groups.add_computers_to_group(runtime, group_id, body.selection(), actor)


@router.post("/computer-groups/{group_id}/members/remove", dependencies=[allow(Permission.EDIT_GROUPS)])
def remove_computer_group_members(
    runtime: RuntimeDep, actor: Actor, group_id: Id, body: ComputerMembers
) -> MembershipChangePublic:
    """Remove computers from the group (ids, and with `matching` every member that matches); those that
    are not members are left out of the count."""
    return groups.remove_computers_from_group(runtime, group_id, body.selection(group_id), actor)


@router.delete(
    "/computer-groups/{group_id}/members/{computer_id}", dependencies=[allow(Permission.EDIT_GROUPS)]
)
def remove_computer_group_member(
    runtime: RuntimeDep, actor: Actor, group_id: Id, computer_id: Id
) -> MembershipChangePublic:
    """Remove a computer from the group (404 if it is not a member)."""
    return groups.remove_computers_from_group(runtime, group_id, [computer_id], actor, strict=True)


@router.delete("/computer-groups/{group_id}", status_code=204, dependencies=[allow(Permission.EDIT_GROUPS)])
def delete_computer_group(runtime: RuntimeDep, actor: Actor, group_id: Id) -> None:
    """Delete the group; its computers stay."""
    groups.delete_computer_group(runtime, group_id, actor)


@router.get("/package-groups")
def list_package_groups(runtime: RuntimeDep) -> list[PackageGroupPublic]:
    """Every package group with its members in deployment order."""
    return groups.list_package_groups(runtime)


@router.post("/package-groups", status_code=201, dependencies=[allow(Permission.EDIT_GROUPS)])
def add_package_group(runtime: RuntimeDep, actor: Actor, body: NewGroup) -> PackageGroupPublic:
    """Create an empty package group."""
    return groups.add_package_group(runtime, body.name, actor)


@router.post("/package-groups/{group_id}/members", dependencies=[allow(Permission.EDIT_GROUPS)])
def add_package_group_members(
    runtime: RuntimeDep, actor: Actor, group_id: Id, body: Members
) -> PackageGroupPublic:
    """Append packages to the group, in the order given."""
    return groups.add_packages_to_group(runtime, group_id, body.ids, actor)


@router.delete(
    "/package-groups/{group_id}/members/{package_id}", dependencies=[allow(Permission.EDIT_GROUPS)]
)
def remove_package_group_member(
    runtime: RuntimeDep, actor: Actor, group_id: Id, package_id: Id
) -> PackageGroupPublic:
    """Remove a package from the group (404 if it is not a member)."""
    return groups.remove_packages_from_group(runtime, group_id, [package_id], actor, strict=True)


@router.put("/package-groups/{group_id}/order", dependencies=[allow(Permission.EDIT_GROUPS)])
def order_package_group(runtime: RuntimeDep, actor: Actor, group_id: Id, body: Members) -> PackageGroupPublic:
    """Deploy the group's packages in this order: `ids` names each member once."""
    return groups.order_package_group(runtime, group_id, body.ids, actor)


@router.delete("/package-groups/{group_id}", status_code=204, dependencies=[allow(Permission.EDIT_GROUPS)])
def delete_package_group(runtime: RuntimeDep, actor: Actor, group_id: Id) -> None:
    """Delete the group; its packages stay."""
    groups.delete_package_group(runtime, group_id, actor)
