"""Offers: an agent's pending offers, and their answers (accept, decline).

Offers are answered here, by whichever process serves the request: the answer is a conditional
``UPDATE routing_offers … WHERE status = 'pending'``, so an agent's accept and the leader's expiry
can never both win. An accept assigns the conversation through ``conversations.assignment``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.audit import service as audit
from frontdesk.conversations import assignment
from frontdesk.conversations import service as conversations
from frontdesk.errors import Conflict, NotFound
from frontdesk.models import AgentPresence, Conversation, Queue
from frontdesk.models.routing import RoutingDecision, RoutingItem, RoutingOffer
from frontdesk.realtime import publish_after_commit
from frontdesk.routing import schemas as s
from frontdesk.routing.decisions import decision_row
from frontdesk.routing.inbox import forward
from frontdesk.routing.names import EVENT_OFFER_WITHDRAWN

# -- offers ----------------------------------------------------------------------------------


async def _offer_views(session: AsyncSession, offers: Sequence[RoutingOffer], now: datetime) -> list[s.OfferOut]:
    if not offers:
        return []
    qids = {o.queue_id for o in offers if o.queue_id}
    qnames = dict((await session.execute(select(Queue.id, Queue.name).where(Queue.id.in_(qids)))).all()) if qids else {}
    cids = [o.conversation_id for o in offers]
    priorities = dict(
        (await session.execute(select(Conversation.id, Conversation.priority).where(Conversation.id.in_(cids)))).all()
    )
    cnames = dict(
        (
            await session.execute(
                select(RoutingItem.conversation_id, RoutingItem.customer_name).where(
                    RoutingItem.conversation_id.in_(cids)
                )
            )
        ).all()
    )
    return [
        s.OfferOut(
            id=o.id,
            conversation_id=o.conversation_id,
            agent_id=o.agent_id,
            queue_id=o.queue_id,
            queue_name=qnames.get(o.queue_id) if o.queue_id else None,
            customer_name=cnames.get(o.conversation_id),
            channel=o.channel,
            status=o.status,
            priority=priorities.get(o.conversation_id, "normal"),
            effective_priority=o.priority,
            offered_at=o.offered_at,
            expires_at=o.expires_at,
            answered_at=o.answered_at,
            seconds=(
                max(0, int((o.expires_at - now).total_seconds()))
                if o.status == "pending" and o.expires_at is not None
                else None
            ),
        )
        for o in offers
    ]


async def my_offers(session: AsyncSession, user_id: uuid.UUID) -> list[s.OfferOut]:
    """The agent's pending offers (a desk that reloads shows them again)."""
    now = clock.now()
    offers = (
        await session.scalars(
            select(RoutingOffer)
            .where(RoutingOffer.agent_id == user_id, RoutingOffer.status == "pending")
            .order_by(RoutingOffer.offered_at)
        )
    ).all()
    return await _offer_views(session, [o for o in offers if o.expires_at is None or o.expires_at > now], now)


async def _own_offer(session: AsyncSession, offer_id: uuid.UUID, user_id: uuid.UUID) -> RoutingOffer:
    offer = await session.get(RoutingOffer, offer_id)
    if offer is None or offer.agent_id != user_id:
        raise NotFound(f"No offer with id {offer_id} for you.")
    return offer


def _closed(offer: RoutingOffer) -> Conflict:
    words = {"timed_out": "timed out", "auto_accepted": "accepted"}
    return Conflict(f"This offer is no longer open: it was {words.get(offer.status, offer.status)}.")


