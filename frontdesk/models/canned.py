"""Canned responses: reusable reply texts agents insert by shortcut (``/refund``)."""

from __future__ import annotations

import uuid

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.db import Base, IdMixin, TimestampMixin


class CannedResponse(IdMixin, TimestampMixin, Base):
    """A reply template. ``global`` ones (no owner) are for everyone and managed by admins;
    ``personal`` ones belong to ``owner_id``. A shortcut is unique among the global ones and among
    each owner's personal ones (a personal shortcut may shadow a global one)."""

    __tablename__ = "canned_responses"
    __table_args__ = (
        CheckConstraint(
            "(scope = 'global' AND owner_id IS NULL) OR (scope = 'personal' AND owner_id IS NOT NULL)",
            name="scope_owner",
        ),
        Index(
            "uq_canned_responses_global_shortcut",
            "shortcut",
            unique=True,
            sqlite_where=text("scope = 'global'"),
            postgresql_where=text("scope = 'global'"),
        ),
        Index(
            "uq_canned_responses_personal_shortcut",
            "owner_id",
            "shortcut",
            unique=True,
            sqlite_where=text("scope = 'personal'"),
            postgresql_where=text("scope = 'personal'"),
        ),
    )

    shortcut: Mapped[str] = mapped_column(String(64))  # a-z, 0-9, '_' and '-'
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(16))  # global | personal
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
