"""The admin REST API at `/api/v1` (OpenAPI at `/api/v1/openapi.json`), over the same use cases as
the console and the CLI. Every request needs a bearer token from `oco token create`.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, File, Form, Path, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from oco.api.auth import api_actor, get_runtime
from oco.depot import DepotError
from oco.domain.errors import DomainError
from oco.domain.states import PostAction, SequenceMode, UpgradeBehavior
from oco.services import assignments, computers, deployments, packages, wol
from oco.services.errors import Conflict, NotFound, ServiceError, Unauthorized
from oco.services.runtime import Runtime
from oco.services.views import (
    assignment_view,
    computer_group_view,
    computer_view,
    container_view,
    job_view,
    package_group_view,
    package_view,
    plan_view,
)

JSONDict = dict[str, Any]
MAX_ID = 2**31 - 1
Id = Annotated[int, Path(ge=1, le=MAX_ID, description="database id")]
BodyId = Annotated[int, Field(ge=1, le=MAX_ID)]
Actor = Annotated[str, Depends(api_actor)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
router = APIRouter(dependencies=[Depends(api_actor)])
POST_ACTIONS = {"none": PostAction.NONE, "restart": PostAction.RESTART, "shutdown": PostAction.SHUTDOWN}
POST_ACTIONS["exit"] = PostAction.EXIT_AGENT


class ApiError(BaseModel):
    detail: str
    field: str | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ApiError, "description": "Invalid input"},
    401: {"model": ApiError, "description": "Missing or invalid token"},
    404: {"model": ApiError, "description": "Not found"},
    409: {"model": ApiError, "description": "Conflict"},
}


def create_api(runtime: Runtime) -> FastAPI:
    """The `/api/v1` application, mounted by the server."""
    api = FastAPI(
        title="OCO Deploy admin API",
        version="1",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        responses=ERRORS,
    )
    api.state.runtime = runtime
    api.include_router(router)
    api.add_exception_handler(ServiceError, _service_error)
    api.add_exception_handler(DomainError, _domain_error)
    api.add_exception_handler(DepotError, _domain_error)
    api.add_exception_handler(IntegrityError, _integrity_error)

    @api.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(_docs_page(api.openapi()))

    return api


def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else 400
    if isinstance(exc, Unauthorized):
        status = 401
    return JSONResponse({"detail": exc.message, "field": exc.field}, status_code=status)


def _integrity_error(_request: Request, exc: Exception) -> JSONResponse:
    # A concurrent change won a race the use case's own checks could not see.
    return JSONResponse(
        {"detail": "the change conflicts with stored data; reload and retry"}, status_code=409
    )


def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc), "field": getattr(exc, "field", None)}, status_code=400)


@contextmanager
def use_case(runtime: Runtime) -> Iterator[Session]:
    with runtime.transaction() as session:
        yield session


# Packages -----------------------------------------------------------------------------------------


@router.get("/packages", tags=["packages"])
def list_packages(runtime: RuntimeDep, family: str | None = None) -> list[JSONDict]:
    with use_case(runtime) as session:
        return [package_view(p) for p in packages.list_packages(session, family)]


@router.post("/packages", status_code=201, tags=["packages"])
def create_package(
    runtime: RuntimeDep,
    actor: Actor,
    family: Annotated[str, Form(min_length=1, max_length=255)],
    version: Annotated[str, Form(min_length=1, max_length=255)],
    install_procedure: Annotated[str, Form(min_length=1)],
    uninstall_procedure: Annotated[str, Form()] = "",
    install_success_codes: Annotated[str, Form(max_length=255)] = "0",
    uninstall_success_codes: Annotated[str, Form(max_length=255)] = "0",
    install_post_action: Annotated[Literal["none", "restart", "shutdown", "exit"], Form()] = "none",
    uninstall_post_action: Annotated[Literal["none", "restart", "shutdown", "exit"], Form()] = "none",
    upgrade_behavior: Annotated[UpgradeBehavior, Form()] = UpgradeBehavior.EXPLICIT_UNINSTALL,
    compatible_os: Annotated[str, Form(max_length=255)] = "",
    compatible_os_version: Annotated[str, Form(max_length=255)] = "",
    compatible_architecture: Annotated[str, Form(max_length=255)] = "",
    notes: Annotated[str, Form()] = "",
    payload: Annotated[UploadFile | None, File(description="zip, or any file (zipped)")] = None,
) -> JSONDict:
    """Create a package version, with an optional payload upload (multipart/form-data)."""
    spec = packages.PackageSpec(
        family=family,
        version=version,
        install_procedure=install_procedure,
        uninstall_procedure=uninstall_procedure,
        install_success_codes=install_success_codes,
        uninstall_success_codes=uninstall_success_codes,
        install_post_action=POST_ACTIONS[install_post_action],
        uninstall_post_action=POST_ACTIONS[uninstall_post_action],
        upgrade_behavior=upgrade_behavior,
        compatible_os=compatible_os,
        compatible_os_version=compatible_os_version,
        compatible_architecture=compatible_architecture,
        notes=notes,
    )
    upload = payload if payload is not None and payload.filename else None
    store = (lambda depot: depot.put_upload(upload.file, upload.filename or "payload")) if upload else None
    package_id = packages.create_package(runtime, spec, store, actor)
    with use_case(runtime) as session:
        return package_view(packages.get_package(session, package_id))


@router.get("/packages/{package_id}", tags=["packages"])
def show_package(runtime: RuntimeDep, package_id: Id) -> JSONDict:
    """A package with the computers that have it installed."""
    with use_case(runtime) as session:
        view = package_view(packages.get_package(session, package_id))
        view["installed_on"] = [assignment_view(a) for a in packages.installed_on(session, package_id)]
        return view


@router.delete("/packages/{package_id}", status_code=204, tags=["packages"])
def delete_package(runtime: RuntimeDep, actor: Actor, package_id: Id) -> None:
    packages.remove_package(runtime, package_id, actor)


# Computers ----------------------------------------------------------------------------------------


class NewComputer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hostname: str = Field(min_length=1, max_length=255)
    notes: str = ""


class ComputerIds(BaseModel):
    model_config = ConfigDict(extra="forbid")
    computer_ids: list[BodyId] = Field(min_length=1)


@router.get("/computers", tags=["computers"])
def list_computers(runtime: RuntimeDep) -> list[JSONDict]:
    with use_case(runtime) as session:
        return [computer_view(c) for c in computers.list_computers(session)]


@router.post("/computers", status_code=201, tags=["computers"])
def add_computer(runtime: RuntimeDep, actor: Actor, body: NewComputer) -> JSONDict:
    """Pre-create a computer so its agent can register with the registration key."""
    with use_case(runtime) as session:
        return computer_view(computers.add_computer(session, body.hostname, actor, body.notes))


@router.get("/computers/{computer_id}", tags=["computers"])
def show_computer(runtime: RuntimeDep, computer_id: Id) -> JSONDict:
    with use_case(runtime) as session:
        view = computer_view(computers.get_computer(session, computer_id), detail=True)
        view["jobs"] = [job_view(j) for j in computers.job_history(session, computer_id)]
        return view


@router.delete("/computers/{computer_id}", status_code=204, tags=["computers"])
def delete_computer(runtime: RuntimeDep, actor: Actor, computer_id: Id) -> None:
    with use_case(runtime) as session:
        computers.delete_computer(session, computer_id, actor)


@router.post("/computers/wake", tags=["computers"])
def wake(runtime: RuntimeDep, body: ComputerIds) -> JSONDict:
    """Send Wake-on-LAN magic packets to the computers now."""
    with use_case(runtime) as session:
        for computer_id in body.computer_ids:
            computers.get_computer(session, computer_id)
        return {"packets_sent": wol.wake_computers(session, runtime.settings, body.computer_ids)}


# Groups -------------------------------------------------------------------------------------------


class NewGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)


class Members(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[BodyId] = Field(min_length=1, description="Computer ids or package ids, in order.")


@router.get("/computer-groups", tags=["groups"])
def list_computer_groups(runtime: RuntimeDep) -> list[JSONDict]:
    with use_case(runtime) as session:
        return [computer_group_view(g) for g in computers.list_computer_groups(session)]


@router.post("/computer-groups", status_code=201, tags=["groups"])
def add_computer_group(runtime: RuntimeDep, actor: Actor, body: NewGroup) -> JSONDict:
    with use_case(runtime) as session:
        return computer_group_view(computers.add_computer_group(session, body.name, actor))


@router.post("/computer-groups/{group_id}/members", tags=["groups"])
def add_computer_group_members(runtime: RuntimeDep, actor: Actor, group_id: Id, body: Members) -> JSONDict:
    with use_case(runtime) as session:
        group = computers.find_computer_group(session, str(group_id))
        members = [computers.get_computer(session, i) for i in body.ids]
        computers.add_computers_to_group(session, group, members, actor)
        session.flush()
        return computer_group_view(computers.find_computer_group(session, str(group_id)))


@router.delete("/computer-groups/{group_id}/members/{computer_id}", tags=["groups"])
def remove_computer_group_member(
    runtime: RuntimeDep, actor: Actor, group_id: Id, computer_id: Id
) -> JSONDict:
    with use_case(runtime) as session:
        group = computers.find_computer_group(session, str(group_id))
        if computer_id not in {member.computer_id for member in group.members}:
            raise NotFound(f"computer {computer_id} is not in group {group.name!r}")
        computers.remove_computers_from_group(
            session, group, [computers.get_computer(session, computer_id)], actor
        )
        session.flush()
        return computer_group_view(computers.find_computer_group(session, str(group_id)))


@router.delete("/computer-groups/{group_id}", status_code=204, tags=["groups"])
def delete_computer_group(runtime: RuntimeDep, actor: Actor, group_id: Id) -> None:
    with use_case(runtime) as session:
        computers.delete_computer_group(session, computers.find_computer_group(session, str(group_id)), actor)


@router.get("/package-groups", tags=["groups"])
def list_package_groups(runtime: RuntimeDep) -> list[JSONDict]:
    with use_case(runtime) as session:
        return [package_group_view(g) for g in computers.list_package_groups(session)]


@router.post("/package-groups", status_code=201, tags=["groups"])
def add_package_group(runtime: RuntimeDep, actor: Actor, body: NewGroup) -> JSONDict:
    with use_case(runtime) as session:
        return package_group_view(computers.add_package_group(session, body.name, actor))


@router.post("/package-groups/{group_id}/members", tags=["groups"])
def add_package_group_members(runtime: RuntimeDep, actor: Actor, group_id: Id, body: Members) -> JSONDict:
    with use_case(runtime) as session:
        group = computers.find_package_group(session, str(group_id))
        members = [packages.get_package(session, i) for i in body.ids]
        computers.add_packages_to_group(session, group, members, actor)
        session.flush()
        return package_group_view(computers.find_package_group(session, str(group_id)))


@router.delete("/package-groups/{group_id}/members/{package_id}", tags=["groups"])
def remove_package_group_member(runtime: RuntimeDep, actor: Actor, group_id: Id, package_id: Id) -> JSONDict:
    with use_case(runtime) as session:
        group = computers.find_package_group(session, str(group_id))
        if package_id not in {member.package_id for member in group.members}:
            raise NotFound(f"package {package_id} is not in group {group.name!r}")
        computers.remove_packages_from_group(
            session, group, [packages.get_package(session, package_id)], actor
        )
        session.flush()
        return package_group_view(computers.find_package_group(session, str(group_id)))


@router.put("/package-groups/{group_id}/order", tags=["groups"])
def order_package_group(runtime: RuntimeDep, actor: Actor, group_id: Id, body: Members) -> JSONDict:
    """Deploy the group's packages in this order: `ids` names each member once."""
    with use_case(runtime) as session:
        group = computers.find_package_group(session, str(group_id))
        computers.order_package_group(session, group, body.ids, actor)
        session.flush()
        return package_group_view(computers.find_package_group(session, str(group_id)))


