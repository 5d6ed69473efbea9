"""Admin-set destinations never reach the inside of the network unless an operator allows it.

Saving a webhook subscription, an API inbox's ``webhook_url`` or an e-mail inbox's IMAP host that
is (or resolves to) loopback, link-local, private… is a 422 naming the problem. A name that passes
at save time and resolves to loopback at send time (DNS rebinding, played by a real DNS server on
a free UDP port that ``dns_servers`` points at) is refused at delivery: nothing reaches the
local receiver, the reason is kept for admins, agents read only "delivery failed". With the
allow-list set, the same local receiver gets the delivery through the same name.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from frontdesk.channels.context import context_of
from frontdesk.channels.email.imap import ImapPoller, state_of
from frontdesk.models import Message, WebhookDelivery
from frontdesk.settings import Settings
from tests.builders import auth_headers
from tests.integration.dns_server import DnsServer
from tests.integration.webhook_sink import Sink

PUBLIC = "93.184.216.34"  # what the name answers while the admin saves it
NAME = "hooks.rebind.test"

INSIDE = [
    ("http://127.0.0.1:8080/hook", "loopback"),
    ("http://127.1/hook", "loopback"),
    ("http://2130706433/hook", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::ffff:a9fe:a9fe]/latest/meta-data/", "link-local"),
    ("http://[::1]:9000/", "loopback"),
    ("https://10.0.0.7/hook", "private"),
    ("https://100.64.1.1/hook", "carrier-grade NAT"),
    ("http://localhost:8000/hook", "loopback"),
]


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    server = DnsServer().start()
    yield server
    server.stop()


@pytest.fixture
def allow() -> str | None:
    """``outbound_allow`` of the app under test (none; a test parametrizes it to set one)."""
    return None


@pytest.fixture
def settings(settings: Settings, dns: DnsServer, allow: str | None) -> Settings:
    return settings.model_copy(update={"dns_servers": [dns.address], "outbound_allow": allow})


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink().start()
    yield s
    s.stop()


async def eventually(check: Any, what: str, timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await check()
        if found:
            return found
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)


# -- saving ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "why"), INSIDE)
async def test_saving_a_webhook_to_the_inside_is_refused(app, client, url: str, why: str):
    admin = await auth_headers(app, "admin")
    r = await client.post("/api/v1/webhooks", json={"url": url, "events": ["*"]}, headers=admin)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert why in r.json()["detail"]
    assert "url" in r.json()["detail"]
    assert (await client.get("/api/v1/webhooks", headers=admin)).json() == []


async def test_changing_a_webhook_or_api_inbox_to_the_inside_is_refused(app, client, dns: DnsServer):
    admin = await auth_headers(app, "admin")
    dns.records[NAME] = [PUBLIC]
    r = await client.post("/api/v1/webhooks", json={"url": f"https://{NAME}/hook", "events": ["*"]}, headers=admin)
    assert r.status_code == 201, r.text
    hook = r.json()
    r = await client.patch(f"/api/v1/webhooks/{hook['id']}", json={"url": "http://0x7f.1/x"}, headers=admin)
    assert r.status_code == 422
    assert "loopback" in r.json()["detail"]
    dns.records["metadata.rebind.test"] = ["169.254.169.254"]
    r = await client.patch(
        f"/api/v1/webhooks/{hook['id']}", json={"url": "http://metadata.rebind.test/"}, headers=admin
    )
    assert r.status_code == 422
    assert "metadata.rebind.test (169.254.169.254) is link-local" in r.json()["detail"]
    assert (await client.get(f"/api/v1/webhooks/{hook['id']}", headers=admin)).json()["url"] == f"https://{NAME}/hook"

    body = {"name": "Shop app", "channel": "api", "config": {"webhook_url": "http://169.254.169.254/x"}}
    r = await client.post("/api/v1/inboxes", json=body, headers=admin)
    assert r.status_code == 422, r.text
    assert "config.webhook_url" in r.json()["detail"]
    assert "link-local" in r.json()["detail"]
    body["config"] = {"webhook_url": f"https://{NAME}/frontdesk"}
    r = await client.post("/api/v1/inboxes", json=body, headers=admin)
    assert r.status_code == 201, r.text
    inbox = r.json()
    config = {**inbox["config"], "webhook_url": "http://[::ffff:7f00:1]:6379/"}
    r = await client.patch(f"/api/v1/inboxes/{inbox['id']}", json={"config": config}, headers=admin)
    assert r.status_code == 422
    assert "loopback" in r.json()["detail"]

    mail = {
        "name": "Mailbox",
        "channel": "email",
        "config": {"imap": {"host": "127.0.0.1", "username": "u", "password": "p"}},
    }
    r = await client.post("/api/v1/inboxes", json=mail, headers=admin)
    assert r.status_code == 422
    assert "config.imap.host" in r.json()["detail"]
    assert "loopback" in r.json()["detail"]


# -- sending: the name resolves to loopback by the time of delivery -----------------------------


async def test_a_webhook_whose_name_rebinds_to_loopback_is_refused_at_delivery(app, client, dns: DnsServer, sink: Sink):
    admin = await auth_headers(app, "admin")
    agent = await auth_headers(app, "agent")
    dns.records[NAME] = [PUBLIC]
    url = f"http://{NAME}:{sink.port}/hook"
    r = await client.post("/api/v1/webhooks", json={"url": url, "events": ["*"]}, headers=admin)
    assert r.status_code == 201, r.text
    dns.records[NAME] = ["127.0.0.1"]  # rebinding: the sink listens there

    body = {"identity": {"kind": "email", "value": "ada@example.com"}, "channel": "api", "external_id": "m1"}
    r = await client.post("/api/v1/messages/inbound", json=body | {"text": "hi"}, headers=agent)
    assert r.status_code == 201, r.text

    async def failed() -> list[WebhookDelivery]:
        async with app.state.db.transaction() as s:
            rows = await s.scalars(select(WebhookDelivery).where(WebhookDelivery.status == "failed"))
            return list(rows.all())

    rows = await eventually(failed, "the delivery was refused for good")
    assert all(row.attempts == 1 for row in rows)  # refused at once, not retried
    assert f"{NAME} (127.0.0.1) is loopback" in (rows[0].last_error or "")
    assert sink.received == []
    letters = (await client.get("/api/v1/dead-letters?kind=webhook", headers=admin)).json()["items"]
    assert letters
    assert "loopback" in letters[0]["last_error"]


async def test_an_api_inbox_reply_to_a_rebound_name_fails_and_only_admins_see_why(
    app, client, dns: DnsServer, sink: Sink
):
    admin = await auth_headers(app, "admin")
    agent = await auth_headers(app, "agent")
    dns.records[NAME] = [PUBLIC]
    body = {"name": "Shop app", "channel": "api", "config": {"webhook_url": f"http://{NAME}:{sink.port}/frontdesk"}}
    r = await client.post("/api/v1/inboxes", json=body, headers=admin)
    assert r.status_code == 201, r.text
    inbox_id = r.json()["id"]
    dns.records[NAME] = ["127.0.0.1"]

    inbound = {"identity": {"kind": "email", "value": "ada@example.com"}, "channel": "api", "external_id": "m2"}
    r = await client.post(
        "/api/v1/messages/inbound", json=inbound | {"text": "hi", "inbox_id": inbox_id}, headers=agent
    )
    assert r.status_code == 201, r.text
    conversation_id = r.json()["conversation_id"]
    r = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"text": "On its way"}, headers=agent
    )
    assert r.status_code == 201, r.text
    message_id = r.json()["id"]

    async def failed() -> Message | None:
        async with app.state.db.transaction() as s:
            m = await s.get(Message, uuid.UUID(message_id))
            return m if m is not None and m.delivery_status == "failed" else None

    await eventually(failed, "the reply failed")
    assert sink.received == []

    # Agents: that it failed, not why.
    listed = (await client.get(f"/api/v1/conversations/{conversation_id}/messages", headers=agent)).json()["items"]
    reply = next(m for m in listed if m["id"] == message_id)
    assert (reply["delivery_status"], reply["error"]) == ("failed", "delivery failed")
    one = (await client.get(f"/api/v1/messages/{message_id}", headers=agent)).json()
    assert one["error"] == "delivery failed"
    assert "127.0.0.1" not in str(one)
    assert (await client.get(f"/api/v1/messages/{message_id}/delivery", headers=agent)).status_code == 403

    # Admins: the reason.
    r = await client.get(f"/api/v1/messages/{message_id}/delivery", headers=admin)
    assert r.status_code == 200, r.text
    delivery = r.json()
    assert delivery["delivery_status"] == "failed"
    assert f"{NAME} (127.0.0.1) is loopback" in delivery["error_detail"]
    assert delivery["outbox"]["status"] == "failed"
    assert delivery["target"] == f"http://{NAME}:{sink.port}/frontdesk"


async def test_an_email_inbox_whose_imap_host_rebinds_to_loopback_is_not_polled(app, client, dns: DnsServer):
    admin = await auth_headers(app, "admin")
    dns.records["imap.rebind.test"] = [PUBLIC]
    imap = {"host": "imap.rebind.test", "port": 1, "username": "u", "password": "p", "tls": False}
    r = await client.post(
        "/api/v1/inboxes", json={"name": "Mail", "channel": "email", "config": {"imap": imap}}, headers=admin
    )
    assert r.status_code == 201, r.text
    dns.records["imap.rebind.test"] = ["127.0.0.1"]
    poller = ImapPoller(context_of(app), poll_seconds=3600)
    assert await poller.poll_inbox(uuid.UUID(r.json()["id"]), {"imap": imap}) == 0
    (state,) = await state_of(app.state.db, uuid.UUID(r.json()["id"]))
    assert "imap.rebind.test (127.0.0.1) is loopback" in (state.last_error or "")


# -- the allow-list ------------------------------------------------------------------------------


@pytest.mark.parametrize("allow", [NAME])
async def test_with_the_allow_list_the_local_receiver_gets_the_delivery(app, client, dns: DnsServer, sink: Sink):
    dns.records[NAME] = ["127.0.0.1"]
    admin = await auth_headers(app, "admin")
    agent = await auth_headers(app, "agent")
    url = f"http://{NAME}:{sink.port}/hook"
    r = await client.post("/api/v1/webhooks", json={"url": url, "events": ["*"]}, headers=admin)
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1/", "events": ["*"]}, headers=admin)
    assert r.status_code == 422  # the allow-list names this host, not every inside address

    body = {"name": "Shop app", "channel": "api", "config": {"webhook_url": f"http://{NAME}:{sink.port}/api"}}
    r = await client.post("/api/v1/inboxes", json=body, headers=admin)
    assert r.status_code == 201, r.text
    inbound = {"identity": {"kind": "email", "value": "ada@example.com"}, "channel": "api", "external_id": "m3"}
    r = await client.post(
        "/api/v1/messages/inbound", json=inbound | {"text": "hi", "inbox_id": r.json()["id"]}, headers=agent
    )
    assert r.status_code == 201, r.text
    conversation_id = r.json()["conversation_id"]
    r = await client.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": "Here"}, headers=agent)
    assert r.status_code == 201, r.text
    message_id = r.json()["id"]

    async def sent() -> Message | None:
        async with app.state.db.transaction() as s:
            m = await s.get(Message, uuid.UUID(message_id))
            return m if m is not None and m.delivery_status == "sent" else None

    await eventually(sent, "the reply reached the receiver")
    await eventually(lambda: _count(sink, "/api"), "the reply reached the receiver")
    await eventually(lambda: _count(sink, "/hook"), "the subscription's events reached the receiver")
    # Connected to the address the resolver gave for the name (the sink listens only on 127.0.0.1,
    # and the name exists nowhere but in the test's DNS server); the Host header kept the name.
    assert {g.headers["host"] for g in sink.received} == {f"{NAME}:{sink.port}"}
    assert (NAME, "A") in dns.queries


async def _count(sink: Sink, path: str) -> int:
    return sum(1 for g in sink.received if g.path == path)
