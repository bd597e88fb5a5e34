"""The Jobs page: job containers, the Deployment Assistant with its preview, container detail."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.datastructures import FormData

from oco.domain.containers import DEFAULT_RESTART_TIMEOUT
from oco.domain.ipranges import parse_ip_ranges
from oco.domain.phases import (
    DEFAULT_HALT_MIN_FINISHED,
    DEFAULT_SUCCESS_PERCENT,
    RolloutEdit,
    RolloutRules,
    parse_duration,
    parse_phases,
)
from oco.domain.retries import RetryPolicy
from oco.domain.slots import parse_max_downloads
from oco.domain.states import ContainerStatus, JobOutcome, SequenceMode
from oco.domain.windows import WindowZone, parse_windows
from oco.errors import InvalidInput, OcoError, outcome
from oco.services import containers, deployments, jobs, rollouts, targets
from oco.services.computers import ComputerQuery
from oco.services.containers import ContainerEdit, ContainerQuery
from oco.services.deployments import ContainerOptions, DeploymentRequest, UninstallRequest
from oco.services.jobs import JobQuery, JobSelection
from oco.services.targets import Targets
from oco.services.views import ContainerPublic, JobRowPublic, PlanPublic, TargetChoices
from oco.web import flash
from oco.web.filters import MATCH, computer_query
from oco.web.lists import ALL_MATCHING, ListState, csv_response, form_state
from oco.web.live import Parts, event_stream
from oco.web.render import (
    ConsoleId,
    ids,
    refused,
    render,
    state_class,
    status_of,
    text,
    waiting_text,
)
from oco.web.session import (
    Deploying,
    EditingContainers,
    Posted,
    Viewer,
    Viewing,
    runtime_of,
)

router = APIRouter(include_in_schema=False)
CurrentViewer = Viewing
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
SHOWN_FORMAT = "%Y-%m-%d %H:%M:%S"


@router.get("/jobs")
def job_containers(request: Request, current: CurrentViewer) -> Response:
    """The job containers that match the address's filters, newest first, with their outcome bars."""
    state = ListState.of(request)
    status = state.get("status")
    query = ContainerQuery(
        search=state.get("q"), status=ContainerStatus.from_text(status, field="status") if status else None
    )
    if state.wants_csv:
        rows = containers.export_containers(runtime_of(request), query)
        return csv_response("job-containers.csv", CONTAINER_CSV, (_container_row(c) for c in rows))
    page = containers.search_containers(runtime_of(request), query, state.page_request())
    return render(request, "jobs.html", current, page=page, state=state, sort_keys=containers.CONTAINER_SORTS)


CONTAINER_CSV = (
    "id",
    "name",
    "status",
    "enabled",
    "priority",
    "start",
    "end",
    "author",
    "created",
    *JobOutcome.texts(),
)


