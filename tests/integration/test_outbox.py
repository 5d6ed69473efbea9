"""The outbox dispatcher against a real HTTP receiver: signed, retried, failed visibly."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from frontdesk.channels.base import ChannelContext
from frontdesk.conversations import outbox
from frontdesk.conversations.dispatcher import Dispatcher
from frontdesk.db import Database
from frontdesk.models import Conversation, Customer, Inbox, Message, OutboxItem
from frontdesk.realtime import MemoryHub
from frontdesk.settings import Settings
from frontdesk.signing import verify
from frontdesk.wiring import channel_adapters, start_loops
from tests.integration.webhook_sink import Sink, free_port

SECRET = "whsec-test-123"
# The receivers here listen on 127.0.0.1, which is refused unless allowed (frontdesk.netguard).
LOCAL = Settings(outbound_allow="127.0.0.1/32")


def make_dispatcher(db: Database, settings: Settings, hub: Any = None) -> Dispatcher:
    """A dispatcher with the app's channel adapters (as ``wiring.start_loops`` builds it)."""
    return Dispatcher(db, settings, adapters=channel_adapters(ChannelContext(hub=hub, settings=settings, db=db)))


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink().start()
    yield s
    s.stop()


async def queue_reply(
    db: Database, *, channel: str = "api", config: dict[str, Any] | None = None, text: str = "Hello from Frontdesk"
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """An outbound agent message in its own conversation; (message id, outbox item id, conversation id)."""
    async with db.transaction() as s:
        customer = Customer(name="Ada Lovelace")
        inbox = Inbox(
            name=f"api-{uuid.uuid4().hex[:6]}", channel=channel, public_token=uuid.uuid4().hex, config=config or {}
        )
        s.add_all([customer, inbox])
        await s.flush()
        conv = Conversation(customer_id=customer.id, channel=channel, inbox_id=inbox.id)
        s.add(conv)
        await s.flush()
        msg = Message(
            conversation_id=conv.id,
            customer_id=customer.id,
            direction="out",
            channel=channel,
            author_type="agent",
            text=text,
            delivery_status="queued",
        )
        s.add(msg)
        await s.flush()
        item = await outbox.enqueue(s, msg)
    return msg.id, item.id, conv.id


async def load(db: Database, message_id: uuid.UUID, item_id: uuid.UUID) -> tuple[Message, OutboxItem | None]:
    async with db.transaction() as s:
        msg = await s.get(Message, message_id)
        item = await s.get(OutboxItem, item_id)
    assert msg is not None
    return msg, item


async def test_delivered_signed_to_the_webhook(db: Database, sink: Sink):
    hub = MemoryHub()
    db.attach_hub(hub)
    msg_id, item_id, conv_id = await queue_reply(db, config={"webhook_url": sink.url, "webhook_secret": SECRET})
    view = await hub.open([f"conversation:{conv_id}"])
    assert await make_dispatcher(db, LOCAL, hub=hub).run_due() == 1

    assert len(sink.received) == 1
    got = sink.received[0]
    stamp = got.headers["x-frontdesk-timestamp"]
    assert verify(got.body, SECRET, got.headers["x-frontdesk-signature"], stamp)
    assert not verify(got.body, "another-secret", got.headers["x-frontdesk-signature"], stamp)
    assert got.headers["x-frontdesk-delivery"] == str(item_id)
    body = got.json()
    assert body["message"]["id"] == str(msg_id)
    assert body["message"]["text"] == "Hello from Frontdesk"

    msg, item = await load(db, msg_id, item_id)
    assert (msg.delivery_status, msg.external_id, msg.error) == ("sent", "ext-1", None)
    assert item is None  # done jobs leave the outbox
    event = await asyncio.wait_for(view.__anext__(), 2)
    assert event.type == "conversation.message_updated"
    assert event.data["message"]["delivery_status"] == "sent"


async def test_a_local_receiver_is_refused_without_the_allow_list(db: Database, sink: Sink):
    msg_id, item_id, _ = await queue_reply(db, config={"webhook_url": sink.url, "webhook_secret": SECRET})
    assert await make_dispatcher(db, Settings()).run_due() == 1
    msg, item = await load(db, msg_id, item_id)
    assert msg.delivery_status == "failed"
    assert "127.0.0.1 is loopback" in (msg.error or "")
    assert item is not None
    assert (item.status, item.attempts) == ("failed", 1)
    assert sink.received == []


async def test_transient_failure_then_success(db: Database, sink: Sink, frozen_clock):
    sink.answers = [503]
    msg_id, item_id, _ = await queue_reply(db, config={"webhook_url": sink.url, "webhook_secret": SECRET})
    dispatcher = make_dispatcher(db, LOCAL)
    assert await dispatcher.run_due() == 1
    msg, item = await load(db, msg_id, item_id)
    assert msg.delivery_status == "queued"
    assert "HTTP 503" in (msg.error or "")  # why it is not out yet: for admins
    assert outbox.agent_error(msg.delivery_status, msg.error) == "delivery failed; retrying"  # for agents
    assert item is not None
    assert (item.status, item.attempts) == ("pending", 1)
    assert await dispatcher.run_due() == 0  # backing off

    frozen_clock.advance(seconds=2)
    assert await dispatcher.run_due() == 1
    msg, item = await load(db, msg_id, item_id)
    assert (msg.delivery_status, msg.error) == ("sent", None)
    assert item is None
    assert [r.headers["x-frontdesk-delivery"] for r in sink.received] == [str(item_id)] * 2
    assert [r.json()["attempt"] for r in sink.received] == [1, 2]


@pytest.mark.parametrize("code", [302, 307, 400, 410, 422])  # redirects are not followed
async def test_permanent_failure_is_visible_on_the_message(db: Database, sink: Sink, code: int):
    sink.answers = [code]
    msg_id, item_id, _ = await queue_reply(db, config={"webhook_url": sink.url})
    assert await make_dispatcher(db, LOCAL).run_due() == 1
    msg, item = await load(db, msg_id, item_id)
    assert msg.delivery_status == "failed"
    assert f"HTTP {code}" in (msg.error or "")
    assert item is not None
    assert item.status == "failed"
    assert len(sink.received) == 1  # not retried


async def test_unreachable_until_out_of_attempts(db: Database, frozen_clock):
    down = f"http://127.0.0.1:{free_port()}/hook"
    msg_id, item_id, _ = await queue_reply(db, config={"webhook_url": down})
    async with db.transaction() as s:
        item = await s.get(OutboxItem, item_id)
        assert item is not None
        item.max_attempts = 3
    dispatcher = make_dispatcher(db, LOCAL)
    for _ in range(3):
        assert await dispatcher.run_due() == 1
        frozen_clock.advance(minutes=5)
    msg, item = await load(db, msg_id, item_id)
    assert msg.delivery_status == "failed"
    assert "webhook unreachable" in (msg.error or "")
    assert item is not None
    assert (item.status, item.attempts) == ("failed", 3)


async def test_channel_without_adapter_fails_clearly(db: Database):
    msg_id, item_id, _ = await queue_reply(db, channel="sms")
    assert await make_dispatcher(db, LOCAL).run_due() == 1
    msg, _ = await load(db, msg_id, item_id)
    assert msg.delivery_status == "failed"
    assert msg.error == "no adapter for channel 'sms' yet"


async def test_api_inbox_without_webhook_url_fails(db: Database):
    msg_id, item_id, _ = await queue_reply(db, config={})
    await make_dispatcher(db, LOCAL).run_due()
    msg, _ = await load(db, msg_id, item_id)
    assert (msg.delivery_status, msg.error) == ("failed", "the API inbox has no webhook_url configured")


async def test_webchat_reply_reaches_the_widget(db: Database):
    hub = MemoryHub()
    db.attach_hub(hub)
    msg_id, item_id, conv_id = await queue_reply(db, channel="webchat", text="Привет!")
    widget = await hub.open([f"widget:{conv_id}"])
    assert await make_dispatcher(db, LOCAL, hub=hub).run_due() == 1
    event = await asyncio.wait_for(widget.__anext__(), 2)
    assert (event.type, event.data["text"], event.data["id"]) == (
        "conversation.message_created",
        "Привет!",
        str(msg_id),
    )
    msg, _ = await load(db, msg_id, item_id)
    assert msg.delivery_status == "delivered"


async def test_commit_wakes_the_dispatcher(db: Database, database_url: str, sink: Sink, tmp_path):
    settings = Settings(
        database_url=database_url, data_dir=tmp_path, timers_poll_seconds=30, outbound_allow="127.0.0.1/32"
    )
    db.attach_hub(MemoryHub())
    loops = await start_loops(db, settings)
    try:
        await asyncio.sleep(0.3)  # the first (empty) poll has passed; next one is 30 s away
        started = time.monotonic()
        msg_id, item_id, _ = await queue_reply(db, config={"webhook_url": sink.url})
        while time.monotonic() - started < 5:
            msg, _ = await load(db, msg_id, item_id)
            if msg.delivery_status == "sent":
                break
            await asyncio.sleep(0.05)
        assert msg.delivery_status == "sent"
        assert time.monotonic() - started < 5  # far sooner than the 30 s poll
        assert json.loads(sink.received[0].body)["message"]["id"] == str(msg_id)
    finally:
        await loops.stop()


async def test_replies_of_one_conversation_are_delivered_in_the_order_they_were_written(db: Database):
    """Two replies sent a moment apart were delivered concurrently and could swap (the customer read
    the second first). Now one conversation's messages go one after the other, in order, while other
    conversations still go side by side."""
    from frontdesk.channels.base import SendResult

    delivered: list[tuple[uuid.UUID, str]] = []
    in_flight: dict[uuid.UUID, int] = {}
    overlapping: list[uuid.UUID] = []

    class SlowFirst:
        name = "api"

        async def send(self, message: Any) -> SendResult:
            in_flight[message.conversation_id] = in_flight.get(message.conversation_id, 0) + 1
            if in_flight[message.conversation_id] > 1:
                overlapping.append(message.conversation_id)
            # The earlier a message was written, the longer its provider takes: concurrent sends
            # would finish in reverse order.
            await asyncio.sleep(0.3 if message.text.endswith("1") else 0.01)
            delivered.append((message.conversation_id, message.text))
            in_flight[message.conversation_id] -= 1
            return SendResult(status="sent", external_id=str(message.message_id))

    conversations = []
    for _ in range(2):
        _, _, conversation_id = await queue_reply(db, text="reply 1")
        conversations.append(conversation_id)
        async with db.transaction() as s:
            first = await s.scalar(select(Message).where(Message.conversation_id == conversation_id))
            assert first is not None
            for n in (2, 3):
                msg = Message(
                    conversation_id=conversation_id, customer_id=first.customer_id, direction="out", channel="api",
                    author_type="agent", text=f"reply {n}", delivery_status="queued",
                )  # fmt: skip
                s.add(msg)
                await s.flush()
                await outbox.enqueue(s, msg)
    started = time.monotonic()
    assert await Dispatcher(db, LOCAL, adapters={"api": SlowFirst()}).run_due() == 6
    for conversation_id in conversations:
        assert [text for c, text in delivered if c == conversation_id] == ["reply 1", "reply 2", "reply 3"]
    assert overlapping == []
    assert time.monotonic() - started < 0.6 + 0.5  # the two conversations went side by side