@router.delete("/package-groups/{group_id}", status_code=204, tags=["groups"])
def delete_package_group(runtime: RuntimeDep, actor: Actor, group_id: Id) -> None:
    with use_case(runtime) as session:
        computers.delete_package_group(session, computers.find_package_group(session, str(group_id)), actor)


# Assignments --------------------------------------------------------------------------------------


class NewAssignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    computer_id: BodyId
    package_id: BodyId


@router.post("/assignments", status_code=201, tags=["assignments"])
def add_assignment(runtime: RuntimeDep, actor: Actor, body: NewAssignment) -> JSONDict:
    """Record that a package is installed on a computer."""
    with use_case(runtime) as session:
        computer = computers.get_computer(session, body.computer_id)
        package = packages.get_package(session, body.package_id)
        assignment = assignments.add_assignment(session, computer, package, actor)
        return {"id": assignment.id, "computer_id": computer.id, "package_id": package.id}


@router.delete("/assignments/{assignment_id}", status_code=204, tags=["assignments"])
def remove_assignment(runtime: RuntimeDep, actor: Actor, assignment_id: Id) -> None:
    """Remove an assignment without uninstalling anything."""
    with use_case(runtime) as session:
        assignments.remove_assignments(session, [assignment_id], actor)


# Deployments --------------------------------------------------------------------------------------


class ContainerFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    description: str = ""
    notes: str = ""
    start: datetime | None = Field(None, description="ISO 8601 with time zone; default now")
    end: datetime | None = None
    wol: bool = False
    shutdown_waked: bool = False
    priority: int = Field(0, ge=-100, le=100)
    restart_timeout: int = Field(20, ge=-1_000_000, le=1_000_000, description="minutes; negative: never")
    sequence_mode: Literal["ignore", "abort"] = "ignore"
    agent_ip_ranges: str = ""

    def options(self) -> deployments.ContainerOptions:
        return deployments.ContainerOptions(
            name=self.name,
            description=self.description,
            notes=self.notes,
            start=_aware(self.start),
            end=_aware(self.end),
            wol=self.wol,
            shutdown_waked=self.shutdown_waked,
            priority=self.priority,
            restart_timeout=self.restart_timeout,
            sequence_mode=_sequence_mode(self.sequence_mode),
            agent_ip_ranges=self.agent_ip_ranges,
        )


class NewDeployment(ContainerFields):
    computer_ids: list[BodyId] = []
    computer_group_ids: list[BodyId] = []
    package_ids: list[BodyId] = []
    package_group_ids: list[BodyId] = []
    force: bool = False

    def request(self) -> deployments.DeploymentRequest:
        targets = deployments.Targets(
            computer_ids=self.computer_ids,
            computer_group_ids=self.computer_group_ids,
            package_ids=self.package_ids,
            package_group_ids=self.package_group_ids,
        )
        return deployments.DeploymentRequest(options=self.options(), targets=targets, force=self.force)


