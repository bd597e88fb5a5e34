"""Computers and packages in the console: lists, details, installed packages, uploads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from oco.domain.errors import DomainError
from oco.domain.states import PostAction, UpgradeBehavior
from oco.services import assignments, computers, packages, wol
from oco.services.errors import ServiceError
from oco.web.render import POST_ACTION_LABELS, ids, render, text
from oco.web.session import Viewer, checked_form, runtime_of, viewer

router = APIRouter(include_in_schema=False)
CurrentViewer = Annotated[Viewer, Depends(viewer)]
UPGRADE_LABELS = {
    UpgradeBehavior.EXPLICIT_UNINSTALL: "Automatically create uninstall jobs",
    UpgradeBehavior.INSTALLER_REMOVES: "Installer removes other versions",
    UpgradeBehavior.KEEP: "Keep other versions",
}


# Computers ----------------------------------------------------------------------------------------


@router.get("/computers")
def computer_list(request: Request, current: CurrentViewer, error: str = "") -> HTMLResponse:
    runtime = runtime_of(request)
    with runtime.transaction() as session:
        rows = computers.list_computers(session)
    online = {
        c.id for c in rows if computers.is_online(c, runtime.now(), runtime.settings.computer_offline_seconds)
    }
    return render(request, "computers.html", current, computers=rows, online=online, error=error, hostname="")


@router.post("/computers")
async def computer_add(request: Request, current: CurrentViewer) -> Response:
    posted = await checked_form(request, current)
    runtime = runtime_of(request)
    hostname = text(posted, "hostname")
    try:
        with runtime.transaction() as session:
            computer = computers.add_computer(session, hostname, current.actor, text(posted, "notes"))
    except ServiceError as exc:
        with runtime.transaction() as session:
            rows = computers.list_computers(session)
        return render(
            request,
            "computers.html",
            current,
            400,
            computers=rows,
            online=set(),
            error=str(exc),
            hostname=hostname,
        )
    return RedirectResponse(f"/computers/{computer.id}", status_code=303)


@router.get("/computers/{computer_id}")
def computer_page(
    request: Request, current: CurrentViewer, computer_id: int, error: str = ""
) -> HTMLResponse:
    runtime = runtime_of(request)
    try:
        with runtime.transaction() as session:
            computer = computers.get_computer(session, computer_id)
            history = computers.job_history(session, computer_id)
    except ServiceError as exc:
        return render(
            request, "error.html", current, 404, title="Not found", message=str(exc), back="/computers"
        )
    online = computers.is_online(computer, runtime.now(), runtime.settings.computer_offline_seconds)
    installed = sorted(computer.assignments, key=lambda a: a.package.display_name)
    return render(
        request,
        "computer.html",
        current,
        computer=computer,
        installed=installed,
        history=history,
        online=online,
        error=error,
    )


@router.post("/computers/{computer_id}/delete")
async def computer_delete(request: Request, current: CurrentViewer, computer_id: int) -> Response:
    await checked_form(request, current)
    with runtime_of(request).transaction() as session:
        computers.delete_computer(session, computer_id, current.actor)
    return RedirectResponse("/computers", status_code=303)


@router.post("/computers/wake")
async def computer_wake(request: Request, current: CurrentViewer) -> Response:
    posted = await checked_form(request, current)
    runtime = runtime_of(request)
    with runtime.transaction() as session:
        sent = wol.wake_computers(session, runtime.settings, ids(posted, "computer"))
    back = text(posted, "back", "/computers")
    return RedirectResponse(f"{back}?notice=Sent+{sent}+magic+packet(s)", status_code=303)


@router.post("/assignments/remove")
async def remove_assignments(request: Request, current: CurrentViewer) -> Response:
    """ "Remove Assignment": forget that the checked packages are installed, without uninstalling."""
    posted = await checked_form(request, current)
    back = text(posted, "back", "/computers")
    try:
        with runtime_of(request).transaction() as session:
            assignments.remove_assignments(session, ids(posted, "assignment"), current.actor)
    except ServiceError as exc:
        return render(request, "error.html", current, 400, title="Cannot remove", message=str(exc), back=back)
    return RedirectResponse(back, status_code=303)


# Packages -----------------------------------------------------------------------------------------


@router.get("/packages")
def package_list(request: Request, current: CurrentViewer) -> HTMLResponse:
    with runtime_of(request).transaction() as session:
        families = packages.list_families(session)
    return render(request, "packages.html", current, families=families)


def _package_form(
    request: Request, current: Viewer, values: dict[str, Any], error: Exception | None = None
) -> HTMLResponse:
    return render(
        request,
        "package_new.html",
        current,
        400 if error else 200,
        values=values,
        post_actions=POST_ACTION_LABELS,
        upgrade_labels=UPGRADE_LABELS,
        error=str(error) if error else "",
        error_field=getattr(error, "field", None) or "",
    )


@router.get("/packages/new")
def package_new(request: Request, current: CurrentViewer, family: str = "") -> HTMLResponse:
    return _package_form(
        request, current, {"family": family, "install_success_codes": "0", "uninstall_success_codes": "0"}
    )


@router.post("/packages/new")
async def package_create(request: Request, current: CurrentViewer) -> Response:
    posted = await checked_form(request, current)
    values = {key: text(posted, key) for key in posted if key not in ("payload", "csrf_token")}
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
            install_post_action=PostAction(int(values.get("install_post_action") or 0)),
            uninstall_post_action=PostAction(int(values.get("uninstall_post_action") or 0)),
            upgrade_behavior=UpgradeBehavior(
                values.get("upgrade_behavior") or UpgradeBehavior.EXPLICIT_UNINSTALL
            ),
            compatible_os=values.get("compatible_os", ""),
            compatible_os_version=values.get("compatible_os_version", ""),
            compatible_architecture=values.get("compatible_architecture", ""),
            notes=values.get("notes", ""),
        )
        store = None
        if isinstance(upload, UploadFile) and upload.filename:
            store = lambda depot: depot.put_upload(upload.file, upload.filename or "payload")  # noqa: E731
        package_id = packages.create_package(runtime_of(request), spec, store, current.actor)
    except (ServiceError, DomainError, ValueError) as exc:
        if wants_json:
            return JSONResponse({"error": str(exc), "field": getattr(exc, "field", None)}, status_code=400)
        return _package_form(request, current, values, exc)
    if wants_json:
        return JSONResponse({"id": package_id, "location": f"/packages/{package_id}"})
    return RedirectResponse(f"/packages/{package_id}", status_code=303)


@router.get("/packages/{package_id}")
def package_page(request: Request, current: CurrentViewer, package_id: int, error: str = "") -> HTMLResponse:
    try:
        with runtime_of(request).transaction() as session:
            package = packages.get_package(session, package_id)
            installed = packages.installed_on(session, package_id)
            siblings = [p for p in package.family.packages if p.id != package_id]
    except ServiceError as exc:
        return render(
            request, "error.html", current, 404, title="Not found", message=str(exc), back="/packages"
        )
    return render(
        request,
        "package.html",
        current,
        package=package,
        installed=installed,
        siblings=siblings,
        error=error,
        upgrade_labels=UPGRADE_LABELS,
    )


@router.post("/packages/{package_id}/delete")
async def package_delete(request: Request, current: CurrentViewer, package_id: int) -> Response:
    await checked_form(request, current)
    try:
        packages.remove_package(runtime_of(request), package_id, current.actor)
    except ServiceError as exc:
        return package_page(request, current, package_id, error=str(exc))
    return RedirectResponse("/packages", status_code=303)
