"""Read receipts: the visitor saw an agent's message, an agent saw the visitor's."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.channels.webchat.topics import WIDGET_READ, widget_topic
from frontdesk.conversations import outbox
from frontdesk.db import get_or_404
from frontdesk.errors import Invalid, NotFound
from frontdesk.models import Message
from frontdesk.models.enums import Channel, DeliveryStatus, Direction
from frontdesk.realtime import publish_after_commit


async def mark_read_by_visitor(session: AsyncSession, customer_id: uuid.UUID, message_id: uuid.UUID) -> Message:
    """The visitor saw an agent's message: ``delivery_status`` read, ``meta.read_at``; the desk is told."""
    message = await session.get(Message, message_id)
    if message is None or message.customer_id != customer_id or message.direction != Direction.outbound.value:
        raise NotFound(f"No message {message_id} sent to you.")
    now = clock.now()
    if message.delivery_status != DeliveryStatus.read.value:
        message.delivery_status = DeliveryStatus.read.value
        message.status_at = now
        message.meta = {**(message.meta or {}), "read_at": now.isoformat()}
        await session.flush()
        outbox.publish_delivery_status(session, message, read_at=now.isoformat())
    return message


async def mark_read_by_agent(session: AsyncSession, message_id: uuid.UUID, user_id: uuid.UUID) -> Message:
    """An agent saw the visitor's message: ``meta.read_by_agent_at``; the widget gets a ``read`` frame."""
    message = await get_or_404(session, Message, message_id, "message")
    if message.direction != Direction.inbound.value:
        raise Invalid("only a customer's message can be marked read by an agent", field="message_id")
    meta = dict(message.meta or {})
    if "read_by_agent_at" not in meta:
        now = clock.now().isoformat()
        meta.update(read_by_agent_at=now, read_by_agent_id=str(user_id))
        message.meta = meta
        await session.flush()
        outbox.publish_delivery_status(session, message, read_by_agent_at=now)
        if message.channel == Channel.webchat.value:
            publish_after_commit(
                session, widget_topic(message.conversation_id), WIDGET_READ, {"message_id": str(message.id)}
            )
    return message
