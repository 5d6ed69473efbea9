"""``/ws``: the one authenticated WebSocket of an agent desktop tab.

Auth: the browser session cookie (``frontdesk_session``; the page's own origin only) or
``?token=<API token>`` (``read`` scope). Unauthenticated connections are closed with code 4401.

Protocol (JSON text frames; see docs/architecture/realtime.md):

- server → ``{"type": "hello", "user": {...}, "topics": ["desk", "user:<id>"], "epoch": "…",
  "heartbeat": 20}``
- server → events ``{"id", "topic", "type": "conversation.updated", "data", "at"}`` (event types
  always contain a dot; control messages never do)
- client → ``{"type": "resume", "last_event_ids": {"desk": 41}, "epoch": "…"}``: the missed events
  are replayed in order, or ``{"type": "snapshot_required", "topic": …}`` when the gap is gone
- client → ``{"type": "subscribe", "topics": ["conversation:<id>"]}`` /
  ``{"type": "unsubscribe", …}`` → ``{"type": "subscribed", "topics": [...]}``
- both ways: ``{"type": "ping"}`` → ``{"type": "pong"}``; the server pings every heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, WebSocket

from frontdesk.auth.deps import SESSION_COOKIE, resolve_credentials
from frontdesk.db import Database
from frontdesk.errors import ProblemError
from frontdesk.realtime import Event, Hub, Subscription, run_socket_loops

log = logging.getLogger(__name__)

router = APIRouter()

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_TOO_SLOW = 4408
DEFAULT_HEARTBEAT_SECONDS = 20.0
MAX_TOPICS = 200
MAX_CLIENT_MESSAGE = 64 * 1024
_CONVERSATION_TOPIC = re.compile(r"^conversation:[0-9a-fA-F-]{36}$")


@dataclass
class WsUser:
    id: uuid.UUID
    email: str
    name: str
    role: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": str(self.id), "email": self.email, "name": self.name, "role": self.role}


async def _authenticate(db: Database, token: str | None, cookie: str | None) -> WsUser | None:
    """The same checks as HTTP routes (``auth.deps.resolve_credentials``); a token needs ``read``."""
    try:
        principal = await resolve_credentials(db, token=token, cookie=cookie)
    except ProblemError:
        return None
    if principal is None or (principal.via == "token" and "read" not in principal.scopes):
        return None
    return WsUser(principal.user_id, principal.email, principal.name, principal.role.value)


def _same_origin(ws: WebSocket) -> bool:
    """A cookie-authenticated socket must come from our own pages (no cross-site hijacking)."""
    origin = ws.headers.get("origin")
    if not origin:
        return True  # not a browser
    host = ws.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower()


@dataclass
class _TopicState:
    first_live: int | None = None  # id of the first live event sent on this connection
    last_sent: int = 0


@dataclass
class _Connection:
    ws: WebSocket
    hub: Hub
    user: WsUser
    sub: Subscription
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    state: dict[str, _TopicState] = field(default_factory=dict)

    def allowed(self, topic: str) -> bool:
        return topic in ("desk", f"user:{self.user.id}") or bool(_CONVERSATION_TOPIC.match(topic))

    async def send(self, payload: dict[str, Any]) -> None:
        await self.ws.send_text(orjson.dumps(payload, default=str).decode())

    async def deliver_live(self, event: Event) -> None:
        async with self.lock:
            st = self.state.setdefault(event.topic, _TopicState())
            if event.id <= st.last_sent:
                return  # already sent by a resume
            if st.first_live is None:
                st.first_live = event.id
            st.last_sent = event.id
            await self.send(event.as_dict())

    async def resume(self, topic: str, after_id: int) -> None:
        async with self.lock:
            events = await self.hub.replay(topic, after_id)
            if events is None:
                await self.send({"type": "snapshot_required", "topic": topic})
                return
            st = self.state.setdefault(topic, _TopicState())
            for e in events:
                if st.first_live is not None and e.id >= st.first_live:
                    break  # from here on it went out live
                if e.id <= st.last_sent and st.first_live is None:
                    continue
                await self.send(e.as_dict())
                st.last_sent = max(st.last_sent, e.id)

    async def subscribe(self, topics: list[str]) -> None:
        bad = [t for t in topics if not self.allowed(t)]
        if bad:
            await self.send({"type": "error", "detail": f"not a topic you may follow: {bad[0][:100]}"})
            return
        if len(self.sub.topics | set(topics)) > MAX_TOPICS:
            await self.send({"type": "error", "detail": f"at most {MAX_TOPICS} topics per connection"})
            return
        await self.sub.add(topics)
        await self.send({"type": "subscribed", "topics": sorted(self.sub.topics)})

    async def handle(self, raw: str) -> None:
        if len(raw) > MAX_CLIENT_MESSAGE:
            await self.send({"type": "error", "detail": "message too large"})
            return
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            await self.send({"type": "error", "detail": "messages must be JSON objects"})
            return
        if not isinstance(msg, dict):
            await self.send({"type": "error", "detail": "messages must be JSON objects"})
            return
        kind = msg.get("type")
        if kind == "ping":
            await self.send({"type": "pong"})
        elif kind == "pong":
            return
        elif kind == "subscribe" or kind == "unsubscribe":
            topics = msg.get("topics")
            if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics) or len(topics) > MAX_TOPICS:
                await self.send({"type": "error", "detail": "topics must be a list of strings"})
                return
            if kind == "subscribe":
                await self.subscribe(topics)
            else:
                await self.sub.remove([t for t in topics if t not in ("desk", f"user:{self.user.id}")])
                await self.send({"type": "subscribed", "topics": sorted(self.sub.topics)})
        elif kind == "resume":
            await self._resume(msg)
        else:
            await self.send({"type": "error", "detail": f"unknown message type: {str(kind)[:50]}"})

    async def _resume(self, msg: dict[str, Any]) -> None:
        last = msg.get("last_event_ids")
        if not isinstance(last, dict) or len(last) > MAX_TOPICS:
            await self.send({"type": "error", "detail": "last_event_ids must be an object {topic: id}"})
            return
        epoch = msg.get("epoch")
        for topic, after in last.items():
            if not isinstance(after, int) or isinstance(after, bool) or not self.allowed(topic):
                await self.send({"type": "error", "detail": f"cannot resume {str(topic)[:100]}"})
                continue
            if topic not in self.sub.topics:
                await self.subscribe([topic])
            if epoch is not None and epoch != self.hub.epoch:
                await self.send({"type": "snapshot_required", "topic": topic})
                continue
            await self.resume(topic, after)


def _heartbeat_seconds(ws: WebSocket) -> float:
    state = ws.app.state
    value: Any = getattr(state, "ws_heartbeat_seconds", None)
    if value is None:
        value = getattr(state.settings, "ws_heartbeat_seconds", DEFAULT_HEARTBEAT_SECONDS)
    return float(value)


@router.websocket("/ws", name="desktop_socket")
async def desktop_socket(ws: WebSocket) -> None:
    """Agent desktop events. Not in the OpenAPI document (WebSocket)."""
    db: Database = ws.app.state.db
    hub: Hub = ws.app.state.hub
    token = ws.query_params.get("token")
    cookie = None if token else ws.cookies.get(SESSION_COOKIE)
    await ws.accept()
    if cookie and not _same_origin(ws):
        await ws.close(code=CLOSE_FORBIDDEN_ORIGIN, reason="cross-origin")
        return
    user = await _authenticate(db, token, cookie) if (token or cookie) else None
    if user is None:
        await ws.close(code=CLOSE_UNAUTHORIZED, reason="sign in or pass ?token=")
        return

    base_topics = ["desk", f"user:{user.id}"]
    sub = await hub.open(base_topics)
    conn = _Connection(ws=ws, hub=hub, user=user, sub=sub)
    heartbeat = _heartbeat_seconds(ws)
    try:
        await conn.send(
            {"type": "hello", "user": user.as_dict(), "topics": base_topics, "epoch": hub.epoch, "heartbeat": heartbeat}
        )

        async def pump() -> None:
            async for event in sub:
                await conn.deliver_live(event)
            if sub.overflowed:
                await ws.close(code=CLOSE_TOO_SLOW, reason="too far behind; reconnect and resume")

        async def beat() -> None:
            while True:
                await asyncio.sleep(heartbeat)
                await conn.send({"type": "ping"})

        async def receive() -> None:
            while True:
                raw = await ws.receive_text()
                await conn.handle(raw)

        await run_socket_loops(pump(), beat(), receive(), label=user.email)
    finally:
        await sub.close()
        with contextlib.suppress(Exception):
            await ws.close()
