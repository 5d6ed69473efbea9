"""Conversations: creating, editing (status, assignment, tags), agent replies, snooze wake-ups.

The rest of the package sits beside it: ``queries`` (views, lists, counts), ``messages`` (the
message writer, notes, @mentions), ``attachments`` and ``tags``.

Every function takes the request's session first, flushes and never commits; changes are emitted
as domain events (``frontdesk.events``: ``ConversationCreated``, ``ConversationUpdated``,
``MessageSent``, ``NoteAdded``…) that routing and webhooks hear in the transaction and the desks
after the commit (``frontdesk.realtime_payloads`` builds the frames), so nothing is pushed for work
that rolled back. An agent reply and its delivery job (the outbox row) are
written in the same unit of work.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock, timers
from frontdesk.audit import service as audit
from frontdesk.bus import emit
from frontdesk.conversations.assignment import assign

# Moved to modules of their own; named here too for the callers of ``conversations.service``.
from frontdesk.conversations.attachments import ALLOWED_CONTENT_TYPES as ALLOWED_CONTENT_TYPES
from frontdesk.conversations.attachments import ATTACHMENT_URL as ATTACHMENT_URL
from frontdesk.conversations.attachments import PayloadTooLarge as PayloadTooLarge
from frontdesk.conversations.attachments import UnsupportedMediaType as UnsupportedMediaType
from frontdesk.conversations.attachments import attachment_view as attachment_view
from frontdesk.conversations.attachments import create_attachment as create_attachment
from frontdesk.conversations.attachments import get_attachment as get_attachment
from frontdesk.conversations.attachments import resolve_content_type as resolve_content_type
from frontdesk.conversations.attachments import safe_filename as safe_filename
from frontdesk.conversations.messages import Author as Author
from frontdesk.conversations.messages import _add_message
from frontdesk.conversations.messages import add_note as add_note
from frontdesk.conversations.messages import add_system_message as add_system_message
from frontdesk.conversations.messages import mention_handles as mention_handles
from frontdesk.conversations.messages import mentioned_users as mentioned_users
from frontdesk.conversations.queries import ACTIVE_STATUSES as ACTIVE_STATUSES
from frontdesk.conversations.queries import ConversationFilters as ConversationFilters
from frontdesk.conversations.queries import conversation_counts as conversation_counts
from frontdesk.conversations.queries import conversation_view as conversation_view
from frontdesk.conversations.queries import conversation_views as conversation_views
from frontdesk.conversations.queries import decode_time_cursor as decode_time_cursor
from frontdesk.conversations.queries import get_conversation as get_conversation
from frontdesk.conversations.queries import get_message as get_message
from frontdesk.conversations.queries import list_conversations as list_conversations
from frontdesk.conversations.queries import list_messages as list_messages
from frontdesk.conversations.queries import message_views as message_views
from frontdesk.conversations.queries import parse_statuses as parse_statuses
from frontdesk.conversations.queries import time_cursor as time_cursor
from frontdesk.conversations.schemas import (
    ConversationCreate,
    ConversationOut,
    ConversationUpdate,
)
from frontdesk.conversations.tags import _insert_tags
from frontdesk.conversations.tags import normalise_tag as normalise_tag
from frontdesk.errors import Invalid
from frontdesk.events import Actor as Actor
from frontdesk.events import ConversationCreated, ConversationUpdated
from frontdesk.ids import new_id
from frontdesk.models import (
    Conversation,
    ConversationTag,
    Customer,
    Inbox,
    Message,
    Queue,
    Team,
    Timer,
    User,
)
from frontdesk.models.enums import Channel, ConversationStatus, Direction

SNOOZE_TIMER = "conversation.snooze_ended"  # handled by reopen_snoozed below


@dataclass
class _AuthorActor:
    """An :class:`Author` from another package (only a user id) acting in the audit log as that user."""

    user_id: uuid.UUID
    actor_kind: str = "user"


# -- writing conversations -----------------------------------------------------------------------


async def _check_refs(session: AsyncSession, **refs: uuid.UUID | None) -> None:
    """Every referenced id must exist: 422 naming the field, never a foreign-key 500."""
    models: dict[str, Any] = {
        "customer_id": Customer,
        "inbox_id": Inbox,
        "queue_id": Queue,
        "team_id": Team,
        "assignee_id": User,
    }
    for field, value in refs.items():
        if value is None:
            continue
        row = await session.get(models[field], value)
        if row is None:
            raise Invalid(f"{field}: no such record {value}", field=field)
        if field == "assignee_id" and not row.is_active:
            raise Invalid(f"assignee_id: user {value} is disabled", field=field)
        if field == "customer_id" and row.merged_into_id is not None:
            raise Invalid(f"customer_id: customer was merged into {row.merged_into_id}", field=field)


def _publish_updated(
    session: AsyncSession, view: ConversationOut, changes: Sequence[str], also_users: Iterable[uuid.UUID | None] = ()
) -> None:
    """Emit the change (``ConversationCreated`` / ``ConversationUpdated``); the desks hear it after commit."""
    notify = tuple(u for u in also_users if u is not None)
    if list(changes) == ["created"]:
        emit(session, ConversationCreated(conversation=view, notify=notify))
    else:
        emit(session, ConversationUpdated(conversation=view, changes=tuple(changes), notify=notify))


async def publish_conversation_updated(
    session: AsyncSession, conversation: Conversation, changes: Sequence[str], also_users: Iterable[uuid.UUID] = ()
) -> None:
    """Emit ``ConversationUpdated`` with the conversation's view; for other packages."""
    _publish_updated(session, await conversation_view(session, conversation), changes, also_users)


