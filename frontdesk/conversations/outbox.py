"""The outbox: an outbound message and its delivery job are written in one transaction.

:func:`enqueue` is what every sender (agent reply, bot, journey) calls after adding the
message; the dispatcher (``frontdesk.conversations.dispatcher``) delivers it after the commit.

``Message.error`` keeps why a delivery failed (a receiver's status and answer, a refused address,
a relay's reply): that is for admins (``GET /api/v1/messages/{id}/delivery``, the dead-letter
list). Everyone else — the message views, the realtime pushes, webhook payloads — gets
:func:`agent_error`: that it failed, never why.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.bus import emit
from frontdesk.db import after_commit
from frontdesk.events import MessageStatusChanged
from frontdesk.models import Message, OutboxItem
from frontdesk.models.enums import DeliveryStatus

WAKEUP_KEY = "outbox_wakeup"
DELIVERY_FAILED = "delivery failed"
DELIVERY_RETRYING = "delivery failed; retrying"


def agent_error(delivery_status: str | None, error: str | None) -> str | None:
    """What agents (and every non-admin reader) see of a delivery error: that it failed, not why."""
    if not error and delivery_status != DeliveryStatus.failed.value:
        return None
    return DELIVERY_FAILED if delivery_status == DeliveryStatus.failed.value else DELIVERY_RETRYING


async def enqueue(session: AsyncSession, message: Message) -> OutboxItem:
    """Add the delivery job for ``message`` (already added to ``session``); flushes."""
    item = OutboxItem(message_id=message.id, channel=message.channel)
    session.add(item)
    await session.flush()
    wake = session.info.get(WAKEUP_KEY)
    if wake is not None:

        async def _wake() -> None:
            wake()

        after_commit(session, _wake)
    return item


def publish_delivery_status(session: AsyncSession, message: Message, **extra: Any) -> None:
    """Emit ``MessageStatusChanged`` (``conversation.message_updated`` to the desks after commit)."""
    emit(
        session,
        MessageStatusChanged(
            conversation_id=message.conversation_id,
            message_id=message.id,
            channel=message.channel,
            delivery_status=message.delivery_status,
            external_id=message.external_id,
            error=agent_error(message.delivery_status, message.error),
            status_at=message.status_at,
            extra=extra,
        ),
    )
