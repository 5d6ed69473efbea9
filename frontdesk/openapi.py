"""The OpenAPI document integrators read at ``/openapi.json``.

FastAPI documents only the happy path and its own 422. Frontdesk answers every error as RFC 9457
``application/problem+json`` (``frontdesk/errors.py``), so this adds a ``Problem`` schema and
documents, on every operation, the problem answers it can give: 400 and 422 everywhere; 401,
403 and 429 under ``/api/``; 404 and 409 where a path names a record or the method changes one.
Codes a route documents itself (413, 415, 503…) keep their description and get the same schema.

It is read at ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), both working without internet: their
files come from the ``fastapi-standalone-docs`` package (no third-party JavaScript is copied into
this repository) and are served under ``/docs-assets/<package version>/``, cached for a year.
"""

from __future__ import annotations

import html
from importlib.metadata import version
from pathlib import Path
from typing import Any

import fastapi_standalone_docs
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.responses import Response

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


ASSETS_DIR = Path(fastapi_standalone_docs.__file__).parent / "static"
ASSETS_PATH = f"/docs-assets/{version('fastapi-standalone-docs')}"  # a new package version, a new URL
# Swagger UI and ReDoc set styles from script (ReDoc injects <style> elements); nothing else inline.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)


class _VersionedAssets(StaticFiles):
    """The documentation viewers' files: their URL names the package version, so they never change."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def _page(title: str, head: str, body: str) -> HTMLResponse:
    page = (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<title>{html.escape(title)}</title>\n<link rel="icon" href="{ASSETS_PATH}/fastapi/favicon.png">\n'
        f"{head}</head>\n<body>\n{body}"
        '<script src="/static/js/api-docs.js"></script>\n</body>\n</html>\n'
    )
    return HTMLResponse(
        page,
        headers={
            "Content-Security-Policy": DOCS_CSP,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


def install(app: FastAPI) -> None:
    """Serve the enriched document (built once, on first request), ``/docs`` and ``/redoc``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_schema(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    spec = html.escape(app.openapi_url or "/openapi.json")
    app.mount(ASSETS_PATH, _VersionedAssets(directory=ASSETS_DIR), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _page(
            f"{app.title} API",
            f'<link rel="stylesheet" href="{ASSETS_PATH}/swagger/swagger-ui.css">\n',
            f'<div id="swagger-ui" data-openapi-url="{spec}"></div>\n'
            f'<script src="{ASSETS_PATH}/swagger/swagger-ui-bundle.js"></script>\n',
        )

    @app.get("/redoc/logo-mini.svg", include_in_schema=False)
    async def redoc_logo() -> FileResponse:  # ReDoc's footer asks for it next to its page
        return FileResponse(
            ASSETS_DIR / "redoc" / "logo-mini.svg",
            media_type="image/svg+xml",
            headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _page(
            f"{app.title} API",
            "",
            f'<div id="redoc" data-openapi-url="{spec}"></div>\n'
            f'<script src="{ASSETS_PATH}/redoc/redoc.standalone.js"></script>\n',
        )
