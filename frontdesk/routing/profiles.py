"""Agents' routing profiles: skills, capacity per channel and in a shared budget, interrupt rules,
after-call work; and :func:`agent_configs`, the whole picture of an agent the leader reads.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.audit import service as audit
from frontdesk.db import get_or_404
from frontdesk.errors import Invalid
from frontdesk.models import AgentPresence, TeamMember, User
from frontdesk.models.enums import Channel, PresenceStatus
from frontdesk.models.routing import AgentSkill, RoutingProfile, Skill
from frontdesk.routing import schemas as s
from frontdesk.routing.config import _check_skill_ids
from frontdesk.routing.inbox import forward
from frontdesk.routing.names import Actor

# The capacity of an agent without a routing profile: one call, or a blend within a budget of 100
# (call 100, chat 25, email 10), and nothing interrupts a call.
_MESSAGING = ("webchat", "whatsapp", "telegram", "sms")
DEFAULT_PROFILE: dict[str, Any] = {
    "max_per_channel": {"voice": 1, **dict.fromkeys(_MESSAGING, 3), "email": 5, "api": 5},
    "budget": 100,
    "cost": {"voice": 100, **dict.fromkeys(_MESSAGING, 25), "email": 10, "api": 10},
    "blocks": {"voice": [c.value for c in Channel if c.value != "voice"]},
    "after_call_work_seconds": 60,
}


# -- routing profiles ------------------------------------------------------------------------


async def get_profile(session: AsyncSession, user_id: uuid.UUID) -> s.RoutingProfileOut:
    await get_or_404(session, User, user_id, "user")
    profile = await session.get(RoutingProfile, user_id)
    skills = await session.execute(
        select(AgentSkill.skill_id, Skill.name, AgentSkill.level)
        .join(Skill, Skill.id == AgentSkill.skill_id)
        .where(AgentSkill.user_id == user_id)
        .order_by(Skill.name)
    )
    teams = (await session.scalars(select(TeamMember.team_id).where(TeamMember.user_id == user_id))).all()
    base: dict[str, Any] = (
        DEFAULT_PROFILE
        if profile is None
        else {
            "max_per_channel": profile.max_per_channel,
            "budget": profile.budget,
            "cost": profile.cost,
            "blocks": profile.blocks,
            "after_call_work_seconds": profile.after_call_work_seconds,
        }
    )
    return s.RoutingProfileOut(
        user_id=user_id,
        skills=[s.AgentSkillOut(skill_id=sid, name=name, level=level) for sid, name, level in skills],
        teams=sorted(teams),
        max_per_channel=dict(base["max_per_channel"]),
        budget=base["budget"],
        cost=dict(base["cost"]),
        blocks={k: list(v) for k, v in base["blocks"].items()},
        after_call_work_seconds=base["after_call_work_seconds"],
        is_default=profile is None,
    )


async def put_profile(
    session: AsyncSession, user_id: uuid.UUID, body: s.RoutingProfileIn, actor: Actor
) -> s.RoutingProfileOut:
    await get_or_404(session, User, user_id, "user")
    levels: dict[uuid.UUID, int] = {}
    for sk in body.skills:
        levels[sk.skill_id] = sk.level
    await _check_skill_ids(session, levels, "skills")
    for channel, cost in body.cost.items():
        if cost > body.budget:
            field = f"cost.{channel.value}"
            raise Invalid(f"{field}: {cost} is above the budget {body.budget}", field=field)
    values = {
        "max_per_channel": {c.value: n for c, n in body.max_per_channel.items()},
        "budget": body.budget,
        "cost": {c.value: n for c, n in body.cost.items()},
        "blocks": {c.value: sorted({b.value for b in bs if b != c}) for c, bs in body.blocks.items()},
        "after_call_work_seconds": body.after_call_work_seconds,
        "updated_at": clock.now(),
    }
    profile = await session.get(RoutingProfile, user_id)
    if profile is None:
        session.add(RoutingProfile(user_id=user_id, **values))
    else:
        for k, v in values.items():
            setattr(profile, k, v)
    await session.execute(delete(AgentSkill).where(AgentSkill.user_id == user_id))
    if levels:
        await session.execute(
            insert(AgentSkill), [{"user_id": user_id, "skill_id": k, "level": v} for k, v in levels.items()]
        )
    await session.flush()
    await audit.record(
        session,
        actor,
        "routing.profile_updated",
        "user",
        user_id,
        {"skills": {str(k): v for k, v in levels.items()}, **{k: v for k, v in values.items() if k != "updated_at"}},
    )
    await forward(session, "agent", user_id=user_id)
    return await get_profile(session, user_id)


# -- what the leader reads of an agent -----------------------------------------------------


@dataclass
class AgentConfig:
    """What routing knows of an agent (for the leader and the state view)."""

    user_id: uuid.UUID
    name: str
    skills: dict[str, int]
    teams: frozenset[str]
    max_per_channel: dict[str, int]
    budget: int
    cost: dict[str, int]
    blocks: dict[str, list[str]]
    after_call_work_seconds: int
    presence: str
    since: datetime | None
    until: datetime | None
    missed_offers: int


async def agent_configs(session: AsyncSession, user_ids: Iterable[uuid.UUID] | None = None) -> list[AgentConfig]:
    """Every active user (or those of ``user_ids``, active or not) with skills, teams, profile and presence."""
    stmt = select(User.id, User.name, User.is_active)
    if user_ids is None:
        stmt = stmt.where(User.is_active.is_(True))
    else:
        ids = list(user_ids)
        if not ids:
            return []
        stmt = stmt.where(User.id.in_(ids))
    users = (await session.execute(stmt.order_by(User.id))).all()
    if not users:
        return []
    uids = [u[0] for u in users]
    many = len(uids) > 500  # then read whole tables instead of a long IN list

    def scope(column: Any) -> Any:
        return true() if many else column.in_(uids)

    skills: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    for uid, sid, level in await session.execute(
        select(AgentSkill.user_id, AgentSkill.skill_id, AgentSkill.level).where(scope(AgentSkill.user_id))
    ):
        skills[uid][str(sid)] = level
    teams: dict[uuid.UUID, set[str]] = defaultdict(set)
    for tid, uid in await session.execute(
        select(TeamMember.team_id, TeamMember.user_id).where(scope(TeamMember.user_id))
    ):
        teams[uid].add(str(tid))
    profiles = {
        p.user_id: p for p in (await session.scalars(select(RoutingProfile).where(scope(RoutingProfile.user_id)))).all()
    }
    presence = {
        p.user_id: p for p in (await session.scalars(select(AgentPresence).where(scope(AgentPresence.user_id)))).all()
    }
    out = []
    for uid, name, active in users:
        p = profiles.get(uid)
        pr = presence.get(uid)
        out.append(
            AgentConfig(
                user_id=uid,
                name=name,
                skills=skills.get(uid, {}),
                teams=frozenset(teams.get(uid, set())),
                max_per_channel=dict(p.max_per_channel if p else DEFAULT_PROFILE["max_per_channel"]),
                budget=p.budget if p else DEFAULT_PROFILE["budget"],
                cost=dict(p.cost if p else DEFAULT_PROFILE["cost"]),
                blocks={k: list(v) for k, v in (p.blocks if p else DEFAULT_PROFILE["blocks"]).items()},
                after_call_work_seconds=p.after_call_work_seconds if p else DEFAULT_PROFILE["after_call_work_seconds"],
                presence=(pr.status if pr and active else PresenceStatus.offline.value),
                since=pr.since if pr else None,
                until=pr.until if pr else None,
                missed_offers=pr.missed_offers if pr else 0,
            )
        )
    return out
