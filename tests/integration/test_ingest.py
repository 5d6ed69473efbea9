"""The inbound path: group-commit writer, ``receive`` inside a unit of work, and the HTTP route."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, update

from frontdesk.conversations.ingest import InboundMessage, IngestWriter, receive
from frontdesk.db import Database
from frontdesk.errors import Invalid
from frontdesk.events import MESSAGE_CREATED as EVENT_TYPE
from frontdesk.models import Conversation, Customer, Identity, Inbox, Message
from frontdesk.realtime import MemoryHub
from frontdesk.settings import Settings
from tests.builders import auth_headers


def msg(email: str, external_id: str, text: str = "hello", **kw: Any) -> InboundMessage:
    kw.setdefault("channel", "email")
    return InboundMessage(identity_kind="email", identity_value=email, external_id=external_id, text=text, **kw)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No timer/outbox loops: these tests are about the inbound path alone."""
    return settings.model_copy(update={"run_loops": False})


@pytest.fixture
async def writer(db: Database, settings: Settings):
    w = IngestWriter(db, settings.model_copy(update={"ingest_batch_max": 32}))
    await w.start()
    yield w
    await w.stop()


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.sessionmaker() as s:
        return int((await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


async def conversation(db: Database, conv_id: uuid.UUID) -> Conversation:
    async with db.sessionmaker() as s:
        return (await s.execute(select(Conversation).where(Conversation.id == conv_id))).scalar_one()


async def set_status(db: Database, conv_id: uuid.UUID, status: str, **values: Any) -> None:
    async with db.transaction() as s:
        await s.execute(update(Conversation).where(Conversation.id == conv_id).values(status=status, **values))


# -- the writer -------------------------------------------------------------------------------


async def test_same_external_id_twice_is_stored_once(db, writer):
    first = await writer.submit(msg("ada@example.com", "m-1"))
    again = await writer.submit(msg("ada@example.com", "m-1", text="a retry with other text"))
    assert first.created
    assert not again.created
    assert (again.message_id, again.conversation_id, again.customer_id) == (
        first.message_id,
        first.conversation_id,
        first.customer_id,
    )
    assert await count(db, Message) == 1
    # The same provider id on another channel is another message.
    other = await writer.submit(msg("ada@example.com", "m-1", channel="sms"))
    assert other.created
    assert other.message_id != first.message_id
    assert await count(db, Message) == 2


async def test_known_email_lands_in_the_known_customer(db, writer):
    async with db.transaction() as s:
        customer = Customer(name="Ada Lovelace")
        s.add(customer)
        await s.flush()
        s.add(Identity(customer_id=customer.id, kind="email", value="ada@example.com"))
    result = await writer.submit(msg("  ADA@Example.COM ", "m-1"))
    assert result.customer_id == customer.id
    assert await count(db, Customer) == 1
    assert await count(db, Identity) == 1


async def test_concurrent_burst_writes_exactly_the_right_rows(db, writer):
    customers = [f"c{n}@example.com" for n in range(37)] + [f"+44 20 7946 {n:04d}" for n in range(13)]
    items: list[InboundMessage] = []
    for n in range(180):
        who = customers[n % len(customers)]
        kind = "phone" if who.startswith("+") else "email"
        items.append(InboundMessage(kind, who, "email", f"ext-{n}", text=f"message {n}", name=f"Customer {n}"))
    # 20 provider retries of earlier messages, interleaved so some share a batch with the original.
    repeats = [items[n * 9] for n in range(20)]
    burst = items[:90] + repeats[:10] + items[90:] + repeats[10:]
    assert len(burst) == 200

    results = await asyncio.gather(*(writer.submit(m) for m in burst))

    assert writer.largest_batch > 1  # the requests were really written together
    assert writer.fallbacks == 0  # …and no batch had to be retried item by item
    assert writer.batches < len(burst)
    assert sum(r.created for r in results) == 180
    # A repeat in flight with its original (in a batch written at the same time) may reach the
    # database first: either way exactly one of them is the stored message, and both name it.
    by_ext: dict[str, list[Any]] = {}
    for m, r in zip(burst, results, strict=True):
        by_ext.setdefault(m.external_id, []).append(r)
    assert len(by_ext) == 180
    for same in by_ext.values():
        assert sum(r.created for r in same) == 1
        assert len({(r.message_id, r.conversation_id, r.customer_id) for r in same}) == 1
    assert await count(db, Message) == 180
    assert await count(db, Customer) == 50
    assert await count(db, Identity) == 50
    assert await count(db, Conversation) == 50  # one conversation per customer on this channel
    async with db.sessionmaker() as s:
        total = (await s.execute(select(func.sum(Conversation.message_count)))).scalar_one()
        per_customer = (
            await s.execute(
                select(Message.customer_id, func.count(func.distinct(Message.conversation_id))).group_by(
                    Message.customer_id
                )
            )
        ).all()
    assert total == 180
    assert all(n == 1 for _, n in per_customer)


async def test_overlapping_batches_share_customers_without_deadlock_or_loss(db, settings):
    """Under full load a second batch is written while the first commits (PostgreSQL). Batches that
    touch the same new and returning customers, in opposite orders, must neither deadlock (a
    deadlock fails the batch, which is then retried item by item) nor make a customer twice."""
    w = IngestWriter(db, settings.model_copy(update={"ingest_batch_max": 20, "ingest_concurrent_batches": 2}))
    await w.start()
    try:
        async with db.transaction() as s:
            for n in range(10):
                customer = Customer(name=f"Returning {n}")
                s.add(customer)
                await s.flush()
                s.add(Identity(customer_id=customer.id, kind="email", value=f"old{n}@example.com"))
        who = [f"new{n}@example.com" for n in range(10)] + [f"old{n}@example.com" for n in range(10)]
        burst: list[InboundMessage] = []
        for round_ in range(12):  # each batch of 20 has every customer, the next batch in reverse
            order = who if round_ % 2 == 0 else who[::-1]
            burst += [msg(email, f"o-{round_}-{email}") for email in order]
        results = await asyncio.gather(*(w.submit(m) for m in burst))
    finally:
        await w.stop()

    assert w.most_in_flight == (1 if db.url.startswith("sqlite") else 2)
    assert w.fallbacks == 0
    assert all(r.created for r in results)
    assert await count(db, Message) == len(burst)
    assert await count(db, Customer) == 20
    assert await count(db, Identity) == 20
    assert await count(db, Conversation) == 20  # one open conversation per customer and channel
    async with db.sessionmaker() as s:
        counts = (await s.execute(select(Conversation.message_count))).scalars().all()
    assert sorted(counts) == [12] * 20


async def test_a_batch_leaves_no_garbage_for_the_collector(db, writer):
    """The writer's statements are built once: a statement built per batch left reference cycles
    behind (an ``any_()``/``in_()`` parameter and its comparator), which only the garbage
    collector frees, and its pauses (30 to 100 ms, every few seconds under load) were the hot
    path's tail latency."""
    import gc

    for n in range(5):  # warm: statements built, caches filled
        await writer.submit(msg(f"warm{n}@example.com", f"g-warm-{n}"))
        await writer.submit(msg("ada@example.com", f"g-warm-ada-{n}"))
    gc.collect()
    gc.disable()
    try:
        for n in range(20):  # a new customer, then a returning one: every statement of a batch
            await writer.submit(msg(f"new{n}@example.com", f"g-new-{n}"))
            await writer.submit(msg("ada@example.com", f"g-ada-{n}"))
        cyclic = gc.collect()
    finally:
        gc.enable()
    assert cyclic < 20, f"{cyclic} objects in reference cycles after 40 batches"


async def test_two_messages_of_a_new_customer_in_one_batch_make_one_customer_and_conversation(db, writer):
    a, b = await asyncio.gather(
        writer.submit(msg("new@example.com", "x-1")), writer.submit(msg("new@example.com", "x-2"))
    )
    assert (a.created, b.created) == (True, True)
    assert (a.customer_id, a.conversation_id) == (b.customer_id, b.conversation_id)
    conv = await conversation(db, a.conversation_id)
    assert conv.message_count == 2
    assert await count(db, Customer) == 1


async def test_resolved_conversation_starts_a_new_one_and_pending_or_snoozed_reopens(db, writer, frozen_clock):
    first = await writer.submit(msg("ada@example.com", "m-1", subject="Order 17"))
    conv = await conversation(db, first.conversation_id)
    assert (conv.status, conv.subject, conv.message_count) == ("open", "Order 17", 1)
    await set_status(db, first.conversation_id, "resolved")

    frozen_clock.advance(minutes=5)
    second = await writer.submit(msg("ada@example.com", "m-2"))
    assert second.customer_id == first.customer_id
    assert second.conversation_id != first.conversation_id
    assert (await conversation(db, first.conversation_id)).message_count == 1

    await set_status(db, second.conversation_id, "pending")
    frozen_clock.advance(minutes=5)
    third = await writer.submit(msg("ada@example.com", "m-3"))
    assert third.conversation_id == second.conversation_id
    conv = await conversation(db, second.conversation_id)
    assert conv.status == "open"
    assert conv.message_count == 2
    assert conv.last_message_at == frozen_clock.current

    await set_status(db, second.conversation_id, "snoozed", snoozed_until=frozen_clock.current)
    fourth = await writer.submit(msg("ada@example.com", "m-4"))
    conv = await conversation(db, second.conversation_id)
    assert fourth.conversation_id == second.conversation_id
    assert (conv.status, conv.snoozed_until, conv.message_count) == ("open", None, 3)
    assert await count(db, Conversation) == 2


async def test_a_poisoned_item_fails_alone(db, writer):
    good = [msg(f"p{n}@example.com", f"p-{n}") for n in range(9)]
    poisoned = msg("bad@example.com", "p-bad", inbox_id=uuid.uuid4())  # no such inbox
    outcomes = await asyncio.gather(
        *(writer.submit(m) for m in [*good[:4], poisoned, *good[4:]]), return_exceptions=True
    )
    assert writer.largest_batch == 10  # all in one batch, which failed and was retried item by item
    assert writer.fallbacks == 1
    failure = outcomes[4]
    assert isinstance(failure, Invalid)
    assert failure.extra["errors"][0]["field"] == "inbox_id"
    assert all(not isinstance(o, BaseException) and o.created for i, o in enumerate(outcomes) if i != 4)
    assert await count(db, Message) == 9
    assert await count(db, Message, Message.external_id == "p-bad") == 0
    # The poisoned customer was rolled back with its item.
    assert await count(db, Identity, Identity.value == "bad@example.com") == 0


async def test_messages_go_to_the_inbox_they_arrived_in(db, writer):
    async with db.transaction() as s:
        inbox = Inbox(name="Support mailbox", channel="email", public_token="tok-1")
        s.add(inbox)
    a = await writer.submit(msg("ada@example.com", "m-1", inbox_id=inbox.id))
    b = await writer.submit(msg("ada@example.com", "m-2"))
    c = await writer.submit(msg("ada@example.com", "m-3", inbox_id=inbox.id))
    assert a.conversation_id == c.conversation_id != b.conversation_id
    assert (await conversation(db, a.conversation_id)).inbox_id == inbox.id


class RecordingHub(MemoryHub):
    """Notes, at each publish, whether the message is already visible to another connection."""

    def __init__(self, db_url: str) -> None:
        super().__init__()
        self.observer = Database(db_url)
        self.seen: list[tuple[str, str, bool]] = []

    async def publish(self, topic: str, type: str, data: dict[str, Any]):
        async with self.observer.sessionmaker() as s:
            visible = (
                await s.execute(select(Message.id).where(Message.id == uuid.UUID(data["message_id"])))
            ).first() is not None
        self.seen.append((topic, data["message_id"], visible))
        return await super().publish(topic, type, data)


async def test_realtime_event_is_published_only_after_commit(db, writer):
    hub = RecordingHub(db.url)
    db.attach_hub(hub)
    try:
        desk = hub.subscribe(["desk"])
        nxt = asyncio.ensure_future(desk.__anext__())
        ok, bad = await asyncio.gather(
            writer.submit(msg("ada@example.com", "e-1")),
            writer.submit(msg("bob@example.com", "e-2", inbox_id=uuid.uuid4())),
            return_exceptions=True,
        )
        assert isinstance(bad, Invalid)
        event = await asyncio.wait_for(nxt, 5)
        assert event.type == EVENT_TYPE
        assert event.data["message_id"] == str(ok.message_id)
        assert event.data["new_conversation"] is True
        await writer.stop()  # drains the publisher
        assert hub.seen == [
            ("desk", str(ok.message_id), True),
            (f"conversation:{ok.conversation_id}", str(ok.message_id), True),
        ]
        await desk.aclose()
    finally:
        await hub.observer.dispose()


async def test_receive_inside_a_unit_of_work(db):
    hub = MemoryHub()
    db.attach_hub(hub)
    async with db.transaction() as s:
        r1 = await receive(s, msg("ada@example.com", "u-1"))
        r2 = await receive(s, msg("ada@example.com", "u-2"))
        again = await receive(s, msg("ada@example.com", "u-1"))
        assert await hub.replay("desk", 0) == []  # nothing pushed before the commit
    assert r1.conversation_id == r2.conversation_id
    assert not again.created
    pushed = [e.data["message_id"] for e in await hub.replay("desk", 0) or []]
    assert pushed == [str(r1.message_id), str(r2.message_id)]
    assert (await conversation(db, r1.conversation_id)).message_count == 2

    async def failing_unit_of_work() -> None:
        async with db.transaction() as s:
            await receive(s, msg("eve@example.com", "u-3"))
            raise RuntimeError("the unit of work fails later")

    with pytest.raises(RuntimeError):
        await failing_unit_of_work()
    assert await count(db, Message, Message.external_id == "u-3") == 0
    assert len(await hub.replay("desk", 0) or []) == 2


async def test_submitting_after_stop_is_refused(db, settings):
    w = IngestWriter(db, settings)
    await w.start()
    await w.stop()
    with pytest.raises(Exception, match="shutting down"):
        await w.submit(msg("ada@example.com", "late"))


# -- the HTTP route ---------------------------------------------------------------------------


BODY = {
    "identity": {"kind": "email", "value": "Ada@Example.com"},
    "name": "Ada",
    "channel": "api",
    "external_id": "api-1",
    "text": "My order has not arrived",
    "html": "<p>My order <b>has not</b> arrived<script>alert(1)</script></p>",
    "subject": "Order 17",
    "occurred_at": "2026-01-31T12:00:00Z",
}


async def test_post_inbound_then_retry_is_a_duplicate(client, app):
    headers = await auth_headers(app)
    r = await client.post("/api/v1/messages/inbound", json=BODY, headers=headers)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["duplicate"] is False
    r = await client.post("/api/v1/messages/inbound", json=BODY, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {**created, "duplicate": True}

    db: Database = app.state.db
    async with db.sessionmaker() as s:
        stored = (await s.execute(select(Message))).scalars().all()
        ident = (await s.execute(select(Identity))).scalar_one()
    assert len(stored) == 1
    html = stored[0].html or ""
    assert "<script>" not in html
    assert "<b>has not</b>" in html
    assert (stored[0].direction, stored[0].author_type) == ("in", "customer")
    assert (ident.kind, ident.value) == ("email", "ada@example.com")


async def test_post_inbound_needs_an_agent(client):
    r = await client.post("/api/v1/messages/inbound", json=BODY)
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"identity": {"kind": "email", "value": "not an email"}}, "identity.value"),
        ({"identity": {"kind": "phone", "value": "12"}}, "identity.value"),
        ({"identity": {"kind": "fax", "value": "1"}}, "identity.kind"),
        ({"channel": "pigeon"}, "channel"),
        ({"external_id": ""}, "external_id"),
        ({"text": "x" * 70_000}, "text"),
        ({"text": "é" * 40_000}, "text"),  # 80 KB of UTF-8
        ({"text": "nul\x00byte"}, "text"),
        ({"text": "lone \ud800 surrogate"}, "text"),
        ({"text": " ", "html": None}, "text"),
        ({"occurred_at": "2026-01-31T12:00:00"}, "occurred_at"),
        ({"inbox_id": str(uuid.UUID(int=7))}, "inbox_id"),
        ({"inbox_id": "not-a-uuid"}, "inbox_id"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_bad_input_is_a_422_problem_naming_the_field(client, app, change, field):
    headers = await auth_headers(app)
    body = {k: v for k, v in {**BODY, **change}.items() if v is not None}
    content = json.dumps(body).encode()  # ASCII escapes, so even a lone surrogate can be sent
    r = await client.post(
        "/api/v1/messages/inbound", content=content, headers={**headers, "content-type": "application/json"}
    )
    assert r.status_code == 422, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["errors"][0]["field"] == field, problem
    assert problem["detail"]


async def test_echo_returns_its_body(client):
    r = await client.post("/api/v1/echo", json={"hello": ["world", 1]})
    assert r.status_code == 200
    assert r.json() == {"hello": ["world", 1]}
    r = await client.post("/api/v1/echo", json={"big": "x" * 20_000})
    assert r.status_code == 400
    assert "at most" in r.json()["detail"]


async def test_rows_written_elsewhere_between_lookup_and_insert_are_reused(db, writer, monkeypatch):
    """Another process stores the identity and the message after our SELECTs, before our INSERTs."""
    from frontdesk.conversations import ingest

    ada = await writer.submit(msg("ada@example.com", "r-1"))
    bob = await writer.submit(msg("bob@example.com", "r-9"))
    await set_status(db, bob.conversation_id, "resolved")

    def blind_first_call(fn: Any) -> Any:
        calls = {"n": 0}

        async def wrapper(conn: Any, keys: Any) -> Any:
            calls["n"] += 1
            return {} if calls["n"] == 1 else await fn(conn, keys)

        return wrapper

    # Blind the identity lookup once (as if the other process had not committed yet). There is no
    # message lookup before the insert: a repeated key is found by the insert's ON CONFLICT.
    monkeypatch.setattr(ingest, "_select_identities", blind_first_call(ingest._select_identities))
    items = [msg("ada@example.com", "r-1").prepared(), msg("bob@example.com", "r-9").prepared()]
    async with db.engine.begin() as conn:
        written = await ingest.write_batch(conn, items)

    again_ada, again_bob = written.results
    assert (again_ada.message_id, again_ada.customer_id, again_ada.created) == (ada.message_id, ada.customer_id, False)
    assert (again_bob.message_id, again_bob.conversation_id) == (bob.message_id, bob.conversation_id)
    assert written.events == []
    assert await count(db, Customer) == 2  # the customers made for the lost identities were dropped
    assert await count(db, Conversation) == 2  # and so was the conversation opened for bob's lost message
    assert (await conversation(db, ada.conversation_id)).message_count == 1


async def test_a_thread_hint_joins_and_reopens_the_senders_conversation(db, writer):
    from frontdesk.models import Attachment, Conversation, Message

    first = await writer.submit(
        InboundMessage(
            identity_kind="email", identity_value="thread@example.com", channel="email", external_id="<t1@x>", text="hi"
        )
    )
    async with db.transaction() as s:
        conv = await s.get(Conversation, first.conversation_id)
        conv.status = "resolved"
        conv.resolved_at = conv.created_at
        conv.resolution_seconds = 5
        att = Attachment(filename="a.txt", content_type="text/plain", size=1, sha256="0" * 64, storage_key="k")
        s.add(att)
    reply = await writer.submit(
        InboundMessage(
            identity_kind="email",
            identity_value="thread@example.com",
            channel="email",
            external_id="<t2@x>",
            text="me again",
            conversation_id=first.conversation_id,
            attachment_ids=(att.id,),
            meta={"in_reply_to": "<t1@x>"},
        )
    )
    assert reply.conversation_id == first.conversation_id
    # Someone else's conversation id is no thread: a stranger gets their own conversation.
    stranger = await writer.submit(
        InboundMessage(
            identity_kind="email",
            identity_value="stranger@example.com",
            channel="email",
            external_id="<t3@x>",
            text="hello",
            conversation_id=first.conversation_id,
        )
    )
    assert stranger.conversation_id != first.conversation_id
    async with db.transaction() as s:
        conv = await s.get(Conversation, first.conversation_id)
        assert (conv.status, conv.resolved_at, conv.message_count) == ("open", None, 2)
        message = await s.get(Message, reply.message_id)
        assert message.meta["in_reply_to"] == "<t1@x>"
        linked = await s.get(Attachment, att.id)
        assert linked.message_id == reply.message_id


async def test_the_lean_inbound_route_is_documented_as_a_body_parameter_route(client, app):
    """``POST /messages/inbound`` is answered by a route that reads its body itself (the hot path);
    the OpenAPI document still describes the body, the token and the answers, as one operation."""
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/api/v1/messages/inbound"]["post"]
    assert operation["operationId"] == "post_inbound_api_v1_messages_inbound_post"
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/InboundIn"}
    assert set(spec["components"]["schemas"]["InboundIn"]["required"]) == {"identity", "channel", "external_id"}
    assert {"201", "200", "401", "422"} <= set(operation["responses"])
    # The lean route answers: it checks the caller before it reads the body (FastAPI's body
    # parameter would have parsed it first and answered 422 to a caller without a token).
    r = await client.post(
        "/api/v1/messages/inbound", content=b'{"identity": ', headers={"content-type": "application/json"}
    )
    assert r.status_code == 401, r.text


async def test_an_inbound_body_that_is_not_json_is_a_422_problem(client, app):
    headers = await auth_headers(app)
    r = await client.post(
        "/api/v1/messages/inbound", content=b'{"identity": ', headers={**headers, "content-type": "application/json"}
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["type"] == "json_invalid"
    r = await client.post(
        "/api/v1/messages/inbound", content=b"hello", headers={**headers, "content-type": "text/plain"}
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "body"
    r = await client.post(
        "/api/v1/messages/inbound", content=b'{"text": "\xdb"}', headers={**headers, "content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert "UTF-8" in r.json()["detail"]
