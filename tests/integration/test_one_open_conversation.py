"""One open conversation per customer, channel and inbox, guaranteed by the database (issue 9, item 19).

Two processes that receive a brand-new customer's first messages at the same instant each look for
an open conversation, find none, and open one. A lock inside one process cannot stop that; the
unique partial index on ``conversations (customer_id, channel, inbox_id)`` over auto-opened, not
resolved conversations does, and the loser uses the winner's conversation. Each race below runs two
real writers on two separate engines (as two processes would), on SQLite and PostgreSQL, held at
the moment both have looked and found nothing.

Agents' own conversations, e-mail threads that reopen and merged customers are not squeezed into
one: those are threads of their own (``auto_open`` false).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from frontdesk.channels.webchat import notices, snapshot
from frontdesk.channels.webchat import visitor as visitors
from frontdesk.conversations import ingest
from frontdesk.conversations.ingest import InboundMessage, receive, write_batch
from frontdesk.customers.merge import merge_customers
from frontdesk.db import Database
from frontdesk.models import Conversation, Customer, Identity, Inbox, Message
from tests.builders import auth_headers, make_inbox


@pytest.fixture
async def second(database_url: str) -> AsyncIterator[Database]:
    """Another process's view of the same database: its own engine and connections."""
    other = Database(database_url)
    try:
        yield other
    finally:
        await other.dispose()


def held_after(fn: Callable[..., Awaitable[Any]], parties: int = 2) -> Callable[..., Awaitable[Any]]:
    """``fn``, but its first ``parties`` callers wait for each other once they have their answer
    (so every writer has looked, and found nothing, before any of them writes)."""
    barrier = asyncio.Barrier(parties)
    calls = {"n": 0}

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        found = await fn(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] <= parties:
            await asyncio.wait_for(barrier.wait(), 10)
        return found

    return wrapper


async def new_customer(db: Database, kind: str, value: str) -> uuid.UUID:
    """A customer who exists but has never written (a chat visitor who just opened the widget)."""
    async with db.transaction() as s:
        customer = Customer(attributes={})
        s.add(customer)
        await s.flush()
        s.add(Identity(customer_id=customer.id, kind=kind, value=value, verified=True))
    return customer.id


async def conversations_of(db: Database, customer_id: uuid.UUID) -> list[Conversation]:
    async with db.transaction() as s:
        stmt = select(Conversation).where(Conversation.customer_id == customer_id).order_by(Conversation.created_at)
        return list((await s.scalars(stmt)).all())


async def test_two_ingest_writers_open_one_conversation(db: Database, second: Database, monkeypatch):
    inbox = await make_inbox(db, channel="webchat")
    customer_id = await new_customer(db, "webchat_visitor", "v-race")
    monkeypatch.setattr(ingest, "_open_conversations", held_after(ingest._open_conversations))

    async def write(database: Database, n: int) -> ingest.IngestResult:
        item = InboundMessage(
            identity_kind="webchat_visitor",
            identity_value="v-race",
            channel="webchat",
            inbox_id=inbox.id,
            external_id=f"v-race:{n}",
            text=f"message {n}",
        ).prepared()
        async with database.engine.begin() as conn:
            written = await write_batch(conn, [item])
        return written.results[0]

    one, two = await asyncio.gather(write(db, 1), write(second, 2))

    assert one.customer_id == two.customer_id == customer_id
    assert one.conversation_id == two.conversation_id
    (conversation,) = await conversations_of(db, customer_id)
    assert (conversation.id, conversation.message_count, conversation.status) == (one.conversation_id, 2, "open")
    assert conversation.auto_open is True
    async with db.transaction() as s:
        texts = set((await s.scalars(select(Message.text).where(Message.conversation_id == conversation.id))).all())
    assert texts == {"message 1", "message 2"}


