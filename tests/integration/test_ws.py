"""``/ws`` end to end: a real uvicorn server and the real ``websockets`` client, both hubs."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from frontdesk import clock
from frontdesk.auth.security import hash_token, new_secret_token
from frontdesk.models import User, UserSession
from frontdesk.realtime import publish_after_commit
from frontdesk.settings import Settings
from tests.builders import make_conversation, make_customer, make_token, make_user
from tests.builders.ws import Server, closed_with, marked, none_marked, recv, running, token_socket
from tests.conftest import truncate_all


@pytest.fixture
async def server(settings: Settings, hub_backend: str | None) -> AsyncIterator[Server]:
    async with running(settings, hub_backend, ws_auth_timeout_seconds=1.0) as srv:
        try:
            yield srv
        finally:
            await truncate_all(srv.app.state.db)


async def user_and_token(server: Server, role: str = "agent") -> tuple[User, str]:
    user = await make_user(server.app.state.db, role=role)
    return user, await make_token(server.app.state.db, user)


async def test_unauthenticated_is_closed_4401(server: Server):
    async def refused(ws) -> int:
        async with ws:
            return await closed_with(ws, timeout=5)

    # Nothing sent within ws_auth_timeout_seconds (1 s here), a bad token, a first frame that is not auth.
    assert await refused(await connect(server.url())) == 4401
    assert await refused(await token_socket(server.url(), "fd_not-a-real-token")) == 4401
    ws = await connect(server.url())
    await ws.send(json.dumps({"type": "ping"}))
    assert await refused(ws) == 4401
    assert await refused(await connect(server.url("?token=fd_not-a-real-token"))) == 4401


async def test_read_scope_is_needed(server: Server):
    user = await make_user(server.app.state.db)
    token = await make_token(server.app.state.db, user, scopes=["write"])
    async with await token_socket(server.url(), token) as ws:
        assert await closed_with(ws) == 4401


async def test_the_token_in_the_url_still_works(server: Server):
    """Deprecated (URLs end up in logs; ours redact the token), kept for existing integrations."""
    user, token = await user_and_token(server)
    async with await token_socket(server.url(), token) as ws:
        hello = await recv(ws)
        assert (hello["type"], hello["user"]["id"]) == ("hello", str(user.id))
        await ws.send(json.dumps({"type": "auth", "token": token}))
        assert (await recv(ws, lambda m: m["type"] == "error"))["detail"] == "already authenticated"


async def test_token_hello_and_events_of_my_topics(server: Server):
    user, token = await user_and_token(server)
    other, _ = await user_and_token(server)
    marker = uuid.uuid4().hex
    async with await token_socket(server.url(), token) as ws:
        hello = await recv(ws)
        assert hello["type"] == "hello"
        assert hello["user"]["email"] == user.email
        assert hello["topics"] == ["desk", f"user:{user.id}"]
        assert hello["epoch"] == server.hub.epoch

        await server.hub.publish("desk", "conversation.updated", {"marker": marker, "n": 1})
        await server.hub.publish(f"user:{other.id}", "conversation.assigned", {"marker": marker, "n": 2})
        await server.hub.publish(f"user:{user.id}", "conversation.assigned", {"marker": marker, "n": 3})
        # A committed unit of work pushes; a rolled-back one does not.
        async with server.app.state.db.transaction() as s:
            publish_after_commit(s, "desk", "conversation.message_created", {"marker": marker, "n": 4})

        async def rolled_back() -> None:
            async with server.app.state.db.transaction() as s:
                publish_after_commit(s, "desk", "conversation.message_created", {"marker": marker, "n": 5})
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            await rolled_back()

        got = [await recv(ws, marked(marker)) for _ in range(3)]
        assert [(m["topic"], m["type"], m["data"]["n"]) for m in got] == [
            ("desk", "conversation.updated", 1),
            (f"user:{user.id}", "conversation.assigned", 3),
            ("desk", "conversation.message_created", 4),
        ]
        assert got[2]["id"] > got[0]["id"]  # one increasing sequence per topic
        assert await none_marked(ws, marker)  # n=2 (another user) and n=5 (rolled back) never come


async def test_session_cookie_and_origin(server: Server):
    user = await make_user(server.app.state.db)
    cookie = new_secret_token("")
    async with server.app.state.db.transaction() as s:
        s.add(
            UserSession(
                id=hash_token(cookie), user_id=user.id, csrf_token="x" * 32, expires_at=clock.now() + timedelta(hours=1)
            )
        )
    headers = {"Cookie": f"frontdesk_session={cookie}"}
    own = f"http://127.0.0.1:{server.port}"
    async with connect(server.url(), additional_headers=headers, origin=own) as ws:  # type: ignore[arg-type]
        hello = await recv(ws)
        assert (hello["type"], hello["user"]["id"]) == ("hello", str(user.id))
    async with connect(server.url(), additional_headers=headers, origin="https://evil.example") as ws:  # type: ignore[arg-type]
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 4403
    bad = {"Cookie": "frontdesk_session=ended-or-forged"}
    async with connect(server.url(), additional_headers=bad, origin=own) as ws:  # type: ignore[arg-type]
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 4401


async def test_resume_replays_what_was_missed(server: Server):
    _, token = await user_and_token(server)
    marker = uuid.uuid4().hex
    async with await token_socket(server.url(), token) as ws:
        hello = await recv(ws)
        await server.hub.publish("desk", "conversation.updated", {"marker": marker, "n": 1})
        last = (await recv(ws, marked(marker)))["id"]
    # Offline: two events happen.
    await server.hub.publish("desk", "conversation.updated", {"marker": marker, "n": 2})
    await server.hub.publish("desk", "conversation.updated", {"marker": marker, "n": 3})
    async with await token_socket(server.url(), token) as ws:
        await recv(ws, lambda m: m["type"] == "hello")
        await ws.send(json.dumps({"type": "resume", "last_event_ids": {"desk": last}, "epoch": hello["epoch"]}))
        replayed = [await recv(ws, marked(marker)) for _ in range(2)]
        assert [m["data"]["n"] for m in replayed] == [2, 3]
        assert all(m["id"] > last for m in replayed)
        await server.hub.publish("desk", "conversation.updated", {"marker": marker, "n": 4})
        assert (await recv(ws, marked(marker)))["data"]["n"] == 4
        assert await none_marked(ws, marker)  # nothing twice


async def test_gap_too_old_or_other_epoch_needs_snapshot(server: Server):
    _, token = await user_and_token(server)
    db = server.app.state.db
    topic = f"conversation:{(await make_conversation(db, await make_customer(db))).id}"
    for i in range(1010):  # the buffer keeps the last 1000
        await server.hub.publish(topic, "conversation.message_created", {"i": i})
    async with await token_socket(server.url(), token) as ws:
        hello = await recv(ws)
        await ws.send(json.dumps({"type": "resume", "last_event_ids": {topic: 2}}))
        msg = await recv(ws, lambda m: m["type"] == "snapshot_required")
        assert msg["topic"] == topic
        # Within the buffer it replays, and the topic is now followed.
        await ws.send(json.dumps({"type": "resume", "last_event_ids": {topic: 1008}}))
        tail = [await recv(ws, lambda m: m.get("topic") == topic and "id" in m) for _ in range(2)]
        assert [m["id"] for m in tail] == [1009, 1010]
        await ws.send(json.dumps({"type": "resume", "last_event_ids": {"desk": 0}, "epoch": "not-" + hello["epoch"]}))
        msg = await recv(ws, lambda m: m["type"] == "snapshot_required")
        assert msg["topic"] == "desk"


async def test_subscribe_to_a_conversation(server: Server):
    _, token = await user_and_token(server)
    other, _ = await user_and_token(server)
    db = server.app.state.db
    conv = (await make_conversation(db, await make_customer(db))).id
    marker = uuid.uuid4().hex
    async with await token_socket(server.url(), token) as ws:
        await recv(ws)
        await ws.send(json.dumps({"type": "subscribe", "topics": [f"conversation:{conv}"]}))
        ack = await recv(ws, lambda m: m["type"] == "subscribed")
        assert f"conversation:{conv}" in ack["topics"]
        await server.hub.publish(f"conversation:{conv}", "conversation.message_created", {"marker": marker})
        got = await recv(ws, marked(marker))
        assert got["topic"] == f"conversation:{conv}"

        await ws.send(json.dumps({"type": "subscribe", "topics": [f"user:{other.id}"]}))
        err = await recv(ws, lambda m: m["type"] == "error")
        assert "not a topic you may follow" in err["detail"]
        await ws.send("not json")
        assert (await recv(ws, lambda m: m["type"] == "error"))["detail"] == "messages must be JSON objects"


async def test_conversation_topics_follow_the_apis_read_rule(server: Server):
    """``GET /api/v1/conversations/{id}`` decides; the socket follows exactly what it would answer."""
    import httpx

    _, token = await user_and_token(server)
    db = server.app.state.db
    readable = (await make_conversation(db, await make_customer(db))).id
    missing = uuid.uuid4()
    async with httpx.AsyncClient(base_url=server.http, headers={"Authorization": f"Bearer {token}"}) as c:
        assert (await c.get(f"/api/v1/conversations/{readable}")).status_code == 200
        assert (await c.get(f"/api/v1/conversations/{missing}")).status_code == 404
    marker = uuid.uuid4().hex
    async with await token_socket(server.url(), token) as ws:
        await recv(ws, lambda m: m["type"] == "hello")
        await ws.send(json.dumps({"type": "subscribe", "topics": [f"conversation:{missing}"]}))
        err = await recv(ws, lambda m: m["type"] in ("error", "subscribed"))
        assert err["type"] == "error"
        assert str(missing) in err["detail"]
        await ws.send(json.dumps({"type": "resume", "last_event_ids": {f"conversation:{missing}": 0}}))
        assert (await recv(ws, lambda m: m["type"] in ("error", "subscribed")))["type"] == "error"
        await ws.send(json.dumps({"type": "typing", "conversation_id": str(missing), "on": True}))
        assert (await recv(ws, lambda m: m["type"] == "error"))["detail"].startswith("typing: no conversation")
        await server.hub.publish(f"conversation:{missing}", "conversation.message_created", {"marker": marker})
        assert await none_marked(ws, marker)

        await ws.send(json.dumps({"type": "subscribe", "topics": [f"conversation:{readable}"]}))
        ack = await recv(ws, lambda m: m["type"] in ("error", "subscribed"))
        assert ack["type"] == "subscribed"
        assert f"conversation:{readable}" in ack["topics"]
        assert f"conversation:{missing}" not in ack["topics"]
        await server.hub.publish(f"conversation:{readable}", "conversation.message_created", {"marker": marker})
        assert (await recv(ws, marked(marker)))["topic"] == f"conversation:{readable}"


async def test_heartbeat_both_ways(server: Server):
    _, token = await user_and_token(server)
    async with await token_socket(server.url(), token) as ws:
        await recv(ws)
        assert (await recv(ws, timeout=3))["type"] == "ping"  # every 0.3 s in this test
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv(ws, lambda m: m["type"] == "pong", timeout=3))["type"] == "pong"


async def test_sockets_per_address_are_capped(settings: Settings, hub_backend: str | None):
    import httpx

    from tests.builders.webchat import make_webchat_inbox

    async with running(settings, hub_backend, ws_max_connections_per_ip=3) as srv:
        db = srv.app.state.db
        try:
            _, token = await user_and_token(srv)
            inbox = await make_webchat_inbox(db)
            async with httpx.AsyncClient(base_url=srv.http) as c:
                visitor = (await c.post("/api/v1/widget/sessions", json={"inbox": inbox.public_token})).json()
            widget_url = f"ws://127.0.0.1:{srv.port}/widget/ws"

            async def widget():
                ws = await connect(widget_url)
                await ws.send(json.dumps({"type": "auth", "visitor_token": visitor["visitor_token"]}))
                return ws

            open_ = [await token_socket(srv.url(), token), await token_socket(srv.url(), token), await widget()]
            assert (await recv(open_[0]))["type"] == "hello"
            assert (await recv(open_[2], lambda m: m["type"] == "welcome"))["type"] == "welcome"
            # Desk and widget sockets from one address count together; over the cap: 4429.
            for url in (srv.url(), widget_url):
                async with connect(url) as extra:
                    assert await closed_with(extra) == 4429
            await open_[1].close()
            counter = srv.app.state.ws_connections
            for _ in range(100):  # the server releases the slot once its socket's loops ended
                if counter.count("127.0.0.1") < 3:
                    break
                await asyncio.sleep(0.02)
            again = await token_socket(srv.url(), token)
            assert (await recv(again))["type"] == "hello"
            for ws in (*open_, again):
                await ws.close()
        finally:
            await truncate_all(db)
