"""`/packages` and `/assignments`: package versions with their payloads, and what is installed where."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from oco.api.admin.schemas import Actor, Id, NewAssignment, NewPackage, RuntimeDep
from oco.api.auth import allow
from oco.domain.roles import Permission
from oco.services import assignments, packages
from oco.services.views import AssignmentPublic, PackageDetailPublic, PackagePublic

router = APIRouter(dependencies=[allow(Permission.VIEW)])


@router.get("/packages", tags=["packages"])
def list_packages(runtime: RuntimeDep, family: str | None = None) -> list[PackagePublic]:
    """Every package version, by family then age; `family` keeps one family's."""
    return packages.list_packages(runtime, family)


@router.post("/packages", status_code=201, tags=["packages"], dependencies=[allow(Permission.ADD_PACKAGES)])
def create_package(
    runtime: RuntimeDep,
    actor: Actor,
    form: Annotated[NewPackage, Form()],
    payload: Annotated[UploadFile | None, File(description="zip, or any file (zipped)")] = None,
) -> PackagePublic:
    """Create a package version, with an optional payload upload (multipart/form-data)."""
    upload = payload if payload is not None and payload.filename else None
    store = (lambda depot: depot.put_upload(upload.file, upload.filename or "payload")) if upload else None
    return packages.create_package(runtime, form.spec(), store, actor)


@router.get("/packages/{package_id}", tags=["packages"])
def show_package(runtime: RuntimeDep, package_id: Id) -> PackageDetailPublic:
    """A package with the computers that have it installed."""
    return packages.package_detail(runtime, package_id)


@router.delete(
    "/packages/{package_id}",
    status_code=204,
    tags=["packages"],
    dependencies=[allow(Permission.DELETE_PACKAGES)],
)
def delete_package(runtime: RuntimeDep, actor: Actor, package_id: Id) -> None:
    """Delete a package version installed nowhere and needed by no pending job."""
    packages.remove_package(runtime, package_id, actor)


@router.post(
    "/assignments", status_code=201, tags=["assignments"], dependencies=[allow(Permission.EDIT_COMPUTERS)]
)
def add_assignment(runtime: RuntimeDep, actor: Actor, body: NewAssignment) -> AssignmentPublic:
    """Record that a package is installed on a computer."""
    return assignments.add_assignment(runtime, body.computer_id, body.package_id, actor)


@router.delete(
    "/assignments/{assignment_id}",
    status_code=204,
    tags=["assignments"],
    dependencies=[allow(Permission.EDIT_COMPUTERS)],
)
def remove_assignment(runtime: RuntimeDep, actor: Actor, assignment_id: Id) -> None:
    """Remove an assignment without uninstalling anything."""
    assignments.remove_assignments(runtime, [assignment_id], actor)
