"""What channels learn about a message's passage, written by the conversations domain.

Channels never write ``messages`` rows themselves: an inbound channel asks whether a provider's
message was already stored (:func:`stored_message_id`, the idempotency key), and an outbound
channel reports what the provider said afterwards — a bounce (:func:`mark_bounced`).
"""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.models import Message
from frontdesk.models.enums import DeliveryStatus, Direction


async def stored_message_id(session: AsyncSession, channel: str, external_id: str) -> uuid.UUID | None:
    """The message already stored for this provider id on ``channel``, if any."""
    found: uuid.UUID | None = await session.scalar(
        select(Message.id).where(Message.channel == channel, Message.external_id == external_id)
    )
    return found


async def mark_bounced(session: AsyncSession, channel: str, external_ids: list[str], detail: str) -> None:
    """Mark the outbound messages with these provider ids failed (``detail`` says why: shown to agents)."""
    if not external_ids:
        return
    m = Message.__table__.c
    await session.execute(
        update(Message)
        .where(
            m.channel == channel,
            m.direction == Direction.outbound.value,
            m.external_id.in_(external_ids),
        )
        .values(delivery_status=DeliveryStatus.failed.value, error=detail[:2000], status_at=clock.now())
    )
