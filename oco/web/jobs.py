"""The Jobs page: job containers, the Deployment Assistant with its preview, container detail."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from oco.db.models import Job
from oco.domain.errors import DomainError
from oco.domain.ipranges import parse_ip_ranges
from oco.domain.planning import Plan
from oco.domain.states import ContainerStatus, JobState, SequenceMode
from oco.services import computers, deployments, packages
from oco.services.errors import ServiceError
from oco.services.views import container_view, job_view, plan_view
from oco.web.render import ids, render, text
from oco.web.session import Viewer, checked_form, runtime_of, viewer

router = APIRouter(include_in_schema=False)
CurrentViewer = Annotated[Viewer, Depends(viewer)]
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"


@router.get("/jobs")
def job_containers(request: Request, current: CurrentViewer) -> HTMLResponse:
    runtime = runtime_of(request)
    with runtime.transaction() as session:
        summaries = deployments.list_containers(session, runtime.now())
    return render(request, "jobs.html", current, summaries=summaries, Status=ContainerStatus)


# The Deployment Assistant -------------------------------------------------------------------------


@dataclass
class AssistantForm:
    """What the assistant's fields hold, kept across previews and errors."""

    name: str = ""
    description: str = ""
    computer_ids: list[int] = field(default_factory=list)
    computer_group_ids: list[int] = field(default_factory=list)
    package_ids: list[int] = field(default_factory=list)
    package_group_ids: list[int] = field(default_factory=list)
    start: str = ""
    end: str = ""
    wol: bool = False
    shutdown_waked: bool = False
    priority: str = "0"
    restart_timeout: str = "20"
    sequence_mode: str = "ignore"
    agent_ip_ranges: str = ""
    force: bool = False

    @classmethod
    def from_form(cls, form: FormData) -> AssistantForm:
        return cls(
            name=text(form, "name"),
            description=text(form, "description"),
            computer_ids=ids(form, "computer"),
            computer_group_ids=ids(form, "computer_group"),
            package_ids=ids(form, "package"),
            package_group_ids=ids(form, "package_group"),
            start=text(form, "start"),
            end=text(form, "end"),
            wol=form.get("wol") == "on",
            shutdown_waked=form.get("shutdown_waked") == "on",
            priority=text(form, "priority", "0"),
            restart_timeout=text(form, "restart_timeout", "20"),
            sequence_mode=text(form, "sequence_mode", "ignore"),
            agent_ip_ranges=text(form, "agent_ip_ranges"),
            force=form.get("force") == "on",
        )

    def request(self, zone: Any) -> deployments.DeploymentRequest:
        options = deployments.ContainerOptions(
            name=self.name,
            description=self.description,
            start=_parse_local(self.start, zone, "start"),
            end=_parse_local(self.end, zone, "end"),
            wol=self.wol,
            shutdown_waked=self.shutdown_waked,
            priority=_integer(self.priority, "priority"),
            restart_timeout=_integer(self.restart_timeout, "restart_timeout"),
            sequence_mode=SequenceMode.ABORT_AFTER_FAILED
            if self.sequence_mode == "abort"
            else SequenceMode.IGNORE_FAILED,
            agent_ip_ranges=self.agent_ip_ranges,
        )
        targets = deployments.Targets(
            computer_ids=self.computer_ids,
            computer_group_ids=self.computer_group_ids,
            package_ids=self.package_ids,
            package_group_ids=self.package_group_ids,
        )
        return deployments.DeploymentRequest(options=options, targets=targets, force=self.force)


class FieldError(ServiceError):
    pass


