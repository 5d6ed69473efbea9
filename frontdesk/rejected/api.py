"""Rejected inputs (admin only): list, read, download the raw bytes, replay, discard.

See docs/architecture/rejected-inputs.md. Replay and discard are audited.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import AwareDatetime

from frontdesk.auth.deps import AdminDep
from frontdesk.channels.context import context_of
from frontdesk.deps import SessionDep, StoreDep
from frontdesk.errors import ServiceUnavailable
from frontdesk.models import RejectedInput
from frontdesk.openapi import problem
from frontdesk.pagination import Page
from frontdesk.rejected import replay, service
from frontdesk.rejected.schemas import PREVIEW_BYTES, RejectedOut, ReplayOut
from frontdesk.storage import ObjectMissing, StorageError

router = APIRouter(tags=["rejected inputs"])

Source = Annotated[
    str | None,
    Query(max_length=100, description="Only this intake: email.smtp, email.imap, api.inbound, api.events"),
]


def rejected_out(row: RejectedInput) -> RejectedOut:
    why = replay.why_not(row)
    return RejectedOut(
        id=row.id,
        source=row.source,
        reason=row.reason,
        content_type=row.content_type,
        received_at=row.received_at,
        origin=row.origin,
        anonymous=row.anonymous,
        size=row.size,
        kept=len(row.body),
        complete=service.is_complete(row) or bool(row.storage_key),
        replayable=why is None,
        not_replayable_because=why,
        customer_id=row.customer_id,
        replays=row.replays,
        replayed_at=row.replayed_at,
        preview=bytes(row.body[:PREVIEW_BYTES]).decode("utf-8", "replace").replace("\x00", "\ufffd"),
    )


@router.get("/rejected-inputs", response_model=Page[RejectedOut], summary="Inputs the intakes refused, newest first")
async def list_rejected(
    session: SessionDep,
    principal: AdminDep,
    source: Source = None,
    since: Annotated[AwareDatetime | None, Query(description="Received at or after (ISO 8601 with offset)")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Received before (ISO 8601 with offset)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[RejectedOut]:
    rows, next_cursor = await service.list_rejected(
        session, source=source, since=since, until=until, limit=limit, cursor=cursor
    )
    return Page[RejectedOut](items=[rejected_out(r) for r in rows], next_cursor=next_cursor)


@router.get("/rejected-inputs/{rejected_id}", response_model=RejectedOut, summary="One rejected input")
async def get_rejected(rejected_id: uuid.UUID, session: SessionDep, principal: AdminDep) -> RejectedOut:
    return rejected_out(await service.get_rejected(session, rejected_id))


def _filename(row: RejectedInput) -> str:
    ext = "eml" if row.source.startswith("email.") else "json" if row.source.startswith("api.") else "bin"
    return f"rejected-{row.id}.{ext}"


@router.get(
    "/rejected-inputs/{rejected_id}/raw",
    response_class=Response,
    summary="Download the raw bytes (always as an attachment, never rendered)",
    responses={
        200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        503: problem("The attachment store is not reachable"),
    },
)
async def download_raw(rejected_id: uuid.UUID, session: SessionDep, principal: AdminDep, store: StoreDep) -> Response:
    row = await service.get_rejected(session, rejected_id)
    data = bytes(row.body)
    if not service.is_complete(row) and row.storage_key:
        try:
            data = await store.get(row.storage_key)
        except ObjectMissing:
            pass  # only the cut kept here is left
        except StorageError as exc:
            raise ServiceUnavailable("The attachment store is not reachable; try again.") from exc
    return Response(
        content=data,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{_filename(row)}"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
            "Cache-Control": "private, no-store",
        },
    )


@router.post(
    "/rejected-inputs/{rejected_id}/replay",
    response_model=ReplayOut,
    summary="Feed it again through the intake it came from (audited)",
    description="An e-mail goes through the e-mail inbound path, an event through the events intake, an "
    "API-channel message through its inbox (the signature is not checked again: the admin vouches for it). "
    "`outcome` accepted/duplicate: stored, and the rejected input is deleted; rejected/ignored: refused "
    "again, and the rejected input keeps the new reason. 409 when it cannot be replayed (an anonymous "
    "excerpt, a cut, a whole batch refused for its shape).",
    responses={503: problem("The database, the store or the ingest writer is briefly unavailable")},
)
async def replay_rejected(rejected_id: uuid.UUID, request: Request, principal: AdminDep) -> ReplayOut:
    # Runs outside the request's unit of work: the intakes open their own transactions.
    outcome = await replay.replay(context_of(request.app), principal, rejected_id)
    return ReplayOut(
        id=rejected_id,
        outcome=outcome.status,  # type: ignore[arg-type]
        reason=outcome.reason,
        message_id=outcome.message_id,
        conversation_id=outcome.conversation_id,
        customer_id=outcome.customer_id,
        event_id=outcome.event_id,
    )


@router.delete(
    "/rejected-inputs/{rejected_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Discard it for good (audited)",
)
async def discard_rejected(rejected_id: uuid.UUID, session: SessionDep, principal: AdminDep) -> Response:
    await service.discard(session, principal, rejected_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
