"""Inputs we could not accept (a malformed email, webhook or event), kept raw for inspection."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk import clock
from frontdesk.db import Base, IdMixin


class RejectedInput(IdMixin, Base):
    __tablename__ = "rejected_inputs"

    source: Mapped[str] = mapped_column(String(100))  # e.g. api.events, email.smtp
    reason: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(default=clock.now, index=True)
