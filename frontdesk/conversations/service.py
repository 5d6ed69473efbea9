"""Conversations, agent replies, notes, tags and attachments: the business rules.

Every function takes the request's session first, flushes and never commits; pushes to agent
desktops (``conversation.updated``, ``conversation.message_created`` on topics ``desk`` and
``conversation:{id}``) are queued with :func:`frontdesk.realtime.publish_after_commit`, so nothing
is pushed for work that rolled back. An agent reply and its delivery job (the outbox row) are
written in the same unit of work.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import re
import unicodedata
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from sqlalchemy import ColumnElement, and_, case, delete, exists, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from frontdesk import clock, timers
from frontdesk.audit import service as audit
from frontdesk.conversations import outbox
from frontdesk.conversations.assignment import assign
from frontdesk.conversations.ingest import PREVIEW_CHARS
from frontdesk.conversations.sanitize import html_to_text, sanitize_html
from frontdesk.conversations.schemas import (
    AttachmentOut,
    ConversationCounts,
    ConversationCreate,
    ConversationOut,
    ConversationSort,
    ConversationUpdate,
    MessageAuthOut,
    MessageOut,
)
from frontdesk.db import UTCDateTime, get_or_404
from frontdesk.errors import Invalid, ProblemError
from frontdesk.ids import new_id
from frontdesk.models import (
    Attachment,
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
from frontdesk.models.enums import AuthorType, Channel, ConversationStatus, DeliveryStatus, Direction, Priority
from frontdesk.pagination import decode_cursor, encode_cursor
from frontdesk.realtime import conversation_topics, publish_after_commit
from frontdesk.storage import AttachmentStore, new_key

DESK_TOPIC = "desk"
EVENT_UPDATED = "conversation.updated"
EVENT_MESSAGE_CREATED = "conversation.message_created"
EVENT_MENTIONED = "conversation.mentioned"
SNOOZE_TIMER = "conversation.snooze_ended"  # handled by reopen_snoozed below
ATTACHMENT_URL = "/api/v1/attachments/{id}"


class Author(Protocol):
    """Whoever writes a reply or note: a :class:`~frontdesk.auth.deps.Principal` or anything with a user id."""

    user_id: uuid.UUID


class Actor(Author, Protocol):
    @property
    def actor_kind(self) -> str: ...


@dataclass
class _AuthorActor:
    """An :class:`Author` from another package (only a user id) acting in the audit log as that user."""

    user_id: uuid.UUID
    actor_kind: str = "user"


class PayloadTooLarge(ProblemError):
    status, title, slug = 413, "Payload too large", "too-large"


class UnsupportedMediaType(ProblemError):
    status, title, slug = 415, "Unsupported media type", "unsupported-media-type"


# -- tags ----------------------------------------------------------------------------------------

_TAG_OK = re.compile(r"^[a-z0-9_-]{1,64}$")


def normalise_tag(value: str, field: str = "tag") -> str:
    """``"  Refund Request "`` → ``"refund-request"``; anything outside ``[a-z0-9_-]`` is refused (422)."""
    tag = re.sub(r"\s+", "-", value.strip().lower())
    if not _TAG_OK.match(tag):
        raise Invalid(
            f"tag {value[:80]!r} must be 1-64 characters of a-z, 0-9, '_' or '-' (after lower-casing)", field=field
        )
    return tag


async def _insert_tags(session: AsyncSession, conversation_id: uuid.UUID, tags: Iterable[str]) -> None:
    rows = [{"conversation_id": conversation_id, "tag": t, "created_at": clock.now()} for t in tags]
    if not rows:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(insert(ConversationTag).values(rows).on_conflict_do_nothing())


# -- reading conversations -----------------------------------------------------------------------


async def get_conversation(session: AsyncSession, conversation_id: uuid.UUID) -> Conversation:
    conversation = await get_or_404(session, Conversation, conversation_id, "conversation")
    return conversation


async def conversation_views(session: AsyncSession, conversations: Sequence[Conversation]) -> list[ConversationOut]:
    """API views of ``conversations`` with their tags, customer names and the preview of their last
    message (two queries, no N+1)."""
    if not conversations:
        return []
    ids = [c.id for c in conversations]
    tags: dict[uuid.UUID, list[str]] = defaultdict(list)
    for cid, tag in await session.execute(
        select(ConversationTag.conversation_id, ConversationTag.tag)
        .where(ConversationTag.conversation_id.in_(ids))
        .order_by(ConversationTag.tag)
    ):
        tags[cid].append(tag)
    last_id = (
        select(Message.id)
        .where(Message.conversation_id == Conversation.id, Message.direction != Direction.note.value)
        .order_by(Message.created_at.desc())
        .limit(1)
        .correlate(Conversation)
        .scalar_subquery()
    )
    last = aliased(Message)
    names_and_previews = {
        cid: (name, message_id, text)
        for cid, name, message_id, text in await session.execute(
            select(Conversation.id, Customer.name, last.id, func.substr(last.text, 1, _PREVIEW_FETCH))
            .join(Customer, Customer.id == Conversation.customer_id)
            .outerjoin(last, last.id == last_id)
            .where(Conversation.id.in_(ids))
        )
    }
    # A last message without text is described by the UI from its attachments (rare: one more
    # query only then).
    textless = [m for _, m, text in names_and_previews.values() if m is not None and not (text or "").strip()]
    files: dict[uuid.UUID, list[str]] = defaultdict(list)
    if textless:
        for message_id, filename in await session.execute(
            select(Attachment.message_id, Attachment.filename)
            .where(Attachment.message_id.in_(textless))
            .order_by(Attachment.created_at, Attachment.id)
        ):
            if message_id is not None:
                files[message_id].append(filename)
    out = []
    for c in conversations:
        view = ConversationOut.model_validate(c)
        view.tags = tags.get(c.id, [])
        view.customer_name, message_id, text = names_and_previews.get(c.id, (None, None, None))
        view.last_message_preview = _preview(text)
        if message_id is not None and view.last_message_preview is None:
            view.last_message_attachments = files.get(message_id, [])[:10]
            view.last_message_empty = not view.last_message_attachments
        out.append(view)
    return out


# Enough characters to fill a preview after whitespace runs are folded.
_PREVIEW_FETCH = 4 * PREVIEW_CHARS


def _preview(text: str | None) -> str | None:
    """One line of at most ``PREVIEW_CHARS`` characters: whitespace runs become one space; "…"
    marks a cut."""
    if not text:
        return None
    return _one_line(text, PREVIEW_CHARS, cut=len(text) >= _PREVIEW_FETCH) or None


async def conversation_view(session: AsyncSession, conversation: Conversation) -> ConversationOut:
    return (await conversation_views(session, [conversation]))[0]


@dataclass
class ConversationFilters:
    status: ConversationStatus | Sequence[ConversationStatus] | None = None  # one, or any of several
    assignee: str | None = None  # "me", "none" or a user id
    queue_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    channel: Channel | None = None
    tag: str | None = None
    customer_id: uuid.UUID | None = None
    inbox_id: uuid.UUID | None = None


def _sort_column(sort: ConversationSort) -> ColumnElement[Any]:
    if sort is ConversationSort.created_at:
        return Conversation.created_at  # type: ignore[return-value]
    # A conversation without messages yet sorts by when it was opened.
    return func.coalesce(Conversation.last_message_at, Conversation.created_at, type_=UTCDateTime())


# ``waiting`` and ``priority`` walk forward (ascending); conversations nobody waits on come last.
NOT_WAITING = datetime(9999, 12, 31, tzinfo=UTC)
PRIORITY_RANK = {Priority.urgent.value: 0, Priority.high.value: 1, Priority.normal.value: 2, Priority.low.value: 3}


def _waiting_key() -> ColumnElement[Any]:
    return func.coalesce(Conversation.waiting_since, literal(NOT_WAITING, UTCDateTime()), type_=UTCDateTime())


def _priority_key() -> ColumnElement[Any]:
    return case(*((Conversation.priority == p, rank) for p, rank in PRIORITY_RANK.items()), else_=len(PRIORITY_RANK))


def _ascending_keys(sort: ConversationSort) -> list[ColumnElement[Any]]:
    keys: list[ColumnElement[Any]] = [_waiting_key(), Conversation.id]  # type: ignore[list-item]
    return [_priority_key(), *keys] if sort is ConversationSort.priority else keys


def _after(keys: Sequence[ColumnElement[Any]], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows that come after ``values`` in the ascending order of ``keys`` (lexicographic)."""
    alternatives = []
    for i, key in enumerate(keys):
        alternatives.append(and_(*(keys[j] == values[j] for j in range(i)), key > values[i]))
    return or_(*alternatives)


