"""Request and response bodies of the routing API: queues, skills, routing profiles, presence,
routing rules, offers, the decision log and the queue state."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from frontdesk.models.enums import Channel, PresenceStatus

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Level = Annotated[int, Field(ge=1, le=10)]
Seconds = Annotated[int, Field(ge=0, le=7 * 24 * 3600)]
AttributeValue = str | int | float | bool | list[str | int | float | bool]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Selection(StrEnum):
    longest_idle = "longest_idle"
    least_occupied = "least_occupied"


# -- skills --------------------------------------------------------------------------------


class SkillIn(_In):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    description: str | None = Field(None, max_length=2000)


class SkillUpdate(_In):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None = None
    description: str | None = Field(None, max_length=2000)


class SkillOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime


# -- queues --------------------------------------------------------------------------------


class RequiredSkill(_In):
    skill_id: uuid.UUID
    min_level: Level = 1


class RequiredSkillOut(BaseModel):
    skill_id: uuid.UUID
    name: str
    min_level: int


class Ring(_In):
    """One bullseye ring: after ``after_seconds`` of waiting the eligible pool widens (rings add up)."""

    after_seconds: Annotated[int, Field(ge=1, le=7 * 24 * 3600)]
    level_drop: Annotated[int, Field(ge=0, le=9)] = Field(0, description="Required skill levels lowered by this much.")
    add_team_ids: list[uuid.UUID] = Field(default_factory=list, max_length=50, description="Backup teams join.")
    any_agent: bool = Field(False, description="Any agent who serves the channel.")


_QUEUE_FIELDS_DOC = {
    "channels": "Channels this queue serves.",
    "priority": "1-99, higher is more urgent.",
    "service_level_percent": "Target share answered within service_level_seconds (80 for 80 %).",
    "service_level_seconds": "Target answer time: 20 for voice, 60 for chat, 14400 for email.",
}


class QueueIn(_In):
    name: Name
    description: str | None = Field(None, max_length=2000)
    channels: list[Channel] = Field(min_length=1, max_length=len(Channel), description=_QUEUE_FIELDS_DOC["channels"])
    priority: Annotated[int, Field(ge=1, le=99)] = 50
    service_level_percent: Annotated[int, Field(ge=1, le=100)] = 80
    service_level_seconds: Annotated[int, Field(ge=1, le=30 * 24 * 3600)] = 60
    required_skills: list[RequiredSkill] = Field(default_factory=list, max_length=20)
    team_ids: list[uuid.UUID] = Field(default_factory=list, max_length=50, description="Only these teams; empty: any.")
    selection: Selection = Field(Selection.longest_idle, description="After skills: longest idle or least occupied.")
    sticky_wait_seconds: Seconds = Field(0, description="How long an item waits for the customer's last agent.")
    offer_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 30
    auto_accept: bool = Field(False, description="Offers are assignments at once (no accept step).")
    ageing_per_minute: Annotated[float, Field(ge=0, le=100)] = 1.0
    handle_time_seconds: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] = 300
    redecline_after_seconds: Seconds = 60
    bullseye: list[Ring] = Field(default_factory=list, max_length=10)
    overflow_queue_id: uuid.UUID | None = None
    overflow_after_seconds: Annotated[int, Field(ge=1, le=30 * 24 * 3600)] | None = None

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, v: list[Channel]) -> list[Channel]:
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _overflow_pair(self) -> QueueIn:
        if (self.overflow_queue_id is None) != (self.overflow_after_seconds is None):
            raise ValueError("overflow_queue_id and overflow_after_seconds go together")
        return self


class QueueUpdate(_In):
    """Only the fields sent change."""

    name: Name | None = None
    description: str | None = Field(None, max_length=2000)
    channels: list[Channel] | None = Field(None, min_length=1, max_length=len(Channel))
    priority: Annotated[int, Field(ge=1, le=99)] | None = None
    service_level_percent: Annotated[int, Field(ge=1, le=100)] | None = None
    service_level_seconds: Annotated[int, Field(ge=1, le=30 * 24 * 3600)] | None = None
    required_skills: list[RequiredSkill] | None = Field(None, max_length=20)
    team_ids: list[uuid.UUID] | None = Field(None, max_length=50)
    selection: Selection | None = None
    sticky_wait_seconds: Seconds | None = None
    offer_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] | None = None
    auto_accept: bool | None = None
    ageing_per_minute: Annotated[float, Field(ge=0, le=100)] | None = None
    handle_time_seconds: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] | None = None
    redecline_after_seconds: Seconds | None = None
    bullseye: list[Ring] | None = Field(None, max_length=10)
    overflow_queue_id: uuid.UUID | None = None
    overflow_after_seconds: Annotated[int, Field(ge=1, le=30 * 24 * 3600)] | None = None


class QueueOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    channels: list[str]
    priority: int
    service_level_percent: int
    service_level_seconds: int
    required_skills: list[RequiredSkillOut]
    team_ids: list[uuid.UUID]
    selection: str
    sticky_wait_seconds: int
    offer_timeout_seconds: int
    auto_accept: bool
    ageing_per_minute: float
    handle_time_seconds: int
    redecline_after_seconds: int
    bullseye: list[dict[str, Any]]
    overflow_queue_id: uuid.UUID | None
    overflow_after_seconds: int | None
    created_at: datetime
    updated_at: datetime


# -- agents: routing profile and presence ---------------------------------------------------


class AgentSkillIn(_In):
    skill_id: uuid.UUID
    level: Level


class AgentSkillOut(BaseModel):
    skill_id: uuid.UUID
    name: str
    level: int


Count = Annotated[int, Field(ge=0, le=1000)]


class RoutingProfileIn(_In):
    """An agent's skills and capacity. ``max_per_channel`` AND the shared ``budget`` both apply."""

    skills: list[AgentSkillIn] = Field(default_factory=list, max_length=100)
    max_per_channel: dict[Channel, Count] = Field(
        description="Most items at once per channel; a channel left out is not served."
    )
    budget: Annotated[int, Field(ge=1, le=100_000)] = 100
    cost: dict[Channel, Annotated[int, Field(ge=0, le=100_000)]] = Field(
        default_factory=dict, description="Budget each item of a channel uses (call 100, chat 25, email 10)."
    )
    blocks: dict[Channel, list[Channel]] = Field(
        default_factory=dict,
        description="Which channel may not interrupt which: while the agent has work on the key channel, "
        'the listed channels are not offered ({"voice": ["webchat", "email"]}).',
    )
    after_call_work_seconds: Seconds = 60


