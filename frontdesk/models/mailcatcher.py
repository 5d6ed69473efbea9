"""The local mail catcher: outgoing e-mail kept instead of sent, because no relay is configured.

Without ``FRONTDESK_SMTP_RELAY`` (the demo, a development machine, a server whose relay is not set
up yet) the e-mail adapter builds the message exactly as it would send it and keeps it here; the
message's ``delivery_status`` is ``caught``, never ``sent``. One row per outbound message (a
resend after a crash finds the row), listed for admins; the RFC 5322 bytes live in the attachment
store under ``storage_key`` (``mail-catcher/<message id>.eml``), like received e-mails' raw bytes.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk import clock
from frontdesk.db import Base, IdMixin


class CaughtMail(IdMixin, Base):
    __tablename__ = "caught_mails"

    # The reply it holds; none for system mail (a confirmation link Frontdesk sent by itself).
    message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), unique=True)
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    mail_from: Mapped[str] = mapped_column(String(500))
    mail_to: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(1000))
    header_message_id: Mapped[str] = mapped_column(String(500))
    size: Mapped[int] = mapped_column(Integer)
    storage_key: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
