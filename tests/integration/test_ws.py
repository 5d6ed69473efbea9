"""``/ws`` end to end: a real uvicorn server and the real ``websockets`` client, both hubs."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from frontdesk import clock
from frontdesk.app import create_app
from frontdesk.auth.security import hash_token, new_secret_token
from frontdesk.models import User, UserSession
from frontdesk.realtime import Hub, publish_after_commit
from frontdesk.settings import Settings
from tests.builders import make_token, make_user
from tests.conftest import truncate_all
from tests.integration.webhook_sink import free_port


class Server:
    def __init__(self, app: Any, port: int) -> None:
        self.app = app
        self.port = port

    @property
    def hub(self) -> Hub:
        return self.app.state.hub  # type: ignore[no-any-return]

    def url(self, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/ws{query}"


@pytest.fixture
async def server(settings: Settings, hub_backend: str | None) -> AsyncIterator[Server]:
    app = create_app(settings, redis_url=hub_backend)
    app.state.ws_heartbeat_seconds = 0.3
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    for _ in range(500):
        if srv.started:
            break
        await asyncio.sleep(0.02)
    assert srv.started, "uvicorn did not start"
    try:
        yield Server(app, port)
    finally:
        await truncate_all(app.state.db)
        srv.should_exit = True
        await asyncio.wait_for(task, 30)


async def user_and_token(server: Server, role: str = "agent") -> tuple[User, str]:
    user = await make_user(server.app.state.db, role=role)
    return user, await make_token(server.app.state.db, user)


async def recv(ws: ClientConnection, pred: Callable[[dict], bool] = lambda m: True, timeout: float = 5) -> dict:
    """The next message matching ``pred`` (skipping heartbeats and other tests' events)."""

    async def _loop() -> dict:
        while True:
            msg = json.loads(await ws.recv())
            if pred(msg):
                return msg

    return await asyncio.wait_for(_loop(), timeout)


def marked(marker: str) -> Callable[[dict], bool]:
    return lambda m: isinstance(m.get("data"), dict) and m["data"].get("marker") == marker


async def none_marked(ws: ClientConnection, marker: str, wait: float = 0.4) -> bool:
    try:
        await recv(ws, marked(marker), timeout=wait)
    except TimeoutError:
        return True
    return False


async def test_unauthenticated_is_closed_4401(server: Server):
    for query in ("", "?token=fd_not-a-real-token"):
        async with connect(server.url(query)) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 4401


async def test_read_scope_is_needed(server: Server):
    user = await make_user(server.app.state.db)
    token = await make_token(server.app.state.db, user, scopes=["write"])
    async with connect(server.url(f"?token={token}")) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 4401


async def test_token_hello_and_events_of_my_topics(server: Server):
    user, token = await user_and_token(server)
    other, _ = await user_and_token(server)
    marker = uuid.uuid4().hex
    async with connect(server.url(f"?token={token}")) as ws:
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
    async with connect(server.url(f"?token={token}")) as ws:
        hello = await recv(ws)
        await server.hub.publish("desk", "conversation.updated", {"marker": marker, "n": 1})
        last = (await recv(ws, marked(marker)))["id"]
    # Offline: two events happen.
    await server.hub.publish("desk", "conversation.updated", {"marker": marker, "n": 2})
    await server.hub.publish("desk", "conversation.updated", {"marker": marker, "n": 3})
    async with connect(server.url(f"?token={token}")) as ws:
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
    topic = f"conversation:{uuid.uuid4()}"
    for i in range(1010):  # the buffer keeps the last 1000
        await server.hub.publish(topic, "conversation.message_created", {"i": i})
    async with connect(server.url(f"?token={token}")) as ws:
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
    conv = uuid.uuid4()
    marker = uuid.uuid4().hex
    async with connect(server.url(f"?token={token}")) as ws:
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


async def test_heartbeat_both_ways(server: Server):
    _, token = await user_and_token(server)
    async with connect(server.url(f"?token={token}")) as ws:
        await recv(ws)
        assert (await recv(ws, timeout=3))["type"] == "ping"  # every 0.3 s in this test
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv(ws, lambda m: m["type"] == "pong", timeout=3))["type"] == "pong"
