"""Conversations, their messages (including internal notes), attachments and tags."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk import clock
from frontdesk.db import Base, IdMixin, TimestampMixin

# The predicate of the one-open-conversation indexes (NULL inboxes are distinct in a unique index,
# hence two indexes).
_AUTO_OPEN = "auto_open AND status <> 'resolved'"


class Conversation(IdMixin, TimestampMixin, Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_status_last", "status", "last_message_at"),
        Index("ix_conversations_customer_status", "customer_id", "status"),
        Index("ix_conversations_status_waiting", "status", "waiting_since"),
        # At most one conversation the inbound path opened (auto_open) is not resolved per customer,
        # channel and inbox: two processes racing for a new customer's first message open one.
        Index(
            "uq_conversations_auto_open",
            "customer_id",
            "channel",
            "inbox_id",
            unique=True,
            sqlite_where=text(_AUTO_OPEN + " AND inbox_id IS NOT NULL"),
            postgresql_where=text(_AUTO_OPEN + " AND inbox_id IS NOT NULL"),
        ),
        Index(
            "uq_conversations_auto_open_no_inbox",
            "customer_id",
            "channel",
            unique=True,
            sqlite_where=text(_AUTO_OPEN + " AND inbox_id IS NULL"),
            postgresql_where=text(_AUTO_OPEN + " AND inbox_id IS NULL"),
        ),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    channel: Mapped[str] = mapped_column(String(32))  # origin channel
    inbox_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("inboxes.id"), index=True)
    subject: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="open")
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    # A conversation outlives the queue, agent or team it was with: deleting one leaves it without.
    queue_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"), index=True)
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    team_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"), index=True)
    snoozed_until: Mapped[datetime | None]
    last_message_at: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    # Seconds from opening to the first agent reply / to resolution, kept for reports.
    first_response_seconds: Mapped[int | None] = mapped_column(Integer)
    resolution_seconds: Mapped[int | None] = mapped_column(Integer)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    # When the customer started waiting for an agent: set by the first customer message that
    # finds it empty, cleared by an agent reply and on resolve. The desk sorts by it.
    waiting_since: Mapped[datetime | None]
    # Opened by the inbound path (the ingest writer, a web-chat notice) as the customer's one
    # conversation on this channel and inbox, the one their next message joins. Conversations an
    # agent starts are threads of their own (False), and so is a resolved one reopened (by a thread
    # hint, or an agent): it goes back to False, which keeps the unique index above satisfiable.
    auto_open: Mapped[bool] = mapped_column(default=False, server_default=false())


class ConversationTag(Base):
    """A contact reason on a conversation."""

    __tablename__ = "conversation_tags"

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class Message(IdMixin, Base):
    """Anything said in a conversation: inbound, outbound, or an internal note.

    ``external_id`` is the provider's id (email Message-ID, SMS sid, widget client id) and is
    unique per channel, which makes every inbound path idempotent.
    """

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        Index("ix_messages_conversation_created", "conversation_id", "created_at"),
        Index("ix_messages_customer_created", "customer_id", "created_at"),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    direction: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str] = mapped_column(String(32))
    author_type: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str | None] = mapped_column(Text)  # sanitised
    external_id: Mapped[str | None] = mapped_column(String(500))
    delivery_status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    status_at: Mapped[datetime | None]


class Attachment(IdMixin, Base):
    """A file on a message; the bytes live in the attachment store under ``storage_key``."""

    __tablename__ = "attachments"

    message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(300))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