def _container_row(container: ContainerPublic) -> list[object]:
    fields = [getattr(container, name) for name in CONTAINER_CSV[:9]]
    return [*fields, *(container.outcomes.get(outcome) for outcome in JobOutcome.texts())]


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
    restart_timeout: str = str(DEFAULT_RESTART_TIMEOUT)
    sequence_mode: str = SequenceMode.IGNORE_FAILED.text
    agent_ip_ranges: str = ""
    force: bool = False
    auto_uninstall: bool = True
    phases: str = ""
    pilot_group: str = ""
    phase_success: str = str(DEFAULT_SUCCESS_PERCENT)
    phase_soak: str = ""
    halt_failure_rate: str = ""
    halt_min_finished: str = str(DEFAULT_HALT_MIN_FINISHED)
    windows: str = ""
    window_zone: str = WindowZone.COMPUTER.text
    max_downloads: str = ""
    retries: str = "0"
    retry_delay: str = ""
    find: str = ""
    all_matching: bool = False
    matching: tuple[tuple[str, str], ...] = ()
    """The filter of the computer list an "all matching" selection came from (`match_*` parameters)."""

    @property
    def computer_filter(self) -> ComputerQuery | None:
        """The computers that match the carried filter, when "all matching" is chosen."""
        if not self.all_matching:
            return None
        return computer_query(ListState("/computers", self.matching), MATCH)

    def carrying(self, params: Iterable[tuple[str, object]]) -> AssistantForm:
        """This form with the search and the "all matching" filter a form or an address carries."""
        pairs = [(k, v) for k, v in params if isinstance(v, str)]
        return replace(
            self,
            find=next((v for k, v in pairs if k == "find"), ""),
            all_matching=(ALL_MATCHING, "1") in pairs,
            matching=tuple((k, v) for k, v in pairs if k.startswith(MATCH)),
        )

    @classmethod
    def from_form(cls, form: FormData) -> AssistantForm:
        """The fields as posted."""
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
            restart_timeout=text(form, "restart_timeout", str(DEFAULT_RESTART_TIMEOUT)),
            sequence_mode=text(form, "sequence_mode", SequenceMode.IGNORE_FAILED.text),
            agent_ip_ranges=text(form, "agent_ip_ranges"),
            force=form.get("force") == "on",
            auto_uninstall=form.get("auto_uninstall") == "on",
            phases=text(form, "phases"),
            pilot_group=text(form, "pilot_group"),
            phase_success=text(form, "phase_success", str(DEFAULT_SUCCESS_PERCENT)),
            phase_soak=text(form, "phase_soak"),
            halt_failure_rate=text(form, "halt_failure_rate"),
            halt_min_finished=text(form, "halt_min_finished", str(DEFAULT_HALT_MIN_FINISHED)),
            windows=text(form, "windows"),
            window_zone=text(form, "window_zone", WindowZone.COMPUTER.text),
            max_downloads=text(form, "max_downloads"),
            retries=text(form, "retries", "0"),
            retry_delay=text(form, "retry_delay"),
        ).carrying(form.multi_items())

    def rollout(self) -> RolloutRules:
        """The rollout rules of the "Safe rollout" fields; InvalidInput names a field that does not parse."""
        rate = self.halt_failure_rate.strip()
        return RolloutRules(
            steps=parse_phases(self.phases),
            success_percent=parse_integer(self.phase_success, "phase_success"),
            soak_seconds=parse_duration(self.phase_soak, field="phase_soak"),
            halt_failure_rate=parse_integer(rate, "halt_failure_rate") if rate else None,
            halt_min_finished=parse_integer(self.halt_min_finished, "halt_min_finished"),
        )

    def request(self, zone: tzinfo) -> DeploymentRequest:
        """The use case's request; InvalidInput names a field that does not parse."""
        chosen = Targets(
            computers=self.computer_ids,
            computer_groups=self.computer_group_ids,
            packages=self.package_ids,
            package_groups=self.package_group_ids,
            matching=self.computer_filter,
        )
        return DeploymentRequest(
            options=self.options(zone), targets=chosen, force=self.force, auto_uninstall=self.auto_uninstall
        )

    def options(self, zone: tzinfo) -> ContainerOptions:
        """The container's settings; InvalidInput names a field that does not parse."""
        return ContainerOptions(
            name=self.name,
            description=self.description,
            start=parse_local(self.start, zone, "start"),
            end=parse_local(self.end, zone, "end"),
            wol=self.wol,
            shutdown_waked=self.shutdown_waked,
            priority=parse_integer(self.priority, "priority"),
            restart_timeout=parse_integer(self.restart_timeout, "restart_timeout"),
            sequence_mode=SequenceMode.from_text(self.sequence_mode),
            agent_ip_ranges=self.agent_ip_ranges,
            rollout=self.rollout(),
            pilot_group=int(self.pilot_group) if self.pilot_group.strip().isdigit() else None,
            windows=parse_windows(
                self.windows.splitlines(), WindowZone.from_text(self.window_zone, field="window_zone")
            ),
            max_downloads=parse_max_downloads(self.max_downloads),
            retry=retry_policy(self.retries, self.retry_delay),
        )


def retry_policy(retries: str, delay: str) -> RetryPolicy:
    """The retries of the "Retries" fields; InvalidInput names a field that does not parse."""
    return RetryPolicy(parse_integer(retries or "0", "retries"), parse_duration(delay, field="retry_delay"))


def rollout_edit(posted: FormData) -> RolloutEdit:
    """The phases plan of a container's edit form (the service changes nothing when it is the same)."""
    rate = text(posted, "halt_failure_rate").strip()
    return RolloutEdit(
        steps=parse_phases(text(posted, "phases")),
        success_percent=parse_integer(
            text(posted, "phase_success", str(DEFAULT_SUCCESS_PERCENT)), "phase_success"
        ),
        soak_seconds=parse_duration(text(posted, "phase_soak"), field="phase_soak"),
        halt_failure_rate=parse_integer(rate, "halt_failure_rate") if rate else None,
        clear_halt=not rate,
        halt_min_finished=parse_integer(
            text(posted, "halt_min_finished", str(DEFAULT_HALT_MIN_FINISHED)), "halt_min_finished"
        ),
    )


