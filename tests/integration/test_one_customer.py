"""One customer across channels: yesterday's email and today's chat become one timeline.

The story an agent lives through: a customer emails yesterday, chats today as an anonymous
visitor, gives the same email in the chat; the desk does not merge silently but suggests; the
agent accepts; one customer, one timeline, every message kept; a supervisor can undo it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from frontdesk import clock
from frontdesk.conversations.ingest import InboundMessage, receive
from frontdesk.models import AuditEntry, Conversation, Identity, Message
from tests.builders import auth_headers

API = "/api/v1"


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"run_loops": False})


async def inbound(app, **fields) -> tuple[uuid.UUID, uuid.UUID]:
    """Store one inbound message through the real inbound path; (customer id, conversation id)."""
    fields.setdefault("external_id", uuid.uuid4().hex)
    async with app.state.db.transaction() as s:
        result = await receive(s, InboundMessage(**fields))
    return result.customer_id, result.conversation_id


async def message_counts(app) -> tuple[int, dict[uuid.UUID, int]]:
    async with app.state.db.transaction() as s:
        total = await s.scalar(select(func.count()).select_from(Message))
        per = dict((await s.execute(select(Message.customer_id, func.count()).group_by(Message.customer_id))).all())
    return int(total or 0), per


async def timeline(client, headers, customer_id) -> list[dict]:
    r = await client.get(f"{API}/customers/{customer_id}/timeline", params={"order": "asc"}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def test_email_yesterday_and_chat_today_become_one_customer_and_can_be_undone(app, client):
    agent = await auth_headers(app, "agent")
    supervisor = await auth_headers(app, "supervisor")
    now = clock.now()

    # Yesterday: an email from Ann. Today: an anonymous chat visitor.
    email_customer, email_conv = await inbound(
        app,
        identity_kind="email",
        identity_value="Ann.Smith@Example.com",
        channel="email",
        name="Ann Smith",
        subject="Where is my order?",
        text="Hello, my order 1234 has not arrived.",
        occurred_at=now - timedelta(days=1),
    )
    visitor, chat_conv = await inbound(
        app, identity_kind="webchat_visitor", identity_value="v-7f3a", channel="webchat", text="Hi, any news on 1234?"
    )
    assert visitor != email_customer
    total_before, _ = await message_counts(app)
    assert total_before == 2

    # In the chat she gives her email: the identity belongs to the email customer -> 409 carrying a
    # suggestion, and nothing merged behind anyone's back.
    r = await client.post(
        f"{API}/customers/{visitor}/identities", json={"kind": "email", "value": "ann.smith@example.com"}, headers=agent
    )
    assert r.status_code == 409
    problem = r.json()
    assert problem["customer_id"] == str(email_customer)
    suggestion_id = problem["merge_suggestion_id"]
    assert suggestion_id
    assert [i["channel"] for i in await timeline(client, agent, visitor)] == ["webchat"]
    assert [i["channel"] for i in await timeline(client, agent, email_customer)] == ["email"]

    r = await client.get(f"{API}/merge-suggestions", params={"status": "open"}, headers=agent)
    assert r.status_code == 200
    [listed] = r.json()["items"]
    assert listed["id"] == suggestion_id
    assert listed["reason"] == "identity_claimed"
    assert listed["evidence"]["identity"] == {"kind": "email", "value": "ann.smith@example.com"}
    assert {listed["customer_a_id"], listed["customer_b_id"]} == {str(visitor), str(email_customer)}

    # The agent accepts: the older record (the email customer) survives.
    r = await client.post(f"{API}/merge-suggestions/{suggestion_id}/accept", headers=agent)
    assert r.status_code == 200, r.text
    merge = r.json()
    assert merge["survivor_id"] == str(email_customer)
    assert merge["merged_id"] == str(visitor)
    assert merge["moved"] == {"identities": 1, "conversations": 1, "messages": 1}

    # One customer, one timeline: yesterday's email then today's chat, each with its channel.
    items = await timeline(client, agent, email_customer)
    assert [(i["channel"], i["text"]) for i in items] == [
        ("email", "Hello, my order 1234 has not arrived."),
        ("webchat", "Hi, any news on 1234?"),
    ]
    assert items[0]["at"] < items[1]["at"]
    assert await timeline(client, agent, visitor) == items  # the old id reads the survivor's timeline
    r = await client.get(f"{API}/customers/{visitor}", headers=agent)
    assert r.json()["id"] == str(email_customer)
    assert r.json()["merged_from"] == str(visitor)
    assert {(i["kind"], i["value"]) for i in r.json()["identities"]} == {
        ("email", "ann.smith@example.com"),
        ("webchat_visitor", "v-7f3a"),
    }
    total_after, per = await message_counts(app)
    assert total_after == total_before
    assert per == {email_customer: 2}
    r = await client.get(f"{API}/merge-suggestions/{suggestion_id}", headers=agent)
    assert r.json()["status"] == "accepted"
    assert r.json()["merge_id"] == merge["id"]

    # After the merge: the visitor chats again (the identity now leads to the survivor, into the
    # chat conversation that moved) and a new email arrives (into the survivor's own conversation).
    later_chat_customer, later_chat_conv = await inbound(
        app, identity_kind="webchat_visitor", identity_value="v-7f3a", channel="webchat", text="Still there?"
    )
    later_email_customer, later_email_conv = await inbound(
        app, identity_kind="email", identity_value="ann.smith@example.com", channel="email", text="Any update?"
    )
    assert later_chat_customer == later_email_customer == email_customer
    assert later_chat_conv == chat_conv
    assert later_email_conv == email_conv
    assert [i["channel"] for i in await timeline(client, agent, email_customer)] == [
        "email",
        "webchat",
        "webchat",
        "email",
    ]

    # Undo (supervisor only).
    r = await client.post(f"{API}/customer-merges/{merge['id']}/unmerge", headers=agent)
    assert r.status_code == 403
    r = await client.post(f"{API}/customer-merges/{merge['id']}/unmerge", headers=supervisor)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "unmerged"

    r = await client.get(f"{API}/customers/{visitor}", headers=agent)
    assert r.json()["id"] == str(visitor)
    assert r.json()["merged_from"] is None
    assert [(i["kind"], i["value"]) for i in r.json()["identities"]] == [("webchat_visitor", "v-7f3a")]
    r = await client.get(f"{API}/customers/{email_customer}", headers=agent)
    assert [(i["kind"], i["value"]) for i in r.json()["identities"]] == [("email", "ann.smith@example.com")]
    # The email that arrived after the merge stays with the survivor; the chat conversation goes
    # back with every message in it (a message follows its conversation).
    assert [i["text"] for i in await timeline(client, agent, email_customer)] == [
        "Hello, my order 1234 has not arrived.",
        "Any update?",
    ]
    assert [i["text"] for i in await timeline(client, agent, visitor)] == ["Hi, any news on 1234?", "Still there?"]
    total_end, per = await message_counts(app)
    assert total_end == 4
    assert per == {email_customer: 2, visitor: 2}
    async with app.state.db.transaction() as s:
        owners = dict((await s.execute(select(Conversation.id, Conversation.customer_id))).all())
        assert owners == {email_conv: email_customer, chat_conv: visitor}
        visitor_identity = await s.scalar(select(Identity.customer_id).where(Identity.value == "v-7f3a"))
        assert visitor_identity == visitor

    # Everything is in the audit log, without personal values.
    async with app.state.db.transaction() as s:
        entries = (await s.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    actions = [
        (e.action, e.entity_id) for e in entries if e.action.startswith("customer.merge") or "unmerged" in e.action
    ]
    assert ("customer.merge_suggested", suggestion_id) in actions
    assert ("customer.merged", str(email_customer)) in actions
    assert ("customer.merged_into", str(visitor)) in actions
    assert ("customer.unmerged", str(email_customer)) in actions
    assert ("customer.unmerged", str(visitor)) in actions
    for e in entries:
        assert "ann.smith@example.com" not in str(e.data)
        assert "v-7f3a" not in str(e.data)
