"""Templates, the error page, and the small helpers pages share."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Path, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from oco.domain.containers import PRIORITY_MAX, PRIORITY_MIN
from oco.domain.states import ContainerStatus, JobState, PostAction, SequenceMode, UpgradeBehavior
from oco.errors import OcoError, outcome
from oco.services.views import MAX_ID
from oco.web.session import CSRF_FIELD, Viewer, runtime_of

TEMPLATES = Jinja2Templates(directory=FilePath(__file__).parent / "templates")
STATUS_ICONS = {
    ContainerStatus.SCHEDULED: "🕓",
    ContainerStatus.IN_PROGRESS: "⏳",
    ContainerStatus.SUCCEEDED: "✔",
    ContainerStatus.FAILED: "✖",
    ContainerStatus.EMPTY: "•",
}
SECTIONS = ("/jobs", "/computers", "/packages", "/groups")
OK = 200
VOCABULARY = {
    "PostAction": PostAction,
    "SequenceMode": SequenceMode,
    "UpgradeBehavior": UpgradeBehavior,
    "JobState": JobState,
    "ContainerStatus": ContainerStatus,
    "PRIORITY_MIN": PRIORITY_MIN,
    "PRIORITY_MAX": PRIORITY_MAX,
}
"""The domain's enumerations and limits, for forms and labels in templates."""
ConsoleId = Annotated[int, Path(ge=1, le=MAX_ID)]
"""An id in a console URL; anything else is answered with a "not found" page."""


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
            "state_label": lambda state: JobState(state).label,
            "state_class": state_class,
            "status_icon": lambda status: STATUS_ICONS.get(status, ""),
            **VOCABULARY,
            **context,
        },
        status_code=status_code,
    )


def state_class(state: int) -> str:
    """The CSS class of a job state ("state-os-incompatible" styles -3)."""
    return JobState(state).name.lower().replace("_", "-")


def status_of(error: OcoError | None) -> int:
    """The status of a page shown again with `error` (200 without one), by `oco.errors.OUTCOMES`."""
    return outcome(error).status if error is not None else OK


def error_page(
    request: Request, current: Viewer | None, error: OcoError, back: str | None = None
) -> HTMLResponse:
    """The page of a refused request: its status (`oco.errors.OUTCOMES`), the message, and a way back."""
    result = outcome(error)
    return render(
        request,
        "error.html",
        current,
        result.status,
        title=result.title,
        message=error.message,
        back=back or way_back(request),
    )


def way_back(request: Request) -> str:
    """Where "Back" leads: the page the request came from, if it is ours, else the section's list."""
    referer = urlsplit(request.headers.get("referer", ""))
    ours = referer.path.startswith("/") and referer.netloc in ("", request.url.netloc)
    if ours and referer.path != request.url.path:
        return referer.path + (f"?{referer.query}" if referer.query else "")
    for section in SECTIONS:
        if request.url.path.startswith(section):
            return section
    return "/jobs"


def ids(form: FormData, name: str) -> list[int]:
    """The positive integers posted under `name` (checkbox lists); anything else is ignored."""
    values = (value for value in form.getlist(name) if isinstance(value, str) and value.isdigit())
    return [number for number in map(int, values) if 0 < number <= MAX_ID]


def text(form: FormData, name: str, default: str = "") -> str:
    """The text posted under `name`, or `default` (also for a file)."""
    value = form.get(name, default)
    return value if isinstance(value, str) else default