def parse_local(value: str, zone: tzinfo, name: str) -> datetime | None:
    """A `datetime-local` field's value, in the console's time zone, as UTC; empty gives None."""
    if not value.strip():
        return None
    try:
        parsed = datetime.strptime(value.strip(), LOCAL_FORMAT)
    except ValueError:
        raise InvalidInput(f"{value!r} is not a date and time", field=name) from None
    return parsed.replace(tzinfo=zone).astimezone(UTC)


def parse_integer(value: str, name: str) -> int:
    """A number field's value; InvalidInput when it is not a whole number."""
    try:
        return int(value.strip())
    except ValueError:
        raise InvalidInput(f"{value!r} is not a whole number", field=name) from None


def suggested_name(choices: TargetChoices, package_ids: list[int], group_ids: list[int]) -> str:
    """The container name the assistant proposes: the chosen packages and package groups, as OCO does."""
    versions = {p.id: f"{f.name} {p.version}" for f in choices.families for p in f.versions}
    groups = {g.id: g.name for g in choices.package_groups}
    chosen = [versions[i] for i in package_ids if i in versions] + [
        groups[i] for i in group_ids if i in groups
    ]
    return ", ".join(chosen)[:255]


PREVIEW_ROWS = 200
"""Computers whose planned jobs the preview lists; the summary counts all of them."""


