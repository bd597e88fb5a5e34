"""Templates and the small formatting helpers pages share."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from oco.domain.states import ContainerStatus, JobState, PostAction
from oco.web.session import CSRF_FIELD, Viewer, runtime_of

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
STATUS_ICONS = {
    ContainerStatus.SCHEDULED: "🕓",
    ContainerStatus.IN_PROGRESS: "⏳",
    ContainerStatus.SUCCEEDED: "✔",
    ContainerStatus.FAILED: "✖",
    ContainerStatus.EMPTY: "•",
}
STATE_LABELS = {
    JobState.WAITING: "Waiting",
    JobState.DOWNLOADING: "Downloading",
    JobState.EXECUTING: "Executing",
    JobState.SUCCEEDED: "Succeeded",
    JobState.FAILED: "Failed",
    JobState.EXPIRED: "Expired",
    JobState.OS_INCOMPATIBLE: "OS incompatible",
    JobState.ALREADY_INSTALLED: "Already installed",
}
POST_ACTION_LABELS = {
    PostAction.NONE: "None",
    PostAction.RESTART: "Restart",
    PostAction.SHUTDOWN: "Shutdown",
    PostAction.EXIT_AGENT: "Exit agent",
}


def render(
    request: Request,
    template: str,
    current: Viewer | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render a page with the viewer, its CSRF token and the configured time zone."""
    runtime = runtime_of(request)
    zone = runtime.settings.zone

    def local(value: datetime | None, with_seconds: bool = False) -> str:
        if value is None:
            return "-"
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")

    return TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "viewer": current,
            "csrf_field": CSRF_FIELD,
            "csrf_token": current.csrf_token if current else "",
            "local": local,
            "zone": runtime.settings.time_zone,
            "state_label": lambda state: STATE_LABELS.get(JobState(state), str(state)),
            "state_class": lambda state: JobState(state).name.lower().replace("_", "-"),
            "status_icon": lambda status: STATUS_ICONS.get(status, ""),
            "post_action_label": lambda action: POST_ACTION_LABELS.get(PostAction(action), str(action)),
            **context,
        },
        status_code=status_code,
    )


def ids(form: FormData, name: str) -> list[int]:
    """The positive integers posted under `name` (checkbox lists); anything else is ignored."""
    return [int(value) for value in form.getlist(name) if str(value).isdigit()]


def text(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name, default)
    return value if isinstance(value, str) else default
