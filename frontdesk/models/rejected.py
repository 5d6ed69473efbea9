"""Inputs we could not accept (a malformed email, webhook or event), kept for inspection and replay.

What a row keeps depends on who sent it (``frontdesk/rejected/service.py`` decides): a caller who
named a real inbox or authenticated keeps the body (up to a cap); an anonymous one only an
excerpt. ``customer_id`` / ``identity_*`` link the row to the person it names, so erasing that
customer deletes it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk import clock
from frontdesk.db import Base, IdMixin


class RejectedInput(IdMixin, Base):
    __tablename__ = "rejected_inputs"
    __table_args__ = (
        Index("ix_rejected_inputs_origin_received", "origin", "received_at"),
        Index("ix_rejected_inputs_anonymous_received", "anonymous", "received_at"),
        Index("ix_rejected_inputs_source_received", "source", "received_at"),
        Index("ix_rejected_inputs_identity", "identity_kind", "identity_value"),
    )

    source: Mapped[str] = mapped_column(String(100))  # e.g. api.events, api.inbound, email.smtp
    reason: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[bytes] = mapped_column(LargeBinary)  # what was kept: all of it, a cut, or an excerpt
    received_at: Mapped[datetime] = mapped_column(default=clock.now, index=True)
    # Who sent it, for the per-sender limit: "ip:…", "inbox:…", "user:…", "smtp:…" (None: internal).
    origin: Mapped[str | None] = mapped_column(String(200))
    # The sender named no real inbox and proved nothing: only an excerpt is kept.
    anonymous: Mapped[bool] = mapped_column(default=False)
    size: Mapped[int] = mapped_column(Integer, default=0)  # bytes received (``body`` may hold fewer)
    # The whole raw input in the attachment store, when it lives there too (raw emails).
    storage_key: Mapped[str | None] = mapped_column(String(500))
    # What a replay needs besides the body (inbox id, Idempotency-Key, envelope, route).
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    customer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), index=True)
    identity_kind: Mapped[str | None] = mapped_column(String(32))
    identity_value: Mapped[str | None] = mapped_column(String(320))
    replays: Mapped[int] = mapped_column(Integer, default=0)
    replayed_at: Mapped[datetime | None]
