"""Webhook subscriptions and their deliveries (a durable queue, claimed like the outbox).

A delivery row is written in the SAME transaction as the change that produced its event
(``frontdesk.webhooks.service``: the transactional outbox), so an event is delivered if and only
if its change committed. The delivery loop claims due rows with ``frontdesk.timers.claim``,
POSTs them signed, deletes them on success and retries them with backoff; a row out of attempts
stays ``failed`` (the dead-letter list) until an admin replays or discards it.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.db import Base, IdMixin, JSONType, TimestampMixin
from frontdesk.models.work import DueWorkMixin


class WebhookSubscription(IdMixin, TimestampMixin, Base):
    """An integrator's endpoint and the event types it wants (``"*"`` = all)."""

    __tablename__ = "webhook_subscriptions"

    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # The HMAC key deliveries are signed with; shown once (on create and on rotation).
    secret: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(500))
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)


class WebhookDelivery(IdMixin, DueWorkMixin, Base):
    """One event for one subscription. ``id`` is sent as ``X-Frontdesk-Delivery`` (stable across retries)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status_due", "status", "due_at"),)

    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[uuid.UUID]  # the same for every subscription that gets this event
    event_type: Mapped[str] = mapped_column(String(64))
    # The JSON body sent: {"id", "type", "created_at", "data"}.
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
