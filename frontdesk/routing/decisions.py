"""The decision log: every routing decision is a ``routing_decisions`` row with its reason.

The leader writes them in batches (:func:`decision_row`, a Core insert in its step's
transaction); offers answered through the API write theirs in the request's unit of work; the
API reads one conversation's log back (:func:`list_decisions`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.db import get_or_404
from frontdesk.ids import new_id
from frontdesk.models import Conversation, User
from frontdesk.models.routing import RoutingDecision
from frontdesk.routing import schemas as s


def decision_row(
    conversation_id: uuid.UUID,
    kind: str,
    at: datetime,
    *,
    reason: str = "",
    queue_id: uuid.UUID | None = None,
    queue_name: str | None = None,
    agent_id: uuid.UUID | None = None,
    rule: str | None = None,
    waited_seconds: float | None = None,
    offer_id: uuid.UUID | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``routing_decisions`` row (for a Core insert)."""
    return {
        "id": new_id(),
        "conversation_id": conversation_id,
        "at": at,
        "kind": kind,
        "queue_id": queue_id,
        "queue_name": queue_name,
        "agent_id": agent_id,
        "rule": rule,
        "reason": reason,
        "waited_seconds": None if waited_seconds is None else round(max(0.0, waited_seconds), 3),
        "offer_id": offer_id,
        "detail": detail or {},
    }


async def list_decisions(session: AsyncSession, conversation_id: uuid.UUID) -> list[s.DecisionOut]:
    await get_or_404(session, Conversation, conversation_id, "conversation")
    rows = await session.execute(
        select(RoutingDecision, User.name)
        .outerjoin(User, User.id == RoutingDecision.agent_id)
        .where(RoutingDecision.conversation_id == conversation_id)
        .order_by(RoutingDecision.at, RoutingDecision.id)
    )
    return [
        s.DecisionOut(
            at=d.at,
            kind=d.kind,
            queue=d.queue_name,
            queue_id=d.queue_id,
            agent=name,
            agent_id=d.agent_id,
            rule=d.rule,
            reason=d.reason,
            waited_seconds=d.waited_seconds,
            offer_id=d.offer_id,
        )
        for d, name in rows
    ]
