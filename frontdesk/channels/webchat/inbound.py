"""The web chat's inbound side: what a visitor sends through the widget socket.

A message becomes an :class:`InboundMessage` from the visitor's identity (:func:`visitor_message`)
that the socket (``socket.py``) hands to the group-commit ingest writer; ``track`` calls and offer
answers become customer events for the proactive engine.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.conversations.ingest import InboundMessage
from frontdesk.models.enums import Channel, IdentityKind
from frontdesk.proactive import service as proactive
from frontdesk.proactive.schemas import EventIn


def visitor_message(
    inbox_id: uuid.UUID,
    visitor_id: uuid.UUID,
    client_id: uuid.UUID,
    text: str,
    *,
    conversation_id: uuid.UUID | None,
    attachment_ids: tuple[uuid.UUID, ...] = (),
) -> InboundMessage:
    """A widget ``message`` frame as the ingest path takes it; ``<visitor>:<client id>`` is its
    idempotency key (a resent frame is acknowledged, never stored twice)."""
    return InboundMessage(
        identity_kind=IdentityKind.webchat_visitor,
        identity_value=str(visitor_id),
        channel=Channel.webchat,
        inbox_id=inbox_id,
        external_id=external_id_of(visitor_id, client_id),
        text=text,
        conversation_id=conversation_id,
        attachment_ids=attachment_ids,
        meta={"client_id": str(client_id), "visitor_id": str(visitor_id)},
    )


def external_id_of(visitor_id: uuid.UUID, client_id: uuid.UUID) -> str:
    return f"{visitor_id}:{client_id}"


async def track(
    session: AsyncSession, customer_id: uuid.UUID, event: str, properties: dict[str, Any], visitor_id: uuid.UUID
) -> None:
    """``frontdesk('track', …)`` → a customer event for the proactive engine (source ``webchat``)."""
    await proactive.ingest(
        session,
        EventIn(
            type=event,
            customer_id=customer_id,
            properties={**properties, "visitor_id": str(visitor_id)},
            source="webchat",
        ),
    )


async def answer_offer(session: AsyncSession, customer_id: uuid.UUID, offer_id: str, accepted: bool) -> bool:
    """``widget.offer_accepted`` / ``widget.offer_declined`` with the offer id; one answer per offer."""
    _event, created = await proactive.ingest(
        session,
        EventIn(
            type="widget.offer_accepted" if accepted else "widget.offer_declined",
            customer_id=customer_id,
            properties={"offer_id": offer_id},
            source="webchat",
            idempotency_key=f"widget.offer:{customer_id}:{offer_id}"[:200],
        ),
    )
    return created
