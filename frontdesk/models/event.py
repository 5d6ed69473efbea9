"""Customer events: what happened to a customer outside conversations (order shipped, page viewed…).

They feed the timeline and the proactive engine. ``idempotency_key`` makes ingest safe to retry.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk import clock
from frontdesk.db import Base, IdMixin


class CustomerEvent(IdMixin, Base):
    __tablename__ = "customer_events"
    __table_args__ = (Index("ix_customer_events_customer_occurred", "customer_id", "occurred_at"),)

    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(100), index=True)
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str | None] = mapped_column(String(100))  # department or system that sent it
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=clock.now)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
