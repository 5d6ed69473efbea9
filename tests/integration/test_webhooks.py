"""Webhook subscriptions: CRUD, transactional deliveries, signing, retries and dead letters.

The delivery loop is driven by hand here (``run_loops`` off) so each attempt is observable;
tests/integration/test_apichannel.py covers the loops started by the app.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from frontdesk import clock
from frontdesk.bus import emit
from frontdesk.conversations.schemas import ConversationOut
from frontdesk.events import ConversationUpdated
from frontdesk.models import AuditEntry, WebhookDelivery
from frontdesk.settings import Settings
from frontdesk.signing import sign, verify
from frontdesk.webhooks.service import WebhookLoop
from tests.builders import auth_headers
from tests.integration.webhook_sink import Sink, free_port


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The receivers listen on 127.0.0.1: allowed explicitly (frontdesk.netguard refuses it by default).
    return settings.model_copy(update={"run_loops": False, "outbound_allow": "127.0.0.1/32"})


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink().start()
    yield s
    s.stop()


def loop_of(app: Any) -> WebhookLoop:
    return WebhookLoop(app.state.db, app.state.settings)


async def subscribe(client: Any, admin: dict[str, str], url: str, events: list[str]) -> dict[str, Any]:
    r = await client.post("/api/v1/webhooks", json={"url": url, "events": events}, headers=admin)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def deliveries(app: Any) -> list[WebhookDelivery]:
    async with app.state.db.transaction() as s:
        return list((await s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))).all())


async def inbound(client: Any, agent: dict[str, str], text: str = "Hello", key: str = "m1") -> dict[str, Any]:
    body = {"identity": {"kind": "email", "value": "ada@example.com"}, "channel": "api", "external_id": key}
    r = await client.post("/api/v1/messages/inbound", json=body | {"text": text}, headers=agent)
    assert r.status_code == 201, r.text
    return dict(r.json())


def verified(got: Any, secret: str) -> bool:
    return verify(got.body, secret, got.headers["x-frontdesk-signature"], got.headers["x-frontdesk-timestamp"])


async def test_subscriptions_are_admin_managed_and_the_secret_shown_once(app, client):
    admin = await auth_headers(app, "admin")
    agent = await auth_headers(app, "agent")
    created = await subscribe(client, admin, "https://hooks.example.com/frontdesk", ["conversation.created"])
    assert created["secret"].startswith("whsec_")
    listed = (await client.get("/api/v1/webhooks", headers=admin)).json()
    assert [w["id"] for w in listed] == [created["id"]]
    assert "secret" not in listed[0]

    r = await client.patch(f"/api/v1/webhooks/{created['id']}", json={"events": ["*"], "active": False}, headers=admin)
    assert (r.status_code, r.json()["events"], r.json()["active"]) == (200, ["*"], False)
    rotated = (await client.post(f"/api/v1/webhooks/{created['id']}/rotate-secret", headers=admin)).json()
    assert rotated["secret"] != created["secret"]

    for bad in ("ftp://example.com/x", "not a url", "http://"):
        r = await client.post("/api/v1/webhooks", json={"url": bad, "events": ["*"]}, headers=admin)
        assert r.status_code == 422, bad
    r = await client.post("/api/v1/webhooks", json={"url": "https://x.example", "events": ["nope"]}, headers=admin)
    assert r.status_code == 422
    assert (await client.get("/api/v1/webhooks", headers=agent)).status_code == 403

    assert (await client.delete(f"/api/v1/webhooks/{created['id']}", headers=admin)).status_code == 204
    assert (await client.get(f"/api/v1/webhooks/{created['id']}", headers=admin)).status_code == 404
    async with app.state.db.transaction() as s:
        actions = list(await s.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == created["id"])))
    assert sorted(actions) == ["webhook.created", "webhook.deleted", "webhook.secret_rotated", "webhook.updated"]


async def test_inbound_message_and_patch_are_delivered_signed(app, client, sink: Sink):
    admin = await auth_headers(app, "admin")
    agent = await auth_headers(app, "agent")
    sub = await subscribe(client, admin, sink.url, ["conversation.message_created", "conversation.updated"])
    everything = Sink().start()
    try:
        all_sub = await subscribe(client, admin, everything.url, ["*"])
        ids = await inbound(client, agent, "Где мой заказ?")
        path = f"/api/v1/conversations/{ids['conversation_id']}"
        r = await client.patch(path, json={"priority": "high"}, headers=agent)
        assert r.status_code == 200, r.text

        assert await loop_of(app).run_due() == 5  # 2 for the narrow subscription, 3 for "*"
        # Deliveries run concurrently: no order is promised (events carry created_at).
        narrow = {g.json()["type"]: g for g in sink.received}
        assert sorted(narrow) == ["conversation.message_created", "conversation.updated"]
        for got in sink.received:
            assert verified(got, sub["secret"])
            assert not verified(got, all_sub["secret"])
        message_event = narrow["conversation.message_created"].json()
        assert message_event["data"]["message"]["text"] == "Где мой заказ?"
        assert message_event["data"]["message"]["id"] == ids["message_id"]
        assert narrow["conversation.updated"].json()["data"]["conversation"]["priority"] == "high"

        wide = {g.json()["type"]: g.json() for g in everything.received}
        assert sorted(wide) == ["conversation.created", "conversation.message_created", "conversation.updated"]
        assert wide["conversation.created"]["data"]["conversation"]["id"] == ids["conversation_id"]
        assert all(verified(g, all_sub["secret"]) for g in everything.received)
        # The same event carries the same id to both subscribers; each delivery has its own id.
        assert wide["conversation.message_created"]["id"] == message_event["id"]
        delivery_ids = {g.headers["x-frontdesk-delivery"] for g in sink.received + everything.received}
        assert len(delivery_ids) == 5
        assert await deliveries(app) == []  # delivered rows leave the queue
    finally:
        everything.stop()


async def test_inactive_subscriptions_and_unwanted_types_get_nothing(app, client, sink: Sink):
    admin = await auth_headers(app, "admin")
    agent = await auth_headers(app, "agent")
    await subscribe(client, admin, sink.url, ["conversation.message_updated"])
    off = await subscribe(client, admin, sink.url, ["*"])
    await client.patch(f"/api/v1/webhooks/{off['id']}", json={"active": False}, headers=admin)
    await inbound(client, agent)
    assert await deliveries(app) == []


async def test_a_rolled_back_unit_of_work_produces_no_delivery(app, client, sink: Sink):
    admin = await auth_headers(app, "admin")
    await subscribe(client, admin, sink.url, ["*"])
    db = app.state.db
    now = clock.now()
    view = ConversationOut.model_validate(
        {
            "id": uuid.uuid4(),
            "customer_id": uuid.uuid4(),
            "channel": "email",
            "inbox_id": None,
            "subject": None,
            "status": "open",
            "priority": "high",
            "queue_id": None,
            "team_id": None,
            "assignee_id": None,
            "message_count": 0,
            "snoozed_until": None,
            "last_message_at": None,
            "first_response_at": None,
            "first_response_seconds": None,
            "resolved_at": None,
            "resolution_seconds": None,
            "created_at": now,
            "updated_at": now,
        }
    )
    event = ConversationUpdated(conversation=view, changes=("priority",))

    async def fails_after_publishing() -> None:
        async with db.transaction() as s:
            emit(s, event)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await fails_after_publishing()
    assert await deliveries(app) == []

    async with db.transaction() as s:
        emit(s, event)  # one event, however many topics the desks hear it on
    assert [d.event_type for d in await deliveries(app)] == ["conversation.updated"]  # no duplicates

    # Over HTTP: a request that fails after queueing its event leaves nothing behind either.
    agent = await auth_headers(app, "agent")
    ids = await inbound(client, agent)
    await loop_of(app).run_due()
    before = len(sink.received)
    r = await client.patch(
        f"/api/v1/conversations/{ids['conversation_id']}", json={"assignee_id": str(uuid.uuid4())}, headers=agent
    )
    assert r.status_code == 422
    assert await deliveries(app) == []
    assert await loop_of(app).run_due() == 0
    assert len(sink.received) == before


async def test_receiver_down_retries_with_growing_delays_then_dead_letter_and_replay(app, client, frozen_clock):
    admin = await auth_headers(app, "admin")
    agent = await auth_headers(app, "agent")
    port = free_port()  # nothing listens here yet
    sub = await subscribe(client, admin, f"http://127.0.0.1:{port}/hook", ["conversation.message_created"])
    await inbound(client, agent)
    (delivery,) = await deliveries(app)
    async with app.state.db.transaction() as s:
        row = await s.get(WebhookDelivery, delivery.id)
        assert row is not None
        assert row.max_attempts == 16
        row.max_attempts = 4  # keep the test short; the schedule is the same

    loop = loop_of(app)
    base = loop.backoff_base
    delays = []
    for attempt in (1, 2, 3):
        assert await loop.run_due() == 1
        (row,) = await deliveries(app)
        assert (row.status, row.attempts) == ("pending", attempt)
        assert "unreachable" in (row.last_error or "")
        delay = (row.due_at - clock.now()).total_seconds()
        full = base * 2 ** (attempt - 1)
        assert full / 2 <= delay <= full  # exponential, with jitter in [½, 1]
        delays.append(delay)
        assert await loop.run_due() == 0  # not due yet
        frozen_clock.advance(seconds=delay)
    assert delays[0] < delays[2]

    assert await loop.run_due() == 1  # the 4th and last attempt
    (row,) = await deliveries(app)
    assert (row.status, row.attempts) == ("failed", 4)
    frozen_clock.advance(hours=2)
    assert await loop.run_due() == 0  # failed rows are never picked up again by themselves

    letters = (await client.get("/api/v1/dead-letters?kind=webhook", headers=admin)).json()["items"]
    assert len(letters) == 1
    assert letters[0] | {"last_error": None} == letters[0] | {
        "id": str(row.id),
        "kind": "webhook",
        "target": sub["url"],
        "attempts": 4,
        "max_attempts": 4,
        "subscription_id": sub["id"],
        "event_type": "conversation.message_created",
        "last_error": None,
    }

    receiver = Sink(port=port).start()
    try:
        r = await client.post(f"/api/v1/dead-letters/{row.id}/replay", headers=admin)
        assert r.status_code == 200, r.text
        assert r.json() == {"id": str(row.id), "kind": "webhook", "status": "pending"}
        assert await loop.run_due() == 1
        assert len(receiver.received) == 1
        got = receiver.received[0]
        assert verified(got, sub["secret"])
        assert got.headers["x-frontdesk-delivery"] == str(row.id)
        assert got.json()["type"] == "conversation.message_created"
    finally:
        receiver.stop()
    assert await deliveries(app) == []
    assert (await client.get("/api/v1/dead-letters", headers=admin)).json()["items"] == []


async def test_permanent_answer_fails_at_once(app, client, sink: Sink):
    sink.answers = [404, 404]
    admin = await auth_headers(app, "admin")
    agent = await auth_headers(app, "agent")
    await subscribe(client, admin, sink.url, ["*"])
    await inbound(client, agent)
    assert await loop_of(app).run_due() == 2
    rows = await deliveries(app)
    assert [r.status for r in rows] == ["failed", "failed"]
    assert all("HTTP 404" in (r.last_error or "") for r in rows)


async def test_api_inbound_through_the_ingest_writer_is_delivered(app, client, sink: Sink):
    """The group-commit writer writes deliveries in its own batch transaction."""
    admin = await auth_headers(app, "admin")
    sub = await subscribe(client, admin, sink.url, ["conversation.message_created"])
    r = await client.post("/api/v1/inboxes", json={"name": "int", "channel": "api"}, headers=admin)
    inbox_id = r.json()["id"]
    secret = (await client.post(f"/api/v1/inboxes/{inbox_id}/secrets", json={}, headers=admin)).json()["inbound_secret"]
    body = orjson.dumps({"sender": {"kind": "phone", "value": "+44 20 7946 0958"}, "text": "hi"})
    stamp = str(int(clock.now().timestamp()))
    headers = {"X-Frontdesk-Timestamp": stamp, "X-Frontdesk-Signature": sign(body, secret, stamp)}
    headers["Idempotency-Key"] = "a"
    for _ in range(2):  # the repeat is a duplicate: no second event
        r = await client.post(f"/api/v1/inboxes/{inbox_id}/messages", content=body, headers=headers)
        assert r.status_code in (200, 201)
    assert await loop_of(app).run_due() == 1
    (got,) = sink.received
    assert verified(got, sub["secret"])
    assert got.json()["data"]["message"]["channel"] == "api"
    async with app.state.db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
