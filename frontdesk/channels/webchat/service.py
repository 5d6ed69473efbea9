"""Web chat: availability, the widget's view of messages, read receipts, events, proactive notices.

Functions other domains call:

- :func:`send_widget_notice` — a message Frontdesk starts itself (a notice, or an offer with
  accept/decline buttons), delivered to the widget by the outbox like any outbound message;
- :func:`availability` — whether a human can answer now, and when otherwise;
- :func:`mark_read_by_agent` — an agent saw the visitor's message (the widget shows it).

Everything takes the caller's session first and flushes; the boundary commits and releases the
realtime pushes. See docs/channels/webchat.md and docs/architecture/webchat-protocol.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import html as html_lib
import logging
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.channels.listeners import listener
from frontdesk.channels.webchat import config as widget_texts
from frontdesk.conversations import outbox
from frontdesk.conversations.sanitize import sanitize_html
from frontdesk.conversations.service import message_views
from frontdesk.customers.schemas import SafeStr
from frontdesk.db import get_or_404
from frontdesk.errors import Invalid, NotFound
from frontdesk.ids import new_id
from frontdesk.models import (
    Attachment,
    Conversation,
    Customer,
    Inbox,
    Message,
    Queue,
    User,
    WebchatUpload,
    WebchatVisitor,
)
from frontdesk.models.enums import AuthorType, Channel, ConversationStatus, DeliveryStatus, Direction, PresenceStatus
from frontdesk.models.routing import RoutingRule
from frontdesk.proactive import service as proactive
from frontdesk.proactive.schemas import EventIn
from frontdesk.ratelimit import Limiter, MemoryLimiter, make_limiter
from frontdesk.realtime import Hub, conversation_topics, publish_after_commit
from frontdesk.routing import rules as routing_rules
from frontdesk.routing import service as routing

log = logging.getLogger(__name__)

WIDGET_TOPIC = "widget:{conversation_id}"
MESSAGE_CREATED = "conversation.message_created"
WIDGET_READ = "widget.read"  # an agent read the visitor's message (replayable frame)
TYPING = "conversation.typing"
HISTORY_LIMIT = 200
WIDGET_ATTACHMENT_URL = "/api/v1/widget/attachments/{id}"
ALLOWED_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf")
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
    "application/pdf": (b"%PDF-",),
}


CONVERSATION_OPENED = "widget.conversation_opened"


def widget_topic(conversation_id: uuid.UUID | str) -> str:
    return WIDGET_TOPIC.format(conversation_id=conversation_id)


def customer_topic(customer_id: uuid.UUID | str) -> str:
    """Where a customer's open widgets learn that Frontdesk opened a conversation with them."""
    return f"widget-customer:{customer_id}"


# -- configuration and availability --------------------------------------------------------------

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$|^24:00$")


def _minutes(value: Any) -> int | None:
    if not isinstance(value, str) or not _HHMM.match(value.strip()):
        return None
    h, m = value.strip().split(":")
    return int(h) * 60 + int(m)


def _day_ranges(spec: Any) -> list[tuple[int, int]]:
    """``["09:00","18:00"]`` or ``[["09:00","12:00"],["13:00","18:00"]]`` → minute ranges."""
    if not isinstance(spec, list) or not spec:
        return []
    pairs = [spec] if isinstance(spec[0], str) else spec
    out = []
    for pair in pairs[:10]:
        if isinstance(pair, list) and len(pair) == 2:
            start, end = _minutes(pair[0]), _minutes(pair[1])
            if start is not None and end is not None and start < end:
                out.append((start, end))
    return sorted(out)


