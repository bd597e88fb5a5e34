"""Templates, the error page, and the small helpers pages share."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, tzinfo
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Path, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.datastructures import FormData

from oco.domain.containers import DEFAULT_RESTART_TIMEOUT, PRIORITY_MAX, PRIORITY_MIN
from oco.domain.dispatch import Hold
from oco.domain.phases import DEFAULT_HALT_MIN_FINISHED, DEFAULT_SUCCESS_PERCENT, halt_text
from oco.domain.presence import Presence
from oco.domain.retries import retry_text
from oco.domain.roles import Permission, Role
from oco.domain.states import ContainerStatus, JobOutcome, JobState, PostAction, SequenceMode, UpgradeBehavior
from oco.domain.windows import WindowZone
from oco.errors import OcoError, outcome
from oco.services.views import MAX_ID, ComputerPublic, WaitingPublic
from oco.web import flash
from oco.web.lists import LIST_CONTEXT
from oco.web.session import CSRF_FIELD, Viewer, runtime_of

TEMPLATES = Jinja2Templates(directory=FilePath(__file__).parent / "templates")
_CIRCLE = '<circle cx="8" cy="8" r="{r}"{fill}/>'
_ICON_PATHS = {
    ContainerStatus.SCHEDULED: _CIRCLE.format(r=6.5, fill=' fill="none"')
    + '<path d="M8 4.5V8l2.5 1.5" fill="none"/>',
    ContainerStatus.IN_PROGRESS: _CIRCLE.format(r=6.5, fill=' fill="none"')
    + '<path d="M8 1.5a6.5 6.5 0 0 1 0 13z"/>',
    ContainerStatus.SUCCEEDED: _CIRCLE.format(r=7, fill="")
    + '<path d="M4.5 8.2l2.3 2.3 4.7-4.9" class="mark" fill="none"/>',
    ContainerStatus.FAILED: _CIRCLE.format(r=7, fill="")
    + '<path d="M5.3 5.3l5.4 5.4M10.7 5.3l-5.4 5.4" class="mark" fill="none"/>',
    ContainerStatus.DISABLED: _CIRCLE.format(r=6.5, fill=' fill="none"')
    + '<path d="M6.3 5v6M9.7 5v6" fill="none"/>',
    ContainerStatus.EMPTY: _CIRCLE.format(r=2.5, fill=""),
}
"""Status icons drawn in SVG (emoji render as empty boxes without an emoji font)."""
SECTIONS = ("/jobs", "/computers", "/packages", "/groups", "/audit", "/users")
SHOWN = "%Y-%m-%d %H:%M"
OK = 200
NOT_FOUND = 404
VOCABULARY = {
    "PostAction": PostAction,
    "SequenceMode": SequenceMode,
    "WindowZone": WindowZone,
    "UpgradeBehavior": UpgradeBehavior,
    "JobState": JobState,
    "ContainerStatus": ContainerStatus,
    "JobOutcome": JobOutcome,
    "Presence": Presence,
    "Role": Role,
    "Permission": Permission,
    "PRIORITY_MIN": PRIORITY_MIN,
    "PRIORITY_MAX": PRIORITY_MAX,
    "DEFAULT_RESTART_TIMEOUT": DEFAULT_RESTART_TIMEOUT,
    "DEFAULT_SUCCESS_PERCENT": DEFAULT_SUCCESS_PERCENT,
    "DEFAULT_HALT_MIN_FINISHED": DEFAULT_HALT_MIN_FINISHED,
}
"""The domain's enumerations and limits, for forms and labels in templates."""
TEMPLATES.env.globals.update(VOCABULARY, **LIST_CONTEXT)  # macros imported without context see globals
ConsoleId = Annotated[int, Path(ge=1, le=MAX_ID)]
"""An id in a console URL; anything else is answered with a "not found" page."""


def render(
    request: Request,
    template: str,
    current: Viewer | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render a page with the viewer, its CSRF token, the configured time zone and the message a
    redirect left for it (which it then forgets)."""
    message = flash.pending(request, current)
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        _context(request, current, flash=message, **context),
        status_code=status_code,
    )
    if message is not None:
        flash.shown(response)
    return response


def render_parts(request: Request, template: str, names: Iterable[str], **context: Any) -> dict[str, str]:
    """The HTML of some macros of a template (the parts of a page a live update replaces)."""
    module = TEMPLATES.get_template(template).make_module(_context(request, None, **context))
    return {name: str(getattr(module, name)()) for name in names}


def _context(request: Request, current: Viewer | None, **context: Any) -> dict[str, Any]:
    runtime = runtime_of(request)
    zone = runtime.settings.zone

    def local(value: datetime | None, with_seconds: bool = False) -> str:
        if value is None:
            return "-"
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")

    return {
        "viewer": current,
        "csrf_field": CSRF_FIELD,
        "csrf_token": current.csrf_token if current else "",
        "local": local,
        "zone": runtime.settings.time_zone,
        "state_label": lambda state: JobState(state).label,
        "state_class": state_class,
        "presence_badge": presence_badge,
        "waiting_text": lambda waiting: waiting_text(waiting, zone),
        "halt_text": halt_text,
        "status_icon": status_icon,
        "request": request,
        **context,
    }


def waiting_text(waiting: WaitingPublic, zone: tzinfo) -> str:
    """Why a waiting job waits, in words, its times in the console's zone."""
    when = waiting.since.astimezone(zone).strftime(SHOWN) if waiting.since else ""
    if waiting.hold is Hold.SCHEDULED:
        return f"scheduled for {when}"
    if waiting.hold is Hold.OUTSIDE_IP_RANGES:
        return f"{waiting.hold.label} (last seen from {waiting.address})"
    if waiting.hold is Hold.OFFLINE:
        return f"the computer is offline since {when}" if when else "the computer has never checked in"
    if waiting.hold is Hold.LATER_PHASE and waiting.phase is not None:
        return f"waiting for phase {waiting.phase} of the rollout to open"
    if waiting.hold is Hold.OUTSIDE_WINDOW:
        return f"waiting for its window (opens {waiting.opens})" if waiting.opens else waiting.hold.label
    if waiting.hold is Hold.DOWNLOAD_SLOT:
        return waiting.slots or waiting.hold.label
    if waiting.hold is Hold.ENDED:
        return f"the container ended at {when}"
    if waiting.hold is Hold.BEHIND_RETRY:
        return f"waiting for an earlier job of the container, retried at {when}"
    if waiting.hold is Hold.RETRY and waiting.retry is not None:
        return retry_text(waiting.retry + 1, waiting.retries or waiting.retry, when)
    return waiting.hold.label


def presence_badge(computer: ComputerPublic) -> Markup:
    """Online, offline or never seen, as a badge."""
    presence = computer.presence
    return Markup('<span class="badge {}">{}</span>').format(presence.text, presence.label.lower())


def status_icon(status: ContainerStatus) -> Markup:
    """The status's icon, with its label for screen readers and as a tooltip."""
    return Markup(
        '<svg class="status-icon {0}" viewBox="0 0 16 16" width="16" height="16" role="img" aria-label="{1}">'
        "<title>{1}</title>{2}</svg>"
    ).format(status.text, status.label, Markup(_ICON_PATHS[status]))


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


def refused(request: Request, current: Viewer, location: str, error: OcoError) -> Response:
    """A refused action: back to `location` (a page that reloads) with the reason shown there. An id that
    names nothing has no page to go back to: the error page, 404."""
    if outcome(error).status == NOT_FOUND:
        return error_page(request, current, error, back=location)
    return flash.redirect(request, current, location, error.message, "error")


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
