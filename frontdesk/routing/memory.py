"""What the routing leader keeps in memory, besides the core: the base of the leader's rooms.

The core (``core.Router``) holds the items, agents and queues it decides on. Next to it the leader
keeps, per live item, what it needs to write rows and explain decisions (:class:`Meta`), who holds
which conversation (for capacity), the queues' settings as the database had them
(:class:`QueueSpec`), the routing rules, and its own timers (``leader_timers.py``). All of it is
rebuilt from the database when a leader takes over or a step fails (``rebuild.py``), except what
only this process heard: open desk sockets and the conversations to look at again.

:class:`LeaderState` declares that state; the rooms of the leader (``persistence.py``,
``leader_timers.py``, ``rebuild.py``, ``queueing.py``, ``reconcile.py``, ``step.py``,
``leadership.py``) are mixins over it, composed by ``leader.RoutingLeader``.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from frontdesk import clock
from frontdesk.db import Database
from frontdesk.routing import core, rules

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from frontdesk.routing.persistence import Writes


def _ts(at: datetime) -> float:
    return clock.ensure_utc(at).timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


@dataclass
class QueueSpec:
    id: str
    name: str
    channels: list[str]
    priority: int
    sl_percent: int
    sl_seconds: int
    auto_accept: bool
    rings: list[dict[str, Any]]
    overflow_to: str | None
    overflow_after: int | None


@dataclass
class Meta:
    """What the leader keeps about a live item besides the core's :class:`core.Item`."""

    queue_id: str
    channel: str
    arrived_at: datetime
    rule: str | None
    customer_name: str | None
    offer_id: uuid.UUID | None = None
    priority: str = "normal"  # the conversation's (low, normal, high, urgent)


class LeaderState:
    """The leader's state (set up by ``RoutingLeader.__init__`` and :meth:`_reset`)."""

    db: Database
    name: str
    tick: float
    lock_retry: float
    grace: float
    max_missed: int
    is_leader: bool
    epoch: int
    ready: asyncio.Event
    router: core.Router | None
    _failures: int
    _wake: asyncio.Event
    _lock: asyncio.Lock
    _task: asyncio.Task[None] | None
    _stopping: bool
    _pg: Any  # asyncpg connection holding the advisory lock
    _lock_fd: int | None

    def _reset(self) -> None:
        self.meta: dict[str, Meta] = {}
        self.held: dict[str, tuple[str, str]] = {}  # conversation -> (agent, channel)
        self.queues: dict[str, QueueSpec] = {}
        self.rules: list[rules.RuleSpec] = []
        self.rule_targets: set[str] = set()
        self.acw_seconds: dict[str, int] = {}
        # (due, conversation, ring number | -, queue): a timer set in one queue is void after a move
        self._rings: list[tuple[float, str, int, str]] = []
        self._sla: list[tuple[float, str, str]] = []
        self._overflow: list[tuple[float, str, str]] = []
        self._acw: list[tuple[float, str]] = []
        self._disconnects: dict[str, float] = {}
        self._sockets: dict[str, int] = {}  # open desk sockets per agent (as far as this leader heard)
        self._recheck: set[str] = set()
        self._repairs: list[str] = []
        self._status: dict[str, tuple[float, int, int]] = {}
        self._status_at = 0.0
        self._heartbeat_at = 0.0

    if TYPE_CHECKING:  # rooms call each other; these live in later rooms (see each module)

        async def _rebuild(self) -> None: ...  # rebuild.py

        async def _move(  # queueing.py
            self, session: AsyncSession, cid: str, queue_id: str, kind: str, why: str, w: Writes, now: datetime
        ) -> None: ...

        async def _set_core_presence(  # reconcile.py
            self,
            session: AsyncSession,
            aid: str,
            presence: core.Presence,
            why: str,
            w: Writes,
            now: datetime,
            *,
            at: float | None = None,
        ) -> None: ...
