"""The one writer of a conversation's assignee (``frontdesk/conversations/assignment.py``): routing's
batch takes only a conversation still open and unassigned, whatever happened meanwhile."""

from __future__ import annotations

import uuid

from frontdesk import clock
from frontdesk.conversations import assignment
from frontdesk.models import Conversation
from tests.builders import create_queue_via_api, make_customer
from tests.builders.routing import open_conversation, person


async def test_routing_assigns_only_open_unassigned_conversations(client, app):
    admin, admin_h = await person(app, "admin")
    agent, _ = await person(app, "agent")
    queue = uuid.UUID((await create_queue_via_api(client, admin_h))["id"])
    customer = await make_customer(app.state.db)
    free = uuid.UUID(await open_conversation(client, admin_h, customer.id))
    taken = uuid.UUID(await open_conversation(client, admin_h, customer.id, assignee_id=str(admin)))
    closed = uuid.UUID(await open_conversation(client, admin_h, customer.id))
    r = await client.patch(f"/api/v1/conversations/{closed}", json={"status": "resolved"}, headers=admin_h)
    assert r.status_code == 200, r.text

    now = clock.now()
    async with app.state.db.transaction() as session:
        got = await assignment.assign_routed(session, {c: (agent, queue) for c in (free, taken, closed)}, now)
    assert got == {free}

    async with app.state.db.sessionmaker() as session:
        rows = {c: await session.get(Conversation, c) for c in (free, taken, closed)}
    assert rows[free] is not None
    assert rows[free].assignee_id == agent
    assert rows[free].queue_id == queue
    assert rows[taken].assignee_id == admin  # a person assigned it first: that stands
    assert rows[closed].assignee_id is None
