"""Computer groups and package groups in the console: create, fill, empty, reorder, delete."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from oco.errors import InvalidInput, OcoError
from oco.services import groups
from oco.services.computers import ComputerSelection
from oco.web import flash
from oco.web.filters import MATCH, computer_query
from oco.web.inventory import computers_csv
from oco.web.lists import ALL_MATCHING, ListState, csv_response, form_state
from oco.web.render import ConsoleId, ids, refused, render, status_of, text
from oco.web.session import (
    EditingGroups,
    Posted,
    Viewer,
    Viewing,
    runtime_of,
)

router = APIRouter(include_in_schema=False)
CurrentViewer = Viewing
Kind = Literal["computer", "package"]


def _page(request: Request, current: Viewer, error: OcoError | None = None) -> HTMLResponse:
    state = ListState.of(request) if error is None else ListState("/groups", ())
    page = groups.groups_page(runtime_of(request), state.get("q"), state.page_request())
    message = error.message if error else ""
    return render(request, "groups.html", current, status_of(error), groups=page, state=state, error=message)


GROUP_CSV = ("id", "name", "size")


@router.get("/groups")
def group_list(request: Request, current: CurrentViewer) -> Response:
    """The computer groups that match the search with their sizes, a page at a time (or all as CSV);
    every package group with its members."""
    state = ListState.of(request)
    if state.wants_csv:
        rows = groups.export_group_summaries(runtime_of(request), state.get("q"))
        return csv_response("computer-groups.csv", GROUP_CSV, ([g.id, g.name, g.size] for g in rows))
    return _page(request, current)


@router.get("/groups/computer/{group_id}")
def computer_group_page(request: Request, current: CurrentViewer, group_id: ConsoleId) -> Response:
    """One computer group: its members a page at a time (or as CSV), and computers found to add."""
    state = ListState.of(request)
    if state.wants_csv:
        rows = groups.export_members(runtime_of(request), group_id, computer_query(state))
        return computers_csv(f"group-{group_id}.csv", rows)
    page = groups.computer_group_page(
        runtime_of(request), group_id, computer_query(state), state.page_request(), state.get("find")
    )
    return render(request, "computer_group.html", current, group=page, state=state)


@router.post("/groups/{kind}")
def create_group(request: Request, current: EditingGroups, kind: Kind, posted: Posted) -> Response:
    """Create an empty group of either kind."""
    add = groups.add_computer_group if kind == "computer" else groups.add_package_group
    try:
        added = add(runtime_of(request), text(posted, "name"), current.actor)
    except OcoError as exc:
        return _page(request, current, exc)
    return flash.redirect(request, current, "/groups", f"Created the {kind} group {added.name}.")


@router.post("/groups/{kind}/{group_id}/members")
def change_members(
    request: Request, current: EditingGroups, kind: Kind, group_id: ConsoleId, posted: Posted
) -> Response:
    """Add the chosen members (`action=add`) or remove the checked ones (`remove`), keeping package order.

    On a computer group's page the checked members may be all that match its filter (`all_matching`).
    """
    adding = posted.get("action") == "add"
    runtime = runtime_of(request)
    back = text(posted, "back", "/groups")
    try:
        if kind == "computer":
            carried = form_state(posted, back)
            matching = None
            if posted.get(ALL_MATCHING) == "1":  # all the group's members that match its page's filter
                matching = replace(computer_query(carried, MATCH), group_id=group_id)
            selection = ComputerSelection(references=ids(posted, "member"), matching=matching)
            change = groups.add_computers_to_group if adding else groups.remove_computers_from_group
            change(runtime, group_id, selection, current.actor)
        else:
            change_packages = groups.add_packages_to_group if adding else groups.remove_packages_from_group
            change_packages(runtime, group_id, ids(posted, "member"), current.actor)
    except OcoError as exc:
        return refused(request, current, back, exc)
    return flash.redirect(
        request, current, back, "Added the chosen members." if adding else "Removed the chosen members."
    )


@router.post("/groups/package/{group_id}/move")
def move_package(request: Request, current: EditingGroups, group_id: ConsoleId, posted: Posted) -> Response:
    """Move one package of a package group a place earlier (`steps=-1`) or later (`steps=1`)."""
    chosen = request.query_params  # the buttons share the member list's form: they say which in the URL
    try:
        package_id, steps = int(chosen.get("package", "")), int(chosen.get("steps", ""))
    except ValueError:
        return _page(request, current, InvalidInput("choose a package and a direction to move it"))
    try:
        groups.move_package_in_group(runtime_of(request), group_id, package_id, steps, current.actor)
    except OcoError as exc:
        return refused(request, current, "/groups", exc)
    return RedirectResponse("/groups", status_code=303)


@router.post("/groups/{kind}/{group_id}/delete")
def delete_group(
    request: Request, current: EditingGroups, kind: Kind, group_id: ConsoleId, posted: Posted
) -> Response:
    """Delete a group; its members stay."""
    delete = groups.delete_computer_group if kind == "computer" else groups.delete_package_group
    try:
        delete(runtime_of(request), group_id, current.actor)
    except OcoError as exc:
        return refused(request, current, "/groups", exc)
    return flash.redirect(request, current, "/groups", "Deleted the group; its members stay.")
