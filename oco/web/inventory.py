"""Computers and packages in the console: lists, details, installed packages, uploads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from oco.depot import Depot, StoredPayload
from oco.domain.roles import Permission
from oco.domain.states import PostAction, UpgradeBehavior
from oco.errors import InvalidInput, OcoError
from oco.services import assignments, computers, deployments, groups, packages, wol
from oco.services.assignments import InstalledSelection
from oco.services.computers import ComputerQuery, ComputerSelection
from oco.services.deployments import UninstallRequest
from oco.services.views import ComputerPublic
from oco.web import flash
from oco.web.filters import MATCH, computer_query
from oco.web.jobs import AssistantForm
from oco.web.lists import ALL_MATCHING, ListState, csv_response, form_state
from oco.web.render import ConsoleId, ids, refused, render, status_of, text
from oco.web.session import (
    CSRF_FIELD,
    AddingPackages,
    DeletingPackages,
    Deploying,
    EditingComputers,
    Posted,
    Viewer,
    Viewing,
    may_act,
    runtime_of,
)

router = APIRouter(include_in_schema=False)
CurrentViewer = Viewing
COMPUTER_ACTIONS = {
    "deploy": Permission.DEPLOY,
    "wake": Permission.DEPLOY,
    "add_to_group": Permission.EDIT_GROUPS,
    "delete": Permission.EDIT_COMPUTERS,
}
"""What each action of the computer list needs."""
INSTALLED_ACTIONS = {
    "deploy": Permission.DEPLOY,
    "uninstall": Permission.DEPLOY,
    "remove": Permission.EDIT_COMPUTERS,
}
"""What each action on a package's installations needs."""
PACKAGE_FIELDS = (
    "family",
    "version",
    "notes",
    "install_procedure",
    "install_success_codes",
    "install_post_action",
    "uninstall_procedure",
    "uninstall_success_codes",
    "uninstall_post_action",
    "upgrade_behavior",
    "compatible_os",
    "compatible_os_version",
    "compatible_architecture",
)


# Computers ----------------------------------------------------------------------------------------


@router.get("/computers")
def computer_list(request: Request, current: CurrentViewer) -> Response:
    """The computers that match the address's filters, a page at a time (or all of them as CSV)."""
    state = ListState.of(request)
    query = computer_query(state)
    if state.wants_csv:
        return computers_csv("computers.csv", computers.export_computers(runtime_of(request), query))
    return _computer_list(request, current, state)


COMPUTER_CSV = (
    "id",
    "hostname",
    "presence",
    "os",
    "os_version",
    "architecture",
    "remote_address",
    "agent_version",
    "last_seen",
    "uid",
    "notes",
)


def computers_csv(filename: str, rows: Iterable[ComputerPublic]) -> Response:
    """A CSV download of computers, one row each."""
    return csv_response(filename, COMPUTER_CSV, ([getattr(c, f) for f in COMPUTER_CSV] for c in rows))


INSTALLED_CSV = ("computer_id", "computer", "package_id", "package", "installed", "installed_by_job_id")


def _computer_list(
    request: Request, current: Viewer, state: ListState, error: OcoError | None = None, hostname: str = ""
) -> HTMLResponse:
    listing = computers.list_page(runtime_of(request), computer_query(state), state.page_request())
    return render(
        request,
        "computers.html",
        current,
        status_of(error),
        page=listing.computers,
        choices=listing.choices,
        state=state,
        sort_keys=computers.COMPUTER_SORTS,
        error=error.message if error else "",
        hostname=hostname,
    )