class NewUninstall(ContainerFields):
    name: str = Field("", max_length=255, description="default: 'Uninstall <family>'")  # type: ignore[assignment]
    assignment_ids: list[BodyId] = Field(min_length=1)


class ContainerChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=255)
    description: str | None = None
    notes: str | None = None
    enabled: bool | None = None
    start: datetime | None = None
    end: datetime | None = None
    clear_end: bool = False
    priority: int | None = Field(None, ge=-100, le=100)
    restart_timeout: int | None = Field(None, ge=-1_000_000, le=1_000_000)
    sequence_mode: Literal["ignore", "abort"] | None = None
    agent_ip_ranges: str | None = None


class Renew(BaseModel):
    model_config = ConfigDict(extra="forbid")
    new_container: bool = False


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sequence_mode(value: str) -> SequenceMode:
    return SequenceMode.ABORT_AFTER_FAILED if value == "abort" else SequenceMode.IGNORE_FAILED


def _container(runtime: Runtime, session: Session, container_id: int) -> JSONDict:
    summary = deployments.container_summary(session, container_id, runtime.now())
    view = container_view(summary, runtime.settings)
    view["jobs"] = [job_view(job) for job in summary.container.jobs]
    return view


@router.get("/deployments", tags=["deployments"])
def list_deployments(runtime: RuntimeDep) -> list[JSONDict]:
    """Job containers with status and progress, newest first."""
    with use_case(runtime) as session:
        return [
            container_view(s, runtime.settings) for s in deployments.list_containers(session, runtime.now())
        ]


