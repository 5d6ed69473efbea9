"""Routing configuration: skills, queues and routing rules (the admin's side).

Each change is audited and forwarded to the leader (``inbox.forward(session, "config")`` or
``"rules"``) in the same unit of work, so the leader re-reads them after the commit. Agents'
routing profiles are in ``profiles.py``.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.audit import service as audit
from frontdesk.conversations import service as conversations
from frontdesk.db import flush_or_conflict, folded, get_or_404
from frontdesk.errors import Conflict, Invalid
from frontdesk.ids import new_id
from frontdesk.models import Conversation, Queue, Team
from frontdesk.models.enums import Channel
from frontdesk.models.routing import QueueSkill, RoutingItem, RoutingRule, Skill
from frontdesk.routing import schemas as s
from frontdesk.routing.inbox import forward
from frontdesk.routing.names import LIVE_STATES, Actor

# -- skills ----------------------------------------------------------------------------------


async def list_skills(session: AsyncSession) -> list[Skill]:
    return list((await session.scalars(select(Skill).order_by(Skill.name))).all())


async def get_skill(session: AsyncSession, skill_id: uuid.UUID) -> Skill:
    return await get_or_404(session, Skill, skill_id, "skill")


async def _check_skill_name(session: AsyncSession, name: str, exclude: uuid.UUID | None = None) -> None:
    found = await session.scalar(select(Skill.id).where(folded(session, Skill.name) == name.casefold()))
    if found is not None and found != exclude:
        raise Conflict(f"A skill named {name!r} exists.")


async def create_skill(session: AsyncSession, body: s.SkillIn, actor: Actor) -> Skill:
    await _check_skill_name(session, body.name)
    skill = Skill(id=new_id(), name=body.name, description=body.description)
    session.add(skill)
    await flush_or_conflict(session, f"A skill named {body.name!r} exists.")
    await audit.record(session, actor, "routing.skill_created", "skill", skill.id, {"name": skill.name})
    return skill


async def update_skill(session: AsyncSession, skill_id: uuid.UUID, body: s.SkillUpdate, actor: Actor) -> Skill:
    skill = await get_skill(session, skill_id)
    sent = body.model_fields_set
    if "name" in sent:
        if body.name is None:
            raise Invalid("name cannot be null", field="name")
        await _check_skill_name(session, body.name, exclude=skill.id)
        skill.name = body.name
    if "description" in sent:
        skill.description = body.description
    skill.updated_at = clock.now()
    await flush_or_conflict(session, f"A skill named {skill.name!r} exists.")
    return skill


async def delete_skill(session: AsyncSession, skill_id: uuid.UUID, actor: Actor) -> None:
    skill = await get_skill(session, skill_id)
    used = (
        await session.scalars(
            select(Queue.name).join(QueueSkill, QueueSkill.queue_id == Queue.id).where(QueueSkill.skill_id == skill.id)
        )
    ).all()
    if used:
        raise Conflict(f"Queues require this skill: {', '.join(sorted(used))}. Remove it from them first.")
    await session.delete(skill)
    await session.flush()
    await audit.record(session, actor, "routing.skill_deleted", "skill", skill_id, {"name": skill.name})
    await forward(session, "config")


async def _check_skill_ids(session: AsyncSession, ids: Iterable[uuid.UUID], field: str) -> dict[uuid.UUID, str]:
    wanted = set(ids)
    if not wanted:
        return {}
    found = dict((await session.execute(select(Skill.id, Skill.name).where(Skill.id.in_(wanted)))).all())
    missing = wanted - set(found)
    if missing:
        raise Invalid(f"{field}: no skill with id {sorted(map(str, missing))[0]}", field=field)
    return found


async def _check_team_ids(session: AsyncSession, ids: Iterable[uuid.UUID], field: str) -> None:
    wanted = set(ids)
    if not wanted:
        return
    found = set((await session.scalars(select(Team.id).where(Team.id.in_(wanted)))).all())
    missing = wanted - found
    if missing:
        raise Invalid(f"{field}: no team with id {sorted(map(str, missing))[0]}", field=field)


# -- queues ----------------------------------------------------------------------------------


def queue_channels(queue: Queue) -> list[str]:
    """The channels a queue serves (an empty list, from rows written before routing, means all)."""
    return list(queue.channels) if queue.channels else [c.value for c in Channel]


async def queue_views(session: AsyncSession, queues: Sequence[Queue]) -> list[s.QueueOut]:
    ids = [q.id for q in queues]
    skills: dict[uuid.UUID, list[s.RequiredSkillOut]] = defaultdict(list)
    if ids:
        rows = await session.execute(
            select(QueueSkill.queue_id, QueueSkill.skill_id, Skill.name, QueueSkill.min_level)
            .join(Skill, Skill.id == QueueSkill.skill_id)
            .where(QueueSkill.queue_id.in_(ids))
            .order_by(Skill.name)
        )
        for qid, sid, name, level in rows:
            skills[qid].append(s.RequiredSkillOut(skill_id=sid, name=name, min_level=level))
    return [
        s.QueueOut(
            id=q.id,
            name=q.name,
            description=q.description,
            channels=queue_channels(q),
            priority=q.priority,
            service_level_percent=q.service_level_percent,
            service_level_seconds=q.service_level_seconds,
            required_skills=skills.get(q.id, []),
            team_ids=[uuid.UUID(str(t)) for t in q.team_ids or []],
            selection=q.selection,
            sticky_wait_seconds=q.sticky_wait_seconds,
            offer_timeout_seconds=q.offer_timeout_seconds,
            auto_accept=q.auto_accept,
            ageing_per_minute=q.ageing_per_minute,
            handle_time_seconds=q.handle_time_seconds,
            redecline_after_seconds=q.redecline_after_seconds,
            bullseye=list(q.bullseye or []),
            overflow_queue_id=q.overflow_queue_id,
            overflow_after_seconds=q.overflow_after_seconds,
            created_at=q.created_at,
            updated_at=q.updated_at,
        )
        for q in queues
    ]


async def list_queues(session: AsyncSession) -> list[Queue]:
    return list((await session.scalars(select(Queue).order_by(Queue.priority.desc(), Queue.name))).all())


async def get_queue(session: AsyncSession, queue_id: uuid.UUID) -> Queue:
    return await get_or_404(session, Queue, queue_id, "queue")


async def _check_queue_name(session: AsyncSession, name: str, exclude: uuid.UUID | None = None) -> None:
    found = await session.scalar(select(Queue.id).where(folded(session, Queue.name) == name.casefold()))
    if found is not None and found != exclude:
        raise Conflict(f"A queue named {name!r} exists.")


def _rings_json(rings: Sequence[s.Ring]) -> list[dict[str, Any]]:
    return [
        {
            "after_seconds": r.after_seconds,
            "level_drop": r.level_drop,
            "add_team_ids": [str(t) for t in r.add_team_ids],
            "any_agent": r.any_agent,
        }
        for r in sorted(rings, key=lambda r: r.after_seconds)
    ]


async def _apply_queue(session: AsyncSession, queue: Queue, values: dict[str, Any], sent: set[str]) -> None:
    if "required_skills" in sent and values.get("required_skills") is not None:
        required: list[s.RequiredSkill] = values["required_skills"]
        await _check_skill_ids(session, [r.skill_id for r in required], "required_skills")
    if "team_ids" in sent and values.get("team_ids") is not None:
        await _check_team_ids(session, values["team_ids"], "team_ids")
    if "bullseye" in sent and values.get("bullseye") is not None:
        await _check_team_ids(session, [t for r in values["bullseye"] for t in r.add_team_ids], "bullseye")
    if "overflow_queue_id" in sent and values.get("overflow_queue_id") is not None:
        target = await session.get(Queue, values["overflow_queue_id"])
        if target is None:
            raise Invalid("overflow_queue_id: no such queue", field="overflow_queue_id")
        if target.id == queue.id:
            raise Invalid("overflow_queue_id: a queue cannot overflow into itself", field="overflow_queue_id")
    simple = (
        "name",
        "description",
        "priority",
        "service_level_percent",
        "service_level_seconds",
        "sticky_wait_seconds",
        "offer_timeout_seconds",
        "auto_accept",
        "ageing_per_minute",
        "handle_time_seconds",
        "redecline_after_seconds",
        "overflow_queue_id",
        "overflow_after_seconds",
    )
    for field in simple:
        if field in sent:
            setattr(queue, field, values[field])
    if "channels" in sent:
        queue.channels = [Channel(c).value for c in values["channels"]]
    if "selection" in sent:
        queue.selection = str(
            values["selection"].value if hasattr(values["selection"], "value") else values["selection"]
        )
    if "team_ids" in sent:
        queue.team_ids = [str(t) for t in values["team_ids"] or []]
    if "bullseye" in sent:
        queue.bullseye = _rings_json(values["bullseye"] or [])
    if (queue.overflow_queue_id is None) != (queue.overflow_after_seconds is None):
        raise Invalid("overflow_queue_id and overflow_after_seconds go together", field="overflow_after_seconds")
    await flush_or_conflict(session, f"A queue named {queue.name!r} exists.")
    if "required_skills" in sent:
        await session.execute(delete(QueueSkill).where(QueueSkill.queue_id == queue.id))
        required = values.get("required_skills") or []
        levels: dict[uuid.UUID, int] = {}
        for r in required:
            levels[r.skill_id] = max(levels.get(r.skill_id, 0), r.min_level)
        if levels:
            await session.execute(
                insert(QueueSkill), [{"queue_id": queue.id, "skill_id": k, "min_level": v} for k, v in levels.items()]
            )


async def create_queue(session: AsyncSession, body: s.QueueIn, actor: Actor) -> Queue:
    await _check_queue_name(session, body.name)
    queue = Queue(id=new_id(), name=body.name, channels=[c.value for c in body.channels])
    session.add(queue)
    values = {f: getattr(body, f) for f in type(body).model_fields}
    await _apply_queue(session, queue, values, set(type(body).model_fields))
    await audit.record(session, actor, "routing.queue_created", "queue", queue.id, {"name": queue.name})
    await forward(session, "config")
    return queue


async def update_queue(session: AsyncSession, queue_id: uuid.UUID, body: s.QueueUpdate, actor: Actor) -> Queue:
    queue = await get_queue(session, queue_id)
    sent = set(body.model_fields_set)
    nullable = {"description", "overflow_queue_id", "overflow_after_seconds"}
    for field in sent - nullable:
        if getattr(body, field) is None:
            raise Invalid(f"{field} cannot be null", field=field)
    if "name" in sent and body.name is not None:
        await _check_queue_name(session, body.name, exclude=queue.id)
    values = {f: getattr(body, f) for f in sent}
    await _apply_queue(session, queue, values, sent)
    queue.updated_at = clock.now()
    await session.flush()
    await audit.record(session, actor, "routing.queue_updated", "queue", queue.id, {"fields": sorted(sent)})
    await forward(session, "config")
    return queue


async def delete_queue(session: AsyncSession, queue_id: uuid.UUID, actor: Actor) -> None:
    queue = await get_queue(session, queue_id)
    rules = (await session.scalars(select(RoutingRule.name).where(RoutingRule.queue_id == queue.id))).all()
    if rules:
        raise Conflict(f"Routing rules send conversations to this queue: {', '.join(sorted(rules))}.")
    live = await session.scalar(
        select(func.count())
        .select_from(RoutingItem)
        .where(RoutingItem.queue_id == queue.id, RoutingItem.state.in_(LIVE_STATES))
    )
    if live:
        raise Conflict(f"{live} conversation(s) are waiting in this queue; move or answer them first.")
    await session.execute(update(Conversation).where(Conversation.queue_id == queue.id).values(queue_id=None))
    await session.execute(
        update(Queue)
        .where(Queue.overflow_queue_id == queue.id)
        .values(overflow_queue_id=None, overflow_after_seconds=None)
    )
    await session.delete(queue)
    await session.flush()
    await audit.record(session, actor, "routing.queue_deleted", "queue", queue_id, {"name": queue.name})
    await forward(session, "config")


async def queue_requirements(session: AsyncSession) -> dict[uuid.UUID, dict[str, int]]:
    out: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    for qid, sid, level in await session.execute(
        select(QueueSkill.queue_id, QueueSkill.skill_id, QueueSkill.min_level)
    ):
        out[qid][str(sid)] = level
    return out


# -- teams going away ----------------------------------------------------------------------


# -- routing rules ---------------------------------------------------------------------------


def rule_view(rule: RoutingRule) -> s.RuleOut:
    return s.RuleOut(
        id=rule.id,
        name=rule.name,
        description=rule.description,
        position=rule.position,
        enabled=rule.enabled,
        queue_id=rule.queue_id,
        conditions=dict(rule.conditions or {}),
        priority=rule.priority,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


async def list_rules(session: AsyncSession) -> list[RoutingRule]:
    return list(
        (await session.scalars(select(RoutingRule).order_by(RoutingRule.position, RoutingRule.created_at))).all()
    )


async def get_rule(session: AsyncSession, rule_id: uuid.UUID) -> RoutingRule:
    return await get_or_404(session, RoutingRule, rule_id, "routing rule")


def _conditions_json(conditions: s.RuleConditions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if conditions.channels:
        out["channels"] = [c.value for c in conditions.channels]
    if conditions.inbox_ids:
        out["inbox_ids"] = [str(i) for i in conditions.inbox_ids]
    if conditions.languages:
        out["languages"] = [lang.lower().replace("_", "-") for lang in conditions.languages]
    if conditions.tags:
        # The way conversation tags are stored, or a rule on "Refund Request" would never match.
        out["tags"] = [conversations.normalise_tag(t, field="conditions.tags") for t in conditions.tags]
    if conditions.segments:
        out["segments"] = [x.strip().lower() for x in conditions.segments]
    if conditions.attributes:
        out["attributes"] = dict(conditions.attributes)
    return out


async def _reorder(session: AsyncSession, moved: RoutingRule, position: int | None) -> None:
    """Renumber the rules 0..n-1 with ``moved`` at ``position`` (``None``: where it is, or last)."""
    rules = [r for r in await list_rules(session) if r.id != moved.id]
    at = len(rules) if position is None else min(position, len(rules))
    rules.insert(at, moved)
    for i, r in enumerate(rules):
        if r.position != i:
            r.position = i


async def _check_rule_queue(session: AsyncSession, queue_id: uuid.UUID) -> None:
    if await session.get(Queue, queue_id) is None:
        raise Invalid("queue_id: no such queue", field="queue_id")


async def create_rule(session: AsyncSession, body: s.RuleIn, actor: Actor) -> RoutingRule:
    await _check_rule_queue(session, body.queue_id)
    rule = RoutingRule(
        id=new_id(),
        name=body.name,
        description=body.description,
        queue_id=body.queue_id,
        conditions=_conditions_json(body.conditions),
        priority=body.priority,
        enabled=body.enabled,
        position=10**6,
    )
    session.add(rule)
    await session.flush()
    await _reorder(session, rule, body.position)
    await session.flush()
    await audit.record(session, actor, "routing.rule_created", "routing_rule", rule.id, {"name": rule.name})
    await forward(session, "rules")
    return rule


async def update_rule(session: AsyncSession, rule_id: uuid.UUID, body: s.RuleUpdate, actor: Actor) -> RoutingRule:
    rule = await get_rule(session, rule_id)
    sent = set(body.model_fields_set)
    for field in sent - {"description", "priority"}:
        if getattr(body, field) is None:
            raise Invalid(f"{field} cannot be null", field=field)
    if body.queue_id is not None:
        await _check_rule_queue(session, body.queue_id)
        rule.queue_id = body.queue_id
    for field in ("name", "description", "priority", "enabled"):
        if field in sent:
            setattr(rule, field, getattr(body, field))
    if body.conditions is not None:
        rule.conditions = _conditions_json(body.conditions)
    if "position" in sent:
        await _reorder(session, rule, body.position)
    rule.updated_at = clock.now()
    await session.flush()
    await audit.record(session, actor, "routing.rule_updated", "routing_rule", rule.id, {"fields": sorted(sent)})
    await forward(session, "rules")
    return rule


async def delete_rule(session: AsyncSession, rule_id: uuid.UUID, actor: Actor) -> None:
    rule = await get_rule(session, rule_id)
    await session.delete(rule)
    await session.flush()
    for i, r in enumerate(await list_rules(session)):
        r.position = i
    await session.flush()
    await audit.record(session, actor, "routing.rule_deleted", "routing_rule", rule_id, {"name": rule.name})