@router.post("/computers/actions")
def computer_actions(
    request: Request, current: Annotated[Viewer, may_act(COMPUTER_ACTIONS)], posted: Posted
) -> Response:
    """Act on the checked computers, or on all that match the list's filter: deploy, wake, add to a
    group, delete."""
    runtime = runtime_of(request)
    carried = form_state(posted, "/computers")
    selection = ComputerSelection(
        references=ids(posted, "computer"),
        matching=computer_query(carried, MATCH) if posted.get(ALL_MATCHING) == "1" else None,
    )
    back = ListState(
        "/computers",
        tuple((k.removeprefix("match_"), v) for k, v in carried.params if k.startswith("match_")),
    )
    action = text(posted, "action")
    if not selection.references and selection.matching is None:
        return flash.redirect(request, current, back.url(), "Choose at least one computer.", "error")
    if action == "deploy":
        if selection.matching is not None:
            matching = [(k, v) for k, v in carried.params if k.startswith(MATCH)]
            return RedirectResponse(
                f"/jobs/new?{urlencode([*matching, (ALL_MATCHING, '1')])}", status_code=303
            )
        return RedirectResponse(
            f"/jobs/new?{urlencode([('computer', i) for i in selection.references])}", 303
        )
    try:
        if action == "wake":
            notice = f"Sent {wol.wake_computers(runtime, selection)} magic packet(s)"
        elif action == "add_to_group":
            group = groups.add_computers_to_group(
                runtime, text(posted, "group") or "", selection, current.actor
            )
            notice = f"Added {group.changed:,} computer(s): group {group.name} has {group.size:,}"
        elif action == "delete":
            notice = f"Deleted {computers.delete_computers(runtime, selection, current.actor)} computer(s)"
        else:
            raise InvalidInput(f"action {action!r} must be one of deploy, wake, add_to_group, delete")
    except OcoError as exc:
        return refused(request, current, back.url(), exc)
    return flash.redirect(request, current, back.url(), notice)


@router.post("/computers")
def computer_add(request: Request, current: EditingComputers, posted: Posted) -> Response:
    """Pre-create a computer; the list again with the error if refused."""
    hostname = text(posted, "hostname")
    try:
        computer = computers.add_computer(runtime_of(request), hostname, current.actor, text(posted, "notes"))
    except OcoError as exc:
        return _computer_list(request, current, ListState("/computers", ()), exc, hostname)
    return flash.redirect(
        request, current, f"/computers/{computer.id}", f"Added computer {computer.hostname}."
    )


@router.get("/computers/{computer_id}")
def computer_page(request: Request, current: CurrentViewer, computer_id: ConsoleId) -> HTMLResponse:
    """A computer: inventory, installed packages, and its jobs a page at a time."""
    state = ListState.of(request)
    page = computers.computer_page(runtime_of(request), computer_id, state.page_request())
    return render(
        request,
        "computer.html",
        current,
        computer=page.computer,
        history=page.jobs,
        software=page.software,
        state=state,
    )


@router.get("/computers/{computer_id}/software")
def computer_software(request: Request, current: CurrentViewer, computer_id: ConsoleId) -> HTMLResponse:
    """A computer's software inventory, a page at a time, searchable and sortable."""
    state = ListState.of(request)
    listing = computers.computer_software(
        runtime_of(request), computer_id, state.get("q"), state.page_request()
    )
    return render(
        request,
        "computer_software.html",
        current,
        computer=listing.computer,
        page=listing.software,
        state=state,
        sort_keys=computers.SOFTWARE_SORTS,
    )


@router.post("/computers/{computer_id}/delete")
def computer_delete(
    request: Request, current: EditingComputers, computer_id: ConsoleId, posted: Posted
) -> Response:
    """Forget the computer with its jobs and assignments."""
    computers.delete_computer(runtime_of(request), computer_id, current.actor)
    return flash.redirect(
        request, current, "/computers", "Deleted the computer with its jobs and assignments."
    )


@router.post("/computers/wake")
def computer_wake(request: Request, current: Deploying, posted: Posted) -> Response:
    """Send magic packets to the checked computers."""
    back = text(posted, "back", "/computers")
    try:
        sent = wol.wake_computers(runtime_of(request), ids(posted, "computer"))
    except OcoError as exc:
        return refused(request, current, back, exc)
    return flash.redirect(request, current, back, f"Sent {sent} magic packet(s).")


