"""Web-chat visitors (one per browser that opened the widget) and the files they uploaded."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk import clock
from frontdesk.db import Base, IdMixin


class WebchatVisitor(IdMixin, Base):
    """A browser that opened an inbox's widget. ``id`` is the visitor id inside the signed token.

    The visitor's customer also holds the identity ``webchat_visitor:<id>``, which is what the
    inbound path resolves; ``customer_id`` here follows it when the visitor joins another customer.
    """

    __tablename__ = "webchat_visitors"
    __table_args__ = (Index("ix_webchat_visitors_customer", "customer_id"),)

    inbox_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inboxes.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    last_seen_at: Mapped[datetime] = mapped_column(default=clock.now)


class WebchatUpload(Base):
    """Who uploaded a not-yet-sent attachment: only that visitor may put it on a message."""

    __tablename__ = "webchat_uploads"

    attachment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("attachments.id", ondelete="CASCADE"), primary_key=True)
    visitor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webchat_visitors.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