async def test_two_notices_open_one_conversation(db: Database, second: Database, monkeypatch):
    """Frontdesk opening a chat for a proactive notice, from two processes at once."""
    inbox = await make_inbox(db, channel="webchat")
    async with db.transaction() as s:
        loaded = await s.get(Inbox, inbox.id)
        assert loaded is not None
        visitor = await visitors.new_visitor(s, loaded)
    monkeypatch.setattr(notices, "open_conversation", held_after(snapshot.open_conversation))

    async def notice(database: Database, text: str) -> uuid.UUID:
        async with database.transaction() as s:
            message = await notices.send_widget_notice(s, visitor.customer_id, text)
            return message.conversation_id

    first, other = await asyncio.gather(notice(db, "Your parcel left"), notice(second, "Your parcel arrives today"))
    assert first == other
    (conversation,) = await conversations_of(db, visitor.customer_id)
    assert conversation.message_count == 2


async def test_threads_of_their_own_stay_apart(app, client):
    """An agent's new conversation, an old e-mail thread the customer answers, a reopened one and a
    merge of two customers who each had their open chat: all allowed, every message kept."""
    db: Database = app.state.db
    headers = await auth_headers(app, "agent")
    mail = await make_inbox(db, channel="email")

    async def inbound(external_id: str, **kw: Any) -> ingest.IngestResult:
        async with db.transaction() as s:
            return await receive(
                s,
                InboundMessage(
                    identity_kind="email",
                    identity_value="ann@example.com",
                    channel="email",
                    inbox_id=mail.id,
                    external_id=external_id,
                    text="hello",
                    **kw,
                ),
            )

    first = await inbound("<a1@x>")
    r = await client.patch(
        f"/api/v1/conversations/{first.conversation_id}", json={"status": "resolved"}, headers=headers
    )
    assert r.status_code == 200, r.text
    second_thread = await inbound("<a2@x>")  # a new mail: a new auto-opened conversation
    assert second_thread.conversation_id != first.conversation_id
    # The customer answers the old, resolved thread (In-Reply-To): it reopens beside the new one.
    old_reply = await inbound("<a3@x>", conversation_id=first.conversation_id)
    assert old_reply.conversation_id == first.conversation_id
    # An agent starts two more with the same customer in the same inbox.
    for subject in ("Your invoice", "Your refund"):
        r = await client.post(
            "/api/v1/conversations",
            json={
                "customer_id": str(first.customer_id),
                "channel": "email",
                "inbox_id": str(mail.id),
                "subject": subject,
            },
            headers=headers,
        )
        assert r.status_code == 201, r.text
    # Resolve the new one and reopen it by hand while the old thread is open.
    for status in ("resolved", "open"):
        r = await client.patch(
            f"/api/v1/conversations/{second_thread.conversation_id}", json={"status": status}, headers=headers
        )
        assert r.status_code == 200, r.text
    convs = await conversations_of(db, first.customer_id)
    assert len(convs) == 4
    assert all(c.status == "open" for c in convs)

    # Two chat customers, each with an open auto-opened chat in one inbox, are merged.
    chat = await make_inbox(db, channel="webchat")
    ids = []
    for n in (1, 2):
        async with db.transaction() as s:
            result = await receive(
                s,
                InboundMessage(
                    identity_kind="webchat_visitor",
                    identity_value=f"v-{n}",
                    channel="webchat",
                    inbox_id=chat.id,
                    external_id=f"v-{n}:1",
                    text=f"chat {n}",
                ),
            )
        ids.append(result)
    async with db.transaction() as s:
        merge = await merge_customers(s, ids[0].customer_id, ids[1].customer_id, None)
        assert merge.moved["conversations"] == [str(ids[1].conversation_id)]
    merged = await conversations_of(db, ids[0].customer_id)
    assert {c.id for c in merged} == {ids[0].conversation_id, ids[1].conversation_id}
    assert sorted(c.auto_open for c in merged) == [False, True]
    # The next chat message of the survivor still has exactly one place to go.
    async with db.transaction() as s:
        later = await receive(
            s,
            InboundMessage(
                identity_kind="webchat_visitor",
                identity_value="v-2",
                channel="webchat",
                inbox_id=chat.id,
                external_id="v-2:2",
                text="still there?",
            ),
        )
    assert later.customer_id == ids[0].customer_id
    assert later.conversation_id in {ids[0].conversation_id, ids[1].conversation_id}
    async with db.transaction() as s:
        total = await s.scalar(select(func.count()).select_from(Message))
    assert total == 3 + 2 + 1
