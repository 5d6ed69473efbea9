"""Queues conversations wait in. The routing issue adds skills, targets and overflow."""

from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.db import Base, IdMixin, TimestampMixin


class Queue(IdMixin, TimestampMixin, Base):
    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    priority: Mapped[int] = mapped_column(Integer, default=50)
