"""Conversations, replies, notes, tags and attachments through the HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from frontdesk import clock, timers
from frontdesk.conversations import outbox, service
from frontdesk.models import AuditEntry, Message, OutboxItem, Timer
from tests.builders import (
    agent,
    make_conversation,
    make_customer,
    make_inbox,
    make_queue,
    make_team,
)

API = "/api/v1"


@pytest.fixture
def settings(settings, request):
    """No dispatcher loop: these tests look at outbox rows as the request left them.

    Tests that ask for ``hub_backend`` run with that hub (memory or Redis).
    """
    update: dict = {"run_loops": False}
    if "hub_backend" in request.fixturenames:
        update["redis_url"] = request.getfixturevalue("hub_backend")
    return settings.model_copy(update=update)


async def count(app, model, *where) -> int:
    async with app.state.db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)))


async def open_conversation(client, headers, customer_id, **extra) -> dict:
    body = {"customer_id": str(customer_id), "channel": "email", **extra}
    r = await client.post(f"{API}/conversations", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


# -- create, read, update ------------------------------------------------------------------------


async def test_create_conversation_checks_references_and_normalises_tags(client, app):
    _, headers = await agent(app)
    customer = await make_customer(app.state.db, "Ирина Петрова")
    queue = await make_queue(app.state.db)

    for field in ("customer_id", "inbox_id", "queue_id", "team_id", "assignee_id"):
        body = {"customer_id": str(customer.id), "channel": "email", field: str(uuid.uuid4())}
        r = await client.post(f"{API}/conversations", json=body, headers=headers)
        assert r.status_code == 422, (field, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["errors"][0]["field"] == field

    r = await client.post(
        f"{API}/conversations", json={"customer_id": str(customer.id), "channel": "fax"}, headers=headers
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "channel"

    sms_inbox = await make_inbox(app.state.db, "sms")
    r = await client.post(
        f"{API}/conversations",
        json={"customer_id": str(customer.id), "channel": "email", "inbox_id": str(sms_inbox.id)},
        headers=headers,
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "inbox_id"

    created = await open_conversation(
        client,
        headers,
        customer.id,
        subject="Where is my order?",
        priority="high",
        queue_id=str(queue.id),
        tags=["Refund Request", "delivery", "delivery"],
    )
    assert created["status"] == "open"
    assert created["priority"] == "high"
    assert created["customer_name"] == "Ирина Петрова"
    assert created["tags"] == ["delivery", "refund-request"]
    r = await client.get(f"{API}/conversations/{created['id']}", headers=headers)
    assert r.status_code == 200
    assert r.json()["tags"] == ["delivery", "refund-request"]
    assert r.json()["queue_id"] == str(queue.id)

    r = await client.get(f"{API}/conversations/{uuid.uuid4()}", headers=headers)
    assert r.status_code == 404
    r = await client.get(f"{API}/conversations")
    assert r.status_code == 401


async def test_list_filters(client, app):
    me, headers = await agent(app)
    other, _ = await agent(app)
    db = app.state.db
    alice, bob = await make_customer(db, "Alice"), await make_customer(db, "Bob")
    queue, team, inbox = await make_queue(db), await make_team(db), await make_inbox(db, "webchat")
    c_mine = await make_conversation(db, alice, assignee_id=me.id, queue_id=queue.id)
    c_other = await make_conversation(db, alice, assignee_id=other.id, team_id=team.id, status="pending")
    c_none = await make_conversation(db, bob, channel="webchat", inbox_id=inbox.id, status="resolved")
    r = await client.put(f"{API}/conversations/{c_none.id}/tags/Billing", headers=headers)
    assert r.status_code == 200

    async def ids(**params) -> set[str]:
        r = await client.get(f"{API}/conversations", params=params, headers=headers)
        assert r.status_code == 200, r.text
        return {item["id"] for item in r.json()["items"]}

    assert await ids() == {str(c_mine.id), str(c_other.id), str(c_none.id)}
    assert await ids(assignee="me") == {str(c_mine.id)}
    assert await ids(assignee="none") == {str(c_none.id)}
    assert await ids(assignee=str(other.id)) == {str(c_other.id)}
    assert await ids(status="pending") == {str(c_other.id)}
    assert await ids(queue_id=str(queue.id)) == {str(c_mine.id)}
    assert await ids(team_id=str(team.id)) == {str(c_other.id)}
    assert await ids(channel="webchat") == {str(c_none.id)}
    assert await ids(inbox_id=str(inbox.id)) == {str(c_none.id)}
    assert await ids(customer_id=str(alice.id)) == {str(c_mine.id), str(c_other.id)}
    assert await ids(tag="billing") == {str(c_none.id)}
    assert await ids(tag="BILLING") == {str(c_none.id)}
    assert await ids(tag="nothing") == set()
    assert await ids(customer_id=str(alice.id), status="open", assignee="me") == {str(c_mine.id)}

    r = await client.get(f"{API}/conversations", params={"assignee": "someone"}, headers=headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "assignee"
    r = await client.get(f"{API}/conversations", params={"cursor": "garbage"}, headers=headers)
    assert r.status_code == 422
    r = await client.get(f"{API}/conversations", params={"limit": 0}, headers=headers)
    assert r.status_code == 422
    items = (await client.get(f"{API}/conversations", params={"tag": "billing"}, headers=headers)).json()["items"]
    assert items[0]["tags"] == ["billing"]
    assert items[0]["customer_name"] == "Bob"


@pytest.mark.parametrize("sort", ["last_message_at", "created_at"])
async def test_cursor_pagination_walks_every_conversation_once(client, app, frozen_clock, sort):
    _, headers = await agent(app)
    customer = await make_customer(app.state.db)
    expected = []
    base = clock.now()
    for i in range(23):
        # Several share a timestamp, and some have no message yet: the id breaks ties.
        last = None if i % 5 == 0 else base + timedelta(minutes=(i * 7) % 4)
        c = await make_conversation(
            app.state.db, customer, last_message_at=last, created_at=base + timedelta(seconds=i // 3)
        )
        key = c.created_at if sort == "created_at" else (c.last_message_at or c.created_at)
        expected.append((key, c.id))
    expected.sort(reverse=True)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 5, "sort": sort} | ({"cursor": cursor} if cursor else {})
        r = await client.get(f"{API}/conversations", params=params, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    assert seen == [str(cid) for _, cid in expected]


async def test_status_transitions_snooze_and_resolution_times(client, app, frozen_clock):
    _, headers = await agent(app)
    customer = await make_customer(app.state.db)
    conv = await open_conversation(client, headers, customer.id)
    url = f"{API}/conversations/{conv['id']}"

    r = await client.patch(url, json={"status": "snoozed"}, headers=headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "snoozed_until"
    past = (clock.now() - timedelta(minutes=1)).isoformat()
    r = await client.patch(url, json={"status": "snoozed", "snoozed_until": past}, headers=headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "snoozed_until"
    r = await client.patch(url, json={"snoozed_until": (clock.now() + timedelta(hours=1)).isoformat()}, headers=headers)
    assert r.status_code == 422
    r = await client.patch(url, json={"status": None}, headers=headers)
    assert r.status_code == 422

    until = clock.now() + timedelta(hours=2)
    r = await client.patch(url, json={"status": "snoozed", "snoozed_until": until.isoformat()}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "snoozed"
    assert r.json()["snoozed_until"].startswith(until.isoformat()[:19])

    async with app.state.db.transaction() as s:
        timer = await s.scalar(select(Timer).where(Timer.key == timers.snooze_key(conv["id"])))
    assert timer is not None
    assert (timer.kind, timer.due_at, timer.payload) == (
        "conversation.snooze_ended",
        until,
        {"conversation_id": conv["id"]},
    )

    r = await client.patch(url, json={"status": "pending"}, headers=headers)
    assert r.json()["status"] == "pending"
    assert r.json()["snoozed_until"] is None
    assert await count(app, Timer, Timer.key == timers.snooze_key(conv["id"])) == 0

    frozen_clock.advance(minutes=90)
    r = await client.patch(url, json={"status": "resolved"}, headers=headers)
    body = r.json()
    assert body["status"] == "resolved"
    assert body["resolution_seconds"] == 90 * 60
    assert body["resolved_at"].startswith(clock.now().isoformat()[:19])

    r = await client.patch(url, json={"status": "open", "subject": "Back again", "priority": "urgent"}, headers=headers)
    body = r.json()
    assert (body["status"], body["subject"], body["priority"]) == ("open", "Back again", "urgent")
    assert body["resolved_at"] is None
    assert body["resolution_seconds"] is None

    audited = await count(
        app, AuditEntry, AuditEntry.entity_id == conv["id"], AuditEntry.action == "conversation.status_changed"
    )
    assert audited == 4  # snoozed, pending, resolved, open


async def test_assign_and_transfer_with_note_is_audited(client, app):
    me, headers = await agent(app)
    other, _ = await agent(app)
    customer = await make_customer(app.state.db)
    team = await make_team(app.state.db)
    conv = await open_conversation(client, headers, customer.id)
    url = f"{API}/conversations/{conv['id']}"

    r = await client.patch(url, json={"assignee_id": str(me.id)}, headers=headers)
    assert r.json()["assignee_id"] == str(me.id)
    r = await client.patch(
        url,
        json={"assignee_id": str(other.id), "team_id": str(team.id), "note": "VIP, needs billing"},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["assignee_id"], r.json()["team_id"]) == (str(other.id), str(team.id))
    r = await client.patch(url, json={"assignee_id": None}, headers=headers)
    assert r.json()["assignee_id"] is None
    r = await client.patch(url, json={"assignee_id": str(uuid.uuid4())}, headers=headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "assignee_id"
    r = await client.patch(url, json={"note": "no assignment"}, headers=headers)
    assert r.status_code == 422

    messages = (await client.get(f"{url}/messages", headers=headers)).json()["items"]
    assert [(m["direction"], m["text"]) for m in messages] == [("note", "VIP, needs billing")]
    assert await count(app, OutboxItem) == 0
    async with app.state.db.transaction() as s:
        entries = (
            await s.scalars(
                select(AuditEntry)
                .where(AuditEntry.entity_id == conv["id"], AuditEntry.action == "conversation.assigned")
                .order_by(AuditEntry.created_at, AuditEntry.id)
            )
        ).all()
    assert len(entries) == 3
    assert entries[1].data["assignee_id"] == {"from": str(me.id), "to": str(other.id)}
    assert entries[1].data["note"] == "VIP, needs billing"
    assert entries[0].actor_id == me.id


async def test_tags_are_normalised_and_idempotent(client, app):
    _, headers = await agent(app)
    customer = await make_customer(app.state.db)
    conv = await open_conversation(client, headers, customer.id)
    url = f"{API}/conversations/{conv['id']}/tags"
    assert (await client.put(f"{url}/Late_Delivery", headers=headers)).json()["tags"] == ["late_delivery"]
    assert (await client.put(f"{url}/late_delivery", headers=headers)).json()["tags"] == ["late_delivery"]
    assert (await client.put(f"{url}/refund", headers=headers)).json()["tags"] == ["late_delivery", "refund"]
    r = await client.put(f"{url}/na%C3%AFve", headers=headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "tag"
    assert (await client.delete(f"{url}/LATE_DELIVERY", headers=headers)).json()["tags"] == ["refund"]
    assert (await client.delete(f"{url}/absent", headers=headers)).status_code == 200
    assert (await client.put(f"{API}/conversations/{uuid.uuid4()}/tags/x", headers=headers)).status_code == 404


# -- replies and notes ---------------------------------------------------------------------------


async def test_agent_reply_is_queued_with_its_outbox_row(client, app, frozen_clock):
    me, headers = await agent(app)
    customer = await make_customer(app.state.db)
    conv = await open_conversation(client, headers, customer.id)
    frozen_clock.advance(minutes=3)

    r = await client.post(f"{API}/conversations/{conv['id']}/messages", json={"text": "Hello!"}, headers=headers)
    assert r.status_code == 201, r.text
    message = r.json()
    assert message["delivery_status"] == "queued"
    assert (message["direction"], message["author_type"], message["author_id"]) == ("out", "agent", str(me.id))
    assert message["channel"] == "email"
    async with app.state.db.transaction() as s:
        items = (await s.scalars(select(OutboxItem))).all()
    assert [(str(i.message_id), i.channel, i.status) for i in items] == [(message["id"], "email", "pending")]

    conv_now = (await client.get(f"{API}/conversations/{conv['id']}", headers=headers)).json()
    assert conv_now["first_response_seconds"] == 180
    assert conv_now["message_count"] == 1
    assert conv_now["last_message_at"] == message["created_at"]

    frozen_clock.advance(minutes=10)
    r = await client.post(
        f"{API}/conversations/{conv['id']}/messages", json={"text": "By SMS", "channel": "sms"}, headers=headers
    )
    assert r.json()["channel"] == "sms"
    conv_now = (await client.get(f"{API}/conversations/{conv['id']}", headers=headers)).json()
    assert conv_now["first_response_seconds"] == 180  # only the first reply counts
    assert conv_now["message_count"] == 2
    assert await count(app, OutboxItem) == 2

    got = await client.get(f"{API}/messages/{message['id']}", headers=headers)
    assert got.status_code == 200
    assert got.json()["text"] == "Hello!"
    assert (await client.get(f"{API}/messages/{uuid.uuid4()}", headers=headers)).status_code == 404

    for bad in (
        {},
        {"text": "   "},
        {"text": "x", "channel": "voice"},
        {"text": "x", "attachment_ids": [str(uuid.uuid4())]},
    ):
        r = await client.post(f"{API}/conversations/{conv['id']}/messages", json=bad, headers=headers)
        assert r.status_code == 422, (bad, r.text)
    r = await client.post(f"{API}/conversations/{uuid.uuid4()}/messages", json={"text": "x"}, headers=headers)
    assert r.status_code == 404
    assert await count(app, Message) == 2


async def test_replying_to_an_unassigned_conversation_assigns_it_to_the_replier(client, app, hub_backend):
    me, headers = await agent(app)
    _, other_headers = await agent(app)
    customer = await make_customer(app.state.db)
    conv = await open_conversation(client, headers, customer.id)
    assert conv["assignee_id"] is None
    url = f"{API}/conversations/{conv['id']}"
    received: list = []

    async def listen() -> None:
        async for event in app.state.hub.subscribe(["desk", f"user:{me.id}"]):
            received.append(event)

    task = asyncio.create_task(listen())
    await asyncio.sleep(0.3)  # let the subscription reach Redis
    try:
        r = await client.post(f"{url}/messages", json={"text": "On it"}, headers=headers)
        assert r.status_code == 201, r.text
        wanted = {("desk", "conversation.updated"), (f"user:{me.id}", "conversation.message_created")}
        for _ in range(100):
            if {(e.topic, e.type) for e in received} >= wanted:
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert (await client.get(url, headers=headers)).json()["assignee_id"] == str(me.id)
    # The assignment is announced like any other (routing hears of it from the same event) ...
    updated = [e for e in received if e.type == "conversation.updated" and e.topic == "desk"]
    assert [(e.data["changes"], e.data["conversation"]["assignee_id"]) for e in updated] == [
        (["assignee_id"], str(me.id))
    ]
    # ... and the reply reaches the new assignee's own topic.
    assert (f"user:{me.id}", "conversation.message_created") in {(e.topic, e.type) for e in received}
    async with app.state.db.transaction() as s:
        [entry] = (
            await s.scalars(
                select(AuditEntry).where(
                    AuditEntry.entity_id == conv["id"], AuditEntry.action == "conversation.assigned"
                )
            )
        ).all()
    assert (entry.actor_id, entry.data["assignee_id"]) == (me.id, {"from": None, "to": str(me.id)})
    assert entry.data["via"] == "reply"

    # Someone else's reply, or a note, does not take a conversation that has an assignee.
    r = await client.post(f"{url}/messages", json={"text": "Me too"}, headers=other_headers)
    assert r.status_code == 201
    assert (await client.get(url, headers=headers)).json()["assignee_id"] == str(me.id)
    conv2 = await open_conversation(client, headers, customer.id)
    r = await client.post(f"{API}/conversations/{conv2['id']}/notes", json={"text": "hm"}, headers=other_headers)
    assert r.status_code == 201
    assert (await client.get(f"{API}/conversations/{conv2['id']}", headers=headers)).json()["assignee_id"] is None
    # A reply that is refused assigns nothing.
    r = await client.post(f"{API}/conversations/{conv2['id']}/messages", json={"text": " "}, headers=other_headers)
    assert r.status_code == 422
    assert (await client.get(f"{API}/conversations/{conv2['id']}", headers=headers)).json()["assignee_id"] is None


async def test_failed_reply_leaves_neither_message_nor_outbox_row(app, monkeypatch):
    me, headers = await agent(app)
    customer = await make_customer(app.state.db)
    real_enqueue = outbox.enqueue

    async def enqueue_then_fail(session, message):
        await real_enqueue(session, message)
        raise RuntimeError("disk full")

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://testserver"
    ) as client:
        conv = await open_conversation(client, headers, customer.id)
        monkeypatch.setattr(outbox, "enqueue", enqueue_then_fail)
        r = await client.post(f"{API}/conversations/{conv['id']}/messages", json={"text": "Hi"}, headers=headers)
        assert r.status_code == 500
        monkeypatch.setattr(outbox, "enqueue", real_enqueue)
        assert await count(app, Message) == 0
        assert await count(app, OutboxItem) == 0
        after = (await client.get(f"{API}/conversations/{conv['id']}", headers=headers)).json()
        assert after["message_count"] == 0
        assert after["first_response_at"] is None

    # The service inside a unit of work that fails later is rolled back too.
    async def reply_then_fail() -> None:
        async with app.state.db.transaction() as s:
            await service.add_agent_reply(s, uuid.UUID(conv["id"]), _Author(me.id), "Hi")
            raise RuntimeError("later step failed")

    with pytest.raises(RuntimeError, match="later step failed"):
        await reply_then_fail()
    assert await count(app, Message) == 0
    assert await count(app, OutboxItem) == 0


class _Author:
    def __init__(self, user_id: uuid.UUID) -> None:
        self.user_id = user_id


async def test_service_reply_for_other_packages(app):
    user, _ = await agent(app)
    customer = await make_customer(app.state.db)
    conv = await make_conversation(app.state.db, customer, channel="webchat")
    async with app.state.db.transaction() as s:
        author = _Author(user.id)
        reply = await service.add_agent_reply(s, conv.id, author, None, html="<p>Hi <b>there</b></p>")
        note = await service.add_note(s, conv.id, author, "internal")
    assert (reply.text, reply.channel, reply.delivery_status) == ("Hi there", "webchat", "queued")
    assert note.direction == "note"
    assert await count(app, OutboxItem, OutboxItem.message_id == reply.id) == 1
    assert await count(app, OutboxItem, OutboxItem.message_id == note.id) == 0


async def test_notes_are_never_delivered(client, app):
    _, headers = await agent(app)
    customer = await make_customer(app.state.db)
    conv = await open_conversation(client, headers, customer.id)
    r = await client.post(
        f"{API}/conversations/{conv['id']}/notes", json={"text": "Customer is upset"}, headers=headers
    )
    assert r.status_code == 201, r.text
    assert r.json()["direction"] == "note"
    assert r.json()["delivery_status"] != "queued"
    assert await count(app, OutboxItem) == 0
    conv_now = (await client.get(f"{API}/conversations/{conv['id']}", headers=headers)).json()
    assert conv_now["first_response_at"] is None
    assert conv_now["message_count"] == 0


async def test_reply_html_is_sanitised(client, app):
    _, headers = await agent(app)
    customer = await make_customer(app.state.db)
    conv = await open_conversation(client, headers, customer.id)
    html = (
        '<p onclick="steal()">Your <b>refund</b> is on its way.<script>alert(1)</script></p>'
        '<a href="javascript:alert(2)">track</a> <a href="https://example.com/t" onmouseover="x()">here</a>'
        '<img src="x" onerror="alert(3)"><style>p{}</style>'
    )
    r = await client.post(f"{API}/conversations/{conv['id']}/messages", json={"html": html}, headers=headers)
    assert r.status_code == 201, r.text
    body = r.json()
    lowered = body["html"].lower()
    for bad in ("<script", "alert(", "onclick", "onmouseover", "onerror", "javascript:", "<style"):
        assert bad not in lowered, bad
    assert '<a href="https://example.com/t"' in body["html"]
    assert "<b>refund</b>" in body["html"]
    assert body["text"] == "Your refund is on its way.\ntrack here"


async def test_messages_page_forward_and_backward(client, app):
    _, headers = await agent(app)
    customer = await make_customer(app.state.db)
    conv = await make_conversation(app.state.db, customer)
    base = clock.now()
    async with app.state.db.transaction() as s:
        rows = [
            Message(
                conversation_id=conv.id,
                customer_id=customer.id,
                direction="in",
                channel="email",
                author_type="customer",
                text=f"m{i}",
                delivery_status="received",
                created_at=base + timedelta(seconds=i // 4),  # ties on purpose
            )
            for i in range(130)
        ]
        s.add_all(rows)
    expected = [f"m{i}" for i in range(130)]
    url = f"{API}/conversations/{conv.id}/messages"

    async def walk(param: str | None, **params) -> list[list[str]]:
        pages, cursor = [], None
        while True:
            q = dict(params) | ({param: cursor} if cursor and param else {})
            r = await client.get(url, params=q, headers=headers)
            assert r.status_code == 200, r.text
            pages.append([m["text"] for m in r.json()["items"]])
            cursor = r.json()["next_cursor"]
            if cursor is None:
                return pages

    forward = await walk("after", limit=50)
    assert [len(p) for p in forward] == [50, 50, 30]
    assert [text for page in forward for text in page] == expected

    newest_first = await walk("before", limit=40, order="desc")
    assert [text for page in newest_first for text in page] == expected[::-1]

    # Chat-style: newest page first, each page oldest→newest, scrolling back with `before`.
    first = (await client.get(url, params={"limit": 40, "order": "desc"}, headers=headers)).json()
    r = await client.get(url, params={"limit": 40, "before": first["next_cursor"]}, headers=headers)
    assert [m["text"] for m in r.json()["items"]] == expected[50:90]

    r = await client.get(url, params={"before": first["next_cursor"], "after": first["next_cursor"]}, headers=headers)
    assert r.status_code == 422
    assert (await client.get(f"{API}/conversations/{uuid.uuid4()}/messages", headers=headers)).status_code == 404


# -- attachments ---------------------------------------------------------------------------------


async def test_attachment_upload_download_and_use_in_reply(client, app):
    _, headers = await agent(app)
    customer = await make_customer(app.state.db)
    conv = await open_conversation(client, headers, customer.id)
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 10
    r = await client.post(
        f"{API}/attachments", files={"file": ("../../etc/Счёт №5.pdf", pdf, "application/pdf")}, headers=headers
    )
    assert r.status_code == 201, r.text
    att = r.json()
    assert att["filename"] == "Счёт №5.pdf"
    assert att["size"] == len(pdf)
    assert att["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert att["message_id"] is None

    r = await client.get(att["url"], headers=headers)
    assert r.status_code == 200
    assert r.content == pdf
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"].startswith("attachment;")
    assert "filename*=UTF-8''%D0%A1%D1%87%D1%91%D1%82" in r.headers["content-disposition"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert (await client.get(att["url"])).status_code == 401

    r = await client.post(
        f"{API}/conversations/{conv['id']}/messages",
        json={"text": "Your invoice", "attachment_ids": [att["id"]]},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    attached = r.json()["attachments"]
    assert [(a["id"], a["message_id"], a["url"]) for a in attached] == [(att["id"], r.json()["id"], att["url"])]
    listed = (await client.get(f"{API}/conversations/{conv['id']}/messages", headers=headers)).json()["items"]
    assert listed[0]["attachments"][0]["filename"] == "Счёт №5.pdf"

    r = await client.post(
        f"{API}/conversations/{conv['id']}/messages",
        json={"text": "again", "attachment_ids": [att["id"]]},
        headers=headers,
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "attachment_ids"
    assert (await client.get(f"{API}/attachments/{uuid.uuid4()}", headers=headers)).status_code == 404


async def test_attachment_limits(client, app):
    _, headers = await agent(app)
    app.state.settings.max_attachment_mb = 1
    too_big = b"a" * (1024 * 1024 + 1)
    r = await client.post(f"{API}/attachments", files={"file": ("big.txt", too_big, "text/plain")}, headers=headers)
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "1 MB" in r.json()["detail"]
    r = await client.post(f"{API}/attachments", files={"file": ("ok.txt", b"a" * 1024, "text/plain")}, headers=headers)
    assert r.status_code == 201

    for name, kind in (("x.html", "text/html"), ("x.svg", "image/svg+xml"), ("x.exe", "application/x-msdownload")):
        r = await client.post(f"{API}/attachments", files={"file": (name, b"<svg onload=1>", kind)}, headers=headers)
        assert r.status_code == 415, (name, r.text)
    # A generic type is judged by the file name.
    r = await client.post(
        f"{API}/attachments", files={"file": ("photo.png", b"\x89PNG\r\n", "application/octet-stream")}, headers=headers
    )
    assert r.status_code == 201
    assert r.json()["content_type"] == "image/png"
    r = await client.post(
        f"{API}/attachments", files={"file": ("run.sh", b"#!/bin/sh", "application/octet-stream")}, headers=headers
    )
    assert r.status_code == 415


# -- realtime ------------------------------------------------------------------------------------


async def test_events_are_published_after_commit(client, app, hub_backend):
    me, headers = await agent(app)
    customer = await make_customer(app.state.db)
    # Already the agent's: the reply below is only a reply, not an assignment too.
    conv = await open_conversation(client, headers, customer.id, assignee_id=str(me.id))
    hub = app.state.hub
    received: list = []

    async def listen() -> None:
        async for event in hub.subscribe([f"conversation:{conv['id']}", "desk"]):
            received.append(event)

    task = asyncio.create_task(listen())
    await asyncio.sleep(0.3)  # let the subscription reach Redis
    try:
        r = await client.post(f"{API}/conversations/{conv['id']}/messages", json={"text": "Hi"}, headers=headers)
        assert r.status_code == 201
        reply_id = r.json()["id"]
        r = await client.patch(f"{API}/conversations/{conv['id']}", json={"status": "pending"}, headers=headers)
        assert r.status_code == 200
        # A rejected change publishes nothing.
        r = await client.patch(f"{API}/conversations/{conv['id']}", json={"status": "snoozed"}, headers=headers)
        assert r.status_code == 422
        for _ in range(100):
            if len(received) >= 4:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    by_topic = {(e.topic, e.type) for e in received}
    assert by_topic == {
        (f"conversation:{conv['id']}", "conversation.message_created"),
        ("desk", "conversation.message_created"),
        (f"conversation:{conv['id']}", "conversation.updated"),
        ("desk", "conversation.updated"),
    }
    assert len(received) == 4
    created = next(e for e in received if e.type == "conversation.message_created")
    assert (created.data["message"]["id"], created.data["message"]["text"]) == (reply_id, "Hi")
    updated = next(e for e in received if e.type == "conversation.updated")
    assert updated.data["conversation"]["status"] == "pending"
    assert updated.data["changes"] == ["status"]
