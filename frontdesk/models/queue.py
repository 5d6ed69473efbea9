"""Queues conversations wait in, and the presence of the agents who serve them.

The routing package (``frontdesk/routing``) owns these tables; the wallboard reads them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk import clock
from frontdesk.db import Base, IdMixin, TimestampMixin


class Queue(IdMixin, TimestampMixin, Base):
    """Where conversations wait for an agent, and how they are handed out.

    ``channels`` empty means every channel (rows written before routing existed). Required
    skills are ``queue_skills`` rows (``frontdesk.models.routing.QueueSkill``).
    """

    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    channels: Mapped[list[Any]] = mapped_column(JSON, default=list)
    priority: Mapped[int] = mapped_column(Integer, default=50)  # 1..99, higher is more urgent
    # Service-level target: ``service_level_percent`` % answered within ``service_level_seconds``.
    service_level_percent: Mapped[int] = mapped_column(Integer, default=80)
    service_level_seconds: Mapped[int] = mapped_column(Integer, default=60)
    # "longest_idle" or "least_occupied": how the best agent is picked after skills.
    selection: Mapped[str] = mapped_column(String(20), default="longest_idle")
    sticky_wait_seconds: Mapped[int] = mapped_column(Integer, default=0)
    offer_timeout_seconds: Mapped[int] = mapped_column(Integer, default=30)
    auto_accept: Mapped[bool] = mapped_column(Boolean, default=False)
    team_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)  # empty: any team
    ageing_per_minute: Mapped[float] = mapped_column(Float, default=1.0)
    handle_time_seconds: Mapped[int] = mapped_column(Integer, default=300)
    redecline_after_seconds: Mapped[int] = mapped_column(Integer, default=60)
    # Bullseye rings: [{"after_seconds", "level_drop", "add_team_ids", "any_agent"}], cumulative.
    bullseye: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Overflow: after ``overflow_after_seconds`` of waiting an item moves to ``overflow_queue_id``.
    overflow_queue_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"))
    overflow_after_seconds: Mapped[int | None] = mapped_column(Integer)


class AgentPresence(Base):
    """An agent's current state: available, busy, away, after_call_work (until ``until``) or offline."""

    __tablename__ = "agent_presence"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="offline")
    since: Mapped[datetime] = mapped_column(default=clock.now)
    until: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(String(200))
    # Offers that timed out in a row (the routing leader sets the agent away at its limit).
    missed_offers: Mapped[int] = mapped_column(Integer, default=0)