@router.post("/deployments/preview", tags=["deployments"])
def preview_deployment(runtime: RuntimeDep, body: NewDeployment) -> JSONDict:
    """The jobs a deployment would create, with reasons for skips; nothing is written."""
    with use_case(runtime) as session:
        return plan_view(deployments.preview(session, runtime.settings, body.request(), runtime.now()))


@router.post("/deployments", status_code=201, tags=["deployments"])
def create_deployment(runtime: RuntimeDep, actor: Actor, body: NewDeployment) -> JSONDict:
    with use_case(runtime) as session:
        container = deployments.create_deployment(
            session, runtime.settings, body.request(), actor, runtime.now()
        )
        session.flush()
        return _container(runtime, session, container.id)


@router.post("/uninstall", status_code=201, tags=["deployments"])
def create_uninstall(runtime: RuntimeDep, actor: Actor, body: NewUninstall) -> JSONDict:
    """Uninstall jobs for selected assignments."""
    with use_case(runtime) as session:
        fields = body.model_copy(
            update={"name": body.name or deployments.default_uninstall_name(session, body.assignment_ids)}
        )
        request = deployments.UninstallRequest(options=fields.options(), assignment_ids=body.assignment_ids)
        container = deployments.create_uninstall(session, runtime.settings, request, actor, runtime.now())
        session.flush()
        return _container(runtime, session, container.id)


@router.get("/deployments/{container_id}", tags=["deployments"])
def show_deployment(runtime: RuntimeDep, container_id: Id) -> JSONDict:
    with use_case(runtime) as session:
        return _container(runtime, session, container_id)


@router.patch("/deployments/{container_id}", tags=["deployments"])
def edit_deployment(runtime: RuntimeDep, actor: Actor, container_id: Id, body: ContainerChanges) -> JSONDict:
    edit = deployments.ContainerEdit(
        **body.model_dump(exclude={"sequence_mode", "start", "end"}),
        start=_aware(body.start),
        end=_aware(body.end),
        sequence_mode=_sequence_mode(body.sequence_mode) if body.sequence_mode else None,
    )
    with use_case(runtime) as session:
        deployments.edit_container(session, container_id, edit, actor)
        session.flush()
        return _container(runtime, session, container_id)


@router.post("/deployments/{container_id}/renew", tags=["deployments"])
def renew_deployment(runtime: RuntimeDep, actor: Actor, container_id: Id, body: Renew) -> JSONDict:
    """Run the failed jobs again, in place or in a new container; answers with that container."""
    with use_case(runtime) as session:
        target = deployments.renew_failed(
            session, container_id, actor, runtime.now(), into_new_container=body.new_container
        )
        session.flush()
        return _container(runtime, session, target.id)


@router.delete("/deployments/{container_id}", status_code=204, tags=["deployments"])
def delete_deployment(runtime: RuntimeDep, actor: Actor, container_id: Id) -> None:
    with use_case(runtime) as session:
        deployments.delete_container(session, container_id, actor)


@router.delete("/jobs/{job_id}", status_code=204, tags=["deployments"])
def delete_job(runtime: RuntimeDep, actor: Actor, job_id: Id) -> None:
    with use_case(runtime) as session:
        deployments.delete_job(session, job_id, actor)


# Documentation page -------------------------------------------------------------------------------


def _docs_page(spec: JSONDict) -> str:
    """A plain HTML list of the operations (no third-party script): the spec is the reference."""
    rows = []
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            summary = operation.get("summary", "")
            description = (operation.get("description") or "").split("\n")[0]
            rows.append(
                f"<tr><td><code>{html.escape(method.upper())}</code></td><td><code>/api/v1{html.escape(path)}"
                f"</code></td><td>{html.escape(summary)}</td><td>{html.escape(description)}</td></tr>"
            )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>OCO Deploy admin API</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em}"
        "td{padding:.2em .8em;border-bottom:1px solid #ddd}"
        "</style></head><body><h1>OCO Deploy admin API</h1>"
        "<p>Authenticate with <code>Authorization: Bearer &lt;token&gt;</code> (create one with "
        "<code>oco token create --name NAME</code>). Machine-readable specification: "
        "<a href='/api/v1/openapi.json'>/api/v1/openapi.json</a>.</p>"
        f"<table>{''.join(rows)}</table></body></html>"
    )