def business_state(config: dict[str, Any], now: datetime) -> tuple[bool, datetime | None]:
    """``(open now, next opening)`` from inbox config ``business_hours`` ({tz, days}); no config = always open."""
    hours = config.get("business_hours")
    if not isinstance(hours, dict) or not isinstance(hours.get("days"), dict):
        return True, None
    try:
        tz = ZoneInfo(str(hours.get("tz") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("webchat: unknown business_hours.tz %r; using UTC", hours.get("tz"))
        tz = ZoneInfo("UTC")
    days = {d: _day_ranges(hours["days"].get(d)) for d in DAYS}
    local = now.astimezone(tz)
    minute = local.hour * 60 + local.minute
    if any(s <= minute < e for s, e in days[DAYS[local.weekday()]]):
        return True, None
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    for offset in range(8):
        day = midnight + timedelta(days=offset)
        for start, _end in days[DAYS[day.weekday()]]:
            # Wall-clock arithmetic in the zone, then back to UTC (DST-correct).
            opening = datetime(day.year, day.month, day.day, start // 60, start % 60, tzinfo=tz)
            if opening > local:
                return False, clock.ensure_utc(opening)
    return False, None


def availability(inbox: Inbox, agents_online: int, *, email_known: bool, now: datetime | None = None) -> dict[str, Any]:
    """The ``availability`` object of the protocol."""
    is_open, next_open = business_state(inbox.config or {}, now or clock.now())
    live = is_open and agents_online > 0
    return {
        "open": is_open,
        "agents_online": agents_online,
        "reply_expectation": "in a few minutes" if live else "by email",
        "next_open_at": next_open.isoformat() if next_open else None,
        "ask_email": not live and not email_known,
    }


def widget_config(inbox: Inbox, max_attachment_mb: int, language: str | None = None) -> dict[str, Any]:
    """The ``config`` object of the protocol, from the inbox config (secrets never included).

    ``title`` and ``greeting`` are in the visitor's ``language`` when the inbox has them in it,
    else in the inbox's default language (see :mod:`.config`); ``language`` says which was picked.
    Without a greeting the widget shows its own, in the visitor's language.
    """
    cfg = inbox.config or {}
    raw_prechat = cfg.get("prechat")
    prechat: dict[str, Any] = raw_prechat if isinstance(raw_prechat, dict) else {}
    texts = widget_texts.visitor_texts(cfg, language)
    greeting = texts["greeting"]
    return {
        "title": (texts["title"] or inbox.name)[: widget_texts.MAX_CHARS["title"]],
        "greeting": greeting[: widget_texts.MAX_CHARS["greeting"]] if greeting else None,
        "language": texts["language"],
        "accent_color": str(cfg.get("accent_color") or "#2563eb")[:32],
        "prechat": {
            "enabled": bool(prechat.get("enabled", False)),
            "require_email": bool(prechat.get("require_email", False)),
        },
        "max_attachment_mb": max_attachment_mb,
        "allowed_types": list(ALLOWED_TYPES),
        "capabilities": ["text", "attachments", "emoji"],
    }


def origin_allowed(inbox: Inbox, origin: str | None) -> bool:
    """Inbox config ``allowed_origins`` (list of ``https://shop.example``) when set; else any origin."""
    allowed = (inbox.config or {}).get("allowed_origins")
    if not isinstance(allowed, list) or not allowed:
        return True
    if not origin:
        return False
    norm = origin.strip().rstrip("/").lower()
    return any(isinstance(a, str) and (a == "*" or a.strip().rstrip("/").lower() == norm) for a in allowed)


# -- who can answer: agents at their desk, available, whom routing could give this chat ----------

# How old an agents-online figure may be, and how often open widgets are told of a change.
AVAILABILITY_SECONDS = 2.0
# An agent whose last desk closed still counts this long (a reload must not flicker the widgets).
DESK_GRACE_SECONDS = 5.0
ONLINE_PRESENCE = (PresenceStatus.available.value, PresenceStatus.busy.value)
_NARROWING = ("languages", "tags", "segments", "attributes")  # rule conditions a new chat may or may not meet


def reachable_queues(rules: Sequence[RoutingRule], queues: Sequence[Queue], inbox_id: uuid.UUID) -> list[Queue]:
    """The queues a new web chat from this inbox can be routed to, as the routing leader chooses
    (``routing/leader.py``): enabled rules in order whose channel and inbox conditions hold and whose
    queue serves web chat — up to the first one that every chat meets — else the general queue
    (the highest-priority one no rule targets). ``queues`` are those serving web chat; ``rules``
    the enabled ones in order. Empty: the chat would wait unrouted, for anyone to pick up."""
    subject = routing_rules.Subject(channel=Channel.webchat.value, inbox_id=str(inbox_id))
    by_id = {q.id: q for q in queues}
    out: list[Queue] = []
    for rule in rules:
        cond = rule.conditions or {}
        queue = by_id.get(rule.queue_id)
        scope = {"channels": cond.get("channels"), "inbox_ids": cond.get("inbox_ids")}
        if queue is None or not routing_rules.matches(scope, subject):
            continue
        if queue not in out:
            out.append(queue)
        if not any(cond.get(k) for k in _NARROWING):
            return out  # every chat from this inbox stops at this rule
    targeted = {r.queue_id for r in rules}
    general = sorted((q for q in queues if q.id not in targeted), key=lambda q: (-q.priority, q.name))
    if general and general[0] not in out:
        out.append(general[0])
    return out


async def count_agents_online(
    session: AsyncSession, inboxes: Sequence[Inbox], at_desk: set[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Per inbox, the agents who can answer its web chat now: their desk is open (``at_desk``),
    their presence is available or busy, their routing profile takes web chat, and they are able
    for one of the queues a chat from the inbox reaches (any such agent when it reaches none)."""
    counts = {inbox.id: 0 for inbox in inboxes}
    if not at_desk or not inboxes:
        return counts
    webchat = Channel.webchat.value
    agents = [
        a
        for a in await routing.agent_configs(session, at_desk)
        if a.presence in ONLINE_PRESENCE and a.max_per_channel.get(webchat, 0) > 0
    ]
    if not agents:
        return counts
    queues = [q for q in await routing.list_queues(session) if webchat in routing.queue_channels(q)]
    rules: list[RoutingRule] = []
    required: dict[uuid.UUID, dict[str, int]] = {}
    if queues:
        rules = list(
            (
                await session.scalars(
                    select(RoutingRule)
                    .where(RoutingRule.enabled.is_(True))
                    .order_by(RoutingRule.position, RoutingRule.created_at)
                )
            ).all()
        )
        required = await routing.queue_requirements(session)
    for inbox in inboxes:
        reachable = reachable_queues(rules, queues, inbox.id)
        counts[inbox.id] = sum(
            1 for a in agents if not reachable or any(routing.able_for(q, required.get(q.id, {}), a) for q in reachable)
        )
    return counts


def availability_key(state: dict[str, Any]) -> tuple[Any, ...]:
    """What a visitor sees of ``availability``: a change of it is worth telling open widgets."""
    return state["open"], state["reply_expectation"], state["next_open_at"]


class AvailabilityWatcher(Protocol):
    """An open widget (``socket.WidgetConnection``), told when what its visitor sees would change."""

    inbox: Inbox
    told: tuple[Any, ...] | None  # the availability it last showed (``availability_key``)

    async def tell_availability(self, inbox: Inbox, agents_online: int) -> None: ...


@dataclass
class Runtime:
    """Per-process web-chat state kept on ``app.state.webchat``; all of it can be rebuilt.

    Agents at their desk: the desk page's sockets on this process (``desk_opened`` /
    ``desk_closed``, called by ``/ws?desk=1``), plus, with Redis, the sets other nodes publish.
    """

    key: bytes
    limiter: Limiter
    redis_url: str | None
    redis_prefix: str = "fd"
    node: str = field(default_factory=lambda: uuid.uuid4().hex)
    desks_changed: asyncio.Event = field(default_factory=asyncio.Event)
    _desks: dict[str, int] = field(default_factory=dict)
    _closed: dict[str, float] = field(default_factory=dict)
    _remote: set[str] = field(default_factory=set)
    _remote_at: float = -1e9
    _online: dict[uuid.UUID, tuple[float, int]] = field(default_factory=dict)
    _locks: dict[uuid.UUID, asyncio.Lock] = field(default_factory=dict)
    _widgets: dict[uuid.UUID, set[AvailabilityWatcher]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _redis: Any = None

    PRESENCE_TTL = 30

    @property
    def presence_prefix(self) -> str:
        return f"{self.redis_prefix}:webchat:agents:"

    def _client(self) -> Any:
        if self._redis is None and self.redis_url:
            import redis.asyncio as redis

            self._redis = redis.from_url(self.redis_url)
        return self._redis

    # -- desks -------------------------------------------------------------------------------------

    def desk_opened(self, user_id: uuid.UUID) -> None:
        uid = str(user_id)
        self._desks[uid] = self._desks.get(uid, 0) + 1
        self._closed.pop(uid, None)
        self.desks_changed.set()

    def desk_closed(self, user_id: uuid.UUID) -> None:
        uid = str(user_id)
        left = self._desks.get(uid, 0) - 1
        if left > 0:
            self._desks[uid] = left
            return
        self._desks.pop(uid, None)
        self._closed[uid] = time.monotonic()
        self.desks_changed.set()

    def desks_here(self) -> set[str]:
        """Agents with a desk open on this process, or closed within the reload grace."""
        now = time.monotonic()
        self._closed = {u: at for u, at in self._closed.items() if now - at < DESK_GRACE_SECONDS}
        return set(self._desks) | set(self._closed)

    async def desks_open(self) -> set[uuid.UUID]:
        """Agents with a desk open anywhere: here, plus other nodes' published sets (Redis)."""
        found = self.desks_here()
        client = self._client()
        if client is not None:
            if time.monotonic() - self._remote_at >= AVAILABILITY_SECONDS:
                try:
                    remote: set[str] = set()
                    async for key in client.scan_iter(match=self.presence_prefix + "*", count=100):
                        k = key.decode() if isinstance(key, bytes) else str(key)
                        if k.endswith(self.node):
                            continue
                        raw = await client.get(k)
                        if raw:
                            remote.update(orjson.loads(raw))
                    self._remote, self._remote_at = remote, time.monotonic()
                except Exception:
                    log.warning("webchat: could not read agent desks from Redis", exc_info=True)
            found |= self._remote
        out = set()
        for uid in found:
            with contextlib.suppress(ValueError):
                out.add(uuid.UUID(uid))
        return out

    async def publish_desks(self) -> None:
        client = self._client()
        if client is not None:
            await client.set(
                self.presence_prefix + self.node, orjson.dumps(sorted(self.desks_here())), ex=self.PRESENCE_TTL
            )

    # -- agents online -----------------------------------------------------------------------------

    async def refresh(self, session: AsyncSession, inboxes: Sequence[Inbox]) -> dict[uuid.UUID, int]:
        """Count afresh the agents online for ``inboxes`` (see :func:`count_agents_online`)."""
        counts = await count_agents_online(session, inboxes, await self.desks_open())
        now = time.monotonic()
        for inbox_id, n in counts.items():
            self._online[inbox_id] = (now, n)
        return counts

    async def agents_online(self, session: AsyncSession, inbox: Inbox) -> int:
        """The inbox's agents online, at most ``AVAILABILITY_SECONDS`` old (one count at a time)."""
        hit = self._online.get(inbox.id)
        if hit is not None and time.monotonic() - hit[0] < AVAILABILITY_SECONDS:
            return hit[1]
        async with self._locks.setdefault(inbox.id, asyncio.Lock()):
            hit = self._online.get(inbox.id)
            if hit is not None and time.monotonic() - hit[0] < AVAILABILITY_SECONDS:
                return hit[1]
            return (await self.refresh(session, [inbox]))[inbox.id]

    # -- open widgets ------------------------------------------------------------------------------

    def watch(self, widget: AvailabilityWatcher) -> None:
        self._widgets.setdefault(widget.inbox.id, set()).add(widget)

    def unwatch(self, widget: AvailabilityWatcher) -> None:
        found = self._widgets.get(widget.inbox.id)
        if found is not None:
            found.discard(widget)
            if not found:
                del self._widgets[widget.inbox.id]

    async def tell_widgets(self, db: Any) -> None:
        """Count the agents online for every inbox with a widget open here; tell each widget whose
        visitor was last shown something else (a widget is never sent what it already shows)."""
        if not self._widgets:
            return
        async with db.transaction() as session:
            inboxes = list((await session.scalars(select(Inbox).where(Inbox.id.in_(list(self._widgets))))).all())
            counts = await self.refresh(session, inboxes)
        now = clock.now()
        for inbox in inboxes:
            key = availability_key(availability(inbox, counts[inbox.id], email_known=True, now=now))
            for widget in list(self._widgets.get(inbox.id, ())):
                if widget.told != key:
                    widget.told = key
                    self._spawn(widget.tell_availability(inbox, counts[inbox.id]))

    def _spawn(self, work: Any) -> None:
        async def run() -> None:
            with contextlib.suppress(Exception):  # a socket closing meanwhile
                await work

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        await self.limiter.close()
        for task in list(self._tasks):
            task.cancel()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None


def runtime(app: Any) -> Runtime:
    """This process's web-chat state (``app.state.webchat``), made on first use."""
    rt: Runtime | None = getattr(app.state, "webchat", None)
    if rt is None:
        from frontdesk.channels.webchat.visitor import token_key

        settings = app.state.settings
        rt = Runtime(
            key=token_key(settings.secret()),
            limiter=make_limiter(
                settings.redis_url,
                settings.redis_prefix,
                name="webchat:rl",
                memory=MemoryLimiter(now=time.monotonic, max_keys=200_000),
                fall_back=True,
            ),
            redis_url=settings.redis_url,
            redis_prefix=settings.redis_prefix,
        )
        app.state.webchat = rt
    return rt


def desk_opened(app: Any, user_id: uuid.UUID) -> None:
    """For the desk page's socket (``/ws?desk=1``): the agent is at their desk on this process."""
    runtime(app).desk_opened(user_id)


def desk_closed(app: Any, user_id: uuid.UUID) -> None:
    """For the desk page's socket, when it closes (after a grace the agent no longer counts)."""
    rt: Runtime | None = getattr(app.state, "webchat", None)
    if rt is not None:
        rt.desk_closed(user_id)


def client_ip(client: Any) -> str:
    return str(client.host) if client else "unknown"


async def topic_head(hub: Hub, topic: str) -> int:
    """The id of the last event published on ``topic`` (0 if none)."""
    return await hub.head(topic)


# -- the widget's view of messages ---------------------------------------------------------------


def _text_html(text: str) -> str:
    """Plain text as safe HTML: escaped, line breaks kept."""
    return html_lib.escape(text, quote=True).replace("\n", "<br>")


def widget_message(message: Message, attachments: Sequence[Attachment], author_name: str | None) -> dict[str, Any]:
    meta = message.meta or {}
    kind = meta.get("kind") if meta.get("kind") in ("notice", "offer") else "text"
    body_html = sanitize_html(message.html) if message.html else _text_html(message.text or "")
    out: dict[str, Any] = {
        "id": str(message.id),
        "conversation_id": str(message.conversation_id),
        "direction": "in" if message.direction == Direction.inbound.value else "out",
        "author_type": message.author_type,
        "author_name": author_name,
        "text": message.text or "",
        "html": body_html,
        "attachments": [
            {
                "id": str(a.id),
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "url": WIDGET_ATTACHMENT_URL.format(id=a.id),
            }
            for a in attachments
        ],
        "created_at": message.created_at.isoformat(),
        "kind": kind,
        "delivery_status": message.delivery_status,
        # When an agent read the visitor's message (so a reload still shows it read).
        "read_by_agent_at": meta.get("read_by_agent_at") if message.direction == Direction.inbound.value else None,
    }
    if kind == "offer" and isinstance(meta.get("offer"), dict):
        out["offer"] = meta["offer"]
    return out


def inbound_view(message_id: uuid.UUID, conversation_id: uuid.UUID, text: str) -> dict[str, Any]:
    """The widget's view of a visitor message just stored (no attachments), built without a read."""
    return {
        "id": str(message_id),
        "conversation_id": str(conversation_id),
        "direction": "in",
        "author_type": AuthorType.customer.value,
        "author_name": None,
        "text": text,
        "html": _text_html(text),
        "attachments": [],
        "created_at": clock.now().isoformat(),
        "kind": "text",
        "delivery_status": DeliveryStatus.received.value,
        "read_by_agent_at": None,
    }


async def widget_messages(session: AsyncSession, messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The widget's view of ``messages`` (notes must not be passed in), with attachments and names."""
    if not messages:
        return []
    ids = [m.id for m in messages]
    by_message: dict[uuid.UUID, list[Attachment]] = {}
    for a in await session.scalars(
        select(Attachment).where(Attachment.message_id.in_(ids)).order_by(Attachment.created_at, Attachment.id)
    ):
        assert a.message_id is not None
        by_message.setdefault(a.message_id, []).append(a)
    author_ids = {m.author_id for m in messages if m.author_id}
    names: dict[uuid.UUID, str] = {}
    if author_ids:
        names = {
            uid: name for uid, name in await session.execute(select(User.id, User.name).where(User.id.in_(author_ids)))
        }
    return [
        widget_message(m, by_message.get(m.id, []), names.get(m.author_id) if m.author_id else None) for m in messages
    ]


async def messages_by_id(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    rows = list(
        (
            await session.scalars(
                select(Message).where(Message.id.in_(list(ids)), Message.direction != Direction.note.value)
            )
        ).all()
    )
    return {view["id"]: view for view in await widget_messages(session, rows)}


async def open_conversation(session: AsyncSession, customer_id: uuid.UUID, inbox_id: uuid.UUID) -> Conversation | None:
    """The customer's latest not-resolved web-chat conversation in this inbox."""
    stmt = (
        select(Conversation)
        .where(
            Conversation.customer_id == customer_id,
            Conversation.channel == Channel.webchat.value,
            Conversation.inbox_id == inbox_id,
            Conversation.status != ConversationStatus.resolved.value,
        )
        .order_by(Conversation.created_at.desc(), Conversation.id.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def history(
    session: AsyncSession, conversation_id: uuid.UUID, limit: int = HISTORY_LIMIT
) -> list[dict[str, Any]]:
    """The visible history (no notes) of a conversation, oldest first: the ``snapshot`` frame."""
    stmt = (
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.direction != Direction.note.value)
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
    )
    rows = list((await session.scalars(stmt)).all())
    rows.reverse()
    return await widget_messages(session, rows)


# -- read receipts ---------------------------------------------------------------------------------


async def mark_read_by_visitor(session: AsyncSession, customer_id: uuid.UUID, message_id: uuid.UUID) -> Message:
    """The visitor saw an agent's message: ``delivery_status`` read, ``meta.read_at``; the desk is told."""
    message = await session.get(Message, message_id)
    if message is None or message.customer_id != customer_id or message.direction != Direction.outbound.value:
        raise NotFound(f"No message {message_id} sent to you.")
    now = clock.now()
    if message.delivery_status != DeliveryStatus.read.value:
        message.delivery_status = DeliveryStatus.read.value
        message.status_at = now
        message.meta = {**(message.meta or {}), "read_at": now.isoformat()}
        await session.flush()
        outbox.publish_delivery_status(session, message, read_at=now.isoformat())
    return message


async def mark_read_by_agent(session: AsyncSession, message_id: uuid.UUID, user_id: uuid.UUID) -> Message:
    """An agent saw the visitor's message: ``meta.read_by_agent_at``; the widget gets a ``read`` frame."""
    message = await get_or_404(session, Message, message_id, "message")
    if message.direction != Direction.inbound.value:
        raise Invalid("only a customer's message can be marked read by an agent", field="message_id")
    meta = dict(message.meta or {})
    if "read_by_agent_at" not in meta:
        now = clock.now().isoformat()
        meta.update(read_by_agent_at=now, read_by_agent_id=str(user_id))
        message.meta = meta
        await session.flush()
        outbox.publish_delivery_status(session, message, read_by_agent_at=now)
        if message.channel == Channel.webchat.value:
            publish_after_commit(
                session, widget_topic(message.conversation_id), WIDGET_READ, {"message_id": str(message.id)}
            )
    return message


# -- events: track and offer answers -----------------------------------------------------------


async def track(
    session: AsyncSession, customer_id: uuid.UUID, event: str, properties: dict[str, Any], visitor_id: uuid.UUID
) -> None:
    """``frontdesk('track', …)`` → a customer event for the proactive engine (source ``webchat``)."""
    await proactive.ingest(
        session,
        EventIn(
            type=event,
            customer_id=customer_id,
            properties={**properties, "visitor_id": str(visitor_id)},
            source="webchat",
        ),
    )


async def answer_offer(session: AsyncSession, customer_id: uuid.UUID, offer_id: str, accepted: bool) -> bool:
    """``widget.offer_accepted`` / ``widget.offer_declined`` with the offer id; one answer per offer."""
    _event, created = await proactive.ingest(
        session,
        EventIn(
            type="widget.offer_accepted" if accepted else "widget.offer_declined",
            customer_id=customer_id,
            properties={"offer_id": offer_id},
            source="webchat",
            idempotency_key=f"widget.offer:{customer_id}:{offer_id}"[:200],
        ),
    )
    return created


# -- proactive notices and offers ------------------------------------------------------------------


class WidgetOffer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offer_id: Annotated[SafeStr, StringConstraints(min_length=1, max_length=200)]
    title: Annotated[SafeStr, StringConstraints(max_length=200)] = ""
    body: Annotated[SafeStr, StringConstraints(max_length=2000)] = ""
    accept_label: Annotated[SafeStr, StringConstraints(min_length=1, max_length=60)] = "Yes, please"
    decline_label: Annotated[SafeStr, StringConstraints(min_length=1, max_length=60)] = "No, thanks"


class NoticeIn(BaseModel):
    text: Annotated[SafeStr, StringConstraints(min_length=1, max_length=5000)]
    offer: WidgetOffer | None = Field(None)


async def _conversation_for(session: AsyncSession, target: Conversation | Customer | uuid.UUID) -> Conversation:
    if isinstance(target, Conversation):
        return target
    customer_id = target.id if isinstance(target, Customer) else target
    customer = await get_or_404(session, Customer, customer_id, "customer")
    visitor = (
        await session.scalars(
            select(WebchatVisitor)
            .where(WebchatVisitor.customer_id == customer.id)
            .order_by(WebchatVisitor.last_seen_at.desc())
            .limit(1)
        )
    ).first()
    if visitor is None:
        raise Invalid("this customer has never opened the web chat", field="customer_id")
    conversation = await open_conversation(session, customer.id, visitor.inbox_id)
    if conversation is not None:
        return conversation
    now = clock.now()
    conversation = Conversation(
        id=new_id(),
        customer_id=customer.id,
        channel=Channel.webchat.value,
        inbox_id=visitor.inbox_id,
        status=ConversationStatus.open.value,
        message_count=0,
        created_at=now,
        updated_at=now,
        auto_open=True,
    )
    try:
        async with session.begin_nested():
            session.add(conversation)
            await session.flush()
    except IntegrityError:
        # Another process opened the customer's chat since we looked (the unique index on
        # auto-opened conversations): use theirs.
        winner = await open_conversation(session, customer.id, visitor.inbox_id)
        if winner is None:
            raise
        return winner
    publish_after_commit(
        session, customer_topic(customer.id), CONVERSATION_OPENED, {"conversation_id": str(conversation.id)}
    )
    return conversation


async def send_widget_notice(
    session: AsyncSession,
    conversation_or_customer: Conversation | Customer | uuid.UUID,
    text: str,
    *,
    offer: WidgetOffer | dict[str, Any] | None = None,
) -> Message:
    """A message Frontdesk starts itself, shown in the customer's widget (kind ``notice`` or ``offer``).

    Given a customer (or id), it goes to their open web-chat conversation, or a new one in the
    inbox they last chatted in. The message is outbound, authored by ``system``, and delivered by
    the outbox; an offer's answer comes back as a ``widget.offer_accepted``/``declined`` event.
    """
    checked = NoticeIn(text=text, offer=WidgetOffer.model_validate(offer) if isinstance(offer, dict) else offer)
    conversation = await _conversation_for(session, conversation_or_customer)
    now = clock.now()
    meta: dict[str, Any] = {"kind": "offer" if checked.offer else "notice"}
    if checked.offer:
        meta["offer"] = checked.offer.model_dump()
    message = Message(
        id=new_id(),
        conversation_id=conversation.id,
        customer_id=conversation.customer_id,
        direction=Direction.outbound.value,
        channel=Channel.webchat.value,
        author_type=AuthorType.system.value,
        author_id=None,
        text=checked.text,
        html=None,
        delivery_status=DeliveryStatus.queued.value,
        meta=meta,
        created_at=now,
        status_at=now,
    )
    session.add(message)
    await session.flush()
    await outbox.enqueue(session, message)
    await session.execute(
        update(Conversation)
        .where(Conversation.id == conversation.id)
        .values(message_count=Conversation.message_count + 1, last_message_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    view = (await message_views(session, [message]))[0]
    data = {"conversation_id": str(conversation.id), "message": view.model_dump(mode="json")}
    for topic in conversation_topics(conversation.id, conversation.assignee_id):
        publish_after_commit(session, topic, MESSAGE_CREATED, data)
    return message


# -- uploads ---------------------------------------------------------------------------------------


def check_upload(content_type: str, data: bytes) -> None:
    """Only images and PDF whose bytes look like what they claim (415 otherwise)."""
    from frontdesk.conversations.service import UnsupportedMediaType

    if content_type not in ALLOWED_TYPES:
        raise UnsupportedMediaType(f"Files of type {content_type} are not accepted here; send images or PDF.")
    if not any(data.startswith(m) for m in _MAGIC[content_type]) or (
        content_type == "image/webp" and data[8:12] != b"WEBP"
    ):
        raise UnsupportedMediaType(f"The file's content is not {content_type}.")


async def uploads_owned(session: AsyncSession, visitor_id: uuid.UUID, attachment_ids: Sequence[uuid.UUID]) -> bool:
    """Whether every id is an upload of this visitor (so nobody attaches another's file)."""
    if not attachment_ids:
        return True
    ids = set(attachment_ids)
    owned = set(
        await session.scalars(
            select(WebchatUpload.attachment_id).where(
                WebchatUpload.attachment_id.in_(ids), WebchatUpload.visitor_id == visitor_id
            )
        )
    )
    return owned == ids


async def visible_attachment(
    session: AsyncSession, customer_id: uuid.UUID, visitor_id: uuid.UUID, attachment_id: uuid.UUID
) -> Attachment:
    """An attachment the visitor may download: on a message of their customer's conversations, or their own upload."""
    attachment = await session.get(Attachment, attachment_id)
    if attachment is not None:
        if attachment.message_id is not None:
            message = await session.get(Message, attachment.message_id)
            if message is not None and message.customer_id == customer_id and message.direction != Direction.note.value:
                return attachment
        elif await uploads_owned(session, visitor_id, [attachment_id]):
            return attachment
    raise NotFound(f"No attachment {attachment_id} in your conversations.")


# -- lifespan: this process's runtime and its agent-presence beacon ------------------------------

PRESENCE_EVERY_SECONDS = 10.0


@listener
async def start_webchat(app: Any) -> Any:
    """Make the runtime; tell open widgets when their inbox's availability changes; with Redis,
    publish this node's agents at their desk (at once when it changes, else every few seconds)."""
    rt = runtime(app)

    async def watch() -> None:
        while True:
            await asyncio.sleep(max(AVAILABILITY_SECONDS, 0.1))
            try:
                await rt.tell_widgets(app.state.db)
            except Exception:
                log.warning("webchat: could not tell open widgets about availability", exc_info=True)

    async def beacon() -> None:
        while True:
            rt.desks_changed.clear()
            try:
                await rt.publish_desks()
            except Exception:
                log.warning("webchat: could not publish agent desks", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rt.desks_changed.wait(), PRESENCE_EVERY_SECONDS)
            await asyncio.sleep(0.2)  # a burst of desks opening is one publish

    tasks = [asyncio.create_task(watch(), name="webchat-availability")]
    if rt.redis_url:
        tasks.append(asyncio.create_task(beacon(), name="webchat-desks"))

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        await rt.close()
        if getattr(app.state, "webchat", None) is rt:
            app.state.webchat = None

    return stop


async def public_inbox(session: AsyncSession, public_token: str) -> Inbox:
    """The active web-chat inbox with this public token (what ``data-inbox`` names), else 404."""
    inbox = await session.scalar(select(Inbox).where(Inbox.public_token == public_token, Inbox.is_active.is_(True)))
    if inbox is None or inbox.channel != Channel.webchat.value:
        raise NotFound("No active web-chat inbox with that public token.")
    return inbox
