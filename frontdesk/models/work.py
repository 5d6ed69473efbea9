"""The two durable queues: due work (timers) and the outbox of outbound deliveries.

Both are claimed the same way (``frontdesk.timers``): a worker takes due rows under a lease
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL), runs them, and deletes or reschedules them with
backoff. A crash leaves the lease to expire, so the row is taken again: nothing is lost.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk import clock
from frontdesk.db import Base, IdMixin


class DueWorkMixin:
    status: Mapped[str] = mapped_column(String(16), default="pending")
    due_at: Mapped[datetime] = mapped_column(default=clock.now)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class Timer(IdMixin, DueWorkMixin, Base):
    """A piece of work due at a time: an SLA deadline, a snooze ending, a retry…

    ``kind`` is ``domain.verb`` (``sla.first_response_due``); ``key`` dedupes (one snooze timer
    per conversation).
    """

    __tablename__ = "timers"
    __table_args__ = (Index("ix_timers_status_due", "status", "due_at"),)

    kind: Mapped[str] = mapped_column(String(100))
    key: Mapped[str | None] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)


class OutboxItem(IdMixin, DueWorkMixin, Base):
    """The delivery job of one outbound message, written in the same transaction as the message."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_due", "status", "due_at"),)

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), unique=True)
    channel: Mapped[str] = mapped_column(String(32))