def _ascending_cursor(sort: ConversationSort, row: Conversation) -> str:
    at = clock.ensure_utc(row.waiting_since).isoformat() if row.waiting_since is not None else NOT_WAITING.isoformat()
    if sort is ConversationSort.priority:
        return encode_cursor(sort.value, PRIORITY_RANK.get(row.priority, len(PRIORITY_RANK)), at, row.id)
    return encode_cursor(sort.value, at, row.id)


def _ascending_values(sort: ConversationSort, cursor: str) -> list[Any]:
    parts = decode_cursor(cursor, 4 if sort is ConversationSort.priority else 3)
    if parts[0] != sort.value:
        raise Invalid("cursor belongs to another sort order", field="cursor")
    try:
        at = datetime.fromisoformat(parts[-2])
        item_id = uuid.UUID(parts[-1])
        rank = [int(parts[1])] if sort is ConversationSort.priority else []
    except ValueError as exc:
        raise Invalid("cursor is not one this server issued", field="cursor") from exc
    if at.tzinfo is None:
        raise Invalid("cursor is not one this server issued", field="cursor")
    return [*(literal(r) for r in rank), literal(clock.ensure_utc(at), UTCDateTime()), item_id]


def _statuses(status: ConversationStatus | Sequence[ConversationStatus] | None) -> list[str]:
    if status is None:
        return []
    if isinstance(status, ConversationStatus):
        return [status.value]
    return list(dict.fromkeys(ConversationStatus(s).value for s in status))


