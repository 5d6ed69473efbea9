"""IMAP polling state: where each polled mailbox folder was left, and how the last poll went.

One row per (inbox, folder). ``uidvalidity`` and ``last_uid`` say which messages were already
taken in (a UID is recorded only after its message was committed), so a restart neither loses
nor repeats; a changed UIDVALIDITY means the server renumbered the folder and it is read again
from the start (the store is idempotent by Message-ID). ``locked_by``/``locked_until`` is a
short lease so only one node of a cluster polls a mailbox at a time. ``last_error`` is the
operator-visible reason the last poll failed (``None`` after a good one).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.db import Base, IdMixin, TimestampMixin


class MailboxState(IdMixin, TimestampMixin, Base):
    __tablename__ = "mailbox_states"
    __table_args__ = (UniqueConstraint("inbox_id", "folder"),)

    inbox_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inboxes.id", ondelete="CASCADE"), index=True)
    folder: Mapped[str] = mapped_column(String(200))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    messages_fetched: Mapped[int] = mapped_column(Integer, default=0)
    last_polled_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[datetime | None]
