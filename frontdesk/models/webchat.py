"""Web-chat visitors (one per browser that opened the widget), the files they uploaded, and the
links e-mailed to prove an address a visitor gave."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
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


class EmailConfirmation(IdMixin, Base):
    """A link e-mailed to an address a visitor gave, to prove it is theirs (single use, expiring).

    Only the SHA-256 of the token is kept (``token_hash``, set when the mail is sent); ``customer_id``
    is the visitor's customer when it was asked for (personal data: erased with the customer).
    """

    __tablename__ = "email_confirmations"
    __table_args__ = (Index("ix_email_confirmations_email_created", "email", "created_at"),)

    visitor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webchat_visitors.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    expires_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    used_at: Mapped[datetime | None]
