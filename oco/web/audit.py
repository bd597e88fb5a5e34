"""The audit log in the console: who did what, when; filterable, a page at a time, or as CSV."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from oco.domain.roles import Role
from oco.services import audit
from oco.services.audit import AuditQuery
from oco.services.views import AuditEntryPublic
from oco.web.lists import ListState, csv_response
from oco.web.render import render
from oco.web.session import (
    Viewing,
    runtime_of,
)

router = APIRouter(include_in_schema=False)
CurrentViewer = Viewing
AUDIT_CSV = ("id", "at", "username", "role", "actor", "action", "object_type", "object_id", "details")


@router.get("/audit")
def audit_log(request: Request, current: CurrentViewer) -> Response:
    """The audit entries that match the address's filters, newest first."""
    state = ListState.of(request)
    role = state.get("role")
    query = AuditQuery(
        search=state.get("q"),
        actor=state.get("actor"),
        username=state.get("user"),
        role=Role.from_text(role, field="role") if role else None,
        action=state.get("action"),
        object_type=state.get("object"),
    )
    runtime = runtime_of(request)
    if state.wants_csv:
        entries = audit.export_audit(runtime, query)
        return csv_response("audit.csv", AUDIT_CSV, (_csv_row(e) for e in entries))
    page = audit.search_audit(runtime, query, state.page_request())
    return render(request, "audit.html", current, page=page, state=state, sort_keys=audit.AUDIT_SORTS)


def _csv_row(entry: AuditEntryPublic) -> list[object]:
    return [
        entry.role.text if field == "role" and entry.role else getattr(entry, field) for field in AUDIT_CSV
    ]