async def create_conversation(session: AsyncSession, actor: Actor | None, data: ConversationCreate) -> Conversation:
    await _check_refs(
        session,
        customer_id=data.customer_id,
        inbox_id=data.inbox_id,
        queue_id=data.queue_id,
        team_id=data.team_id,
        assignee_id=data.assignee_id,
    )
    if data.inbox_id is not None:
        inbox = await session.get(Inbox, data.inbox_id)
        if inbox is not None and inbox.channel != data.channel.value:
            raise Invalid(
                f"inbox_id: that inbox is a {inbox.channel} inbox, not {data.channel.value}", field="inbox_id"
            )
    tags = sorted({normalise_tag(t, field="tags") for t in data.tags})
    now = clock.now()
    conversation = Conversation(
        id=new_id(),
        customer_id=data.customer_id,
        channel=data.channel.value,
        inbox_id=data.inbox_id,
        subject=data.subject,
        priority=data.priority.value,
        status=ConversationStatus.open.value,
        queue_id=data.queue_id,
        team_id=data.team_id,
        assignee_id=data.assignee_id,
        message_count=0,
        created_at=now,
        updated_at=now,
    )
    session.add(conversation)
    await session.flush()
    await _insert_tags(session, conversation.id, tags)
    if data.assignee_id is not None or data.team_id is not None or data.queue_id is not None:
        await audit.record(
            session,
            actor,
            "conversation.assigned",
            "conversation",
            conversation.id,
            {"assignee_id": _s(data.assignee_id), "team_id": _s(data.team_id), "queue_id": _s(data.queue_id)},
        )
    view = await conversation_view(session, conversation)
    _publish_updated(session, view, ["created"])
    return conversation


