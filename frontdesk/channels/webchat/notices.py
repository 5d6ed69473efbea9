"""Proactive notices and offers: a message Frontdesk starts itself, shown in the customer's widget
and delivered by the outbox like any outbound message."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.channels.webchat.schemas import NoticeIn, WidgetOffer
from frontdesk.channels.webchat.snapshot import open_conversation
from frontdesk.channels.webchat.topics import CONVERSATION_OPENED, customer_topic
from frontdesk.conversations import service as conversations
from frontdesk.db import get_or_404
from frontdesk.errors import Invalid
from frontdesk.ids import new_id
from frontdesk.models import Conversation, Customer, Message, WebchatVisitor
from frontdesk.models.enums import Channel, ConversationStatus
from frontdesk.realtime import publish_after_commit


async def _conversation_for(session: AsyncSession, target: Conversation | Customer | uuid.UUID) -> Conversation:
    if isinstance(target, Conversation):
        return target
    customer_id = target.id if isinstance(target, Customer) else target
    customer = await get_or_404(session, Customer, customer_id, "customer")
    visitor = (
        await session.scalars(
            select(WebchatVisitor)
            .where(WebchatVisitor.customer_id == customer.id)
            .order_by(WebchatVisitor.last_seen_at.desc())
            .limit(1)
        )
    ).first()
    if visitor is None:
        raise Invalid("this customer has never opened the web chat", field="customer_id")
    conversation = await open_conversation(session, customer.id, visitor.inbox_id)
    if conversation is not None:
        return conversation
    now = clock.now()
    conversation = Conversation(
        id=new_id(),
        customer_id=customer.id,
        channel=Channel.webchat.value,
        inbox_id=visitor.inbox_id,
        status=ConversationStatus.open.value,
        message_count=0,
        created_at=now,
        updated_at=now,
        auto_open=True,
    )
    try:
        async with session.begin_nested():
            session.add(conversation)
            await session.flush()
    except IntegrityError:
        # Another process opened the customer's chat since we looked (the unique index on
        # auto-opened conversations): use theirs.
        winner = await open_conversation(session, customer.id, visitor.inbox_id)
        if winner is None:
            raise
        return winner
    publish_after_commit(
        session, customer_topic(customer.id), CONVERSATION_OPENED, {"conversation_id": str(conversation.id)}
    )
    return conversation


async def send_widget_notice(
    session: AsyncSession,
    conversation_or_customer: Conversation | Customer | uuid.UUID,
    text: str,
    *,
    offer: WidgetOffer | dict[str, Any] | None = None,
) -> Message:
    """A message Frontdesk starts itself, shown in the customer's widget (kind ``notice`` or ``offer``).

    Given a customer (or id), it goes to their open web-chat conversation, or a new one in the
    inbox they last chatted in. The message is outbound, authored by ``system``, and delivered by
    the outbox; an offer's answer comes back as a ``widget.offer_accepted``/``declined`` event.
    """
    checked = NoticeIn(text=text, offer=WidgetOffer.model_validate(offer) if isinstance(offer, dict) else offer)
    conversation = await _conversation_for(session, conversation_or_customer)
    meta: dict[str, Any] = {"kind": "offer" if checked.offer else "notice"}
    if checked.offer:
        meta["offer"] = checked.offer.model_dump()
    return await conversations.add_system_message(
        session, conversation, checked.text, channel=Channel.webchat, meta=meta
    )