@router.post("/assignments/remove")
def remove_assignments(request: Request, current: EditingComputers, posted: Posted) -> Response:
    """ "Remove Assignment": forget that the checked packages are installed, without uninstalling."""
    back = text(posted, "back", "/computers")
    try:
        removed = assignments.remove_assignments(
            runtime_of(request), ids(posted, "assignment"), current.actor
        )
    except OcoError as exc:
        return refused(request, current, back, exc)
    return flash.redirect(
        request, current, back, f"Removed {removed} assignment(s); nothing was uninstalled."
    )


# Packages -----------------------------------------------------------------------------------------


@router.get("/packages")
def package_list(request: Request, current: CurrentViewer) -> Response:
    """The package families whose name or versions match the search, a page at a time (or as CSV)."""
    state = ListState.of(request)
    if state.wants_csv:
        rows = packages.list_packages(runtime_of(request))
        fields = ("id", "family", "version", "payload_size", "payload_sha256", "upgrade_behavior", "created")
        return csv_response("packages.csv", fields, ([getattr(p, f) for f in fields] for p in rows))
    listing = packages.search_families(runtime_of(request), state.get("q"), state.page_request())
    return render(request, "packages.html", current, page=listing.families, state=state)


def _package_form(
    request: Request, current: Viewer, values: dict[str, str], error: OcoError | None = None
) -> HTMLResponse:
    return render(
        request,
        "package_new.html",
        current,
        status_of(error),
        values=values,
        error=error.message if error else "",
        error_field=(error.field if error else None) or "",
    )


@router.get("/packages/new")
def package_new(request: Request, current: AddingPackages, family: str = "") -> HTMLResponse:
    """The form for a new package (or a new version of `family`)."""
    defaults = {
        "family": family,
        "install_success_codes": "0",
        "uninstall_success_codes": "0",
        "install_post_action": PostAction.NONE.text,
        "uninstall_post_action": PostAction.NONE.text,
        "upgrade_behavior": UpgradeBehavior.EXPLICIT_UNINSTALL.text,
    }
    return _package_form(request, current, defaults)


@router.post("/packages/new")
def package_create(request: Request, current: AddingPackages, posted: Posted) -> Response:
    """Create a package with its upload; JSON answers for the upload script (`Accept: application/json`)."""
    values = {key: text(posted, key) for key in posted if key not in ("payload", CSRF_FIELD)}
    upload = posted.get("payload")
    wants_json = request.headers.get("accept", "").startswith("application/json")
    try:
        spec = packages.PackageSpec(
            family=values.get("family", ""),
            version=values.get("version", ""),
            install_procedure=values.get("install_procedure", ""),
            uninstall_procedure=values.get("uninstall_procedure", ""),
            install_success_codes=values.get("install_success_codes", ""),
            uninstall_success_codes=values.get("uninstall_success_codes", ""),
            install_post_action=PostAction.from_text(
                values.get("install_post_action") or PostAction.NONE.text, field="install_post_action"
            ),
            uninstall_post_action=PostAction.from_text(
                values.get("uninstall_post_action") or PostAction.NONE.text, field="uninstall_post_action"
            ),
            upgrade_behavior=UpgradeBehavior.from_text(
                values.get("upgrade_behavior") or UpgradeBehavior.EXPLICIT_UNINSTALL.text
            ),
            compatible_os=values.get("compatible_os", ""),
            compatible_os_version=values.get("compatible_os_version", ""),
            compatible_architecture=values.get("compatible_architecture", ""),
            notes=values.get("notes", ""),
            download_for_uninstall=values.get("download_for_uninstall") == "1",
        )
        store = None
        if isinstance(upload, UploadFile) and upload.filename:
            store = _upload_storer(upload)
        package = packages.create_package(runtime_of(request), spec, store, current.actor)
    except OcoError as exc:
        if wants_json:
            return JSONResponse({"error": exc.message, "field": exc.field}, status_code=status_of(exc))
        return _package_form(request, current, values, exc)
    location = f"/packages/{package.id}"
    if wants_json:
        return JSONResponse({"id": package.id, "location": location})
    return RedirectResponse(location, status_code=303)