class RoutingProfileOut(BaseModel):
    user_id: uuid.UUID
    skills: list[AgentSkillOut]
    teams: list[uuid.UUID] = Field(description="Team memberships (managed under /teams).")
    max_per_channel: dict[str, int]
    budget: int
    cost: dict[str, int]
    blocks: dict[str, list[str]]
    after_call_work_seconds: int
    is_default: bool = Field(description="True while the agent has no profile of their own.")


class PresenceIn(_In):
    status: PresenceStatus
    reason: str | None = Field(None, max_length=200)
    until: datetime | None = Field(
        None, description="End of after-call work (default: now + the profile's after_call_work_seconds)."
    )


class PresenceOut(BaseModel):
    status: str
    since: datetime
    until: datetime | None = None
    reason: str | None = None


# -- routing rules ---------------------------------------------------------------------------


class RuleConditions(_In):
    """All must hold; an empty list or dict matches anything."""

    channels: list[Channel] = Field(default_factory=list, max_length=len(Channel))
    inbox_ids: list[uuid.UUID] = Field(default_factory=list, max_length=100)
    languages: list[Annotated[str, StringConstraints(min_length=2, max_length=20)]] = Field(
        default_factory=list, max_length=50, description='Customer locale prefixes: "ru" matches "ru-RU".'
    )
    tags: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=50, description="Any of these conversation tags."
    )
    segments: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list,
        max_length=50,
        description="Any of these customer segments (vip, at_risk, debtor, or attributes.segment(s)).",
    )
    attributes: dict[Annotated[str, StringConstraints(min_length=1, max_length=100)], AttributeValue] = Field(
        default_factory=dict, max_length=50, description="Customer attributes that must be equal (or one of a list)."
    )