def _parse_local(value: str, zone: Any, name: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        parsed = datetime.strptime(value.strip(), LOCAL_FORMAT)
    except ValueError:
        raise FieldError(f"{value!r} is not a date and time", field=name) from None
    return parsed.replace(tzinfo=zone).astimezone(UTC)


def _integer(value: str, name: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise FieldError(f"{value!r} is not a whole number", field=name) from None


def _assistant(
    request: Request,
    current: Viewer,
    form: AssistantForm,
    plan: Plan | None = None,
    error: Exception | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    runtime = runtime_of(request)
    with runtime.transaction() as session:
        all_computers = computers.list_computers(session)
        computer_groups = computers.list_computer_groups(session)
        families = packages.list_families(session)
        package_groups = computers.list_package_groups(session)
        online = {
            c.id
            for c in all_computers
            if computers.is_online(c, runtime.now(), runtime.settings.computer_offline_seconds)
        }
    return render(
        request,
        "assistant.html",
        current,
        status_code=status_code,
        form=form,
        computers=all_computers,
        online=online,
        computer_groups=computer_groups,
        families=families,
        package_groups=package_groups,
        plan=plan_view(plan) if plan else None,
        error=str(error) if error else "",
        error_field=getattr(error, "field", None) or "",
    )


@router.get("/jobs/new")
def assistant(request: Request, current: CurrentViewer) -> HTMLResponse:
    """The assistant, preselected from the query (`computer`, `package`, … repeated)."""
    params = request.query_params
    form = AssistantForm(
        computer_ids=[int(v) for v in params.getlist("computer") if v.isdigit()],
        computer_group_ids=[int(v) for v in params.getlist("computer_group") if v.isdigit()],
        package_ids=[int(v) for v in params.getlist("package") if v.isdigit()],
        package_group_ids=[int(v) for v in params.getlist("package_group") if v.isdigit()],
        name=params.get("name", ""),
    )
    return _assistant(request, current, form)


@router.post("/jobs/new")
async def assistant_submit(request: Request, current: CurrentViewer) -> Response:
    """`action=preview` shows the jobs that would be created; `action=create` creates them."""
    posted = await checked_form(request, current)
    form = AssistantForm.from_form(posted)
    runtime = runtime_of(request)
    creating = posted.get("action") == "create"
    try:
        deployment = form.request(runtime.settings.zone)
        with runtime.transaction() as session:
            if not creating:
                plan = deployments.preview(session, runtime.settings, deployment, runtime.now())
            else:
                container_id = deployments.create_deployment(
                    session, runtime.settings, deployment, current.actor, runtime.now()
                ).id
    except (ServiceError, DomainError) as exc:
        return _assistant(request, current, form, error=exc, status_code=400)
    if not creating:
        return _assistant(request, current, form, plan=plan)
    return RedirectResponse(f"/jobs/{container_id}", status_code=303)


@router.get("/jobs/validate-ip-ranges")
def validate_ip_ranges(current: CurrentViewer, value: str = "") -> JSONResponse:
    """Inline validation for the assistant's IP range field."""
    try:
        parse_ip_ranges(value)
    except DomainError as exc:
        return JSONResponse({"ok": False, "message": str(exc)})
    return JSONResponse({"ok": True, "message": ""})


@router.post("/jobs/uninstall")
async def uninstall(request: Request, current: CurrentViewer) -> Response:
    """ "Uninstall Package" on a computer or package page: uninstall jobs for the checked assignments."""
    posted = await checked_form(request, current)
    runtime = runtime_of(request)
    selected = ids(posted, "assignment")
    back = text(posted, "back", "/jobs")
    try:
        with runtime.transaction() as session:
            options = deployments.ContainerOptions(name=deployments.default_uninstall_name(session, selected))
            request_ = deployments.UninstallRequest(options=options, assignment_ids=selected)
            container = deployments.create_uninstall(
                session, runtime.settings, request_, current.actor, runtime.now()
            )
    except (ServiceError, DomainError) as exc:
        return render(
            request, "error.html", current, 400, title="Cannot uninstall", message=str(exc), back=back
        )
    return RedirectResponse(f"/jobs/{container.id}", status_code=303)


# A job container ----------------------------------------------------------------------------------


def _container_data(request: Request, container_id: int) -> dict[str, Any]:
    """The container view plus times rendered in the console's time zone."""
    runtime = runtime_of(request)
    zone = runtime.settings.zone
    with runtime.transaction() as session:
        summary = deployments.container_summary(session, container_id, runtime.now())
        view = container_view(summary, runtime.settings)
        view["jobs"] = [job_view(job) for job in summary.container.jobs]
        container = summary.container

    def shown(value: datetime | None, pattern: str = "%Y-%m-%d %H:%M:%S") -> str:
        return value.astimezone(zone).strftime(pattern) if value else ""

    view["start_display"] = shown(container.start_time, "%Y-%m-%d %H:%M")
    view["end_display"] = shown(container.end_time, "%Y-%m-%d %H:%M")
    view["start_local"] = shown(container.start_time, LOCAL_FORMAT)
    view["end_local"] = shown(container.end_time, LOCAL_FORMAT)
    for job in view["jobs"]:
        job["final"] = JobState(job["state_code"]).is_final
        for key in ("download_started", "execution_started", "execution_finished"):
            job[f"{key}_display"] = shown(datetime.fromisoformat(job[key])) if job[key] else ""
    return view


@router.get("/jobs/{container_id}")
def container_page(request: Request, current: CurrentViewer, container_id: int) -> HTMLResponse:
    try:
        view = _container_data(request, container_id)
    except ServiceError as exc:
        return render(request, "error.html", current, 404, title="Not found", message=str(exc), back="/jobs")
    return render(request, "container.html", current, c=view, error="", error_field="")


@router.get("/jobs/{container_id}/state")
def container_state(request: Request, current: CurrentViewer, container_id: int) -> JSONResponse:
    """What the container page polls to update itself without reloading.

    Output travels only for jobs still running; a finished job's output is fetched once (`…/output`).
    """
    try:
        view = _container_data(request, container_id)
    except ServiceError as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)
    for job in view["jobs"]:
        if job["final"]:
            job["message"] = None
    return JSONResponse(view)


@router.get("/jobs/{container_id}/jobs/{job_id}/output")
def job_output(request: Request, current: CurrentViewer, container_id: int, job_id: int) -> Response:
    with runtime_of(request).transaction() as session:
        job = session.get(Job, job_id)
        if job is None or job.container_id != container_id:
            return PlainTextResponse("no such job", status_code=404)
        return PlainTextResponse(job.message)


@router.post("/jobs/{container_id}/edit")
async def edit_container(request: Request, current: CurrentViewer, container_id: int) -> Response:
    posted = await checked_form(request, current)
    runtime = runtime_of(request)
    zone = runtime.settings.zone
    try:
        end = text(posted, "end")
        edit = deployments.ContainerEdit(
            name=text(posted, "name"),
            notes=text(posted, "notes"),
            enabled=posted.get("enabled") == "on",
            start=_parse_local(text(posted, "start"), zone, "start"),
            end=_parse_local(end, zone, "end"),
            clear_end=not end.strip(),
            priority=_integer(text(posted, "priority", "0"), "priority"),
            sequence_mode=SequenceMode.ABORT_AFTER_FAILED
            if text(posted, "sequence_mode") == "abort"
            else SequenceMode.IGNORE_FAILED,
            agent_ip_ranges=text(posted, "agent_ip_ranges"),
        )
        with runtime.transaction() as session:
            deployments.edit_container(session, container_id, edit, current.actor)
    except (ServiceError, DomainError) as exc:
        view = _container_data(request, container_id)
        return render(
            request,
            "container.html",
            current,
            400,
            c=view,
            error=str(exc),
            error_field=getattr(exc, "field", ""),
        )
    return RedirectResponse(f"/jobs/{container_id}", status_code=303)


@router.post("/jobs/{container_id}/enabled")
async def toggle_enabled(request: Request, current: CurrentViewer, container_id: int) -> Response:
    posted = await checked_form(request, current)
    with runtime_of(request).transaction() as session:
        edit = deployments.ContainerEdit(enabled=posted.get("enabled") == "1")
        deployments.edit_container(session, container_id, edit, current.actor)
    return RedirectResponse(f"/jobs/{container_id}", status_code=303)


@router.post("/jobs/{container_id}/renew")
async def renew(request: Request, current: CurrentViewer, container_id: int) -> Response:
    posted = await checked_form(request, current)
    runtime = runtime_of(request)
    try:
        with runtime.transaction() as session:
            target = deployments.renew_failed(
                session,
                container_id,
                current.actor,
                runtime.now(),
                into_new_container=posted.get("new") == "1",
            )
    except (ServiceError, DomainError) as exc:
        view = _container_data(request, container_id)
        return render(request, "container.html", current, 400, c=view, error=str(exc), error_field="renew")
    return RedirectResponse(f"/jobs/{target.id}", status_code=303)


@router.post("/jobs/{container_id}/delete")
async def delete(request: Request, current: CurrentViewer, container_id: int) -> Response:
    await checked_form(request, current)
    with runtime_of(request).transaction() as session:
        deployments.delete_container(session, container_id, current.actor)
    return RedirectResponse("/jobs", status_code=303)


@router.post("/jobs/{container_id}/jobs/{job_id}/delete")
async def delete_job(request: Request, current: CurrentViewer, container_id: int, job_id: int) -> Response:
    await checked_form(request, current)
    with runtime_of(request).transaction() as session:
        deployments.delete_job(session, job_id, current.actor)
    return RedirectResponse(f"/jobs/{container_id}", status_code=303)
