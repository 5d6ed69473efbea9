"""Errors as RFC 9457 problem details (``application/problem+json``).

Domain code raises a :class:`ProblemError` subclass with a human ``detail``; one handler renders
it. Validation errors name the offending field. Nothing a client sends may produce a 500.

An unexpected exception is logged once, by ``_unexpected`` (the logging thread renders it: see
``frontdesk/logs.py``), and answered with a problem+json 500. Starlette's ``ServerErrorMiddleware``
re-raises it after answering, for the server to log; :class:`_Answered` stops it there, so uvicorn
neither logs it a second time nor drops the kept-alive connection of an answered request.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "https://frontdesk.dev/problems/"


class ProblemError(Exception):
    status: int = 400
    title: str = "Bad request"
    slug: str = "bad-request"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}
        self.headers = headers


class BadRequest(ProblemError):
    pass


class Unauthorized(ProblemError):
    status, title, slug = 401, "Unauthorized", "unauthorized"


class Forbidden(ProblemError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(ProblemError):
    status, title, slug = 404, "Not found", "not-found"


class Conflict(ProblemError):
    status, title, slug = 409, "Conflict", "conflict"


class Invalid(ProblemError):
    """The request was well-formed but a value breaks a rule (names the field in ``errors``)."""

    status, title, slug = 422, "Validation failed", "validation"

    def __init__(self, detail: str, *, field: str | None = None, **kw: Any):
        super().__init__(detail, **kw)
        if field:
            self.extra.setdefault("errors", [{"field": field, "message": detail}])


class TooManyRequests(ProblemError):
    status, title, slug = 429, "Too many requests", "rate-limited"


class ServiceUnavailable(ProblemError):
    status, title, slug = 503, "Service unavailable", "unavailable"


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str | None = None,
    instance: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": _TYPE_BASE + (slug or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:] or parts
    return ".".join(parts) or "body"


class _Answered:
    """Outermost ASGI wrapper: an exception raised after the answer was started is over.

    ``ServerErrorMiddleware`` has already logged it (through ``_unexpected``) and answered; a
    response broken off mid-body stays incomplete, and uvicorn closes that connection with one
    line. An exception raised before any answer (none was possible) goes on to the server.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def _send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, _send)
        except Exception:
            if not started:
                raise


def install(app: FastAPI) -> None:
    build = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        return _Answered(build())

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.title,
            exc.detail,
            slug=exc.slug,
            instance=request.url.path,
            extra=exc.extra,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_name(e.get("loc", ())), "message": e.get("msg", "invalid"), "type": e.get("type")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        detail = f"{first['field']}: {first['message']}"
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more)"
        return problem_response(
            422, "Validation failed", detail, slug="validation", instance=request.url.path, extra={"errors": errors}
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) else title
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No such endpoint: {request.method} {request.url.path}"
        return problem_response(exc.status_code, title, detail, instance=request.url.path, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(
            500,
            "Internal error",
            "Something went wrong on our side; it has been logged.",
            slug="internal",
            instance=request.url.path,
        )