async def _answer(session: AsyncSession, offer: RoutingOffer, status: str, now: datetime) -> bool:
    result: Any = await session.execute(
        update(RoutingOffer)
        .where(RoutingOffer.id == offer.id, RoutingOffer.status == "pending")
        .values(status=status, answered_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)


async def accept_offer(session: AsyncSession, actor: Any, offer_id: uuid.UUID) -> s.OfferOut:
    """The agent takes the conversation: it is assigned to them at once (``conversation.updated``)."""
    me = actor.user_id
    now = clock.now()
    offer = await _own_offer(session, offer_id, me)
    if offer.status != "pending":
        raise _closed(offer)
    if offer.expires_at is not None and offer.expires_at <= now:
        raise Conflict("This offer has expired.")
    conversation = await session.get(Conversation, offer.conversation_id)
    if conversation is None or conversation.status != "open" or conversation.assignee_id not in (None, me):
        raise Conflict("The conversation is no longer waiting for an agent.")
    if not await _answer(session, offer, "accepted", now):
        await session.refresh(offer)
        raise _closed(offer)
    await session.refresh(offer)
    item = await session.get(RoutingItem, offer.conversation_id)
    previous = conversation.assignee_id
    changes = []
    if previous != me:
        assignment.assign(conversation, me)
        changes.append("assignee_id")
    if conversation.queue_id is None and offer.queue_id is not None:
        conversation.queue_id = offer.queue_id
        changes.append("queue_id")
    conversation.updated_at = now
    waited = None
    queue_name = None
    if item is not None:
        waited = (now - item.arrived_at).total_seconds()
        item.state = "assigned"
        item.agent_id = me
        item.first_in_line = False
        item.updated_at = now
    if offer.queue_id is not None:
        queue_name = await session.scalar(select(Queue.name).where(Queue.id == offer.queue_id))
    await session.execute(
        insert(RoutingDecision).values(
            decision_row(
                offer.conversation_id,
                "accepted",
                now,
                reason="the agent accepted the offer",
                queue_id=offer.queue_id,
                queue_name=queue_name,
                agent_id=me,
                waited_seconds=waited,
                offer_id=offer.id,
            )
        )
    )
    await session.execute(update(AgentPresence).where(AgentPresence.user_id == me).values(missed_offers=0))
    await session.flush()
    await audit.record(
        session,
        actor,
        "conversation.assigned",
        "conversation",
        conversation.id,
        {"assignee_id": {"from": str(previous) if previous else None, "to": str(me)}, "via": "routing offer"},
    )
    if changes:  # the event hook forwards this change to the leader
        await conversations.publish_conversation_updated(session, conversation, changes)
    else:
        await forward(session, "conversation", conversation_id=conversation.id)
    return (await _offer_views(session, [offer], now))[0]


async def decline_offer(session: AsyncSession, actor: Any, offer_id: uuid.UUID) -> s.OfferOut:
    """The agent passes: the conversation goes on to the next agent (not back to them for a while)."""
    me = actor.user_id
    now = clock.now()
    offer = await _own_offer(session, offer_id, me)
    if offer.status != "pending" or not await _answer(session, offer, "declined", now):
        await session.refresh(offer)
        raise _closed(offer)
    await session.refresh(offer)
    item = await session.get(RoutingItem, offer.conversation_id)
    waited = None
    if item is not None:
        waited = (now - item.arrived_at).total_seconds()
        if item.offer_id == offer.id and item.state == "offered":
            item.state = "waiting"
            item.agent_id = None
            item.offer_id = None
            item.updated_at = now
    queue_name = await session.scalar(select(Queue.name).where(Queue.id == offer.queue_id)) if offer.queue_id else None
    await session.execute(
        insert(RoutingDecision).values(
            decision_row(
                offer.conversation_id,
                "declined",
                now,
                reason="the agent declined the offer",
                queue_id=offer.queue_id,
                queue_name=queue_name,
                agent_id=me,
                waited_seconds=waited,
                offer_id=offer.id,
            )
        )
    )
    await session.flush()
    await forward(session, "conversation", conversation_id=offer.conversation_id)
    publish_after_commit(
        session,
        f"user:{me}",
        EVENT_OFFER_WITHDRAWN,
        {"offer_id": str(offer.id), "conversation_id": str(offer.conversation_id), "reason": "you declined it"},
    )
    return (await _offer_views(session, [offer], now))[0]
