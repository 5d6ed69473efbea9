"""Whether a human can answer a web chat now, and when otherwise: the inbox's business hours, and
the agents who could take a new chat from it (at their desk, available, reachable by routing)."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.models import Inbox, Queue
from frontdesk.models.enums import Channel, PresenceStatus
from frontdesk.models.routing import RoutingRule
from frontdesk.routing import rules as routing_rules
from frontdesk.routing import service as routing

log = logging.getLogger(__name__)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$|^24:00$")


def _minutes(value: Any) -> int | None:
    if not isinstance(value, str) or not _HHMM.match(value.strip()):
        return None
    h, m = value.strip().split(":")
    return int(h) * 60 + int(m)


def _day_ranges(spec: Any) -> list[tuple[int, int]]:
    """``["09:00","18:00"]`` or ``[["09:00","12:00"],["13:00","18:00"]]`` → minute ranges."""
    if not isinstance(spec, list) or not spec:
        return []
    pairs = [spec] if isinstance(spec[0], str) else spec
    out = []
    for pair in pairs[:10]:
        if isinstance(pair, list) and len(pair) == 2:
            start, end = _minutes(pair[0]), _minutes(pair[1])
            if start is not None and end is not None and start < end:
                out.append((start, end))
    return sorted(out)


def business_state(config: dict[str, Any], now: datetime) -> tuple[bool, datetime | None]:
    """``(open now, next opening)`` from inbox config ``business_hours`` ({tz, days}); no config = always open."""
    hours = config.get("business_hours")
    if not isinstance(hours, dict) or not isinstance(hours.get("days"), dict):
        return True, None
    try:
        tz = ZoneInfo(str(hours.get("tz") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("webchat: unknown business_hours.tz %r; using UTC", hours.get("tz"))
        tz = ZoneInfo("UTC")
    days = {d: _day_ranges(hours["days"].get(d)) for d in DAYS}
    local = now.astimezone(tz)
    minute = local.hour * 60 + local.minute
    if any(s <= minute < e for s, e in days[DAYS[local.weekday()]]):
        return True, None
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    for offset in range(8):
        day = midnight + timedelta(days=offset)
        for start, _end in days[DAYS[day.weekday()]]:
            # Wall-clock arithmetic in the zone, then back to UTC (DST-correct).
            opening = datetime(day.year, day.month, day.day, start // 60, start % 60, tzinfo=tz)
            if opening > local:
                return False, clock.ensure_utc(opening)
    return False, None


def availability(inbox: Inbox, agents_online: int, *, email_known: bool, now: datetime | None = None) -> dict[str, Any]:
    """The ``availability`` object of the protocol."""
    is_open, next_open = business_state(inbox.config or {}, now or clock.now())
    live = is_open and agents_online > 0
    return {
        "open": is_open,
        "agents_online": agents_online,
        "reply_expectation": "in a few minutes" if live else "by email",
        "next_open_at": next_open.isoformat() if next_open else None,
        "ask_email": not live and not email_known,
    }


# -- who can answer: agents at their desk, available, whom routing could give this chat ----------

ONLINE_PRESENCE = (PresenceStatus.available.value, PresenceStatus.busy.value)
_NARROWING = ("languages", "tags", "segments", "attributes")  # rule conditions a new chat may or may not meet


def reachable_queues(rules: Sequence[RoutingRule], queues: Sequence[Queue], inbox_id: uuid.UUID) -> list[Queue]:
    """The queues a new web chat from this inbox can be routed to, as the routing leader chooses
    (``routing/leader.py``): enabled rules in order whose channel and inbox conditions hold and whose
    queue serves web chat — up to the first one that every chat meets — else the general queue
    (the highest-priority one no rule targets). ``queues`` are those serving web chat; ``rules``
    the enabled ones in order. Empty: the chat would wait unrouted, for anyone to pick up."""
    subject = routing_rules.Subject(channel=Channel.webchat.value, inbox_id=str(inbox_id))
    by_id = {q.id: q for q in queues}
    out: list[Queue] = []
    for rule in rules:
        cond = rule.conditions or {}
        queue = by_id.get(rule.queue_id)
        scope = {"channels": cond.get("channels"), "inbox_ids": cond.get("inbox_ids")}
        if queue is None or not routing_rules.matches(scope, subject):
            continue
        if queue not in out:
            out.append(queue)
        if not any(cond.get(k) for k in _NARROWING):
            return out  # every chat from this inbox stops at this rule
    targeted = {r.queue_id for r in rules}
    general = sorted((q for q in queues if q.id not in targeted), key=lambda q: (-q.priority, q.name))
    if general and general[0] not in out:
        out.append(general[0])
    return out


async def count_agents_online(
    session: AsyncSession, inboxes: Sequence[Inbox], at_desk: set[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Per inbox, the agents who can answer its web chat now: their desk is open (``at_desk``),
    their presence is available or busy, their routing profile takes web chat, and they are able
    for one of the queues a chat from the inbox reaches (any such agent when it reaches none)."""
    counts = {inbox.id: 0 for inbox in inboxes}
    if not at_desk or not inboxes:
        return counts
    webchat = Channel.webchat.value
    agents = [
        a
        for a in await routing.agent_configs(session, at_desk)
        if a.presence in ONLINE_PRESENCE and a.max_per_channel.get(webchat, 0) > 0
    ]
    if not agents:
        return counts
    queues = [q for q in await routing.list_queues(session) if webchat in routing.queue_channels(q)]
    rules: list[RoutingRule] = []
    required: dict[uuid.UUID, dict[str, int]] = {}
    if queues:
        rules = list(
            (
                await session.scalars(
                    select(RoutingRule)
                    .where(RoutingRule.enabled.is_(True))
                    .order_by(RoutingRule.position, RoutingRule.created_at)
                )
            ).all()
        )
        required = await routing.queue_requirements(session)
    for inbox in inboxes:
        reachable = reachable_queues(rules, queues, inbox.id)
        counts[inbox.id] = sum(
            1 for a in agents if not reachable or any(routing.able_for(q, required.get(q.id, {}), a) for q in reachable)
        )
    return counts


def availability_key(state: dict[str, Any]) -> tuple[Any, ...]:
    """What a visitor sees of ``availability``: a change of it is worth telling open widgets."""
    return state["open"], state["reply_expectation"], state["next_open_at"]


class AvailabilityWatcher(Protocol):
    """An open widget (``socket.WidgetConnection``), told when what its visitor sees would change."""

    inbox: Inbox
    told: tuple[Any, ...] | None  # the availability it last showed (``availability_key``)

    async def tell_availability(self, inbox: Inbox, agents_online: int) -> None: ...
