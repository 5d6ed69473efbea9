"""Reading conversations and messages: the API views, filtered and keyset-paged lists, counts."""

from __future__ import annotations

import contextlib
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from frontdesk import clock
from frontdesk.conversations import outbox
from frontdesk.conversations.attachments import attachment_view
from frontdesk.conversations.ingest import PREVIEW_CHARS
from frontdesk.conversations.schemas import (
    AttachmentOut,
    ConversationCounts,
    ConversationOut,
    ConversationSort,
    MessageAuthOut,
    MessageOut,
)
from frontdesk.conversations.tags import normalise_tag
from frontdesk.db import UTCDateTime, get_or_404
from frontdesk.errors import Invalid
from frontdesk.models import (
    Attachment,
    Conversation,
    ConversationTag,
    Customer,
    Message,
)
from frontdesk.models.enums import Channel, ConversationStatus, Direction, Priority
from frontdesk.pagination import decode_cursor, encode_cursor

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


def _one_line(text: str, limit: int, cut: bool = False) -> str:
    """``text`` on one line (whitespace runs become one space) of at most ``limit`` characters;
    "…" marks a cut (``cut``: the text was already cut before it got here)."""
    flat = " ".join(text.split())
    return flat[: limit - 1].rstrip() + "…" if cut or len(flat) > limit else flat


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


# -- reading messages -----------------------------------------------------------------------------


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
