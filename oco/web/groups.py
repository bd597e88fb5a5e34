"""Computer groups and package groups in the console: create, fill, empty, delete."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from oco.services import computers, packages
from oco.services.errors import ServiceError
from oco.web.render import ids, render, text
from oco.web.session import Viewer, checked_form, runtime_of, viewer

router = APIRouter(include_in_schema=False)
CurrentViewer = Annotated[Viewer, Depends(viewer)]
Kind = Literal["computer", "package"]


def _page(request: Request, current: Viewer, error: str = "", status_code: int = 200) -> HTMLResponse:
    with runtime_of(request).transaction() as session:
        context = {
            "computer_groups": computers.list_computer_groups(session),
            "package_groups": computers.list_package_groups(session),
            "computers": computers.list_computers(session),
            "families": packages.list_families(session),
        }
    return render(request, "groups.html", current, status_code, error=error, **context)


@router.get("/groups")
def groups(request: Request, current: CurrentViewer) -> HTMLResponse:
    return _page(request, current)


@router.post("/groups/{kind}")
async def create_group(request: Request, current: CurrentViewer, kind: Kind) -> Response:
    posted = await checked_form(request, current)
    add = computers.add_computer_group if kind == "computer" else computers.add_package_group
    try:
        with runtime_of(request).transaction() as session:
            add(session, text(posted, "name"), current.actor)
    except ServiceError as exc:
        return _page(request, current, str(exc), 400)
    return RedirectResponse("/groups", status_code=303)


@router.post("/groups/{kind}/{group_id}/members")
async def change_members(request: Request, current: CurrentViewer, kind: Kind, group_id: int) -> Response:
    """Add the chosen members (`add`) or remove the checked ones (`remove`), keeping package order."""
    posted = await checked_form(request, current)
    adding = posted.get("action") == "add"
    try:
        with runtime_of(request).transaction() as session:
            if kind == "computer":
                group = computers.find_computer_group(session, str(group_id))
                members = [computers.get_computer(session, i) for i in ids(posted, "member")]
                change = computers.add_computers_to_group if adding else computers.remove_computers_from_group
                change(session, group, members, current.actor)
            else:
                package_group = computers.find_package_group(session, str(group_id))
                chosen = [packages.get_package(session, i) for i in ids(posted, "member")]
                change_packages = (
                    computers.add_packages_to_group if adding else computers.remove_packages_from_group
                )
                change_packages(session, package_group, chosen, current.actor)
    except ServiceError as exc:
        return _page(request, current, str(exc), 400)
    return RedirectResponse("/groups", status_code=303)


@router.post("/groups/package/{group_id}/move")
async def move_package(request: Request, current: CurrentViewer, group_id: int) -> Response:
    """Move one package of a package group a place earlier (`steps=-1`) or later (`steps=1`)."""
    await checked_form(request, current)
    chosen = request.query_params  # the buttons share the member list's form: they say which in the URL
    try:
        package_id, steps = int(chosen.get("package", "")), int(chosen.get("steps", ""))
    except ValueError:
        return _page(request, current, "choose a package and a direction to move it", 400)
    try:
        with runtime_of(request).transaction() as session:
            group = computers.find_package_group(session, str(group_id))
            computers.move_package_in_group(session, group, package_id, steps, current.actor)
    except ServiceError as exc:
        return _page(request, current, str(exc), 400)
    return RedirectResponse("/groups", status_code=303)


@router.post("/groups/{kind}/{group_id}/delete")
async def delete_group(request: Request, current: CurrentViewer, kind: Kind, group_id: int) -> Response:
    await checked_form(request, current)
    try:
        with runtime_of(request).transaction() as session:
            if kind == "computer":
                computers.delete_computer_group(
                    session, computers.find_computer_group(session, str(group_id)), current.actor
                )
            else:
                computers.delete_package_group(
                    session, computers.find_package_group(session, str(group_id)), current.actor
                )
    except ServiceError as exc:
        return _page(request, current, str(exc), 400)
    return RedirectResponse("/groups", status_code=303)
