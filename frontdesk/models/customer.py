"""Customers, their identities on every channel, and their consents."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk import clock
from frontdesk.db import Base, IdMixin, TimestampMixin


class Customer(IdMixin, TimestampMixin, Base):
    __tablename__ = "customers"

    name: Mapped[str | None] = mapped_column(String(300))
    locale: Mapped[str | None] = mapped_column(String(20))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    satisfaction_tier: Mapped[str] = mapped_column(String(20), default="unknown")
    lifetime_value: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    # Set when this record was merged into another; the survivor's id.
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customers.id"), index=True)
    # Set when the customer's personal data was erased on request (the row stays for reports).
    erased_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_customers_name", "name"),)


class Identity(IdMixin, Base):
    """One way to reach or recognise a customer: an email, a phone, a chat visitor, an external id…

    ``value`` is normalised (E.164 phones, lower-cased emails) and unique per kind.
    """

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(320))
    verified: Mapped[bool] = mapped_column(default=False)
    undeliverable: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class Consent(IdMixin, Base):
    """The customer's answer for one channel and category (e.g. sms, marketing)."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("customer_id", "channel", "category"),)

    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(default=clock.now)
