"""Email routes: the raw message behind an inbound email (``GET /api/v1/messages/{id}/raw``)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response
from sqlalchemy import select

from frontdesk.auth.deps import AgentDep
from frontdesk.deps import SessionDep, StoreDep
from frontdesk.errors import NotFound, ServiceUnavailable
from frontdesk.models import Message
from frontdesk.models.enums import Channel
from frontdesk.openapi import problem as _problem
from frontdesk.storage import ObjectMissing, StorageError, UnsafeKey

router = APIRouter(
    tags=["email"],
    responses={
        401: _problem("Not signed in"),
        403: _problem("Role or token scope too low"),
        404: _problem("No such message, or it has no raw email"),
        422: _problem("Invalid input; `errors` names the fields"),
    },
)


@router.get(
    "/messages/{message_id}/raw",
    response_class=Response,
    summary="Download the raw email (.eml) an inbound email message was made from",
    responses={
        200: {
            "content": {"message/rfc822": {"schema": {"type": "string", "format": "binary"}}},
            "description": "The email",
        },
        503: _problem("The attachment store is not reachable"),
    },
)
async def get_raw_email(message_id: uuid.UUID, session: SessionDep, store: StoreDep, principal: AgentDep) -> Response:
    """The message exactly as it was received (headers, quoted history, every part)."""
    m = Message.__table__.c
    row = (await session.execute(select(m.channel, m.meta).where(m.id == message_id))).first()
    if row is None:
        raise NotFound(f"No message with id {message_id}.")
    key = (row[1] or {}).get("raw_key") if isinstance(row[1], dict) else None
    if row[0] != Channel.email.value or not isinstance(key, str) or not key:
        raise NotFound(f"Message {message_id} has no raw email (only received emails keep one).")
    try:
        data = await store.get(key)
    except (ObjectMissing, UnsafeKey) as exc:
        raise NotFound(f"The raw email of message {message_id} is missing from the store.") from exc
    except StorageError as exc:
        raise ServiceUnavailable("The attachment store is not reachable; try again.") from exc
    return Response(
        content=data,
        media_type="message/rfc822",
        headers={
            "Content-Disposition": f'attachment; filename="message-{message_id}.eml"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
            "Cache-Control": "private, no-store",
        },
    )
