"""The OpenAPI document integrators read at ``/openapi.json``.

FastAPI documents only the happy path and its own 422. Frontdesk answers every error as RFC 9457
``application/problem+json`` (``frontdesk/errors.py``), so this adds a ``Problem`` schema and
documents, on every operation, the problem answers it can give: 400 and 422 everywhere; 401,
403 and 429 under ``/api/``; 404 and 409 where a path names a record or the method changes one.
Codes a route documents itself (413, 415, 503…) keep their description and get the same schema.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details. `errors` lists every field that failed validation.",
    "properties": {
        "type": {"type": "string", "description": "A URI naming the kind of problem."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What went wrong, for a person."},
        "instance": {"type": "string", "description": "The path of the request."},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
}

DESCRIPTIONS = {
    400: "Bad request",
    401: "Not signed in, or the token is not valid",
    403: "Not allowed for this role or token scope",
    404: "No such record",
    409: "Conflicts with an existing record",
    413: "Too large",
    415: "Unsupported media type",
    422: "Validation failed (the fields are named in `errors`)",
    429: "Too many requests (see Retry-After)",
    503: "A dependency is unavailable",
}
PROBLEM_CONTENT = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
CHANGING = {"post", "put", "patch", "delete"}


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body that a route reads raw (``$defs`` inlined)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return resolve(defs[ref.removeprefix("#/$defs/")]) | resolve(rest)
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": resolve(schema)}}}}


def problem(description: str) -> dict[str, Any]:
    """A documented problem answer, for a route's ``responses={code: problem("…")}``."""
    return {"description": description, "content": PROBLEM_CONTENT}


def _problem_codes(path: str, method: str) -> list[int]:
    codes = [400, 422]
    if path.startswith("/api/"):
        codes += [401, 403, 429]
    if "{" in path or method in CHANGING:
        codes += [404, 409]
    return codes


def build_schema(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            codes = set(_problem_codes(path, method))
            codes |= {int(c) for c in responses if c.isdigit() and int(c) >= 400}
            for code in sorted(codes):
                entry = responses.setdefault(str(code), {"description": DESCRIPTIONS.get(code, "Error")})
                entry["content"] = PROBLEM_CONTENT
    return schema


def install(app: FastAPI) -> None:
    """Serve the enriched document (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_schema(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
