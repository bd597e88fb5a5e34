"""The audit log in the console: who did what, when; filterable, a page at a time, or as CSV."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from oco.services import audit
from oco.services.audit import AuditQuery
from oco.web.lists import ListState, csv_response
from oco.web.render import render
from oco.web.session import Viewer, runtime_of, viewer

router = APIRouter(include_in_schema=False)
CurrentViewer = Annotated[Viewer, Depends(viewer)]
AUDIT_CSV = ("id", "at", "actor", "action", "object_type", "object_id", "details")


@router.get("/audit")
def audit_log(request: Request, current: CurrentViewer) -> Response:
    """The audit entries that match the address's filters, newest first."""
    state = ListState.of(request)
    query = AuditQuery(
        search=state.get("q"),
        actor=state.get("actor"),
        action=state.get("action"),
        object_type=state.get("object"),
    )
    runtime = runtime_of(request)
    if state.wants_csv:
        entries = audit.export_audit(runtime, query)
        return csv_response("audit.csv", AUDIT_CSV, ([getattr(e, f) for f in AUDIT_CSV] for e in entries))
    page = audit.search_audit(runtime, query, state.page_request())
    return render(request, "audit.html", current, page=page, state=state, sort_keys=audit.AUDIT_SORTS)
