"""The outbox: an outbound message and its delivery job are written in one transaction.

:func:`enqueue` is what every sender (agent reply, bot, journey) calls after adding the
message; the dispatcher (``frontdesk.conversations.dispatcher``) delivers it after the commit.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.db import after_commit
from frontdesk.models import Message, OutboxItem

WAKEUP_KEY = "outbox_wakeup"


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