class RuleIn(_In):
    name: Name
    description: str | None = Field(None, max_length=2000)
    queue_id: uuid.UUID
    conditions: RuleConditions = Field(default_factory=RuleConditions)
    priority: Annotated[int, Field(ge=1, le=99)] | None = Field(None, description="Overrides the queue's priority.")
    enabled: bool = True
    position: Annotated[int, Field(ge=0, le=100_000)] | None = Field(
        None, description="0 is tried first; default: last."
    )


class RuleUpdate(_In):
    name: Name | None = None
    description: str | None = Field(None, max_length=2000)
    queue_id: uuid.UUID | None = None
    conditions: RuleConditions | None = None
    priority: Annotated[int, Field(ge=1, le=99)] | None = None
    enabled: bool | None = None
    position: Annotated[int, Field(ge=0, le=100_000)] | None = None


class RuleOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    position: int
    enabled: bool
    queue_id: uuid.UUID
    conditions: dict[str, Any]
    priority: int | None
    created_at: datetime
    updated_at: datetime


# -- offers, decisions, state ---------------------------------------------------------------


class OfferOut(BaseModel):
    id: uuid.UUID
    conversation_id: uuid.UUID
    agent_id: uuid.UUID
    queue_id: uuid.UUID | None
    queue_name: str | None = None
    customer_name: str | None = None
    channel: str
    status: str = Field(description="pending, accepted, auto_accepted, declined, timed_out or withdrawn.")
    priority: str = Field(description="The conversation's priority (low, normal, high, urgent).")
    effective_priority: int = Field(description="Routing priority when offered (with boosts and ageing).")
    offered_at: datetime
    expires_at: datetime | None
    answered_at: datetime | None
    seconds: int | None = Field(None, description="Seconds left to answer (pending offers).")


class DecisionOut(BaseModel):
    at: datetime
    kind: str = Field(
        description="queued, unrouted, offered, accepted, declined, timed_out, withdrawn, assigned, returned, "
        "expanded, overflowed, requeued, priority_raised, removed"
    )
    queue: str | None = Field(description="The queue's name at the time.")
    queue_id: uuid.UUID | None
    agent: str | None = Field(description="The agent's name.")
    agent_id: uuid.UUID | None
    rule: str | None
    reason: str
    waited_seconds: float | None
    offer_id: uuid.UUID | None = None


class ShiftOut(BaseModel):
    id: uuid.UUID
    queue_id: uuid.UUID
    queue_name: str | None = None
    direction: str = Field(description='"to": capacity moved to the queue; "back": it returned.')
    channels: list[str]
    agent_ids: list[uuid.UUID]
    projected_service_level: float
    target: float
    reason: str
    at: datetime


class WaitingItemOut(BaseModel):
    conversation_id: uuid.UUID
    channel: str
    state: str
    priority: int
    vip: bool
    at_risk: bool
    sla_breach_soon: bool
    first_in_line: bool
    arrived_at: datetime
    waited_seconds: float
    agent_id: uuid.UUID | None
    customer_name: str | None
    rule: str | None


class AgentStateOut(BaseModel):
    user_id: uuid.UUID
    name: str
    status: str
    since: datetime | None
    until: datetime | None
    load: dict[str, int] = Field(description="Open conversations (assigned or offered) per channel.")
    budget_used: int
    budget: int
    paused_channels: list[str] = Field(description="Channels paused by capacity shifts in effect.")
    queue_ids: list[uuid.UUID] = Field(description="Queues whose required skills and teams this agent meets.")


class QueueStateOut(BaseModel):
    id: uuid.UUID
    name: str
    channels: list[str]
    priority: int
    service_level_percent: int
    service_level_seconds: int
    waiting: int
    offered: int
    oldest_wait_seconds: float
    projected_service_level: float | None
    able_agents: int
    available_agents: int
    shift: ShiftOut | None = Field(description="The capacity shift in effect for this queue, if any.")
    items: list[WaitingItemOut] = Field(description="Waiting and offered items, most urgent first (at most 100).")


class LeaderOut(BaseModel):
    holder: str
    epoch: int
    acquired_at: datetime
    heartbeat_at: datetime


class RoutingStateOut(BaseModel):
    at: datetime
    leader: LeaderOut | None
    queues: list[QueueStateOut]
    agents: list[AgentStateOut]
    shifts: list[ShiftOut] = Field(description="Capacity shifts in effect.")
