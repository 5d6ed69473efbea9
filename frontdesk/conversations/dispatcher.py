"""The outbox dispatcher: delivers queued outbound messages through their channel adapter.

``outbox.enqueue`` writes an ``OutboxItem`` in the same transaction as the message. This loop
claims items with the shared lease machinery of ``frontdesk.timers`` (so a crash between commit
and delivery only delays it), reads the message, its conversation and inbox, calls the adapter
for ``message.channel`` *outside* any transaction, then records the outcome on the message:

- success: ``delivery_status`` sent/delivered, the provider's ``external_id``; the item is deleted;
- transient error: the item is retried with backoff, the error shown on the (still queued) message;
- permanent error or out of attempts: the message is ``failed`` with the error, the item kept as
  ``failed`` for inspection.

Each outcome publishes ``conversation.message_updated``. The dispatcher wakes right after a commit
that enqueued something (``session.info["outbox_wakeup"]``) and polls otherwise. A send whose
outcome could not be recorded (crash right after the provider accepted it) is sent again with
the same delivery id (the item id), which receivers use to dedupe.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.channels.base import ChannelAdapter, OutboundMessage, PermanentError
from frontdesk.conversations.outbox import publish_delivery_status
from frontdesk.db import Database
from frontdesk.models import Conversation, Inbox, Message, OutboxItem
from frontdesk.models.enums import DeliveryStatus
from frontdesk.timers import Claimed, LeaseLost, WorkLoop

log = logging.getLogger(__name__)


class Dispatcher(WorkLoop):
    model = OutboxItem
    name = "outbox"

    def __init__(
        self,
        db: Database,
        settings: Any = None,
        *,
        adapters: dict[str, ChannelAdapter] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(db, settings, **kwargs)
        self.adapters = adapters if adapters is not None else {}  # built by the wiring (wiring.channel_adapters)

    async def in_order(self, claimed: list[Claimed]) -> list[list[Claimed]]:
        """One group per conversation, its messages in the order they were written: two replies
        sent a moment apart reach the customer in that order (the adapters are called one after
        the other for them). Other conversations go side by side."""
        if len(claimed) < 2:
            return [claimed]
        by_id = {c.id: c for c in claimed}
        async with self.db.transaction() as session:
            rows = (
                await session.execute(
                    select(OutboxItem.id, Message.conversation_id)
                    .join(Message, Message.id == OutboxItem.message_id)
                    .where(OutboxItem.id.in_(list(by_id)))
                    .order_by(Message.created_at, Message.id)
                )
            ).all()
        groups: dict[Any, list[Claimed]] = {}
        for item_id, conversation_id in rows:
            groups.setdefault(conversation_id, []).append(by_id.pop(item_id))
        return [*groups.values(), *([c] for c in by_id.values())]  # by_id: rows gone meanwhile

    async def _load(self, claimed: Claimed) -> tuple[OutboxItem, OutboundMessage] | None:
        async with self.db.transaction() as session:
            item = await session.get(OutboxItem, claimed.id)
            if item is None or item.locked_by != self.worker:
                return None
            message = await session.get(Message, item.message_id)
            if message is None:  # cascade deletes the item with the message; defensive only
                return None
            conversation = await session.get(Conversation, message.conversation_id)
            inbox = None
            if conversation is not None and conversation.inbox_id is not None:
                inbox = await session.get(Inbox, conversation.inbox_id)
            outbound = OutboundMessage(
                delivery_id=item.id,
                message_id=message.id,
                conversation_id=message.conversation_id,
                customer_id=message.customer_id,
                channel=message.channel,
                text=message.text,
                html=message.html,
                author_type=message.author_type,
                author_id=message.author_id,
                created_at=message.created_at,
                inbox_id=inbox.id if inbox else None,
                inbox_config=dict(inbox.config or {}) if inbox else {},
                meta=dict(message.meta or {}),
                attempt=claimed.attempts,
            )
        return item, outbound

    async def process(self, claimed: Claimed) -> None:
        loaded = await self._load(claimed)
        if loaded is None:
            log.warning("outbox: %s vanished or its lease was lost", claimed.id)
            return
        item, outbound = loaded
        adapter = self.adapters.get(item.channel)
        try:
            if adapter is None:
                raise PermanentError(f"no adapter for channel '{item.channel}' yet")
            result = await adapter.send(outbound)
        except PermanentError as exc:
            await self.record_failure(claimed, str(exc), permanent=True)
            return
        except Exception as exc:
            await self.record_failure(claimed, str(exc) or type(exc).__name__)
            return
        try:
            async with self.db.transaction() as session:
                await self.complete(session, claimed)
                message = await session.get(Message, outbound.message_id, with_for_update=self.db.dialect != "sqlite")
                if message is None:
                    return
                message.delivery_status = result.status
                if result.external_id:
                    message.external_id = result.external_id
                message.error = None
                message.status_at = clock.now()
                publish_delivery_status(session, message)
        except LeaseLost:
            log.warning("outbox: sent %s but its lease was lost; the new holder resends it", claimed.id)

    async def _message_of(self, session: AsyncSession, claimed: Claimed) -> Message | None:
        row = await session.execute(
            select(Message).join(OutboxItem, OutboxItem.message_id == Message.id).where(OutboxItem.id == claimed.id)
        )
        return row.scalar_one_or_none()

    async def on_failed(self, session: AsyncSession, claimed: Claimed, error: str) -> None:
        message = await self._message_of(session, claimed)
        if message is None:
            return
        message.delivery_status = DeliveryStatus.failed.value
        message.error = error
        message.status_at = clock.now()
        publish_delivery_status(session, message)

    async def on_retry(self, session: AsyncSession, claimed: Claimed, error: str) -> None:
        message = await self._message_of(session, claimed)
        if message is not None:
            message.error = f"attempt {claimed.attempts} of {claimed.max_attempts} failed, retrying: {error}"
