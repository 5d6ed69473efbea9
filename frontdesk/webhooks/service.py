"""Webhook subscriptions, their durable deliveries, and the dead-letter list.

How an event reaches a subscriber (docs/channels/api.md has the integrator's side):

1. A service emits a domain event (``frontdesk.bus.emit``). Just before the unit of work
   commits, :func:`enqueue_deliveries` (an in-transaction subscriber of the bus) turns the
   conversation and message events into one :class:`WebhookDelivery` row per matching active
   subscription — in the SAME transaction (transactional outbox): a rolled-back change produces
   no delivery, a committed one always does. The group-commit ingest writer runs the same
   subscribers on its Core connection per batch.
2. :class:`WebhookLoop` (started with the other loops by ``wiring.start_loops``) claims due rows
   with the shared lease machinery, POSTs ``{id, type, created_at, data}`` signed like every
   Frontdesk webhook (``channels.apichannel.outbound.post_signed``) and deletes the row on a 2xx.
3. Failures retry with exponential backoff and jitter (``timers.backoff``); after
   :data:`MAX_ATTEMPTS` (or at once for a 4xx other than 408/429) the row stays ``failed``.
   Failed outbox items and deliveries form the dead-letter list, which an admin replays (back to
   ``pending`` with a fresh set of attempts) or discards; both are audited.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import orjson
from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from frontdesk import clock, netguard
from frontdesk.audit.service import Actor, record
from frontdesk.channels.apichannel.outbound import TIMEOUT_SECONDS, post_signed
from frontdesk.channels.base import PermanentError
from frontdesk.conversations.outbox import agent_error, publish_delivery_status
from frontdesk.db import after_commit, get_or_404
from frontdesk.errors import Conflict, Invalid, NotFound
from frontdesk.events import (
    ConversationCreated,
    ConversationUpdated,
    CustomerMessageCreated,
    MessageCreated,
    MessageReceived,
    MessageSent,
    MessageStatusChanged,
    NoteAdded,
)
from frontdesk.ids import new_id
from frontdesk.models import Conversation, Inbox, Message, OutboxItem, WebhookDelivery, WebhookSubscription
from frontdesk.models.enums import Channel, DeliveryStatus, JobStatus
from frontdesk.pagination import decode_cursor, encode_cursor
from frontdesk.timers import Claimed, LeaseLost, WorkLoop
from frontdesk.webhooks.schemas import (
    DeadLetterOut,
    DeliveryOut,
    OutboxItemOut,
    WebhookCreate,
    WebhookEvent,
    WebhookUpdate,
)

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 16  # with the 2 s base and the 1 h cap: retries span about 3-5 hours
ALL = WebhookEvent.all.value
CONVERSATION_CREATED = WebhookEvent.conversation_created.value
CONVERSATION_UPDATED = WebhookEvent.conversation_updated.value
MESSAGE_CREATED = WebhookEvent.message_created.value
MESSAGE_UPDATED = WebhookEvent.message_updated.value

_deliveries: Table = WebhookDelivery.__table__  # type: ignore[assignment]
_subscriptions: Table = WebhookSubscription.__table__  # type: ignore[assignment]
_messages: Table = Message.__table__  # type: ignore[assignment]
_conversations: Table = Conversation.__table__  # type: ignore[assignment]

# Wake-up functions of the delivery loops running in this process (called after a commit).
_wakeups: list[Callable[[], None]] = []


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


# -- subscriptions ---------------------------------------------------------------------------


async def list_subscriptions(session: AsyncSession) -> list[WebhookSubscription]:
    rows = await session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.created_at))
    return list(rows.all())


async def get_subscription(session: AsyncSession, subscription_id: uuid.UUID) -> WebhookSubscription:
    sub = await get_or_404(session, WebhookSubscription, subscription_id, "webhook subscription")
    return sub


def _audit_view(sub: WebhookSubscription) -> dict[str, Any]:
    return {"url": sub.url, "events": list(sub.events), "active": sub.active}


async def check_url(url: str, settings: Any = None) -> None:
    """422 naming why, when ``url`` is (or resolves to) an address inside the network (netguard)."""
    try:
        await netguard.check_url(url, netguard.policy_of(settings))
    except netguard.DestinationRefused as exc:
        raise Invalid(f"url: {exc}", field="url") from exc


async def create_subscription(
    session: AsyncSession, actor: Actor | None, data: WebhookCreate, settings: Any = None
) -> WebhookSubscription:
    """A new subscription with a generated secret (read it from the returned row once)."""
    await check_url(data.url, settings)
    sub = WebhookSubscription(
        url=data.url,
        events=[e.value for e in data.events],
        secret=new_secret(),
        description=data.description or None,
        active=data.active,
    )
    session.add(sub)
    await session.flush()
    await record(session, actor, "webhook.created", "webhook", sub.id, _audit_view(sub))
    return sub


async def update_subscription(
    session: AsyncSession,
    actor: Actor | None,
    subscription_id: uuid.UUID,
    data: WebhookUpdate,
    settings: Any = None,
) -> WebhookSubscription:
    sub = await get_subscription(session, subscription_id)
    sent = data.model_dump(exclude_unset=True)
    changes: dict[str, Any] = {}
    if sent.get("url") is not None and data.url != sub.url:
        await check_url(str(data.url), settings)
        changes["url"] = {"from": sub.url, "to": data.url}
        sub.url = str(data.url)
    if data.events is not None:
        events = [e.value for e in data.events]
        if events != list(sub.events):
            changes["events"] = {"from": list(sub.events), "to": events}
            sub.events = events
    if "description" in sent and (data.description or None) != sub.description:
        changes["description"] = True
        sub.description = data.description or None
    if data.active is not None and data.active != sub.active:
        changes["active"] = data.active
        sub.active = data.active
    if changes:
        sub.updated_at = clock.now()
        await session.flush()
        await record(session, actor, "webhook.updated", "webhook", sub.id, changes)
    return sub


async def rotate_secret(session: AsyncSession, actor: Actor | None, subscription_id: uuid.UUID) -> WebhookSubscription:
    """A new signing secret, effective for every delivery sent from now on (retries included)."""
    sub = await get_subscription(session, subscription_id)
    sub.secret = new_secret()
    sub.updated_at = clock.now()
    await session.flush()
    await record(session, actor, "webhook.secret_rotated", "webhook", sub.id, {"url": sub.url})
    return sub


async def delete_subscription(session: AsyncSession, actor: Actor | None, subscription_id: uuid.UUID) -> None:
    """Delete the subscription and every delivery still queued or failed for it."""
    sub = await get_subscription(session, subscription_id)
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.subscription_id == sub.id))
    await session.delete(sub)
    await session.flush()
    await record(session, actor, "webhook.deleted", "webhook", subscription_id, _audit_view(sub))


# -- events → deliveries (inside the change's transaction) -----------------------------------


def _json(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return clock.ensure_utc(value).isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


_MESSAGE_FIELDS = (
    "id",
    "conversation_id",
    "customer_id",
    "direction",
    "channel",
    "author_type",
    "author_id",
    "text",
    "html",
    "external_id",
    "delivery_status",
    "error",
    "created_at",
    "status_at",
)
_CONVERSATION_FIELDS = (
    "id",
    "customer_id",
    "channel",
    "inbox_id",
    "subject",
    "status",
    "priority",
    "queue_id",
    "assignee_id",
    "team_id",
    "last_message_at",
    "message_count",
    "created_at",
    "updated_at",
)


async def _rows_by_id(conn: AsyncConnection, table: Table, fields: Iterable[str], ids: set[str]) -> dict[str, Any]:
    if not ids:
        return {}
    cols = [table.c[f] for f in fields]
    rows = await conn.execute(select(*cols).where(table.c.id.in_([uuid.UUID(i) for i in ids])))
    return {str(r.id): {k: _json(v) for k, v in r._mapping.items()} for r in rows}


def _conversation_data(event: ConversationUpdated) -> dict[str, Any]:
    data: dict[str, Any] = {"conversation": event.conversation.model_dump(mode="json"), "changes": list(event.changes)}
    if event.by is not None:
        data["by"] = event.by
    return data


def _status_data(event: MessageStatusChanged) -> dict[str, Any]:
    return {
        "conversation_id": str(event.conversation_id),
        "message": {
            "id": str(event.message_id),
            "channel": event.channel,
            "delivery_status": event.delivery_status,
            "external_id": event.external_id,
            "error": event.error,
            "status_at": event.status_at.isoformat() if event.status_at is not None else None,
            **event.extra,
        },
    }


WebhookSource = ConversationUpdated | MessageReceived | MessageCreated | MessageStatusChanged


async def webhook_events(conn: AsyncConnection, events: Sequence[WebhookSource]) -> list[tuple[str, dict[str, Any]]]:
    """The integrator-facing ``(type, data)`` of a unit of work's domain events, in order.

    ``ConversationCreated`` is ``conversation.created``; a message stored by the inbound path
    (``MessageReceived``, a flat summary) is expanded to ``{conversation_id, message}`` from its
    row, preceded by ``conversation.created`` when it opened the conversation.
    """
    out: list[tuple[str, dict[str, Any]]] = []
    flat_messages: set[str] = set()
    new_conversations: set[str] = set()
    for event in events:
        if isinstance(event, MessageReceived):
            flat_messages.add(str(event.message_id))
            if event.new_conversation:
                new_conversations.add(str(event.conversation_id))
    messages = await _rows_by_id(conn, _messages, _MESSAGE_FIELDS, flat_messages)
    conversations = await _rows_by_id(conn, _conversations, _CONVERSATION_FIELDS, new_conversations)
    for event in events:
        if isinstance(event, ConversationUpdated):
            created = isinstance(event, ConversationCreated) or "created" in event.changes
            out.append((CONVERSATION_CREATED if created else CONVERSATION_UPDATED, _conversation_data(event)))
        elif isinstance(event, MessageReceived):
            message = messages.get(str(event.message_id))
            if message is None:
                continue
            conv_id = str(event.conversation_id)
            if conv_id in conversations:
                out.append((CONVERSATION_CREATED, {"conversation": conversations.pop(conv_id), "changes": ["created"]}))
            out.append((MESSAGE_CREATED, {"conversation_id": conv_id, "message": message}))
        elif isinstance(event, MessageCreated):
            data = {"conversation_id": str(event.conversation_id), "message": event.message.model_dump(mode="json")}
            out.append((MESSAGE_CREATED, data))
        elif isinstance(event, MessageStatusChanged):
            out.append((MESSAGE_UPDATED, _status_data(event)))
    return out


# What each domain event can turn into (to skip the work when nobody listens).
_BECOMES: dict[type, tuple[str, ...]] = {
    ConversationUpdated: (CONVERSATION_UPDATED,),
    ConversationCreated: (CONVERSATION_CREATED,),
    MessageReceived: (CONVERSATION_CREATED, MESSAGE_CREATED),
    MessageCreated: (MESSAGE_CREATED,),
    MessageSent: (MESSAGE_CREATED,),
    NoteAdded: (MESSAGE_CREATED,),
    CustomerMessageCreated: (MESSAGE_CREATED,),
    MessageStatusChanged: (MESSAGE_UPDATED,),
}
SUBSCRIBED: tuple[type, ...] = (ConversationUpdated, MessageReceived, MessageCreated, MessageStatusChanged)


def _wake_loops() -> None:
    for wake in list(_wakeups):
        wake()


# Built once: the bus runs this for every batch of the ingest writer.
_ACTIVE_SUBSCRIPTIONS = select(_subscriptions.c.id, _subscriptions.c.events).where(_subscriptions.c.active)


async def enqueue_deliveries(conn: AsyncConnection, events: list[WebhookSource]) -> list[Callable[[], None]]:
    """Bus subscriber, in the transaction: a delivery per (event, matching active subscription)."""
    if not events:
        return []
    subs = (await conn.execute(_ACTIVE_SUBSCRIPTIONS)).all()
    if not subs:
        return []
    wanted = {t for _id, types in subs for t in (types or [])}
    possible = {t for event in events for t in _BECOMES.get(type(event), ())}
    if ALL not in wanted and not (wanted & possible):
        return []
    now = clock.now()
    rows: list[dict[str, Any]] = []
    for type_, data in await webhook_events(conn, events):
        targets = [sub_id for sub_id, types in subs if ALL in (types or []) or type_ in (types or [])]
        if not targets:
            continue
        event_id = new_id()
        payload = {"id": str(event_id), "type": type_, "created_at": now.isoformat(), "data": data}
        rows.extend(
            {
                "id": new_id(),
                "subscription_id": sub_id,
                "event_id": event_id,
                "event_type": type_,
                "payload": payload,
                "status": JobStatus.pending.value,
                "due_at": now,
                "attempts": 0,
                "max_attempts": MAX_ATTEMPTS,
                "locked_by": None,
                "locked_until": None,
                "last_error": None,
                "created_at": now,
            }
            for sub_id in targets
        )
    if not rows:
        return []
    await conn.execute(insert(_deliveries), rows)
    return [_wake_loops]


# -- the dead-letter list --------------------------------------------------------------------


async def list_dead_letters(
    session: AsyncSession, *, kind: str | None = None, limit: int = 50, cursor: str | None = None
) -> tuple[list[DeadLetterOut], str | None]:
    """Failed outbox items and webhook deliveries, newest first (keyset on the time-ordered ids)."""
    before: uuid.UUID | None = None
    if cursor:
        (raw,) = decode_cursor(cursor, 1)
        try:
            before = uuid.UUID(raw)
        except ValueError:
            raise Invalid("cursor is not one this server issued", field="cursor") from None
    found: list[DeadLetterOut] = []
    failed = JobStatus.failed.value
    if kind in (None, "outbox"):
        stmt = (
            select(OutboxItem, Message.conversation_id, Inbox.config)
            .join(Message, Message.id == OutboxItem.message_id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .outerjoin(Inbox, Inbox.id == Conversation.inbox_id)
            .where(OutboxItem.status == failed)
            .order_by(OutboxItem.id.desc())
            .limit(limit + 1)
        )
        if before is not None:
            stmt = stmt.where(OutboxItem.id < before)
        for item, conversation_id, config in (await session.execute(stmt)).all():
            url = (config or {}).get("webhook_url") if item.channel == Channel.api.value else None
            found.append(
                DeadLetterOut(
                    id=item.id,
                    kind="outbox",
                    target=url if isinstance(url, str) else item.channel,
                    attempts=item.attempts,
                    max_attempts=item.max_attempts,
                    last_error=item.last_error,
                    created_at=item.created_at,
                    last_attempt_due_at=item.due_at,
                    channel=item.channel,
                    message_id=item.message_id,
                    conversation_id=conversation_id,
                )
            )
    if kind in (None, "webhook"):
        wstmt = (
            select(WebhookDelivery, WebhookSubscription.url)
            .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
            .where(WebhookDelivery.status == failed)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit + 1)
        )
        if before is not None:
            wstmt = wstmt.where(WebhookDelivery.id < before)
        for delivery, url in (await session.execute(wstmt)).all():
            found.append(
                DeadLetterOut(
                    id=delivery.id,
                    kind="webhook",
                    target=url,
                    attempts=delivery.attempts,
                    max_attempts=delivery.max_attempts,
                    last_error=delivery.last_error,
                    created_at=delivery.created_at,
                    last_attempt_due_at=delivery.due_at,
                    subscription_id=delivery.subscription_id,
                    event_type=delivery.event_type,
                    event_id=delivery.event_id,
                )
            )
    found.sort(key=lambda d: d.id, reverse=True)
    if len(found) <= limit:
        return found, None
    page = found[:limit]
    return page, encode_cursor(page[-1].id)


async def delivery_of(session: AsyncSession, message_id: uuid.UUID) -> DeliveryOut:
    """The delivery state of one message with the reason it failed (admins only: agents see
    ``agent_error``)."""
    message = await get_or_404(session, Message, message_id, "message")
    item = await session.scalar(select(OutboxItem).where(OutboxItem.message_id == message.id))
    target = None
    if message.channel == Channel.api.value:
        config = await session.scalar(
            select(Inbox.config)
            .join(Conversation, Conversation.inbox_id == Inbox.id)
            .where(Conversation.id == message.conversation_id)
        )
        url = (config or {}).get("webhook_url")
        target = url if isinstance(url, str) else None
    return DeliveryOut(
        message_id=message.id,
        conversation_id=message.conversation_id,
        channel=message.channel,
        delivery_status=message.delivery_status,
        status_at=message.status_at,
        external_id=message.external_id,
        error=agent_error(message.delivery_status, message.error),
        error_detail=message.error,
        target=target,
        outbox=OutboxItemOut(
            id=item.id,
            status=item.status,
            attempts=item.attempts,
            max_attempts=item.max_attempts,
            last_error=item.last_error,
            due_at=item.due_at,
        )
        if item is not None
        else None,
    )


async def _dead_letter(session: AsyncSession, item_id: uuid.UUID) -> OutboxItem | WebhookDelivery:
    row: OutboxItem | WebhookDelivery | None = await session.get(OutboxItem, item_id)
    if row is None:
        row = await session.get(WebhookDelivery, item_id)
    if row is None:
        raise NotFound(f"No outbox item or webhook delivery with id {item_id}.")
    if row.status != JobStatus.failed.value:
        raise Conflict(f"{item_id} is {row.status}, not failed: only dead letters can be replayed or discarded.")
    return row


def _kind(row: OutboxItem | WebhookDelivery) -> str:
    return "outbox" if isinstance(row, OutboxItem) else "webhook"


async def replay_dead_letter(session: AsyncSession, actor: Actor | None, item_id: uuid.UUID) -> str:
    """Put a failed item back to ``pending`` with a fresh set of attempts; its kind."""
    row = await _dead_letter(session, item_id)
    kind = _kind(row)
    if isinstance(row, WebhookDelivery):
        sub = await session.get(WebhookSubscription, row.subscription_id)
        if sub is None or not sub.active:
            raise Conflict("The webhook subscription is inactive; activate it before replaying its deliveries.")
    audit = {"attempts": row.attempts, "last_error": row.last_error}
    row.status = JobStatus.pending.value
    row.attempts = 0
    row.due_at = clock.now()
    row.locked_by = None
    row.locked_until = None
    if isinstance(row, OutboxItem):
        message = await session.get(Message, row.message_id)
        if message is not None:
            message.delivery_status = DeliveryStatus.queued.value
            message.error = None
            message.status_at = clock.now()
            publish_delivery_status(session, message)
        wake = session.info.get("outbox_wakeup")
    else:
        wake = _wake_loops
    await session.flush()
    await record(session, actor, "dead_letter.replayed", kind, row.id, audit)
    if wake is not None:

        async def _wake() -> None:
            wake()

        after_commit(session, _wake)
    return kind


async def discard_dead_letter(session: AsyncSession, actor: Actor | None, item_id: uuid.UUID) -> str:
    """Drop a failed item for good (a failed message stays failed); its kind."""
    row = await _dead_letter(session, item_id)
    kind = _kind(row)
    audit: dict[str, Any] = {"attempts": row.attempts, "last_error": row.last_error}
    if isinstance(row, OutboxItem):
        audit["message_id"] = str(row.message_id)
    else:
        audit |= {"subscription_id": str(row.subscription_id), "event_type": row.event_type}
    await session.delete(row)
    await session.flush()
    await record(session, actor, "dead_letter.discarded", kind, item_id, audit)
    return kind


# -- delivery ----------------------------------------------------------------------------------


class WebhookLoop(WorkLoop):
    """Delivers due :class:`WebhookDelivery` rows; one per process, started by ``wiring.start_loops``."""

    model = WebhookDelivery
    name = "webhooks"

    def __init__(self, db: Any, settings: Any = None, **kwargs: Any) -> None:
        super().__init__(db, settings, **kwargs)
        self.policy = netguard.policy_of(settings)
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        """Connections only to addresses netguard allows, checked at connect time; no redirects."""
        if self._client is None:
            self._client = netguard.http_client(self.policy, timeout=TIMEOUT_SECONDS)
        return self._client

    def start(self) -> None:
        _wakeups.append(self.wake)
        super().start()

    async def stop(self, timeout: float = 15.0) -> None:
        if self.wake in _wakeups:
            _wakeups.remove(self.wake)
        await super().stop(timeout)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def process(self, claimed: Claimed) -> None:
        async with self.db.transaction() as session:
            found = (
                await session.execute(
                    select(WebhookDelivery, WebhookSubscription)
                    .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
                    .where(WebhookDelivery.id == claimed.id)
                )
            ).first()
            if found is None or found[0].locked_by != self.worker:
                log.warning("webhooks: %s vanished or its lease was lost", claimed.id)
                return
            delivery, sub = found
            url, secret, active, payload = sub.url, sub.secret, sub.active, delivery.payload
        if not active:
            await self.record_failure(claimed, "the webhook subscription is inactive", permanent=True)
            return
        try:
            await post_signed(url, orjson.dumps(payload), secret, str(claimed.id), client=self.client)
        except PermanentError as exc:
            await self.record_failure(claimed, str(exc), permanent=True)
            return
        except Exception as exc:
            await self.record_failure(claimed, str(exc) or type(exc).__name__)
            return
        try:
            async with self.db.transaction() as session:
                await self.complete(session, claimed)
        except LeaseLost:
            log.warning("webhooks: delivered %s but its lease was lost; the new holder resends it", claimed.id)
