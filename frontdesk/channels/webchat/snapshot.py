"""What a widget is shown: its ``config``, the conversation's history and each message in the widget's
shape (the ``snapshot`` and ``message`` frames of docs/architecture/webchat-protocol.md), and the
inbox a widget snippet names."""

from __future__ import annotations

import html as html_lib
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.channels.webchat import config as widget_texts
from frontdesk.channels.webchat.uploads import ALLOWED_TYPES
from frontdesk.conversations.sanitize import sanitize_html
from frontdesk.errors import NotFound
from frontdesk.models import Attachment, Conversation, Inbox, Message, User
from frontdesk.models.enums import AuthorType, Channel, ConversationStatus, DeliveryStatus, Direction

HISTORY_LIMIT = 200
WIDGET_ATTACHMENT_URL = "/api/v1/widget/attachments/{id}"


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


async def public_inbox(session: AsyncSession, public_token: str) -> Inbox:
    """The active web-chat inbox with this public token (what ``data-inbox`` names), else 404."""
    inbox = await session.scalar(select(Inbox).where(Inbox.public_token == public_token, Inbox.is_active.is_(True)))
    if inbox is None or inbox.channel != Channel.webchat.value:
        raise NotFound("No active web-chat inbox with that public token.")
    return inbox
