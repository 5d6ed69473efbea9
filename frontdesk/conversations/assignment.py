"""Who holds a conversation: the one writer of ``conversations.assignee_id``.

A conversation is assigned three ways, and all of them write the assignee here:

* a person assigns, transfers or unassigns it, or takes it by replying to it unassigned
  (``conversations.service.update_conversation``): :func:`assign`, on the loaded row;
* an agent accepts a routing offer (``routing.offers.accept_offer``): :func:`assign`;
* the routing leader assigns it in an auto-accept queue (``routing.persistence``):
  :func:`assign_routed`, a Core batch inside the leader's fenced step transaction, which only
  takes a conversation that is still open and unassigned.

Writing the assignee is all these functions do. What goes with it stays with the caller, because
it differs by way: the audit row (``conversation.assigned``, with ``via``), the transfer note and
the ``conversation.updated`` push after the commit — which is also what forwards the change to the
routing leader (``routing.inbox.forward_conversation_events``); the leader marks its own push
``"by": "routing"`` so it is not forwarded back to itself. A conversation created with an assignee
gets it in its ``INSERT`` (``create_conversation``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.models import Conversation


def assign(conversation: Conversation, assignee_id: uuid.UUID | None) -> None:
    """Give a loaded conversation to ``assignee_id`` (``None``: unassign), in the caller's unit of work."""
    conversation.assignee_id = assignee_id


async def assign_routed(
    session: AsyncSession, assignments: Mapping[uuid.UUID, tuple[uuid.UUID, uuid.UUID]], now: datetime
) -> set[uuid.UUID]:
    """Routing's assignments (conversation -> (agent, queue)), in the leader's transaction.

    Each is a conditional ``UPDATE``: only a conversation still open and unassigned is taken (a
    person may have assigned or closed it meanwhile). Returns the conversations that were assigned.
    """
    taken: set[uuid.UUID] = set()
    for conversation_id, (agent_id, queue_id) in assignments.items():
        result: Any = await session.execute(
            update(Conversation)
            .where(
                Conversation.id == conversation_id,
                Conversation.status == "open",
                Conversation.assignee_id.is_(None),
            )
            .values(assignee_id=agent_id, queue_id=queue_id, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount:
            taken.add(conversation_id)
    return taken