def parse_statuses(raw: str | None) -> list[ConversationStatus]:
    """``"open,pending"`` → both; 422 naming ``status`` for an unknown one."""
    out: list[ConversationStatus] = []
    for part in (raw or "").split(","):
        if not part.strip():
            continue
        try:
            out.append(ConversationStatus(part.strip().lower()))
        except ValueError as exc:
            allowed = ", ".join(s.value for s in ConversationStatus)
            raise Invalid(
                f"unknown status {part.strip()[:40]!r}; use one or more of: {allowed}", field="status"
            ) from exc
    return out


async def list_conversations(
    session: AsyncSession,
    viewer_id: uuid.UUID,
    filters: ConversationFilters,
    *,
    sort: ConversationSort = ConversationSort.last_message_at,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[Conversation], str | None]:
    """A page of conversations in ``sort`` order; keyset on (sort value(s), id).

    ``last_message_at``/``created_at``: newest first. ``waiting``: longest waiting first, then those
    nobody waits on. ``priority``: urgent → low, each longest waiting first.
    """
    stmt = select(Conversation)
    statuses = _statuses(filters.status)
    if len(statuses) == 1:
        stmt = stmt.where(Conversation.status == statuses[0])
    elif statuses:
        stmt = stmt.where(Conversation.status.in_(statuses))
    if filters.assignee is not None:
        value = filters.assignee.strip().lower()
        if value == "me":
            stmt = stmt.where(Conversation.assignee_id == viewer_id)
        elif value == "none":
            stmt = stmt.where(Conversation.assignee_id.is_(None))
        else:
            try:
                stmt = stmt.where(Conversation.assignee_id == uuid.UUID(value))
            except ValueError as exc:
                raise Invalid("assignee must be 'me', 'none' or a user id", field="assignee") from exc
    if filters.queue_id is not None:
        stmt = stmt.where(Conversation.queue_id == filters.queue_id)
    if filters.team_id is not None:
        stmt = stmt.where(Conversation.team_id == filters.team_id)
    if filters.channel is not None:
        stmt = stmt.where(Conversation.channel == filters.channel.value)
    if filters.customer_id is not None:
        stmt = stmt.where(Conversation.customer_id == filters.customer_id)
    if filters.inbox_id is not None:
        stmt = stmt.where(Conversation.inbox_id == filters.inbox_id)
    if filters.tag is not None:
        tag = normalise_tag(filters.tag)
        stmt = stmt.where(
            exists().where(ConversationTag.conversation_id == Conversation.id, ConversationTag.tag == tag)
        )
    if sort in (ConversationSort.waiting, ConversationSort.priority):
        keys = _ascending_keys(sort)
        if cursor:
            stmt = stmt.where(_after(keys, _ascending_values(sort, cursor)))
        rows = list((await session.scalars(stmt.order_by(*keys).limit(limit + 1))).all())
        if len(rows) <= limit:
            return rows, None
        return rows[:limit], _ascending_cursor(sort, rows[limit - 1])

    key = _sort_column(sort)
    if cursor:
        at, last_id = decode_time_cursor(cursor)
        at_value = literal(at, UTCDateTime())
        stmt = stmt.where(or_(key < at_value, and_(key == at_value, Conversation.id < last_id)))
    stmt = stmt.order_by(key.desc(), Conversation.id.desc()).limit(limit + 1)
    rows = list((await session.scalars(stmt)).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        last_at = last.created_at if sort is ConversationSort.created_at else (last.last_message_at or last.created_at)
        next_cursor = encode_cursor(clock.ensure_utc(last_at).isoformat(), last.id)
    return rows, next_cursor


def decode_time_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    at_raw, id_raw = decode_cursor(cursor, 2)
    try:
        at = datetime.fromisoformat(at_raw)
        item_id = uuid.UUID(id_raw)
    except ValueError as exc:
        raise Invalid("cursor is not one this server issued", field="cursor") from exc
    if at.tzinfo is None:
        raise Invalid("cursor is not one this server issued", field="cursor")
    return at, item_id


def time_cursor(at: datetime, item_id: uuid.UUID) -> str:
    return encode_cursor(clock.ensure_utc(at).isoformat(), item_id)


ACTIVE_STATUSES = (ConversationStatus.open.value, ConversationStatus.pending.value)


async def conversation_counts(session: AsyncSession, viewer_id: uuid.UUID) -> ConversationCounts:
    """Counts for the desk's views in two GROUP BY queries (see :class:`ConversationCounts`)."""
    unassigned_or_mine = ((Conversation.assignee_id.is_(None), 0), (Conversation.assignee_id == viewer_id, 1))
    who = case(*unassigned_or_mine, else_=2).label("who")
    grouped = (Conversation.status, Conversation.channel, Conversation.queue_id, who)
    rows = await session.execute(select(*grouped, func.count()).group_by(*grouped))
    by_status = {s.value: 0 for s in ConversationStatus}
    by_channel: dict[str, int] = defaultdict(int)
    by_queue: dict[str, int] = defaultdict(int)
    mine = unassigned = total = 0
    for status, channel, queue_id, owner, n in rows:
        by_status[status] = by_status.get(status, 0) + n
        if status not in ACTIVE_STATUSES:
            continue
        total += n
        mine += n if owner == 1 else 0
        unassigned += n if owner == 0 else 0
        by_channel[channel] += n
        if queue_id is not None:
            by_queue[str(queue_id)] += n
    tags = await session.execute(
        select(ConversationTag.tag, func.count())
        .join(Conversation, Conversation.id == ConversationTag.conversation_id)
        .where(Conversation.status.in_(ACTIVE_STATUSES))
        .group_by(ConversationTag.tag)
        .order_by(ConversationTag.tag)
    )
    return ConversationCounts(
        mine=mine,
        unassigned=unassigned,
        all=total,
        by_status=by_status,
        by_channel=dict(by_channel),
        by_queue=dict(by_queue),
        by_tag={tag: n for tag, n in tags},
    )


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
    """``conversation.updated`` to every desktop, the conversation's view and its (old and new) assignee."""
    data = {"conversation": view.model_dump(mode="json"), "changes": list(changes)}
    topics = conversation_topics(view.id, view.assignee_id)
    topics += [f"user:{u}" for u in also_users if u is not None and f"user:{u}" not in topics]
    for topic in topics:
        publish_after_commit(session, topic, EVENT_UPDATED, data)


async def publish_conversation_updated(
    session: AsyncSession, conversation: Conversation, changes: Sequence[str], also_users: Iterable[uuid.UUID] = ()
) -> None:
    """Push ``conversation.updated`` (after commit) in the shape every desktop expects; for other packages."""
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
    what routing hears (``routing.service.forward_conversation_events``). ``via`` says in the
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


# -- messages ------------------------------------------------------------------------------------


def attachment_view(attachment: Attachment) -> AttachmentOut:
    return AttachmentOut(
        id=attachment.id,
        message_id=attachment.message_id,
        filename=attachment.filename,
        content_type=attachment.content_type,
        size=attachment.size,
        sha256=attachment.sha256,
        created_at=attachment.created_at,
        url=ATTACHMENT_URL.format(id=attachment.id),
    )


async def message_views(session: AsyncSession, messages: Sequence[Message]) -> list[MessageOut]:
    """API views of ``messages`` with their attachments (one extra query)."""
    if not messages:
        return []
    by_message: dict[uuid.UUID, list[AttachmentOut]] = defaultdict(list)
    for attachment in await session.scalars(
        select(Attachment)
        .where(Attachment.message_id.in_([m.id for m in messages]))
        .order_by(Attachment.created_at, Attachment.id)
    ):
        assert attachment.message_id is not None
        by_message[attachment.message_id].append(attachment_view(attachment))
    out = []
    for m in messages:
        view = MessageOut.model_validate(m)
        view.error = outbox.agent_error(m.delivery_status, m.error)  # the why is for admins only
        view.attachments = by_message.get(m.id, [])
        mentions = (m.meta or {}).get("mentions") if isinstance(m.meta, dict) else None
        if isinstance(mentions, list):
            view.mentions = [uuid.UUID(str(u)) for u in mentions]
        auth = m.meta.get("auth") if isinstance(m.meta, dict) else None
        if isinstance(auth, dict):
            with contextlib.suppress(ValueError):
                view.auth = MessageAuthOut.model_validate(auth)
        out.append(view)
    return out


async def get_message(session: AsyncSession, message_id: uuid.UUID) -> Message:
    message = await get_or_404(session, Message, message_id, "message")
    return message


async def list_messages(
    session: AsyncSession,
    conversation_id: uuid.UUID,
    *,
    after: str | None = None,
    before: str | None = None,
    newest_first: bool = False,
    limit: int = 50,
) -> tuple[list[Message], str | None]:
    """A page of a conversation's messages (notes included); keyset on (created_at, id).

    The walk goes forward (older → newer) from the start or from ``after``, or backward from the
    end or from ``before`` (``newest_first`` without a cursor starts at the newest message). The
    returned ``next_cursor`` continues the same walk: pass it back as ``after`` when walking
    forward, as ``before`` when walking backward. Items are oldest→newest unless ``newest_first``.
    """
    if after and before:
        raise Invalid("send either before or after, not both", field="before")
    await get_conversation(session, conversation_id)
    backward = bool(before) or (newest_first and not after)
    stmt = select(Message).where(Message.conversation_id == conversation_id)
    cursor = before or after
    if cursor:
        at, last_id = decode_time_cursor(cursor)
        at_value = literal(at, UTCDateTime())
        if backward:
            stmt = stmt.where(
                or_(Message.created_at < at_value, and_(Message.created_at == at_value, Message.id < last_id))
            )
        else:
            stmt = stmt.where(
                or_(Message.created_at > at_value, and_(Message.created_at == at_value, Message.id > last_id))
            )
    if backward:
        stmt = stmt.order_by(Message.created_at.desc(), Message.id.desc())
    else:
        stmt = stmt.order_by(Message.created_at, Message.id)
    rows = list((await session.scalars(stmt.limit(limit + 1))).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = time_cursor(rows[-1].created_at, rows[-1].id)
    if backward != newest_first:
        rows.reverse()
    return rows, next_cursor


def _body(text: str | None, html: str | None) -> tuple[str, str | None]:
    clean_html = sanitize_html(html) if html and html.strip() else None
    if text is not None and text.strip():
        return text, clean_html
    return (html_to_text(clean_html) if clean_html else ""), clean_html


async def _claim_attachments(session: AsyncSession, message_id: uuid.UUID, attachment_ids: Sequence[uuid.UUID]) -> None:
    ids = list(dict.fromkeys(attachment_ids))
    if not ids:
        return
    found = {a.id: a for a in await session.scalars(select(Attachment).where(Attachment.id.in_(ids)))}
    for attachment_id in ids:
        attachment = found.get(attachment_id)
        if attachment is None:
            raise Invalid(f"attachment_ids: no attachment {attachment_id}", field="attachment_ids")
        if attachment.message_id is not None:
            raise Invalid(f"attachment_ids: attachment {attachment_id} is already on a message", field="attachment_ids")
    # Conditional update: two replies racing for the same upload cannot both take it.
    result = await session.execute(
        update(Attachment)
        .where(Attachment.id.in_(ids), Attachment.message_id.is_(None))
        .values(message_id=message_id)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", len(ids)) != len(ids):
        raise Invalid("attachment_ids: an attachment was taken by another message", field="attachment_ids")
    for attachment in found.values():
        attachment.message_id = message_id


async def _add_message(
    session: AsyncSession,
    conversation: Conversation,
    author: Author | None,
    *,
    direction: Direction,
    text: str | None,
    html: str | None,
    channel: Channel | str | None,
    attachment_ids: Sequence[uuid.UUID],
    author_type: AuthorType = AuthorType.agent,
    meta: dict[str, Any] | None = None,
) -> Message:
    body_text, body_html = _body(text, html)
    if not body_text.strip() and not attachment_ids:
        raise Invalid("a message needs text, html with some text, or an attachment", field="text")
    now = clock.now()
    outbound = direction is Direction.outbound
    message = Message(
        id=new_id(),
        conversation_id=conversation.id,
        customer_id=conversation.customer_id,
        direction=direction.value,
        channel=str(channel or conversation.channel),
        author_type=author_type.value,
        author_id=author.user_id if author is not None else None,
        text=body_text,
        html=body_html,
        delivery_status=(DeliveryStatus.queued if outbound else DeliveryStatus.sent).value,
        meta=meta or {},
        created_at=now,
        status_at=now,
    )
    session.add(message)
    await session.flush()
    await _claim_attachments(session, message.id, attachment_ids)
    if outbound:
        await outbox.enqueue(session, message)
        first = conversation.first_response_at is None and author_type is AuthorType.agent
        values: dict[str, Any] = {
            "message_count": Conversation.message_count + 1,
            "last_message_at": now,
            "updated_at": now,
        }
        if author_type is AuthorType.agent:
            values["waiting_since"] = None  # answered: the customer no longer waits on us
        if first:
            # Only the first reply sets it, even if two replies race.
            seconds = max(0, int((now - conversation.created_at).total_seconds()))
            values["first_response_at"] = func.coalesce(
                Conversation.first_response_at, literal(now, UTCDateTime()), type_=UTCDateTime()
            )
            values["first_response_seconds"] = func.coalesce(Conversation.first_response_seconds, seconds)
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation.id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        await session.refresh(conversation)
    else:
        conversation.updated_at = now
        await session.flush()
    view = (await message_views(session, [message]))[0]
    data = {"conversation_id": str(conversation.id), "message": view.model_dump(mode="json")}
    for topic in conversation_topics(conversation.id, conversation.assignee_id):
        publish_after_commit(session, topic, EVENT_MESSAGE_CREATED, data)
    return message


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


async def add_note(
    session: AsyncSession,
    conversation_id: uuid.UUID,
    author: Author,
    text: str | None,
    html: str | None = None,
    attachment_ids: Sequence[uuid.UUID] | None = None,
) -> Message:
    """An internal note: only agents see it, it is never delivered (no outbox row).

    ``@handle`` tokens naming an active user (the part of their email before ``@``, e.g.
    ``@anna.petrova``) are kept in ``meta["mentions"]``; each mentioned user but the author gets
    ``conversation.mentioned`` on ``user:<id>`` after the commit. Unknown handles are ignored.
    """
    conversation = await get_conversation(session, conversation_id)
    body_text, _ = _body(text, html)
    mentioned = await mentioned_users(session, body_text)
    message = await _add_message(
        session,
        conversation,
        author,
        direction=Direction.note,
        text=text,
        html=html,
        channel=None,
        attachment_ids=attachment_ids or (),
        meta={"mentions": [str(u.id) for u in mentioned]} if mentioned else None,
    )
    if mentioned:
        by_name = getattr(author, "name", None)
        if by_name is None:
            by_name = await session.scalar(select(User.name).where(User.id == author.user_id))
        data = {
            "conversation_id": str(conversation.id),
            "message_id": str(message.id),
            "by": {"id": str(author.user_id), "name": by_name},
            "excerpt": _one_line(message.text, EXCERPT_CHARS),
        }
        for user in mentioned:
            if user.id != author.user_id:
                publish_after_commit(session, f"user:{user.id}", EVENT_MENTIONED, data)
    return message


_MENTION = re.compile(r"(?<![\w@.+\-])@([a-z0-9][a-z0-9._+\-]{0,63})", re.IGNORECASE)
MAX_MENTIONS = 20
EXCERPT_CHARS = 200


def mention_handles(text: str) -> list[str]:
    """``"ping @Anna.Petrova, and @bob."`` → ``["anna.petrova", "bob"]`` (first 20, in order)."""
    handles: list[str] = []
    for match in _MENTION.finditer(text or ""):
        handle = match.group(1).rstrip("._+-").lower()
        if handle and handle not in handles:
            handles.append(handle)
    return handles[:MAX_MENTIONS]


async def mentioned_users(session: AsyncSession, text: str) -> list[User]:
    """Active users whose email's local part is @mentioned in ``text`` (every one that matches)."""
    handles = mention_handles(text)
    if not handles:
        return []
    email = func.lower(User.email)
    rows = await session.scalars(
        select(User)
        .where(User.is_active.is_(True), or_(*(email.startswith(f"{h}@", autoescape=True) for h in handles)))
        .order_by(User.email)
    )
    return list(rows.all())


def _one_line(text: str, limit: int, cut: bool = False) -> str:
    """``text`` on one line (whitespace runs become one space) of at most ``limit`` characters;
    "…" marks a cut (``cut``: the text was already cut before it got here)."""
    flat = " ".join(text.split())
    return flat[: limit - 1].rstrip() + "…" if cut or len(flat) > limit else flat


# -- attachments ---------------------------------------------------------------------------------

ALLOWED_CONTENT_TYPES = frozenset(
    {
        "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/tiff", "image/heic",
        "image/heif", "image/avif",
        "application/pdf",
        "text/plain", "text/csv", "text/markdown", "text/calendar",
        "application/rtf", "text/rtf",
        "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.presentation",
        "application/zip", "application/x-zip-compressed",
    }
)  # fmt: skip
# SVG and HTML are deliberately absent: they can carry scripts.

_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f\"\\/:*?<>|]+")


def safe_filename(name: str | None) -> str:
    """A file name with no directories, control or shell-special characters; at most 200 characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    base = _UNSAFE_FILENAME.sub("_", base).strip(" .")
    if len(base) > 200:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 200 - len(ext) - 1] + "." + ext) if dot and len(ext) <= 16 else base[:200]
    return base or "attachment"


def resolve_content_type(declared: str | None, filename: str) -> str:
    """The normalised media type; ``application/octet-stream`` is guessed from the file name. 415 if not allowed."""
    content_type = (declared or "").split(";", 1)[0].strip().lower()
    if content_type in ("", "application/octet-stream"):
        content_type = (mimetypes.guess_type(filename, strict=False)[0] or "application/octet-stream").lower()
    if content_type not in ALLOWED_CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"Files of type {content_type or 'unknown'} are not accepted; send images, PDF, text, "
            "office documents or zip archives."
        )
    return content_type


async def create_attachment(
    session: AsyncSession,
    store: AttachmentStore,
    *,
    filename: str | None,
    content_type: str | None,
    data: bytes,
    max_bytes: int,
) -> Attachment:
    """Store the bytes, then the row (not yet on a message; a reply claims it by id)."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"Attachments are limited to {max_bytes // (1024 * 1024)} MB.")
    if not data:
        raise Invalid("the file is empty", field="file")
    name = safe_filename(filename)
    media_type = resolve_content_type(content_type, name)
    attachment_id = new_id()
    key = new_key(attachment_id)
    await store.put(key, data, media_type)
    attachment = Attachment(
        id=attachment_id,
        message_id=None,
        filename=name,
        content_type=media_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        storage_key=key,
        created_at=clock.now(),
    )
    session.add(attachment)
    await session.flush()
    return attachment


async def get_attachment(session: AsyncSession, attachment_id: uuid.UUID) -> Attachment:
    attachment = await get_or_404(session, Attachment, attachment_id, "attachment")
    return attachment


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
