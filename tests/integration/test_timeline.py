"""The customer timeline: messages, notes, calls and events of every conversation, in order, page by page."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from frontdesk import clock
from frontdesk.models import CustomerEvent, Message
from tests.builders import agent, make_conversation, make_customer

API = "/api/v1"


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"run_loops": False})


async def seed(app):
    """Two conversations on two channels plus events, interleaved in time; returns the expected order."""
    db = app.state.db
    customer = await make_customer(db, "Олег Смирнов")
    stranger = await make_customer(db, "Someone Else")
    email = await make_conversation(db, customer, channel="email")
    call = await make_conversation(db, customer, channel="voice")
    theirs = await make_conversation(db, stranger, channel="email")
    base = clock.now() - timedelta(days=3)
    expected: list[tuple] = []  # (at, id, kind)
    async with db.transaction() as s:

        def message(conv, minutes, direction, channel, author, text):
            m = Message(
                id=uuid.uuid4(),
                conversation_id=conv.id,
                customer_id=conv.customer_id,
                direction=direction,
                channel=channel,
                author_type=author,
                text=text,
                delivery_status="sent",
                created_at=base + timedelta(minutes=minutes),
            )
            s.add(m)
            return m

        def event(cust, minutes, type_, **props):
            e = CustomerEvent(
                id=uuid.uuid4(),
                customer_id=cust.id,
                type=type_,
                properties=props,
                source="shop",
                occurred_at=base + timedelta(minutes=minutes),
            )
            s.add(e)
            return e

        plan = [
            (message(email, 0, "in", "email", "customer", "My parcel is late"), "message"),
            (event(customer, 5, "order.shipped", order="A-17"), "event"),
            (message(email, 10, "out", "email", "agent", "Sorry, checking"), "message"),
            (message(email, 10, "note", "email", "agent", "Courier delayed"), "note"),  # same minute
            (event(customer, 10, "page.viewed", url="/track"), "event"),  # same minute, other source
            (message(call, 20, "in", "voice", "customer", "Call: asked about refund"), "call"),
            (event(customer, 30, "order.delivered", order="A-17"), "event"),
            (message(email, 40, "out", "email", "agent", "Glad it arrived"), "message"),
        ]
        for i in range(12):  # more events than a page, to make the sources interleave across pages
            plan.append((event(customer, 45 + i, "app.opened", n=i), "event"))
        message(theirs, 15, "in", "email", "customer", "not this customer's")
        event(stranger, 15, "order.shipped")
        for row, kind in plan:
            at = row.created_at if isinstance(row, Message) else row.occurred_at
            expected.append((at, row.id, kind))
    expected.sort(key=lambda t: (t[0], t[1]))
    return customer, email, call, expected


async def walk(client, headers, customer_id, **params) -> tuple[list[dict], int]:
    items, cursor, pages = [], None, 0
    while True:
        q = dict(params) | ({"cursor": cursor} if cursor else {})
        r = await client.get(f"{API}/customers/{customer_id}/timeline", params=q, headers=headers)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        pages += 1
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items, pages


async def test_timeline_merges_every_channel_and_event_in_order(client, app):
    _, headers = await agent(app)
    customer, email, call, expected = await seed(app)

    newest_first, pages = await walk(client, headers, customer.id, limit=3)
    assert pages == 7  # 20 items, 3 a page
    assert [(i["id"], i["kind"]) for i in newest_first] == [(str(e[1]), e[2]) for e in reversed(expected)]

    oldest_first, _ = await walk(client, headers, customer.id, limit=4, order="asc")
    assert [i["id"] for i in oldest_first] == [str(e[1]) for e in expected]

    by_kind = {i["kind"]: i for i in reversed(oldest_first)}  # the first of each kind
    assert by_kind["call"]["channel"] == "voice"
    assert by_kind["call"]["conversation_id"] == str(call.id)
    assert by_kind["call"]["text"] == "Call: asked about refund"
    assert by_kind["note"]["direction"] == "note"
    assert by_kind["message"]["conversation_id"] == str(email.id)
    assert by_kind["message"]["author_type"] == "customer"
    first_event = next(i for i in oldest_first if i["kind"] == "event")
    assert first_event["event_type"] == "order.shipped"
    assert first_event["properties"] == {"order": "A-17"}
    assert first_event["source"] == "shop"
    assert first_event["conversation_id"] is None
    assert "not this customer's" not in {i["text"] for i in oldest_first}

    one_page = await client.get(f"{API}/customers/{customer.id}/timeline", params={"limit": 200}, headers=headers)
    assert one_page.json()["next_cursor"] is None
    assert len(one_page.json()["items"]) == len(expected)


async def test_timeline_errors(client, app):
    _, headers = await agent(app)
    customer = await make_customer(app.state.db)
    r = await client.get(f"{API}/customers/{uuid.uuid4()}/timeline", headers=headers)
    assert r.status_code == 404
    r = await client.get(f"{API}/customers/{customer.id}/timeline", params={"cursor": "bm9wZQ"}, headers=headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "cursor"
    r = await client.get(f"{API}/customers/{customer.id}/timeline", params={"limit": 201}, headers=headers)
    assert r.status_code == 422
    r = await client.get(f"{API}/customers/{customer.id}/timeline", headers=headers)
    assert r.json() == {"items": [], "next_cursor": None}
    assert (await client.get(f"{API}/customers/{customer.id}/timeline")).status_code == 401


async def test_replies_and_notes_show_up_on_the_timeline(client, app):
    _, headers = await agent(app)
    customer = await make_customer(app.state.db)
    conv = await make_conversation(app.state.db, customer, channel="webchat")
    r = await client.post(f"{API}/conversations/{conv.id}/messages", json={"text": "Hi there"}, headers=headers)
    assert r.status_code == 201
    r = await client.post(f"{API}/conversations/{conv.id}/notes", json={"text": "Seems happy"}, headers=headers)
    assert r.status_code == 201
    items = (await client.get(f"{API}/customers/{customer.id}/timeline", headers=headers)).json()["items"]
    assert [(i["kind"], i["text"], i["channel"]) for i in items] == [
        ("note", "Seems happy", "webchat"),
        ("message", "Hi there", "webchat"),
    ]
