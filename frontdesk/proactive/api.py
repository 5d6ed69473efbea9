"""Customer events API: single and batch ingest (idempotent), and a customer's events.

The ingest routes read the raw body themselves: a body that is not JSON, or an event that fails
validation, is answered with a 422 problem **and** kept raw in ``rejected_inputs`` (source
``api.events``), so nothing a sender gave us is silently dropped. The request schema is still
published in /openapi.json.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from frontdesk.auth.deps import AgentDep, Principal
from frontdesk.deps import SessionDep
from frontdesk.errors import ProblemError, problem_response
from frontdesk.openapi import request_body
from frontdesk.pagination import Page
from frontdesk.proactive import service
from frontdesk.proactive.schemas import (
    MAX_BATCH,
    BatchItemResult,
    BatchResult,
    EventBatchIn,
    EventIn,
    EventOut,
    EventType,
)
from frontdesk.rejected import service as rejected

router = APIRouter(tags=["events"])

MAX_EVENT_BODY = 64 * 1024
MAX_BATCH_BODY = 16 * 1024 * 1024


class _Rejected(Exception):
    def __init__(self, response: JSONResponse) -> None:
        self.response = response


def _validation_errors(exc: ValidationError, prefix: str = "") -> tuple[str, list[dict[str, Any]]]:
    errors = []
    for e in exc.errors():
        field = ".".join(str(p) for p in e.get("loc", ())) or "body"
        errors.append({"field": prefix + field, "message": e.get("msg", "invalid"), "type": e.get("type")})
    first = errors[0] if errors else {"field": "body", "message": "invalid"}
    detail = f"{first['field']}: {first['message']}"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    return detail, errors


async def _keep(
    request: Request, session: SessionDep, principal: Principal, body: bytes, reason: str, kind: str = "event"
) -> None:
    """Keep a refused event input (``frontdesk.rejected``). ``kind`` is ``event`` (one event's JSON: a
    single post or a batch item; replayable, linked to the customer it names) or ``batch`` (a whole
    batch refused for its shape). The caller is the sender the per-sender limit counts against."""
    named = kind == "event"
    await rejected.keep_json(
        session,
        source=service.REJECTED_SOURCE,
        reason=reason,
        body=body,
        content_type=request.headers.get("content-type"),
        origin=f"user:{principal.user_id}",
        meta={"kind": kind},
        identity_at="identity" if named else None,
        customer_id_at="customer_id" if named else None,
        settings=request.app.state.settings,
    )


async def _read_json(
    request: Request, session: SessionDep, principal: Principal, limit: int, kind: str
) -> tuple[Any, bytes]:
    """The parsed and the raw body; on failure the raw body is kept and a 422/413 problem raised as ``_Rejected``."""
    chunks: list[bytes] = []
    size = 0
    too_big = False
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            too_big = True
            chunks.append(chunk[: max(0, limit - (size - len(chunk)))])
            break
        chunks.append(chunk)
    body = b"".join(chunks)
    if too_big:
        reason = f"body larger than {limit} bytes"
        await _keep(request, session, principal, body, reason, kind)
        raise _Rejected(problem_response(413, "Payload too large", reason, slug="too-large", instance=request.url.path))
    try:
        return orjson.loads(body), body
    except orjson.JSONDecodeError as exc:
        reason = "the body is empty" if not body.strip() else f"the body is not JSON: {exc}"
        await _keep(request, session, principal, body, reason, kind)
        raise _Rejected(
            problem_response(
                422,
                "Validation failed",
                f"body: {reason}",
                slug="validation",
                instance=request.url.path,
                extra={"errors": [{"field": "body", "message": reason, "type": "json_invalid"}]},
            )
        ) from exc


@router.post(
    "/events",
    response_model=EventOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record a customer event",
    description="201 with the new event; 200 with `duplicate: true` and the original when the "
    "`idempotency_key` was seen before. Invalid input is answered with 422 and kept for inspection.",
    openapi_extra=request_body(EventIn),
    responses={200: {"model": EventOut, "description": "Duplicate: the original event"}},
)
async def post_event(request: Request, response: Response, session: SessionDep, principal: AgentDep) -> Any:
    try:
        data, raw = await _read_json(request, session, principal, MAX_EVENT_BODY, "event")
    except _Rejected as rejected:
        return rejected.response
    try:
        event_in = EventIn.model_validate(data)
    except ValidationError as exc:
        detail, errors = _validation_errors(exc)
        await _keep(request, session, principal, raw, detail)
        return problem_response(
            422, "Validation failed", detail, slug="validation", instance=request.url.path, extra={"errors": errors}
        )
    try:
        # Written together with the events of concurrent requests (proactive/intake.py).
        event, created = await request.app.state.events.submit(event_in)
    except ProblemError as exc:
        await _keep(request, session, principal, raw, exc.detail)
        return problem_response(
            exc.status, exc.title, exc.detail, slug=exc.slug, instance=request.url.path, extra=exc.extra
        )
    if not created:
        response.status_code = status.HTTP_200_OK
    return service.event_out(event, duplicate=not created)


def _validate_each(items: list[Any]) -> list[EventIn | str]:
    """Each item as an :class:`EventIn`, or the detail of why it is not one."""
    checked: list[EventIn | str] = []
    for index, item in enumerate(items):
        try:
            checked.append(EventIn.model_validate(item))
        except ValidationError as exc:
            checked.append(_validation_errors(exc, prefix=f"events.{index}.")[0])
    return checked


@router.post(
    "/events/batch",
    response_model=BatchResult,
    summary="Record up to 1000 customer events",
    description="Each item is validated and stored on its own: one bad item never fails the others. "
    "`results[i].status` is accepted, duplicate (idempotency key seen before) or rejected (with "
    "`error`; the item is kept for inspection). A bare JSON array of events is accepted too.",
    openapi_extra=request_body(EventBatchIn),
)
async def post_events_batch(request: Request, session: SessionDep, principal: AgentDep) -> Any:
    try:
        data, raw = await _read_json(request, session, principal, MAX_BATCH_BODY, "batch")
    except _Rejected as rejected:
        return rejected.response
    items = data.get("events") if isinstance(data, dict) else data
    problem = None
    if not isinstance(items, list):
        problem = ("events", 'must be a list of events (send {"events": [...]})')
    elif len(items) > MAX_BATCH:
        problem = ("events", f"holds {len(items)} events; at most {MAX_BATCH} per batch")
    elif isinstance(data, dict) and set(data) - {"events"}:
        problem = ("body", f"unknown field(s): {', '.join(sorted(map(str, set(data) - {'events'})))[:200]}")
    if problem is not None:
        field, message = problem
        await _keep(request, session, principal, raw, f"{field}: {message}", "batch")
        return problem_response(
            422,
            "Validation failed",
            f"{field}: {message}",
            slug="validation",
            instance=request.url.path,
            extra={"errors": [{"field": field, "message": message}]},
        )
    assert isinstance(items, list)

    results: dict[int, BatchItemResult] = {}
    valid: dict[int, EventIn] = {}
    for index, checked in enumerate(await asyncio.to_thread(_validate_each, items)):  # CPU work off the loop
        if isinstance(checked, EventIn):
            valid[index] = checked
        else:
            await _keep(request, session, principal, orjson.dumps(items[index]), checked)
            results[index] = BatchItemResult(index=index, status="rejected", error=checked)
    # One write for the whole batch (on SQLite the write lock is held for a moment, not per event).
    outcomes = await service.ingest_batch(session, list(valid.values()))
    for index, outcome in zip(valid, outcomes, strict=True):
        if isinstance(outcome, ProblemError):
            await _keep(request, session, principal, orjson.dumps(items[index]), outcome.detail)
            results[index] = BatchItemResult(index=index, status="rejected", error=outcome.detail)
        else:
            event, created = outcome
            status_ = "accepted" if created else "duplicate"
            results[index] = BatchItemResult(index=index, status=status_, event_id=event.id)
    await session.flush()
    ordered = [results[index] for index in range(len(items))]
    return BatchResult(
        accepted=sum(r.status == "accepted" for r in ordered),
        duplicates=sum(r.status == "duplicate" for r in ordered),
        rejected=sum(r.status == "rejected" for r in ordered),
        results=ordered,
    )


@router.get("/customers/{customer_id}/events", response_model=Page[EventOut], summary="A customer's events")
async def list_events(
    customer_id: uuid.UUID,
    session: SessionDep,
    principal: AgentDep,
    type: Annotated[EventType | None, Query(description="Only events of this type")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[EventOut]:
    events, next_cursor = await service.list_events(session, customer_id, type=type, limit=limit, cursor=cursor)
    return Page[EventOut](items=[service.event_out(e) for e in events], next_cursor=next_cursor)
