"""The API channel end to end: signed inbound over HTTP, outbound to the integrator's webhook,
and the dead-letter list for deliveries that failed for good. Both database backends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from frontdesk import clock
from frontdesk.models import AuditEntry, Message, OutboxItem, RejectedInput
from frontdesk.settings import Settings
from frontdesk.signing import sign, verify
from tests.builders import auth_headers
from tests.integration.webhook_sink import Sink


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The integrator's receiver listens on 127.0.0.1: allowed explicitly (netguard refuses it by default).
    return settings.model_copy(update={"outbound_allow": "127.0.0.1/32"})


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink().start()
    yield s
    s.stop()


async def make_api_inbox(client: Any, admin: dict[str, str], webhook_url: str | None = None) -> tuple[str, str, str]:
    """An API inbox; (id, inbound_secret, webhook_secret) read from a rotation (shown once)."""
    config = {"webhook_url": webhook_url} if webhook_url else {}
    body = {"name": f"api-{uuid.uuid4().hex[:6]}", "channel": "api", "config": config}
    r = await client.post("/api/v1/inboxes", json=body, headers=admin)
    assert r.status_code == 201, r.text
    inbox_id = r.json()["id"]
    assert r.json()["config"]["inbound_secret"] == "********"  # generated, and masked when read
    r = await client.post(f"/api/v1/inboxes/{inbox_id}/secrets", json={}, headers=admin)
    assert r.status_code == 200, r.text
    return inbox_id, r.json()["inbound_secret"], r.json()["webhook_secret"]


async def post_signed(
    client: Any,
    inbox_id: str,
    secret: str,
    payload: dict[str, Any],
    *,
    key: str | None = "msg-1",
    timestamp: int | None = None,
    signature: str | None = None,
) -> Any:
    body = orjson.dumps(payload)
    stamp = str(timestamp if timestamp is not None else int(clock.now().timestamp()))
    headers = {
        "Content-Type": "application/json",
        "X-Frontdesk-Timestamp": stamp,
        "X-Frontdesk-Signature": signature or sign(body, secret, stamp),
    }
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post(f"/api/v1/inboxes/{inbox_id}/messages", content=body, headers=headers)


MESSAGE = {"sender": {"kind": "email", "value": "Ada@Example.com", "name": "Ada"}, "text": "Привет, where is my order?"}


async def count(app: Any, stmt: Any) -> int:
    async with app.state.db.transaction() as s:
        return int(await s.scalar(stmt) or 0)


async def test_signed_inbound_is_stored_once_per_idempotency_key(app, client):
    admin = await auth_headers(app, "admin")
    inbox_id, secret, _ = await make_api_inbox(client, admin)

    first = await post_signed(client, inbox_id, secret, MESSAGE, key="order-42")
    assert first.status_code == 201, first.text
    ids = first.json()
    assert ids["duplicate"] is False

    again = await post_signed(client, inbox_id, secret, MESSAGE, key="order-42")
    assert again.status_code == 200
    assert again.json() == ids | {"duplicate": True}

    agent = await auth_headers(app, "agent")
    r = await client.get(f"/api/v1/conversations/{ids['conversation_id']}/messages", headers=agent)
    assert r.status_code == 200
    texts = [m["text"] for m in r.json()["items"]]
    assert texts == ["Привет, where is my order?"]
    async with app.state.db.transaction() as s:
        msg = await s.get(Message, uuid.UUID(ids["message_id"]))
    assert msg is not None
    assert (msg.channel, msg.external_id) == ("api", f"{inbox_id}:order-42")

    # A follow-up in the same conversation joins it.
    follow = await post_signed(
        client,
        inbox_id,
        secret,
        MESSAGE | {"text": "Any news?", "conversation_id": ids["conversation_id"]},
        key="order-43",
    )
    assert follow.status_code == 201
    assert follow.json()["conversation_id"] == ids["conversation_id"]


async def test_bad_signature_is_refused_and_kept_raw(app, client):
    admin = await auth_headers(app, "admin")
    inbox_id, _secret, _ = await make_api_inbox(client, admin)
    r = await post_signed(client, inbox_id, "not-the-secret", MESSAGE, key="k1")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "X-Frontdesk-Signature" in r.json()["detail"]
    async with app.state.db.transaction() as s:
        rejected = (await s.scalars(select(RejectedInput))).all()
    assert [(x.source, x.body) for x in rejected] == [("api.inbound", orjson.dumps(MESSAGE))]
    assert "401" in rejected[0].reason
    assert await count(app, select(func.count()).select_from(Message)) == 0


async def test_stale_timestamp_is_refused_even_when_signed(app, client):
    admin = await auth_headers(app, "admin")
    inbox_id, secret, _ = await make_api_inbox(client, admin)
    stale = int(clock.now().timestamp()) - 301
    r = await post_signed(client, inbox_id, secret, MESSAGE, timestamp=stale)
    assert r.status_code == 401
    assert "Timestamp" in r.json()["detail"]
    ok = await post_signed(client, inbox_id, secret, MESSAGE, timestamp=int(clock.now().timestamp()) - 240)
    assert ok.status_code == 201


async def test_refusals_name_the_problem(app, client):
    admin = await auth_headers(app, "admin")
    inbox_id, secret, _ = await make_api_inbox(client, admin)
    no_key = await post_signed(client, inbox_id, secret, MESSAGE, key=None)
    assert no_key.status_code == 422
    assert no_key.json()["errors"][0]["field"] == "Idempotency-Key"
    bad_body = await post_signed(client, inbox_id, secret, {"sender": {"kind": "email"}, "text": "x"})
    assert bad_body.status_code == 422
    assert bad_body.json()["errors"][0]["field"] == "sender.value"
    unknown = await post_signed(client, str(uuid.uuid4()), secret, MESSAGE)
    assert unknown.status_code == 404
    r = await client.post("/api/v1/inboxes", json={"name": "chat", "channel": "webchat"}, headers=admin)
    not_api = await post_signed(client, r.json()["id"], secret, MESSAGE)
    assert not_api.status_code == 404
    await client.delete(f"/api/v1/inboxes/{inbox_id}", headers=admin)
    inactive = await post_signed(client, inbox_id, secret, MESSAGE, key="other")
    assert inactive.status_code == 404
    assert await count(app, select(func.count()).select_from(RejectedInput)) == 5


async def test_rotating_the_inbound_secret_retires_the_old_one(app, client):
    admin = await auth_headers(app, "admin")
    inbox_id, old, _ = await make_api_inbox(client, admin)
    # Accepted with the old secret first: the inbox is now read and kept (the API channel's cache).
    assert (await post_signed(client, inbox_id, old, MESSAGE, key="before")).status_code == 201
    r = await client.post(f"/api/v1/inboxes/{inbox_id}/secrets", json={"secrets": ["inbound_secret"]}, headers=admin)
    new = r.json()["inbound_secret"]
    assert r.json()["webhook_secret"] is None
    assert (await post_signed(client, inbox_id, old, MESSAGE)).status_code == 401  # at once
    assert (await post_signed(client, inbox_id, new, MESSAGE)).status_code == 201
    agent = await auth_headers(app, "agent")
    assert (await client.post(f"/api/v1/inboxes/{inbox_id}/secrets", json={}, headers=agent)).status_code == 403


async def test_an_inbox_switched_off_takes_no_more_messages_at_once(app, client):
    admin = await auth_headers(app, "admin")
    inbox_id, secret, _ = await make_api_inbox(client, admin)
    assert (await post_signed(client, inbox_id, secret, MESSAGE, key="before")).status_code == 201
    r = await client.patch(f"/api/v1/inboxes/{inbox_id}", json={"is_active": False}, headers=admin)
    assert r.status_code == 200, r.text
    assert (await post_signed(client, inbox_id, secret, MESSAGE, key="after")).status_code == 404
    r = await client.patch(f"/api/v1/inboxes/{inbox_id}", json={"is_active": True}, headers=admin)
    assert (await post_signed(client, inbox_id, secret, MESSAGE, key="again")).status_code == 201


async def test_a_secret_rotated_by_another_process_is_refused_once_the_watcher_hears(app, client):
    """Another process rotates the secret (its row and its credential change written directly, no
    hub event reaches this one): the secret this process read and kept stops working within the
    credential watch interval (0.5 s)."""
    from frontdesk.auth import revocation
    from frontdesk.models import CredentialChange, Inbox

    admin = await auth_headers(app, "admin")
    inbox_id, old, _ = await make_api_inbox(client, admin)
    assert (await post_signed(client, inbox_id, old, MESSAGE, key="k-0")).status_code == 201
    async with app.state.db.transaction() as s:
        inbox = await s.get(Inbox, uuid.UUID(inbox_id))
        inbox.config = {**inbox.config, "inbound_secret": "rotated-elsewhere-0123456789"}
        s.add(CredentialChange(changed_at=clock.now(), reason=revocation.INBOX_SIGNING_CHANGED))
    deadline = asyncio.get_running_loop().time() + 5
    n = 0
    while True:
        n += 1
        r = await post_signed(client, inbox_id, old, MESSAGE, key=f"k-{n}")
        if r.status_code == 401:
            break
        assert r.status_code == 201, r.text
        assert asyncio.get_running_loop().time() < deadline, "the old secret is still honoured"
        await asyncio.sleep(0.05)
    r = await post_signed(client, inbox_id, "rotated-elsewhere-0123456789", MESSAGE, key="k-new")
    assert r.status_code == 201


async def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_agent_reply_reaches_the_integrator_signed(app, client, sink: Sink):
    admin = await auth_headers(app, "admin")
    inbox_id, secret, webhook_secret = await make_api_inbox(client, admin, webhook_url=sink.url)
    conv = (await post_signed(client, inbox_id, secret, MESSAGE)).json()["conversation_id"]
    agent = await auth_headers(app, "agent")
    r = await client.post(f"/api/v1/conversations/{conv}/messages", json={"text": "On its way!"}, headers=agent)
    assert r.status_code == 201, r.text
    await wait_for(lambda: len(sink.received) == 1)
    got = sink.received[0]
    assert verify(got.body, webhook_secret, got.headers["x-frontdesk-signature"], got.headers["x-frontdesk-timestamp"])
    assert got.json()["message"]["text"] == "On its way!"
    assert got.json()["inbox_id"] == inbox_id


async def test_failed_outbound_is_a_dead_letter_an_admin_replays(app, client, sink: Sink):
    sink.answers = [410]  # permanent: straight to the dead-letter list
    admin = await auth_headers(app, "admin")
    inbox_id, secret, _ = await make_api_inbox(client, admin, webhook_url=sink.url)
    conv = (await post_signed(client, inbox_id, secret, MESSAGE)).json()["conversation_id"]
    agent = await auth_headers(app, "agent")
    reply = await client.post(f"/api/v1/conversations/{conv}/messages", json={"text": "Sorry!"}, headers=agent)
    message_id = reply.json()["id"]

    letters: list[dict[str, Any]] = []

    async def dead() -> list[dict[str, Any]]:
        r = await client.get("/api/v1/dead-letters", headers=admin)
        assert r.status_code == 200
        return list(r.json()["items"])

    for _ in range(200):
        letters = await dead()
        if letters:
            break
        await asyncio.sleep(0.05)
    assert len(letters) == 1
    letter = letters[0]
    assert (letter["kind"], letter["target"], letter["message_id"]) == ("outbox", sink.url, message_id)
    assert "HTTP 410" in letter["last_error"]
    assert (await client.get("/api/v1/dead-letters", headers=agent)).status_code == 403

    r = await client.post(f"/api/v1/dead-letters/{letter['id']}/replay", headers=admin)
    assert r.status_code == 200, r.text
    await wait_for(lambda: len(sink.received) == 2)
    for _ in range(200):
        async with app.state.db.transaction() as s:
            msg = await s.get(Message, uuid.UUID(message_id))
        if msg is not None and msg.delivery_status == "sent":
            break
        await asyncio.sleep(0.05)
    assert msg is not None
    assert msg.delivery_status == "sent"
    assert await dead() == []
    assert (await client.post(f"/api/v1/dead-letters/{letter['id']}/replay", headers=admin)).status_code == 404
    async with app.state.db.transaction() as s:
        actions = list(await s.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == letter["id"])))
    assert actions == ["dead_letter.replayed"]


async def test_discarding_a_dead_letter(app, client, sink: Sink):
    sink.answers = [400]
    admin = await auth_headers(app, "admin")
    inbox_id, secret, _ = await make_api_inbox(client, admin, webhook_url=sink.url)
    conv = (await post_signed(client, inbox_id, secret, MESSAGE)).json()["conversation_id"]
    agent = await auth_headers(app, "agent")
    await client.post(f"/api/v1/conversations/{conv}/messages", json={"text": "Sorry!"}, headers=agent)
    for _ in range(200):
        if await count(app, select(func.count()).select_from(OutboxItem).where(OutboxItem.status == "failed")):
            break
        await asyncio.sleep(0.05)
    letter = (await client.get("/api/v1/dead-letters?kind=outbox", headers=admin)).json()["items"][0]
    r = await client.delete(f"/api/v1/dead-letters/{letter['id']}", headers=admin)
    assert r.status_code == 204
    assert (await client.get("/api/v1/dead-letters", headers=admin)).json()["items"] == []
    async with app.state.db.transaction() as s:
        actions = list(await s.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == letter["id"])))
    assert actions == ["dead_letter.discarded"]
