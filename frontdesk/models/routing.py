"""Routing: skills, agent routing profiles, routing rules, the items waiting in queues, offers,
the decision log, capacity shifts, and the inbox of events the routing leader consumes.

The database is the truth; the leader (``frontdesk/routing/leader.py``) keeps a pure in-memory
copy (``frontdesk/routing/core.py``) and rebuilds it from these tables when it starts.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk import clock
from frontdesk.db import Base, IdMixin, TimestampMixin


class Skill(IdMixin, TimestampMixin, Base):
    __tablename__ = "skills"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(Text)


class AgentSkill(Base):
    """An agent's level (1-10) in a skill."""

    __tablename__ = "agent_skills"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    skill_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("skills.id", ondelete="CASCADE"), primary_key=True)
    level: Mapped[int] = mapped_column(Integer)


class QueueSkill(Base):
    """A skill a queue requires, at a minimum level."""

    __tablename__ = "queue_skills"

    queue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"), primary_key=True)
    skill_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("skills.id"), primary_key=True, index=True)
    min_level: Mapped[int] = mapped_column(Integer, default=1)


class RoutingProfile(Base):
    """An agent's capacity: a maximum per channel AND a shared budget with a cost per channel.

    ``blocks[channel]`` lists the channels never offered while the agent has work on ``channel``
    (``{"voice": ["webchat", "email"]}``: nothing interrupts a call). Agents without a row get
    ``frontdesk.routing.service.DEFAULT_PROFILE``.
    """

    __tablename__ = "routing_profiles"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    max_per_channel: Mapped[dict[str, Any]] = mapped_column(default=dict)
    budget: Mapped[int] = mapped_column(Integer, default=100)
    cost: Mapped[dict[str, Any]] = mapped_column(default=dict)
    blocks: Mapped[dict[str, Any]] = mapped_column(default=dict)
    after_call_work_seconds: Mapped[int] = mapped_column(Integer, default=60)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class RoutingRule(IdMixin, TimestampMixin, Base):
    """Picks the queue of a new conversation; rules are tried by ``position``, the first match wins.

    ``conditions`` (all must hold; an empty list/dict matches anything): ``channels``,
    ``inbox_ids``, ``languages``, ``tags``, ``segments``, ``attributes`` — see
    ``frontdesk.routing.rules``.
    """

    __tablename__ = "routing_rules"

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer, default=0, index=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    conditions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    queue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("queues.id"), index=True)
    priority: Mapped[int | None] = mapped_column(Integer)  # overrides the queue's priority


class RoutingItem(Base):
    """A conversation's place in routing (one row per conversation, reused when it comes back).

    ``state``: ``waiting`` (in ``queue_id``), ``offered`` (to ``agent_id``, ``offer_id``),
    ``assigned`` (to ``agent_id``), ``done`` (left routing: resolved, pending, snoozed) or
    ``unrouted`` (no queue serves it).
    """

    __tablename__ = "routing_items"
    __table_args__ = (Index("ix_routing_items_state_queue", "state", "queue_id"),)

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    queue_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer, default=50)
    vip: Mapped[bool] = mapped_column(Boolean, default=False)
    at_risk: Mapped[bool] = mapped_column(Boolean, default=False)
    sla_breach_soon: Mapped[bool] = mapped_column(Boolean, default=False)
    first_in_line: Mapped[bool] = mapped_column(Boolean, default=False)
    arrived_at: Mapped[datetime] = mapped_column(default=clock.now)
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    offer_id: Mapped[uuid.UUID | None]
    last_agent_id: Mapped[uuid.UUID | None]  # the customer's last agent (sticky routing)
    rule: Mapped[str | None] = mapped_column(String(200))  # the routing rule that picked the queue
    customer_name: Mapped[str | None] = mapped_column(String(300))
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)


class RoutingOffer(IdMixin, Base):
    """A conversation offered to one agent: ``pending`` until accepted, declined, timed out or withdrawn.

    Every status change is a conditional ``UPDATE … WHERE status = 'pending'``: whoever commits
    first (the agent answering, the leader expiring or withdrawing) wins, the other sees no row.
    """

    __tablename__ = "routing_offers"
    __table_args__ = (Index("ix_routing_offers_agent_status", "agent_id", "status"),)

    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    queue_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(32))
    # pending | accepted | auto_accepted | declined | timed_out | withdrawn
    status: Mapped[str] = mapped_column(String(16), default="pending")
    priority: Mapped[int] = mapped_column(Integer, default=50)
    offered_at: Mapped[datetime] = mapped_column(default=clock.now)
    expires_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]


class RoutingDecision(IdMixin, Base):
    """One line of a conversation's routing story: queued, offered to whom and why, accepted…"""

    __tablename__ = "routing_decisions"
    __table_args__ = (Index("ix_routing_decisions_conversation_at", "conversation_id", "at"),)

    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=clock.now)
    kind: Mapped[str] = mapped_column(String(32))
    queue_id: Mapped[uuid.UUID | None]  # no foreign key: the story outlives a deleted queue
    queue_name: Mapped[str | None] = mapped_column(String(200))
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    rule: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    waited_seconds: Mapped[float | None] = mapped_column(Float)
    offer_id: Mapped[uuid.UUID | None]
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class CapacityShift(IdMixin, Base):
    """Blended agents stop (``direction="to"``) or resume (``"back"``) lower-ranked channels for a queue."""

    __tablename__ = "routing_capacity_shifts"
    __table_args__ = (Index("ix_routing_capacity_shifts_queue_at", "queue_id", "at"),)

    queue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(8))
    channels: Mapped[list[Any]] = mapped_column(JSON, default=list)
    agent_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    projected_service_level: Mapped[float] = mapped_column(Float)
    target: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=clock.now)


class RoutingQueueStatus(Base):
    """The leader's latest projection per queue (for the wallboard; refreshed every few seconds)."""

    __tablename__ = "routing_queue_status"

    queue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"), primary_key=True)
    projected_service_level: Mapped[float] = mapped_column(Float, default=1.0)
    waiting: Mapped[int] = mapped_column(Integer, default=0)
    able_agents: Mapped[int] = mapped_column(Integer, default=0)
    at: Mapped[datetime] = mapped_column(default=clock.now)


class RoutingInboxEvent(Base):
    """Something the routing leader must look at, written in the same transaction as the change.

    ``kind``: ``conversation`` (re-check ``conversation_id``), ``agent`` (re-check ``user_id``),
    ``config`` (queues or skills changed: rebuild), ``disconnected`` / ``connected`` (desk socket).
    The leader deletes the rows it handled in the transaction that applies them.
    """

    __tablename__ = "routing_inbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    conversation_id: Mapped[uuid.UUID | None]
    user_id: Mapped[uuid.UUID | None]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class RoutingLeadership(Base):
    """The one row naming the routing leader; ``epoch`` is a fencing token bumped on every takeover."""

    __tablename__ = "routing_leadership"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime] = mapped_column(default=clock.now)
    heartbeat_at: Mapped[datetime] = mapped_column(default=clock.now)