def _s(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


async def update_conversation(
    session: AsyncSession,
    actor: Actor,
    conversation_id: uuid.UUID,
    data: ConversationUpdate,
    *,
    via: str | None = None,
) -> Conversation:
    """Apply the fields sent in ``data``; audit assignment and status changes; push ``conversation.updated``.

    The one place a conversation is assigned or transferred by a person: the push it makes is
    what routing hears (``routing.service.forward_conversation_events``, a bus subscriber). ``via`` says in the
    audit what led to it (``"reply"``) when it is not a direct edit.
    """
    conversation = await get_conversation(session, conversation_id)
    previous_assignee = conversation.assignee_id
    sent = data.model_fields_set
    now = clock.now()
    changes: list[str] = []

    for field in ("priority", "status"):
        if field in sent and getattr(data, field) is None:
            raise Invalid(f"{field} cannot be null", field=field)
    if "snoozed_until" in sent and data.status is not ConversationStatus.snoozed:
        raise Invalid("snoozed_until is only accepted together with status 'snoozed'", field="snoozed_until")
    if "note" in sent and not sent & {"assignee_id", "team_id", "queue_id"}:
        raise Invalid("note is only accepted with an assignment or transfer", field="note")

    if "subject" in sent and data.subject != conversation.subject:
        conversation.subject = data.subject
        changes.append("subject")
    if data.priority is not None and data.priority.value != conversation.priority:
        conversation.priority = data.priority.value
        changes.append("priority")

    # -- assignment / transfer
    assign_fields = [f for f in ("assignee_id", "team_id", "queue_id") if f in sent]
    await _check_refs(session, **{f: getattr(data, f) for f in assign_fields})
    assignment: dict[str, Any] = {}
    for field in assign_fields:
        old, new = getattr(conversation, field), getattr(data, field)
        if old != new:
            if field == "assignee_id":
                assign(conversation, new)  # the one writer of the assignee
            else:
                setattr(conversation, field, new)
            assignment[field] = {"from": _s(old), "to": _s(new)}
            changes.append(field)
    if assignment or (data.note and assign_fields):
        if data.note:
            assignment["note"] = data.note
        if via:
            assignment["via"] = via
        await audit.record(session, actor, "conversation.assigned", "conversation", conversation.id, assignment)
    if data.note and assign_fields:
        await _add_message(
            session,
            conversation,
            actor,
            direction=Direction.note,
            text=data.note,
            html=None,
            channel=None,
            attachment_ids=(),
            meta={"kind": "transfer"},
        )

    # -- status
    if data.status is not None:
        old_status = conversation.status
        new_status = data.status
        if new_status is ConversationStatus.snoozed:
            if data.snoozed_until is None:
                raise Invalid("snoozing needs snoozed_until", field="snoozed_until")
            until = clock.ensure_utc(data.snoozed_until)
            if until <= now:
                raise Invalid("snoozed_until must be in the future", field="snoozed_until")
            if conversation.snoozed_until != until:
                conversation.snoozed_until = until
                changes.append("snoozed_until")
                # One wake-up per conversation (keyed): snoozing again moves it.
                await timers.schedule(
                    session,
                    SNOOZE_TIMER,
                    until,
                    {"conversation_id": str(conversation.id)},
                    key=timers.snooze_key(conversation.id),
                )
        elif conversation.snoozed_until is not None:
            conversation.snoozed_until = None
            changes.append("snoozed_until")
            await timers.cancel(session, timers.snooze_key(conversation.id))
        if new_status.value != old_status:
            conversation.status = new_status.value
            changes.append("status")
            if new_status is ConversationStatus.resolved:
                conversation.resolved_at = now
                conversation.resolution_seconds = max(0, int((now - conversation.created_at).total_seconds()))
                conversation.waiting_since = None  # nobody waits on a resolved conversation
            elif old_status == ConversationStatus.resolved.value:
                conversation.resolved_at = None
                conversation.resolution_seconds = None
                # Reopened by hand: a thread of its own, never a second holder of the customer's
                # one auto-opened conversation for this inbox (which may exist by now).
                conversation.auto_open = False
        if "status" in changes or "snoozed_until" in changes:
            await audit.record(
                session,
                actor,
                "conversation.status_changed",
                "conversation",
                conversation.id,
                {"from": old_status, "to": new_status.value, "snoozed_until": _s(_iso(conversation.snoozed_until))},
            )

    if changes:
        conversation.updated_at = now
        await session.flush()
        _publish_updated(session, await conversation_view(session, conversation), changes, [previous_assignee])
    return conversation


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def set_tag(session: AsyncSession, conversation_id: uuid.UUID, tag: str, present: bool) -> Conversation:
    """Add (``present``) or remove a tag; both are idempotent."""
    conversation = await get_conversation(session, conversation_id)
    tag = normalise_tag(tag)
    if present:
        await _insert_tags(session, conversation.id, [tag])
    else:
        await session.execute(
            delete(ConversationTag).where(
                ConversationTag.conversation_id == conversation.id, ConversationTag.tag == tag
            )
        )
    conversation.updated_at = clock.now()
    await session.flush()
    _publish_updated(session, await conversation_view(session, conversation), ["tags"])
    return conversation


async def add_agent_reply(
    session: AsyncSession,
    conversation_id: uuid.UUID,
    author: Author,
    text: str | None,
    html: str | None = None,
    channel: Channel | str | None = None,
    attachment_ids: Sequence[uuid.UUID] | None = None,
) -> Message:
    """An outbound agent message and its delivery job (outbox row), in the caller's unit of work.

    ``html`` is sanitised; without ``text`` a plain-text version is derived from it. ``channel``
    defaults to the conversation's. Sets first-response time on the first agent reply. An
    unassigned conversation is assigned to the author (:func:`update_conversation`, audited with
    ``via: "reply"``).
    """
    # Locked on PostgreSQL so that of two agents answering an unassigned conversation at once,
    # the second sees the first's assignment.
    lock = session.get_bind().dialect.name != "sqlite"
    found = await session.get(Conversation, conversation_id, with_for_update=lock, populate_existing=lock)
    conversation = found if found is not None else await get_conversation(session, conversation_id)
    if channel is not None:
        try:
            channel = Channel(channel)
        except ValueError as exc:
            raise Invalid(f"unknown channel {channel!r}", field="channel") from exc
        if channel is Channel.voice:
            raise Invalid("a reply cannot be sent on the voice channel", field="channel")
    elif conversation.channel == Channel.voice.value:
        raise Invalid("this is a voice conversation: choose a channel to reply on", field="channel")
    if conversation.assignee_id is None:
        # Whoever answers an unassigned conversation takes it (as in Zendesk and Chatwoot),
        # through the same path as any assignment, so routing withdraws its offers.
        actor: Actor = cast(Actor, author) if hasattr(author, "actor_kind") else _AuthorActor(author.user_id)
        await update_conversation(
            session, actor, conversation.id, ConversationUpdate(assignee_id=author.user_id), via="reply"
        )
    return await _add_message(
        session,
        conversation,
        author,
        direction=Direction.outbound,
        text=text,
        html=html,
        channel=channel,
        attachment_ids=attachment_ids or (),
    )


async def reopen_snoozed(session: AsyncSession, timer: Timer) -> None:
    """Timer handler: reopen a snoozed conversation whose ``snoozed_until`` has passed."""
    raw = timer.payload.get("conversation_id")
    try:
        conversation_id = uuid.UUID(str(raw))
    except ValueError as exc:
        raise timers.PermanentFailure(f"bad conversation_id in payload: {raw!r}") from exc
    lock = session.get_bind().dialect.name != "sqlite"
    conversation = await session.get(Conversation, conversation_id, with_for_update=lock)
    if conversation is None or conversation.status != ConversationStatus.snoozed.value:
        return  # deleted, or woken by hand already
    if conversation.snoozed_until is not None and conversation.snoozed_until > clock.now():
        return  # snoozed again for longer; its own timer will come
    conversation.status = ConversationStatus.open.value
    conversation.snoozed_until = None
    conversation.updated_at = clock.now()
    await session.flush()
    await publish_conversation_updated(session, conversation, ["status", "snoozed_until"])
