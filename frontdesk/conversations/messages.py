"""Messages and notes written by people: the shared writer of a message row, notes and @mentions."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.bus import emit
from frontdesk.conversations import outbox
from frontdesk.conversations.queries import _one_line, get_conversation, message_views
from frontdesk.conversations.sanitize import html_to_text, sanitize_html
from frontdesk.db import UTCDateTime
from frontdesk.errors import Invalid
from frontdesk.events import Actor, MessageCreated, MessageSent, NoteAdded, UserMentioned
from frontdesk.ids import new_id
from frontdesk.models import (
    Attachment,
    Conversation,
    Message,
    User,
)
from frontdesk.models.enums import AuthorType, Channel, DeliveryStatus, Direction


class Author(Protocol):
    """Whoever writes a reply or note: a :class:`~frontdesk.auth.deps.Principal` or anything with a user id."""

    user_id: uuid.UUID


# -- messages ------------------------------------------------------------------------------------


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
    author: Author | Actor | None,
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
    kind = MessageSent if outbound else NoteAdded if direction is Direction.note else MessageCreated
    emit(session, kind(conversation_id=conversation.id, assignee_id=conversation.assignee_id, message=view))
    return message


async def add_system_message(
    session: AsyncSession, conversation: Conversation, text: str, *, channel: Channel | str, meta: dict[str, Any]
) -> Message:
    """A message Frontdesk starts itself (a widget notice or offer): outbound, authored by
    ``system``, delivered by the outbox like an agent's reply (but it answers no one)."""
    return await _add_message(
        session,
        conversation,
        None,
        direction=Direction.outbound,
        text=text,
        html=None,
        channel=channel,
        attachment_ids=(),
        author_type=AuthorType.system,
        meta=meta,
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
    ``UserMentioned`` (pushed as ``conversation.mentioned`` on ``user:<id>`` after the commit).
    Unknown handles are ignored.
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
        excerpt = _one_line(message.text, EXCERPT_CHARS)
        for user in mentioned:
            if user.id != author.user_id:
                emit(
                    session,
                    UserMentioned(
                        user_id=user.id,
                        conversation_id=conversation.id,
                        message_id=message.id,
                        by_id=author.user_id,
                        by_name=by_name,
                        excerpt=excerpt,
                    ),
                )
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
