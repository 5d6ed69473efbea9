"""``/ws``: the one authenticated WebSocket of an agent desktop tab.

Auth: the browser session cookie (``frontdesk_session``; the page's own origin only), or an API
token (``read`` scope) in the first frame, ``{"type": "auth", "token": "fd_…"}``, sent within
``ws_auth_timeout_seconds`` (``?token=`` in the URL still works but is deprecated: URLs end up in
logs; ours redact it). Unauthenticated connections are closed with code 4401. A socket lives only
as long as its credential: signing out, a password change, disabling the user or revoking the
token closes it with 4401 (``auth/revocation.py``). More than ``ws_max_connections_per_ip``
sockets from one address are closed with 4429.
``?desk=1`` marks the agent desk page: while none is open (after a short grace for reloads) the
routing leader sets the agent offline and their unanswered offers go back to the queue.

Protocol (JSON text frames; see docs/architecture/realtime.md):

- server → ``{"type": "hello", "user": {...}, "topics": ["desk", "user:<id>"], "epoch": "…",
  "heartbeat": 20}``
- server → events ``{"id", "topic", "type": "conversation.updated", "data", "at"}`` (event types
  always contain a dot; control messages never do)
- client → ``{"type": "resume", "last_event_ids": {"desk": 41}, "epoch": "…"}``: the missed events
  are replayed in order, or ``{"type": "snapshot_required", "topic": …}`` when the gap is gone
- client → ``{"type": "subscribe", "topics": ["conversation:<id>"]}`` /
  ``{"type": "unsubscribe", …}`` → ``{"type": "subscribed", "topics": [...]}``; a conversation
  topic needs what reading the conversation through the API needs (``conversations/api.py``: a
  signed-in agent, a token with ``read``, and a conversation that exists) — else an ``error``
- client → ``{"type": "typing", "conversation_id": "<uuid>", "on": true|false}``: the agent is
  (no longer) typing a reply; published as ``conversation.typing`` ``{author_type: "agent",
  author_id, author_name, on, conversation_id}`` on ``conversation:<id>``, which the customer's
  widget and the other desktops on that conversation follow. At most 2 a second per connection
  (more are dropped); needs a session or a token with ``write``; a bad frame → ``{"type": "error"}``.
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
from frontdesk.auth.revocation import LiveCredential, LiveSockets, close_revoked
from frontdesk.channels.webchat import runtime as webchat
from frontdesk.conversations import service as conversation_service
from frontdesk.db import Database
from frontdesk.errors import NotFound, ProblemError
from frontdesk.ratelimit import TokenBucket
from frontdesk.realtime import (
    CLOSE_TOO_MANY,
    Event,
    Hub,
    Subscription,
    connection_counter,
    first_frame_credential,
    run_socket_loops,
)
from frontdesk.routing import service as routing_service

log = logging.getLogger(__name__)

router = APIRouter()

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_TOO_SLOW = 4408
DEFAULT_HEARTBEAT_SECONDS = 20.0
MAX_TOPICS = 200
MAX_CLIENT_MESSAGE = 64 * 1024
_CONVERSATION_TOPIC = re.compile(r"^conversation:[0-9a-fA-F-]{36}$")
TYPING_EVENT = "conversation.typing"
TYPING_PER_SECOND = 2.0  # a token bucket (frontdesk.ratelimit): this many frames a second, bursts of TYPING_BURST
TYPING_BURST = 2.0
KNOWN_CONVERSATIONS_MAX = 1000


@dataclass
class WsUser:
    id: uuid.UUID
    email: str
    name: str
    role: str
    can_write: bool = True  # a browser session, or a token with the ``write`` scope
    session_id: str | None = None  # the credential the socket rides on: a browser session…
    token_id: uuid.UUID | None = None  # …or an API token

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
    can_write = principal.via != "token" or "write" in principal.scopes
    return WsUser(
        principal.user_id,
        principal.email,
        principal.name,
        principal.role.value,
        can_write,
        session_id=principal.session_id,
        token_id=principal.token_id,
    )


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
    db: Database | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    state: dict[str, _TopicState] = field(default_factory=dict)
    typing: TokenBucket = field(default_factory=lambda: TokenBucket(TYPING_PER_SECOND, TYPING_BURST))
    known_conversations: set[uuid.UUID] = field(default_factory=set)

    revoked: bool = False

    def allowed(self, topic: str) -> bool:
        return topic in ("desk", f"user:{self.user.id}") or bool(_CONVERSATION_TOPIC.match(topic))

    async def readable(self, topic: str) -> bool:
        """Whether this user may follow ``topic``; a conversation must be one they may read."""
        if not self.allowed(topic):
            return False
        if not topic.startswith("conversation:"):
            return True
        return await self._may_read(uuid.UUID(topic.partition(":")[2]))

    async def send(self, payload: dict[str, Any]) -> None:
        await self.ws.send_text(orjson.dumps(payload, default=str).decode())

    async def revoke(self, code: int, reason: str) -> None:
        """The credential is gone: not one more event, then the close frame (code 4401)."""
        self.revoked = True
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, reason=reason[:120])
        await self.sub.close()

    async def deliver_live(self, event: Event) -> None:
        if self.revoked:
            return
        async with self.lock:
            if self.revoked:
                return
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

    async def subscribe(self, topics: list[str]) -> bool:
        bad = [t for t in topics if not self.allowed(t)]
        if bad:
            await self.send({"type": "error", "detail": f"not a topic you may follow: {bad[0][:100]}"})
            return False
        if len(self.sub.topics | set(topics)) > MAX_TOPICS:
            await self.send({"type": "error", "detail": f"at most {MAX_TOPICS} topics per connection"})
            return False
        for topic in topics:
            if topic not in self.sub.topics and not await self.readable(topic):
                await self.send({"type": "error", "detail": f"no conversation you may read: {topic[:100]}"})
                return False
        await self.sub.add(topics)
        await self.send({"type": "subscribed", "topics": sorted(self.sub.topics)})
        return True

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
        elif kind == "typing":
            await self._typing(msg)
        elif kind == "auth":
            await self.send({"type": "error", "detail": "already authenticated"})
        else:
            await self.send({"type": "error", "detail": f"unknown message type: {str(kind)[:50]}"})

    async def _may_read(self, conversation_id: uuid.UUID) -> bool:
        """The API's rule for reading a conversation (``GET /api/v1/conversations/{id}``): an agent
        (every role is) whose socket passed the same authentication — and the conversation exists."""
        if conversation_id in self.known_conversations or self.db is None:
            return True
        try:
            async with self.db.transaction() as s:
                await conversation_service.get_conversation(s, conversation_id)
        except NotFound:
            return False
        if len(self.known_conversations) >= KNOWN_CONVERSATIONS_MAX:
            self.known_conversations.clear()
        self.known_conversations.add(conversation_id)
        return True

    async def _typing(self, msg: dict[str, Any]) -> None:
        raw, on = msg.get("conversation_id"), msg.get("on")
        if not isinstance(raw, str) or not isinstance(on, bool):
            await self.send({"type": "error", "detail": "typing needs conversation_id (a uuid) and on (true/false)"})
            return
        try:
            conversation_id = uuid.UUID(raw)
        except ValueError:
            await self.send({"type": "error", "detail": "typing: conversation_id is not a uuid"})
            return
        if not self.user.can_write:
            await self.send({"type": "error", "detail": "typing needs a token with the write scope"})
            return
        if not self.typing.allow():
            return  # more than TYPING_PER_SECOND: dropped, typing indicators are lossy
        if not await self._may_read(conversation_id):
            await self.send({"type": "error", "detail": f"typing: no conversation {conversation_id}"})
            return
        await self.hub.publish(
            f"conversation:{conversation_id}",
            TYPING_EVENT,
            {
                "conversation_id": str(conversation_id),
                "author_type": "agent",
                "author_id": str(self.user.id),
                "author_name": self.user.name,
                "on": on,
            },
        )

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
            if topic not in self.sub.topics and not await self.subscribe([topic]):
                continue
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
    settings = ws.app.state.settings
    counter = connection_counter(ws.app)
    ip = ws.client.host if ws.client else "unknown"
    await ws.accept()
    if not counter.acquire(ip, settings.ws_max_connections_per_ip):
        await ws.close(code=CLOSE_TOO_MANY, reason="too many connections from your address")
        return
    try:
        await _serve(ws)
    finally:
        counter.release(ip)


async def _serve(ws: WebSocket) -> None:
    db: Database = ws.app.state.db
    hub: Hub = ws.app.state.hub
    live: LiveSockets = ws.app.state.live_sockets
    settings = ws.app.state.settings
    generation = live.generation
    token = ws.query_params.get("token")  # deprecated: the first frame carries it (URLs are logged)
    cookie = None if token else ws.cookies.get(SESSION_COOKIE)
    if cookie and not _same_origin(ws):
        await ws.close(code=CLOSE_FORBIDDEN_ORIGIN, reason="cross-origin")
        return
    if not (token or cookie):
        token = await first_frame_credential(ws, "token", settings.ws_auth_timeout_seconds)
    user = await _authenticate(db, token, cookie) if (token or cookie) else None
    if user is None:
        await ws.close(code=CLOSE_UNAUTHORIZED, reason='sign in, or send {"type": "auth", "token": …} first')
        return

    base_topics = ["desk", f"user:{user.id}"]
    sub = await hub.open(base_topics)
    conn = _Connection(ws=ws, hub=hub, user=user, sub=sub, db=db)
    credential = LiveCredential(user.id, conn.revoke, session_id=user.session_id, token_id=user.token_id)
    live.register(credential)
    # Only the desk page counts as "at the desk" for routing: a wallboard, admin page or API
    # client left open must not keep an agent who closed the desk receiving offers.
    at_desk = False
    try:
        if live.changed_since(generation, credential):  # revoked while we were authenticating
            await close_revoked(db, [credential], "the credentials changed")
            if conn.revoked:
                return
        at_desk = ws.query_params.get("desk") == "1"
        if at_desk:
            webchat.desk_opened(ws.app, user.id)  # the chat widget says "online" while an agent is here
            await routing_service.desk_connected(db, user.id)
        heartbeat = _heartbeat_seconds(ws)
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
                if conn.revoked:
                    return
                await conn.handle(raw)

        await run_socket_loops(pump(), beat(), receive(), label=user.email)
    finally:
        live.unregister(credential)
        if at_desk:
            webchat.desk_closed(ws.app, user.id)
            await routing_service.desk_disconnected(db, user.id)
        await sub.close()
        with contextlib.suppress(Exception):
            await ws.close()
