"""The admin API's documentation page, `/api/v1/docs`: every operation with its parameters, request
body and responses, and every schema with its fields — read from the API's OpenAPI document, so the
page cannot drift from the API. Plain HTML in the console's style, no third-party script."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse

from oco.web.render import TEMPLATES

PATH = "/api/v1/docs"
REF_PREFIX = "#/components/schemas/"


@dataclass(frozen=True, slots=True)
class Field:
    """One property of a schema, or one parameter of an operation."""

    name: str
    type: str
    schema: str
    """The schema the type names, for a link ("" for plain types)."""
    required: bool
    description: str
    default: str = ""


@dataclass(frozen=True, slots=True)
class Schema:
    name: str
    description: str
    fields: list[Field]


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    summary: str
    description: str
    tag: str
    parameters: list[Field]
    body: str
    """The request body's schema name ("" without a body)."""
    responses: list[tuple[str, str, str]] = field(default_factory=list)
    """Status, description, schema name."""


def router(api: FastAPI) -> APIRouter:
    """A router serving the documentation page of `api` (mounted at `/api/v1`)."""
    docs = APIRouter(include_in_schema=False)

    @docs.get(PATH)
    def page(request: Request) -> HTMLResponse:
        spec = api.openapi()
        return TEMPLATES.TemplateResponse(
            request,
            "apidocs.html",
            {"title": api.title, "version": spec.get("info", {}).get("version", ""), **document(spec)},
        )

    return docs


def document(spec: dict[str, Any]) -> dict[str, Any]:
    """The operations grouped by tag, and the schemas, as the page shows them."""
    operations = [
        _operation(path, method, operation)
        for path, methods in spec.get("paths", {}).items()
        for method, operation in methods.items()
    ]
    tags: dict[str, list[Operation]] = {}
    for operation in operations:
        tags.setdefault(operation.tag, []).append(operation)
    schemas = [
        Schema(name, definition.get("description", ""), _fields(definition))
        for name, definition in sorted(spec.get("components", {}).get("schemas", {}).items())
    ]
    return {"tags": tags, "schemas": schemas}


def type_of(schema: dict[str, Any]) -> tuple[str, str]:
    """A schema's type in words ("array of JobPublic", "integer (1..100)", "one of: a, b") and the
    component it names, if one."""
    if "$ref" in schema:
        name = str(schema["$ref"]).removeprefix(REF_PREFIX)
        return name, name
    for combined in ("anyOf", "oneOf", "allOf"):
        if combined in schema:
            parts = [type_of(part) for part in schema[combined]]
            named = next((ref for _text, ref in parts if ref), "")
            texts = [text for text, _ref in parts if text != "null"]
            nullable = any(text == "null" for text, _ref in parts)
            return " or ".join(texts) + (" or null" if nullable else ""), named
    if "enum" in schema:
        return "one of: " + ", ".join(str(value) for value in schema["enum"]), ""
    kind = str(schema.get("type", "any"))
    if kind == "array":
        text, named = type_of(schema.get("items", {}))
        return f"array of {text}", named
    if kind == "object" and "additionalProperties" in schema:
        text, named = (
            type_of(schema["additionalProperties"])
            if isinstance(schema["additionalProperties"], dict)
            else ("any", "")
        )
        return f"map of {text}", named
    limits = [
        f"{schema[low]}..{schema[high]}"
        for low, high in (("minimum", "maximum"),)
        if low in schema and high in schema
    ]
    if "maxLength" in schema:
        limits.append(f"at most {schema['maxLength']} characters")
    if schema.get("format"):
        limits.insert(0, str(schema["format"]))
    return kind + (f" ({', '.join(limits)})" if limits else ""), ""


def _fields(definition: dict[str, Any]) -> list[Field]:
    required = set(definition.get("required", []))
    fields = []
    for name, prop in definition.get("properties", {}).items():
        text, named = type_of(prop)
        default = "" if "default" not in prop else repr(prop["default"])
        fields.append(Field(name, text, named, name in required, prop.get("description", ""), default))
    return fields


def _operation(path: str, method: str, operation: dict[str, Any]) -> Operation:
    parameters = []
    for parameter in operation.get("parameters", []):
        text, named = type_of(parameter.get("schema", {}))
        where = parameter.get("in", "")
        parameters.append(
            Field(
                f"{parameter['name']} ({where})",
                text,
                named,
                bool(parameter.get("required")),
                parameter.get("description", "") or parameter.get("schema", {}).get("description", ""),
            )
        )
    body = ""
    content = operation.get("requestBody", {}).get("content", {})
    for media in content.values():
        body = type_of(media.get("schema", {}))[1] or type_of(media.get("schema", {}))[0]
        break
    responses = []
    for status, response in operation.get("responses", {}).items():
        media_types: list[dict[str, Any]] = list(response.get("content", {}).values())
        schema = media_types[0].get("schema", {}) if media_types else {}
        responses.append((status, response.get("description", ""), type_of(schema)[0] if schema else ""))
    return Operation(
        method=method.upper(),
        path=f"/api/v1{path}",
        summary=operation.get("summary", ""),
        description=operation.get("description", ""),
        tag=(operation.get("tags") or ["other"])[0],
        parameters=parameters,
        body=body,
        responses=responses,
    )
