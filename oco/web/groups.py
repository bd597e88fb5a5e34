"""Computer groups and package groups in the console: create, fill, empty, reorder, delete."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from oco.errors import InvalidInput, OcoError
from oco.services import groups, targets
from oco.web.render import ConsoleId, ids, render, status_of, text
from oco.web.session import Viewer, checked_form, runtime_of, viewer

router = APIRouter(include_in_schema=False)
CurrentViewer = Annotated[Viewer, Depends(viewer)]
Kind = Literal["computer", "package"]


def _page(request: Request, current: Viewer, error: OcoError | None = None) -> HTMLResponse:
    choices = targets.target_choices(runtime_of(request))
    message = error.message if error else ""
    return render(request, "groups.html", current, status_of(error), choices=choices, error=message)


@router.get("/groups")
def group_list(request: Request, current: CurrentViewer) -> HTMLResponse:
    """Every computer group and package group with its members."""
    return _page(request, current)


@router.post("/groups/{kind}")
async def create_group(request: Request, current: CurrentViewer, kind: Kind) -> Response:
    """Create an empty group of either kind."""
    posted = await checked_form(request, current)
    add = groups.add_computer_group if kind == "computer" else groups.add_package_group
    try:
        add(runtime_of(request), text(posted, "name"), current.actor)
    except OcoError as exc:
        return _page(request, current, exc)
    return RedirectResponse("/groups", status_code=303)


@router.post("/groups/{kind}/{group_id}/members")
async def change_members(
    request: Request, current: CurrentViewer, kind: Kind, group_id: ConsoleId
) -> Response:
    """Add the chosen members (`action=add`) or remove the checked ones (`remove`), keeping package order."""
    posted = await checked_form(request, current)
    adding = posted.get("action") == "add"
    members = ids(posted, "member")
    runtime = runtime_of(request)
    try:
        if kind == "computer":
            change_computers = groups.add_computers_to_group if adding else groups.remove_computers_from_group
            change_computers(runtime, group_id, members, current.actor)
        else:
            change_packages = groups.add_packages_to_group if adding else groups.remove_packages_from_group
            change_packages(runtime, group_id, members, current.actor)
    except OcoError as exc:
        return _page(request, current, exc)
    return RedirectResponse("/groups", status_code=303)


@router.post("/groups/package/{group_id}/move")
async def move_package(request: Request, current: CurrentViewer, group_id: ConsoleId) -> Response:
    """Move one package of a package group a place earlier (`steps=-1`) or later (`steps=1`)."""
    await checked_form(request, current)
    chosen = request.query_params  # the buttons share the member list's form: they say which in the URL
    try:
        package_id, steps = int(chosen.get("package", "")), int(chosen.get("steps", ""))
    except ValueError:
        return _page(request, current, InvalidInput("choose a package and a direction to move it"))
    try:
        groups.move_package_in_group(runtime_of(request), group_id, package_id, steps, current.actor)
    except OcoError as exc:
        return _page(request, current, exc)
    return RedirectResponse("/groups", status_code=303)


@router.post("/groups/{kind}/{group_id}/delete")
async def delete_group(request: Request, current: CurrentViewer, kind: Kind, group_id: ConsoleId) -> Response:
    """Delete a group; its members stay."""
    await checked_form(request, current)
    delete = groups.delete_computer_group if kind == "computer" else groups.delete_package_group
    try:
        delete(runtime_of(request), group_id, current.actor)
    except OcoError as exc:
        return _page(request, current, exc)
    return RedirectResponse("/groups", status_code=303)
