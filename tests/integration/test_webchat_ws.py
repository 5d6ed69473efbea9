"""The widget socket end to end: a real uvicorn server, the real ``websockets`` client, both hubs."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from frontdesk.channels.webchat import notices, runtime
from frontdesk.models import CustomerEvent, Inbox, Message
from frontdesk.settings import Settings
from tests.builders import auth_headers, make_token, make_user
from tests.builders.webchat import Server, make_webchat_inbox, nothing, of_type, recv, send, serving


@pytest.fixture
async def server(settings: Settings, hub_backend: str | None) -> AsyncIterator[Server]:
    if hub_backend:  # rate-limit counters of earlier tests (same address, same minute) must not count
        import redis.asyncio as redis

        client = redis.from_url(hub_backend)
        async for key in client.scan_iter(match="fd:webchat:rl:*"):
            await client.delete(key)
        await client.aclose()
    limits = {"widget_messages_per_minute": 5, "ws_auth_timeout_seconds": 1.0}
    async with serving(settings.model_copy(update=limits), hub_backend) as srv:
        yield srv


async def visitor_session(server: Server, inbox: Inbox, **body: object) -> dict:
    async with httpx.AsyncClient(base_url=server.http) as c:
        r = await c.post("/api/v1/widget/sessions", json={"inbox": inbox.public_token, **body})
    assert r.status_code == 200, r.text
    return r.json()


async def stored(server: Server, **where: object) -> list[Message]:
    async with server.app.state.db.transaction() as s:
        stmt = select(Message)
        for k, v in where.items():
            stmt = stmt.where(getattr(Message, k) == v)
        return list((await s.scalars(stmt.order_by(Message.created_at))).all())


async def test_send_ack_and_idempotent_resend(server: Server):
    inbox = await make_webchat_inbox(server.app.state.db)
    sess = await visitor_session(server, inbox)
    async with server.widget(sess["visitor_token"]) as ws:
        welcome = await recv(ws, of_type("welcome"))
        assert welcome["visitor_id"] == sess["visitor_id"]
        assert welcome["conversation_id"] is None
        client_id = str(uuid.uuid4())
        await send(ws, {"type": "message", "client_id": client_id, "text": "Привет 👋"})
        ack = await recv(ws, of_type("ack"))
        assert (ack["client_id"], ack["duplicate"]) == (client_id, False)
        # The conversation was opened: the socket now follows it and says so.
        moved = await recv(ws, of_type("welcome"))
        assert moved["conversation_id"] is not None
        echo = await recv(ws, of_type("message"))
        assert echo["message"]["id"] == ack["message_id"]
        assert (echo["message"]["direction"], echo["message"]["text"]) == ("in", "Привет 👋")
        # A resend (the widget did not see the ack) is answered with the same id.
        await send(ws, {"type": "message", "client_id": client_id, "text": "Привет 👋"})
        again = await recv(ws, of_type("ack"))
        assert (again["message_id"], again["duplicate"]) == (ack["message_id"], True)
    # And after a reconnect too.
    async with server.widget(sess["visitor_token"]) as ws:
        assert (await recv(ws, of_type("welcome")))["conversation_id"] == moved["conversation_id"]
        await send(ws, {"type": "message", "client_id": client_id, "text": "Привет 👋"})
        assert (await recv(ws, of_type("ack")))["message_id"] == ack["message_id"]
    rows = await stored(server, external_id=f"{sess['visitor_id']}:{client_id}")
    assert len(rows) == 1
    assert rows[0].channel == "webchat"


async def test_agent_reply_reaches_widget_and_replays(server: Server):
    inbox = await make_webchat_inbox(server.app.state.db)
    sess = await visitor_session(server, inbox)
    headers = await auth_headers(server.app, name="Agent Smith")
    async with server.widget(sess["visitor_token"]) as ws:
        await recv(ws, of_type("welcome"))
        await send(ws, {"type": "message", "client_id": str(uuid.uuid4()), "text": "help"})
        welcome = await recv(ws, of_type("welcome"))
        conv = welcome["conversation_id"]
        async with httpx.AsyncClient(base_url=server.http, headers=headers) as c:
            r = await c.post(
                f"/api/v1/conversations/{conv}/messages",
                json={"html": '<p>Hello <b>there</b></p><script>alert(1)</script><a href="javascript:x()">x</a>'},
            )
            assert r.status_code == 201, r.text
        reply = await recv(ws, lambda m: m["type"] == "message" and m["message"]["direction"] == "out")
        msg = reply["message"]
        assert msg["id"] == r.json()["id"]
        assert msg["author_name"] == "Agent Smith"
        assert "<b>there</b>" in msg["html"]
        assert "script" not in msg["html"]
        assert "javascript:" not in msg["html"]
        last_seq = reply["seq"]
    # Offline: two replies happen.
    async with httpx.AsyncClient(base_url=server.http, headers=headers) as c:
        ids = []
        for text in ("one", "two"):
            r = await c.post(f"/api/v1/conversations/{conv}/messages", json={"text": text})
            ids.append(r.json()["id"])
    for _ in range(100):  # delivered by the outbox
        if all(m.delivery_status == "delivered" for m in await stored(server, direction="out")):
            break
        await asyncio.sleep(0.05)
    async with server.widget(sess["visitor_token"]) as ws:
        await recv(ws, of_type("welcome"))
        await send(ws, {"type": "hello", "last_seq": last_seq})
        got = [await recv(ws, of_type("message")) for _ in range(2)]
        assert [g["message"]["id"] for g in got] == ids
        assert all(g["seq"] > last_seq for g in got)
        assert await nothing(ws, of_type("message"))
        # No last_seq: the history from the database.
        await send(ws, {"type": "hello", "last_seq": None})
        snap = await recv(ws, of_type("snapshot"))
        assert [m["text"] for m in snap["messages"]] == ["help", msg["text"], "one", "two"]
        assert [m["direction"] for m in snap["messages"]] == ["in", "out", "out", "out"]
        assert snap["last_seq"] >= got[-1]["seq"]


async def test_restart_resumes_with_history(server: Server):
    inbox = await make_webchat_inbox(server.app.state.db)
    sess = await visitor_session(server, inbox)
    async with server.widget(sess["visitor_token"]) as ws:
        await recv(ws, of_type("welcome"))
        await send(ws, {"type": "message", "client_id": str(uuid.uuid4()), "text": "before restart"})
        await recv(ws, of_type("ack"))
        welcome = await recv(ws, of_type("welcome"))
    await server.restart()
    async with server.widget(sess["visitor_token"]) as ws:
        again = await recv(ws, of_type("welcome"))
        assert again["conversation_id"] == welcome["conversation_id"]
        await send(
            ws,
            {"type": "hello", "last_seq": 5, "epoch": welcome["epoch"], "conversation_id": welcome["conversation_id"]},
        )
        if welcome["epoch"] != again["epoch"]:
            snap = await recv(ws, of_type("snapshot"))
            assert [m["text"] for m in snap["messages"]] == ["before restart"]
        client_id = str(uuid.uuid4())
        await send(ws, {"type": "message", "client_id": client_id, "text": "after restart"})
        assert (await recv(ws, of_type("ack")))["duplicate"] is False
    rows = await stored(server, conversation_id=uuid.UUID(welcome["conversation_id"]))
    assert [m.text for m in rows] == ["before restart", "after restart"]


async def test_typing_both_ways_and_read_receipts(server: Server):
    inbox = await make_webchat_inbox(server.app.state.db)
    sess = await visitor_session(server, inbox)
    headers = await auth_headers(server.app, name="Agent Smith")
    token = headers["Authorization"].split()[1]
    async with (
        server.widget(sess["visitor_token"]) as ws,
        connect(f"ws://127.0.0.1:{server.port}/ws?token={token}") as desk,
    ):
        await recv(desk, of_type("hello"))
        await recv(ws, of_type("welcome"))
        await send(ws, {"type": "message", "client_id": str(uuid.uuid4()), "text": "hi"})
        ack = await recv(ws, of_type("ack"))
        conv = (await recv(ws, of_type("welcome")))["conversation_id"]
        # Agent typing (published by a desktop on the conversation topic) reaches the widget.
        await server.app.state.hub.publish(
            f"conversation:{conv}", "conversation.typing", {"on": True, "author_type": "agent", "author_name": "Ann"}
        )
        typing = await recv(ws, of_type("typing"))
        assert (typing["on"], typing["author_name"]) == (True, "Ann")
        # Visitor typing reaches the desk.
        await send(ws, {"type": "typing", "on": True})
        ev = await recv(desk, lambda m: m.get("type") == "conversation.typing")
        assert ev["data"]["conversation_id"] == conv
        assert (ev["data"]["author_type"], ev["data"]["on"]) == ("customer", True)
        assert await nothing(ws, of_type("typing"), 0.3)  # the visitor's own typing is not echoed
        # The agent reads the visitor's message → a read frame.
        async with httpx.AsyncClient(base_url=server.http, headers=headers) as c:
            r = await c.post(f"/api/v1/widget/messages/{ack['message_id']}/read")
            assert r.status_code == 200, r.text
            read = await recv(ws, of_type("read"))
            assert read["message_id"] == ack["message_id"]
            # The visitor reads the agent's reply → stored as read, the desk is told.
            r = await c.post(f"/api/v1/conversations/{conv}/messages", json={"text": "answer"})
            reply_id = r.json()["id"]
        await recv(ws, lambda m: m["type"] == "message" and m["message"]["id"] == reply_id)
        await send(ws, {"type": "read", "message_id": reply_id})
        upd = await recv(
            desk,
            lambda m: (
                m.get("type") == "conversation.message_updated"
                and m["data"]["message"]["id"] == reply_id
                and m["data"]["message"]["delivery_status"] == "read"
            ),
        )
        assert upd["data"]["message"]["read_at"]
    (reply,) = await stored(server, id=uuid.UUID(reply_id))
    assert reply.delivery_status == "read"
    assert reply.meta["read_at"]


async def test_track_offer_and_notice(server: Server):
    inbox = await make_webchat_inbox(server.app.state.db)
    sess = await visitor_session(server, inbox)
    async with server.widget(sess["visitor_token"]) as ws:
        await recv(ws, of_type("welcome"))
        await send(ws, {"type": "track", "event": "page.viewed", "properties": {"path": "/pricing"}})
        await send(ws, {"type": "track", "event": "Not An Event!", "properties": {}})
        err = await recv(ws, of_type("error"))
        assert err["code"] == "invalid"
        # Frontdesk shows an offer in the widget (the proactive engine's way in).
        async with server.app.state.db.transaction() as s:
            from frontdesk.models import WebchatVisitor

            visitor = await s.get(WebchatVisitor, uuid.UUID(sess["visitor_id"]))
            assert visitor is not None
            await notices.send_widget_notice(
                s, visitor.customer_id, "We miss you", offer={"offer_id": "spring-10", "title": "10% off"}
            )
        welcome = await recv(ws, of_type("welcome"))  # the notice opened a conversation
        assert welcome["conversation_id"]
        await send(ws, {"type": "hello", "last_seq": 0})
        offer = await recv(ws, lambda m: m["type"] == "message" and m["message"]["kind"] == "offer")
        assert offer["message"]["offer"]["offer_id"] == "spring-10"
        assert offer["message"]["author_type"] == "system"
        await send(ws, {"type": "offer_answer", "offer_id": "spring-10", "answer": "accept"})
        await send(ws, {"type": "ping"})
        await recv(ws, of_type("pong"))
    async with server.app.state.db.transaction() as s:
        events = list(
            (await s.scalars(select(CustomerEvent).where(CustomerEvent.customer_id == visitor.customer_id))).all()
        )
    by_type = {e.type: e for e in events}
    assert by_type["page.viewed"].properties["path"] == "/pricing"
    assert by_type["widget.offer_accepted"].properties["offer_id"] == "spring-10"
    assert len(events) == 2


async def test_rate_limit_keeps_acknowledged_messages(server: Server):
    inbox = await make_webchat_inbox(server.app.state.db)
    sess = await visitor_session(server, inbox)
    async with server.widget(sess["visitor_token"]) as ws:
        await recv(ws, of_type("welcome"))
        first = str(uuid.uuid4())
        acks = []
        for i in range(5):  # widget_messages_per_minute = 5
            await send(ws, {"type": "message", "client_id": first if i == 0 else str(uuid.uuid4()), "text": f"m{i}"})
            acks.append(await recv(ws, of_type("ack")))
        over = str(uuid.uuid4())
        await send(ws, {"type": "message", "client_id": over, "text": "too many"})
        err = await recv(ws, of_type("error"))
        assert (err["code"], err["client_id"]) == ("rate_limited", over)
        assert err["retry_after"] >= 1
        # A resend of an acknowledged message is still acknowledged.
        await send(ws, {"type": "message", "client_id": first, "text": "m0"})
        again = await recv(ws, of_type("ack"))
        assert (again["message_id"], again["duplicate"]) == (acks[0]["message_id"], True)
    async with server.app.state.db.transaction() as s:
        count = await s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in"))
    assert count == 5


async def test_script_injection_is_escaped_and_bad_frames_answered(server: Server):
    inbox = await make_webchat_inbox(server.app.state.db)
    sess = await visitor_session(server, inbox)
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    async with server.widget(sess["visitor_token"]) as ws:
        await recv(ws, of_type("welcome"))
        await send(ws, {"type": "message", "client_id": str(uuid.uuid4()), "text": payload})
        echo = await recv(ws, of_type("message"))
        assert echo["message"]["text"] == payload  # plain text, shown with textContent
        assert "<script" not in echo["message"]["html"]
        assert "<img" not in echo["message"]["html"]
        assert "&lt;script&gt;" in echo["message"]["html"]
        await ws.send("not json")
        assert (await recv(ws, of_type("error")))["code"] == "invalid"
        await ws.send('{"type": "message", "client_id": "nope", "text": "x"}')
        assert (await recv(ws, of_type("error")))["code"] == "invalid"
        await ws.send('{"type": "message", "client_id": "' + str(uuid.uuid4()) + '", "text": "' + "x" * 70000 + '"}')
        assert (await recv(ws, of_type("error")))["code"] == "too_large"


async def test_bad_token_is_refused(server: Server):
    for token in ("", "v1.not-a-uuid.sig", f"v1.{uuid.uuid4()}.forged"):
        async with connect(server.ws_url(token)) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 4401


async def test_an_over_long_message_is_refused_never_cut(server: Server):
    inbox = await make_webchat_inbox(server.app.state.db)
    sess = await visitor_session(server, inbox)
    at_limit = ("Привет 🙂 " * 1250)[:10_000]  # 10,000 characters, emoji included
    assert len(at_limit) == 10_000
    async with server.widget(sess["visitor_token"]) as ws:
        await recv(ws, of_type("welcome"))
        ok = str(uuid.uuid4())
        await send(ws, {"type": "message", "client_id": ok, "text": at_limit})
        assert (await recv(ws, of_type("ack")))["client_id"] == ok
        # One character more: refused with the message's client_id, so the widget can say which one.
        over = str(uuid.uuid4())
        await send(ws, {"type": "message", "client_id": over, "text": at_limit + "!"})
        err = await recv(ws, of_type("error"))
        assert (err["code"], err["client_id"]) == ("too_large", over)
        assert "10000 characters" in err["detail"]
        assert "10001" in err["detail"]
        # Far over, past the frame limit: still refused as that message, never acknowledged.
        huge = str(uuid.uuid4())
        await send(ws, {"type": "message", "client_id": huge, "text": "x" * 200_000})
        err = await recv(ws, of_type("error"))
        assert (err["code"], err["client_id"]) == ("too_large", huge)
        assert "10000 characters" in err["detail"]
        assert await nothing(ws, of_type("ack"))
    rows = await stored(server, direction="in")
    assert [m.text for m in rows] == [at_limit], "stored whole, or not at all"
    assert rows[0].external_id == f"{sess['visitor_id']}:{ok}"


async def test_the_agents_read_receipt_survives_a_reload(server: Server):
    inbox = await make_webchat_inbox(server.app.state.db)
    sess = await visitor_session(server, inbox)
    headers = await auth_headers(server.app, name="Agent Smith")
    async with server.widget(sess["visitor_token"]) as ws:
        await recv(ws, of_type("welcome"))
        ids = []
        for text in ("first", "second"):
            await send(ws, {"type": "message", "client_id": str(uuid.uuid4()), "text": text})
            ids.append((await recv(ws, of_type("ack")))["message_id"])
    async with httpx.AsyncClient(base_url=server.http, headers=headers) as c:
        r = await c.post(f"/api/v1/widget/messages/{ids[0]}/read")
        assert r.status_code == 200, r.text
        read_at = r.json()["read_by_agent_at"]
    # A reload: a fresh socket asks for the history, which says what the agent has read.
    async with server.widget(sess["visitor_token"]) as ws:
        await recv(ws, of_type("welcome"))
        await send(ws, {"type": "hello", "last_seq": None})
        snap = await recv(ws, of_type("snapshot"))
    by_text = {m["text"]: m for m in snap["messages"]}
    assert by_text["first"]["read_by_agent_at"] == read_at
    assert by_text["second"]["read_by_agent_at"] is None


async def test_open_widgets_hear_when_agents_come_and_go(server: Server, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(runtime, "AVAILABILITY_SECONDS", 0.2)
    inbox = await make_webchat_inbox(server.app.state.db)
    sess = await visitor_session(server, inbox)
    user = await make_user(server.app.state.db, name="Anna")
    token = await make_token(server.app.state.db, user)
    headers = {"Authorization": f"Bearer {token}"}

    async def set_presence(status: str) -> None:
        async with httpx.AsyncClient(base_url=server.http, headers=headers) as c:
            r = await c.put("/api/v1/agents/me/presence", json={"status": status})
            assert r.status_code == 200, r.text

    def availability(expectation: str):  # type: ignore[no-untyped-def]
        return lambda m: m.get("type") == "availability" and m["availability"]["reply_expectation"] == expectation

    async with (
        server.widget(sess["visitor_token"]) as ws,
        connect(f"ws://127.0.0.1:{server.port}/ws?token={token}&desk=1") as desk,
    ):
        await recv(desk, of_type("hello"))
        welcome = await recv(ws, of_type("welcome"))
        assert welcome["availability"]["reply_expectation"] == "by email"  # her desk is open, she is offline
        assert await nothing(ws, of_type("availability"), 1.0)
        await set_presence("available")
        came = await recv(ws, availability("in a few minutes"))
        assert came["availability"]["agents_online"] == 1
        assert came["availability"]["ask_email"] is False
        assert (await visitor_session(server, inbox))["availability"]["agents_online"] == 1
        await set_presence("offline")
        left = await recv(ws, availability("by email"))
        assert left["availability"]["agents_online"] == 0
        assert left["availability"]["ask_email"] is True
        await set_presence("available")
        await recv(ws, availability("in a few minutes"))
    # Her desk closed: once the reload grace is over, the open widgets hear it without her doing anything.
    monkeypatch.setattr(runtime, "DESK_GRACE_SECONDS", 0.5)
    async with server.widget(sess["visitor_token"]) as ws:
        welcome = await recv(ws, of_type("welcome"))
        if welcome["availability"]["agents_online"]:
            await recv(ws, availability("by email"))


async def test_the_visitor_token_goes_in_the_first_frame(server: Server):
    inbox = await make_webchat_inbox(server.app.state.db)
    sess = await visitor_session(server, inbox)
    async with server.widget(sess["visitor_token"]) as ws:  # what widget.js does
        assert (await recv(ws, of_type("welcome")))["visitor_id"] == sess["visitor_id"]
    async with connect(server.ws_url(sess["visitor_token"])) as ws:  # deprecated, for cached widgets
        assert (await recv(ws, of_type("welcome")))["visitor_id"] == sess["visitor_id"]
    for first in ('{"type": "hello", "last_seq": null}', '{"type": "auth", "visitor_token": "v1.x.y"}', None):
        async with connect(server.ws_url()) as ws:
            if first is not None:
                await ws.send(first)
            with pytest.raises(ConnectionClosed) as info:  # nothing sent: after ws_auth_timeout_seconds (1 s)
                await recv(ws, of_type("welcome"))
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 4401


async def test_attachments_travel_as_short_lived_signed_links(server: Server):
    from frontdesk.channels.webchat import links

    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    inbox = await make_webchat_inbox(server.app.state.db)
    sess = await visitor_session(server, inbox)
    token = sess["visitor_token"]
    async with httpx.AsyncClient(base_url=server.http) as c:
        r = await c.post(
            "/api/v1/widget/attachments",
            files={"file": ("shot.png", png, "image/png")},
            headers={"Authorization": f"Visitor {token}"},
        )
        assert r.status_code == 201, r.text
        uploaded = r.json()
        async with server.widget(token) as ws:
            await recv(ws, of_type("welcome"))
            await send(
                ws, {"type": "message", "client_id": str(uuid.uuid4()), "text": "", "attachment_ids": [uploaded["id"]]}
            )
            echo = await recv(ws, lambda m: m.get("type") == "message" and m["message"]["attachments"])
        link = echo["message"]["attachments"][0]["url"]
        for url in (link, uploaded["url"]):
            assert url.startswith(f"/api/v1/widget/attachments/{uploaded['id']}?expires=")
            assert "&sig=" in url
            assert token not in url
            assert "visitor_token" not in url
            got = await c.get(url)  # no credential: the link is the permission
            assert got.status_code == 200
            assert got.content == png
        tampered = link[:-2] + ("AA" if not link.endswith("AA") else "BB")
        assert (await c.get(tampered)).status_code == 403
        key = links.link_key(runtime.runtime(server.app).key)
        stale = int(time.time()) - 1
        expired = (
            f"/api/v1/widget/attachments/{uploaded['id']}?expires={stale}&sig={links._sig(key, uploaded['id'], stale)}"
        )
        r = await c.get(expired)
        assert r.status_code == 403
        assert "expired" in r.json()["detail"]
        other = str(uuid.uuid4())  # a link names one attachment: its signature opens no other
        assert (await c.get(link.replace(uploaded["id"], other))).status_code == 403