def _assistant(
    request: Request,
    current: Viewer,
    form: AssistantForm,
    plan: PlanPublic | None = None,
    error: OcoError | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    choices = targets.target_choices(runtime_of(request), form.computer_ids, form.find, form.computer_filter)
    if not form.name and (form.package_ids or form.package_group_ids):
        form = replace(form, name=suggested_name(choices, form.package_ids, form.package_group_ids))
    return render(
        request,
        "assistant.html",
        current,
        status_code=status_code,
        form=form,
        choices=choices,
        plan=plan,
        error=error.message if error else "",
        error_field=(error.field if error else None) or "",
    )


@router.get("/jobs/new")
def assistant(request: Request, current: Deploying) -> HTMLResponse:
    """The assistant, preselected from the query (`computer`, `package`, … repeated)."""
    params = request.query_params
    form = AssistantForm(
        computer_ids=[int(v) for v in params.getlist("computer") if v.isdigit()],
        computer_group_ids=[int(v) for v in params.getlist("computer_group") if v.isdigit()],
        package_ids=[int(v) for v in params.getlist("package") if v.isdigit()],
        package_group_ids=[int(v) for v in params.getlist("package_group") if v.isdigit()],
        name=params.get("name", ""),
    ).carrying(params.multi_items())
    return _assistant(request, current, form)


@router.post("/jobs/new")
def assistant_submit(request: Request, current: Deploying, posted: Posted) -> Response:
    """`action=preview` shows the jobs that would be created, `action=create` creates them, `action=find`
    lists the computers that match the search to pick from."""
    form = AssistantForm.from_form(posted)
    runtime = runtime_of(request)
    if posted.get("action") == "find":
        return _assistant(request, current, form)
    try:
        deployment = form.request(runtime.settings.zone)
        if posted.get("action") != "create":
            plan = deployments.preview_deployment(runtime, deployment, PREVIEW_ROWS)
            return _assistant(request, current, form, plan=plan)
        container = deployments.create_deployment(runtime, deployment, current.actor)
    except OcoError as exc:
        return _assistant(request, current, form, error=exc, status_code=status_of(exc))
    return flash.redirect(
        request, current, f"/jobs/{container.id}", f"Created the job container {container.name}."
    )


@router.get("/jobs/validate-ip-ranges")
def validate_ip_ranges(current: CurrentViewer, value: str = "") -> JSONResponse:
    """Inline validation for the assistant's IP range field."""
    try:
        parse_ip_ranges(value)
    except OcoError as exc:
        return JSONResponse({"ok": False, "message": exc.message})
    return JSONResponse({"ok": True, "message": ""})


@router.post("/jobs/uninstall")
def uninstall(request: Request, current: Deploying, posted: Posted) -> Response:
    """ "Uninstall Package" on a computer or package page: uninstall jobs for the checked assignments."""
    runtime = runtime_of(request)
    try:
        options = AssistantForm.from_form(posted).options(runtime.settings.zone)
        uninstall_request = UninstallRequest(options=options, assignment_ids=ids(posted, "assignment"))
        container = deployments.create_uninstall(runtime, uninstall_request, current.actor)
    except OcoError as exc:
        return refused(request, current, text(posted, "back", "/jobs"), exc)
    return flash.redirect(
        request, current, f"/jobs/{container.id}", f"Created the job container {container.name}."
    )


# A job container ----------------------------------------------------------------------------------


def job_query(state: ListState, prefix: str = "") -> JobQuery:
    """The job filter the address (or a form carrying it, under `prefix`) holds."""
    outcome = state.get(f"{prefix}outcome")
    return JobQuery(
        search=state.get(f"{prefix}q"),
        outcome=JobOutcome.from_text(outcome, field="outcome") if outcome else None,
        return_code=state.integer(f"{prefix}code"),
    )


@router.get("/jobs/{container_id}")
def container_page(request: Request, current: CurrentViewer, container_id: ConsoleId) -> Response:
    """A container with a page of its jobs, failures first; it keeps itself up to date from `…/state`."""
    state = ListState.of(request)
    if state.wants_csv:
        rows = jobs.export_jobs(runtime_of(request), container_id, job_query(state))
        return csv_response(
            f"jobs-{container_id}.csv", JOB_CSV, ([getattr(j, f) for f in JOB_CSV] for j in rows)
        )
    return _container_page(request, current, container_id, state)


JOB_CSV = (
    "id",
    "computer",
    "sequence",
    "action",
    "package",
    "state",
    "return_code",
    "meaning_title",
    "post_action",
    "download_started",
    "execution_started",
    "execution_finished",
)


def _container_page(
    request: Request,
    current: Viewer,
    container_id: int,
    state: ListState,
    error: OcoError | None = None,
    preview: ContainerPublic | None = None,
) -> HTMLResponse:
    """The container's page; with `preview`, its settings and phases as an edit not yet saved would
    leave them (the jobs as they are)."""
    runtime = runtime_of(request)
    page = jobs.container_page(runtime, container_id, job_query(state), state.page_request())
    zone = runtime.settings.zone
    container = preview or page.container
    return render(
        request,
        "container.html",
        current,
        status_of(error),
        c=container,
        jobs=page.jobs,
        jobs_total=sum(container.outcomes.values()),
        move_targets=page.move_targets,
        state=state,
        sort_keys=jobs.JOB_SORTS,
        start_local=_shown(container.start, zone, LOCAL_FORMAT),
        end_local=_shown(container.end, zone, LOCAL_FORMAT),
        error=error.message if error else "",
        error_field=(error.field if error else None) or "",
        previewing=preview is not None,
    )


@router.get("/jobs/{container_id}/state")
def container_state(request: Request, current: CurrentViewer, container_id: ConsoleId) -> JSONResponse:
    """What the container page polls to update itself without reloading: the container and the page
    of jobs it shows.

    Output travels only for jobs still running; a finished job's output is fetched once (`…/output`).
    """
    runtime = runtime_of(request)
    state = ListState.of(request)
    try:
        page = jobs.container_page(runtime, container_id, job_query(state), state.page_request())
    except OcoError as exc:
        return JSONResponse({"error": exc.message}, status_code=outcome(exc).status)
    zone = runtime.settings.zone
    live: dict[str, Any] = page.container.model_dump(mode="json")
    live["status_label"] = page.container.status.label
    live["jobs"] = [_live_job(job, zone) for job in page.jobs.items]
    return JSONResponse(live)


@router.get("/jobs/{container_id}/events")
def container_events(request: Request, current: CurrentViewer, container_id: ConsoleId) -> Response:
    """The container and the page of jobs its page shows, as Server-Sent Events: the container when its
    counts change, a job when it changed."""
    runtime = runtime_of(request)
    state = ListState.of(request)
    zone = runtime.settings.zone

    def read() -> Parts:
        page = jobs.container_page(runtime, container_id, job_query(state), state.page_request())
        container: dict[str, Any] = page.container.model_dump(mode="json")
        container["status_label"] = page.container.status.label
        return {"container": container, **{f"job:{job.id}": _live_job(job, zone) for job in page.jobs.items}}

    return event_stream(request, read)


def _live_job(job: JobRowPublic, zone: tzinfo) -> dict[str, Any]:
    final = job.state.is_final
    live: dict[str, Any] = job.model_dump(mode="json")
    live.update(
        state_label=job.state.label,
        state_class=state_class(job.state),
        why=waiting_text(job.waiting, zone) if job.waiting else (job.meaning_title or ""),
        started=_shown(job.execution_started or job.download_started, zone),
        finished=_shown(job.execution_finished, zone),
        final=final,
        message=None if final else job.message,
    )
    return live


@router.post("/jobs/{container_id}/jobs/actions")
def job_actions(
    request: Request, current: EditingContainers, container_id: ConsoleId, posted: Posted
) -> Response:
    """Act on the checked jobs, or on all that match the page's filter: renew (in place or in a new
    container), move to another container, delete."""
    runtime = runtime_of(request)
    here = f"/jobs/{container_id}"
    carried = form_state(posted, here)
    selection = JobSelection(
        ids=ids(posted, "job"),
        matching=job_query(carried, MATCH) if posted.get(ALL_MATCHING) == "1" else None,
    )
    back = ListState(
        here, tuple((k.removeprefix(MATCH), v) for k, v in carried.params if k.startswith(MATCH))
    )
    action = text(posted, "action")
    try:
        if action in ("renew", "renew_new"):
            target = jobs.renew_jobs(
                runtime, container_id, selection, current.actor, into_new_container=action == "renew_new"
            )
            return flash.redirect(request, current, f"/jobs/{target.id}", "Renewed the chosen jobs.")
        if action == "move":
            target_id = carried.integer("target")
            target = jobs.move_jobs(runtime, container_id, selection, target_id, current.actor)
            return flash.redirect(
                request, current, f"/jobs/{target.id}", f"Moved the chosen jobs to {target.name}."
            )
        if action == "delete":
            deleted = jobs.delete_jobs(runtime, container_id, selection, current.actor)
            return flash.redirect(request, current, back.url(), f"Deleted {deleted} job(s).")
        raise InvalidInput(f"action {action!r} must be one of renew, renew_new, move, delete")
    except OcoError as exc:
        return refused(request, current, back.url(), exc)


def _shown(value: datetime | None, zone: tzinfo, pattern: str = SHOWN_FORMAT) -> str:
    return value.astimezone(zone).strftime(pattern) if value else ""


@router.get("/jobs/{container_id}/jobs/{job_id}/output")
def job_output(
    request: Request, current: CurrentViewer, container_id: ConsoleId, job_id: ConsoleId
) -> Response:
    """The whole output of one job, as plain text."""
    try:
        return PlainTextResponse(jobs.job_output(runtime_of(request), container_id, job_id))
    except OcoError as exc:
        return PlainTextResponse(exc.message, status_code=404)


@router.post("/jobs/{container_id}/edit")
def edit_container(
    request: Request, current: EditingContainers, container_id: ConsoleId, posted: Posted
) -> Response:
    """Save the container's edit form; the page again with the error next to its field."""
    runtime = runtime_of(request)
    zone = runtime.settings.zone
    try:
        end = text(posted, "end")
        edit = ContainerEdit(
            name=text(posted, "name"),
            description=text(posted, "description"),
            enabled=posted.get("enabled") == "on",
            restart_timeout=parse_integer(text(posted, "restart_timeout", "0"), "restart_timeout"),
            wol=posted.get("wol") == "on",
            shutdown_waked=posted.get("shutdown_waked") == "on",
            start=parse_local(text(posted, "start"), zone, "start"),
            end=parse_local(end, zone, "end"),
            clear_end=not end.strip(),
            priority=parse_integer(text(posted, "priority", "0"), "priority"),
            sequence_mode=SequenceMode.from_text(
                text(posted, "sequence_mode", SequenceMode.IGNORE_FAILED.text)
            ),
            agent_ip_ranges=text(posted, "agent_ip_ranges"),
            max_downloads=(parse_max_downloads(text(posted, "max_downloads")) or 0)
            if "max_downloads" in posted
            else None,
        )
        if posted.get("plan") == "1":  # the form's retries, phases and windows
            policy = retry_policy(text(posted, "retries", "0"), text(posted, "retry_delay"))
            entries = text(posted, "windows").splitlines()
            zone_text = text(posted, "window_zone", WindowZone.COMPUTER.text)
            windows = parse_windows(entries, WindowZone.from_text(zone_text, field="window_zone"))
            edit = replace(
                edit,
                retries=policy.retries,
                retry_delay_seconds=policy.delay_seconds,
                rollout=rollout_edit(posted),
                windows=windows,
                clear_windows=windows is None,
            )
        preview = posted.get("action") == "preview"
        edited = containers.edit_container(runtime, container_id, edit, current.actor, dry_run=preview)
    except OcoError as exc:
        return _container_page(request, current, container_id, ListState(f"/jobs/{container_id}", ()), exc)
    if preview:  # the page as the edit would leave it, its form holding the edit: Save makes it so
        return _container_page(
            request, current, container_id, ListState(f"/jobs/{container_id}", ()), preview=edited
        )
    return flash.redirect(request, current, f"/jobs/{container_id}", "Saved the container.")


@router.post("/jobs/{container_id}/enabled")
def toggle_enabled(
    request: Request, current: EditingContainers, container_id: ConsoleId, posted: Posted
) -> Response:
    """Enable or disable the container (`enabled=1` or `0`)."""
    enabled = posted.get("enabled") == "1"
    containers.edit_container(
        runtime_of(request), container_id, ContainerEdit(enabled=enabled), current.actor
    )
    done = (
        "Enabled the container: its jobs are handed out again."
        if enabled
        else ("Disabled the container: no more of its jobs are handed out.")
    )
    return flash.redirect(request, current, f"/jobs/{container_id}", done)


@router.post("/jobs/{container_id}/renew")
def renew(request: Request, current: EditingContainers, container_id: ConsoleId, posted: Posted) -> Response:
    """Renew the failed jobs in place (`new=0`) or in a new container (`new=1`)."""
    runtime = runtime_of(request)
    try:
        target = containers.renew_failed(
            runtime, container_id, current.actor, into_new_container=posted.get("new") == "1"
        )
    except OcoError as exc:
        return refused(request, current, f"/jobs/{container_id}", exc)
    return flash.redirect(request, current, f"/jobs/{target.id}", "Renewed the failed jobs.")


@router.post("/jobs/{container_id}/rollout")
def rollout_action(
    request: Request, current: EditingContainers, container_id: ConsoleId, posted: Posted
) -> Response:
    """Halt (`action=halt`), resume (`action=resume`, `reopen=on` runs the halted phase's failed jobs
    again) or cancel (`action=cancel`) the container's phased rollout."""
    runtime = runtime_of(request)
    action = posted.get("action")
    try:
        if action == "halt":
            rollouts.halt(runtime, container_id, current.actor)
        elif action == "resume":
            rollouts.resume(runtime, container_id, current.actor, reopen=posted.get("reopen") == "on")
        elif action == "cancel":
            rollouts.cancel(runtime, container_id, current.actor)
        else:
            rollouts.container_summary(runtime, container_id)  # an unknown container is a 404 first
            raise InvalidInput(f"rollout action {action!r} must be halt, resume or cancel", field="action")
    except OcoError as exc:
        return refused(request, current, f"/jobs/{container_id}", exc)
    done = {
        "halt": "Halted the rollout.",
        "resume": "Resumed the rollout.",
        "cancel": "Canceled the rollout.",
    }
    return flash.redirect(request, current, f"/jobs/{container_id}", done[str(action)])


@router.post("/jobs/{container_id}/delete")
def delete(request: Request, current: EditingContainers, container_id: ConsoleId, posted: Posted) -> Response:
    """Delete the container and its jobs."""
    containers.delete_container(runtime_of(request), container_id, current.actor)
    return flash.redirect(request, current, "/jobs", "Deleted the job container and its jobs.")


@router.post("/jobs/{container_id}/jobs/{job_id}/delete")
def delete_job(
    request: Request, current: EditingContainers, container_id: ConsoleId, job_id: ConsoleId, posted: Posted
) -> Response:
    """Delete one job of the container."""
    jobs.delete_job(runtime_of(request), job_id, current.actor, container_id=container_id)
    return flash.redirect(request, current, f"/jobs/{container_id}", "Deleted the job.")