def _upload_storer(upload: UploadFile) -> packages.PayloadStorer:
    def store(depot: Depot) -> StoredPayload:
        return depot.put_upload(upload.file, upload.filename or "payload")

    return store


@router.get("/packages/{package_id}")
def package_page(request: Request, current: CurrentViewer, package_id: ConsoleId) -> Response:
    """A package version: settings, payload, where it is installed (that list also as CSV)."""
    state = ListState.of(request)
    if state.wants_csv:
        rows = packages.export_installed_on(runtime_of(request), package_id, state.get("q"))
        return csv_response(
            f"installed-{package_id}.csv",
            INSTALLED_CSV,
            ([getattr(a, f) for f in INSTALLED_CSV] for a in rows),
        )
    return _package_page(request, current, package_id)


def _package_page(
    request: Request, current: Viewer, package_id: int, error: OcoError | None = None
) -> HTMLResponse:
    state = ListState.of(request) if error is None else ListState(f"/packages/{package_id}", ())
    page = packages.package_page(runtime_of(request), package_id, state.get("q"), state.page_request())
    message = error.message if error else ""
    return render(
        request,
        "package.html",
        current,
        status_of(error),
        package=page.package,
        other_versions=page.other_versions,
        installed=page.installed_on,
        state=state,
        error=message,
    )


@router.post("/packages/{package_id}/installed")
def installed_actions(
    request: Request,
    current: Annotated[Viewer, may_act(INSTALLED_ACTIONS)],
    package_id: ConsoleId,
    posted: Posted,
) -> Response:
    """Act on the checked computers that have the package, or all of them that match the search:
    deploy (a newer version, say), uninstall, remove the assignments."""
    runtime = runtime_of(request)
    here = f"/packages/{package_id}"
    carried = form_state(posted, here)
    matching = None
    if posted.get(ALL_MATCHING) == "1":
        matching = ComputerQuery(search=carried.get(f"{MATCH}q"), package_id=package_id)
    everywhere = InstalledSelection(package_id, matching)
    chosen = ids(posted, "assignment")
    back = ListState(
        here, tuple((k.removeprefix(MATCH), v) for k, v in carried.params if k.startswith(MATCH))
    )
    action = text(posted, "action")
    try:
        if action == "deploy":
            if matching is not None:
                query = urlencode(
                    [
                        (f"{MATCH}package", package_id),
                        (f"{MATCH}q", carried.get(f"{MATCH}q")),
                        (ALL_MATCHING, "1"),
                    ]
                )
                return RedirectResponse(f"/jobs/new?{query}", status_code=303)
            computer_ids = assignments.computers_of(runtime, chosen, everywhere)
            return RedirectResponse(
                f"/jobs/new?{urlencode([('computer', i) for i in computer_ids])}", status_code=303
            )
        if action == "uninstall":
            options = AssistantForm.from_form(posted).options(runtime.settings.zone)
            uninstall = UninstallRequest(options, assignment_ids=chosen, installed=everywhere)
            container = deployments.create_uninstall(runtime, uninstall, current.actor)
            return RedirectResponse(f"/jobs/{container.id}", status_code=303)
        if action == "remove":
            removed = assignments.remove_assignments(runtime, chosen, current.actor, installed=everywhere)
            return flash.redirect(
                request, current, back.url(), f"Removed {removed} assignment(s); nothing was uninstalled."
            )
        raise InvalidInput(f"action {action!r} must be one of deploy, uninstall, remove")
    except OcoError as exc:
        return refused(request, current, back.url(), exc)


@router.post("/packages/{package_id}/delete")
def package_delete(
    request: Request, current: DeletingPackages, package_id: ConsoleId, posted: Posted
) -> Response:
    """Delete the version; its page again with the reason if it is still needed."""
    try:
        packages.remove_package(runtime_of(request), package_id, current.actor)
    except OcoError as exc:
        return refused(request, current, f"/packages/{package_id}", exc)
    return flash.redirect(request, current, "/packages", "Deleted the package version and its payload.")
