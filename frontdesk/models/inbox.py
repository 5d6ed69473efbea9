"""Inboxes: one per channel instance (a web-chat widget, a mailbox, an API integration…)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.db import Base, IdMixin, TimestampMixin


class Inbox(IdMixin, TimestampMixin, Base):
    __tablename__ = "inboxes"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(32))
    # Public identifier for embeds (widget snippet); never a secret.
    public_token: Mapped[str] = mapped_column(String(64), unique=True)
    # Channel settings; secrets inside are masked when the inbox is read through the API.
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
