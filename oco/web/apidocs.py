"""The admin API's documentation page, `/api/v1/docs`: its operations, from its OpenAPI document."""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse

PATH = "/api/v1/docs"


def router(api: FastAPI) -> APIRouter:
    """A router serving the documentation page of `api` (mounted at `/api/v1`)."""
    docs = APIRouter(include_in_schema=False)

    @docs.get(PATH)
    def page() -> HTMLResponse:
        return HTMLResponse(docs_page(api.openapi(), api.title))

    return docs


def docs_page(spec: dict[str, Any], title: str) -> str:
    """A plain HTML list of the operations (no script, no inline style): the spec is the reference."""
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
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<link rel='icon' href='/static/favicon.svg' type='image/svg+xml'>"
        "<link rel='stylesheet' href='/static/apidocs.css'>"
        f"</head><body><h1>{html.escape(title)}</h1>"
        "<p>Authenticate with <code>Authorization: Bearer &lt;token&gt;</code> (create one with "
        "<code>oco token create --name NAME</code>). Machine-readable specification: "
        "<a href='/api/v1/openapi.json'>/api/v1/openapi.json</a>.</p>"
        f"<table>{''.join(rows)}</table></body></html>"
    )
