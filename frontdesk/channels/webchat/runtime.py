"""This process's web-chat state (``app.state.webchat``): the rate limiter, agents at their desk,
agents-online counts and the open widgets told of availability changes; and the listener that
runs it with the server. All of it can be rebuilt."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from frontdesk import clock
from frontdesk.channels.context import ListenerContext
from frontdesk.channels.listeners import Stop
from frontdesk.channels.webchat.availability import (
    AvailabilityWatcher,
    availability,
    availability_key,
    count_agents_online,
)
from frontdesk.models import Inbox
from frontdesk.ratelimit import Limiter, MemoryLimiter, make_limiter

log = logging.getLogger(__name__)

# How old an agents-online figure may be, and how often open widgets are told of a change.
AVAILABILITY_SECONDS = 2.0
# An agent whose last desk closed still counts this long (a reload must not flicker the widgets).
DESK_GRACE_SECONDS = 5.0


@dataclass
class Runtime:
    """Per-process web-chat state kept on ``app.state.webchat``; all of it can be rebuilt.

    Agents at their desk: the desk page's sockets on this process (``desk_opened`` /
    ``desk_closed``, called by ``/ws?desk=1``), plus, with Redis, the sets other nodes publish.
    """

    key: bytes
    limiter: Limiter
    redis_url: str | None
    redis_prefix: str = "fd"
    node: str = field(default_factory=lambda: uuid.uuid4().hex)
    desks_changed: asyncio.Event = field(default_factory=asyncio.Event)
    _desks: dict[str, int] = field(default_factory=dict)
    _closed: dict[str, float] = field(default_factory=dict)
    _remote: set[str] = field(default_factory=set)
    _remote_at: float = -1e9
    _online: dict[uuid.UUID, tuple[float, int]] = field(default_factory=dict)
    _locks: dict[uuid.UUID, asyncio.Lock] = field(default_factory=dict)
    _widgets: dict[uuid.UUID, set[AvailabilityWatcher]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _redis: Any = None

    PRESENCE_TTL = 30

    @property
    def presence_prefix(self) -> str:
        return f"{self.redis_prefix}:webchat:agents:"

    def _client(self) -> Any:
        if self._redis is None and self.redis_url:
            import redis.asyncio as redis

            self._redis = redis.from_url(self.redis_url)
        return self._redis

    # -- desks -------------------------------------------------------------------------------------

    def desk_opened(self, user_id: uuid.UUID) -> None:
        uid = str(user_id)
        self._desks[uid] = self._desks.get(uid, 0) + 1
        self._closed.pop(uid, None)
        self.desks_changed.set()

    def desk_closed(self, user_id: uuid.UUID) -> None:
        uid = str(user_id)
        left = self._desks.get(uid, 0) - 1
        if left > 0:
            self._desks[uid] = left
            return
        self._desks.pop(uid, None)
        self._closed[uid] = time.monotonic()
        self.desks_changed.set()

    def desks_here(self) -> set[str]:
        """Agents with a desk open on this process, or closed within the reload grace."""
        now = time.monotonic()
        self._closed = {u: at for u, at in self._closed.items() if now - at < DESK_GRACE_SECONDS}
        return set(self._desks) | set(self._closed)

    async def desks_open(self) -> set[uuid.UUID]:
        """Agents with a desk open anywhere: here, plus other nodes' published sets (Redis)."""
        found = self.desks_here()
        client = self._client()
        if client is not None:
            if time.monotonic() - self._remote_at >= AVAILABILITY_SECONDS:
                try:
                    remote: set[str] = set()
                    async for key in client.scan_iter(match=self.presence_prefix + "*", count=100):
                        k = key.decode() if isinstance(key, bytes) else str(key)
                        if k.endswith(self.node):
                            continue
                        raw = await client.get(k)
                        if raw:
                            remote.update(orjson.loads(raw))
                    self._remote, self._remote_at = remote, time.monotonic()
                except Exception:
                    log.warning("webchat: could not read agent desks from Redis", exc_info=True)
            found |= self._remote
        out = set()
        for uid in found:
            with contextlib.suppress(ValueError):
                out.add(uuid.UUID(uid))
        return out

    async def publish_desks(self) -> None:
        client = self._client()
        if client is not None:
            await client.set(
                self.presence_prefix + self.node, orjson.dumps(sorted(self.desks_here())), ex=self.PRESENCE_TTL
            )

    # -- agents online -----------------------------------------------------------------------------

    async def refresh(self, session: AsyncSession, inboxes: Sequence[Inbox]) -> dict[uuid.UUID, int]:
        """Count afresh the agents online for ``inboxes`` (see :func:`count_agents_online`)."""
        counts = await count_agents_online(session, inboxes, await self.desks_open())
        now = time.monotonic()
        for inbox_id, n in counts.items():
            self._online[inbox_id] = (now, n)
        return counts

    async def agents_online(self, session: AsyncSession, inbox: Inbox) -> int:
        """The inbox's agents online, at most ``AVAILABILITY_SECONDS`` old (one count at a time)."""
        hit = self._online.get(inbox.id)
        if hit is not None and time.monotonic() - hit[0] < AVAILABILITY_SECONDS:
            return hit[1]
        async with self._locks.setdefault(inbox.id, asyncio.Lock()):
            hit = self._online.get(inbox.id)
            if hit is not None and time.monotonic() - hit[0] < AVAILABILITY_SECONDS:
                return hit[1]
            return (await self.refresh(session, [inbox]))[inbox.id]

    # -- open widgets ------------------------------------------------------------------------------

    def watch(self, widget: AvailabilityWatcher) -> None:
        self._widgets.setdefault(widget.inbox.id, set()).add(widget)

    def unwatch(self, widget: AvailabilityWatcher) -> None:
        found = self._widgets.get(widget.inbox.id)
        if found is not None:
            found.discard(widget)
            if not found:
                del self._widgets[widget.inbox.id]

    async def tell_widgets(self, db: Any) -> None:
        """Count the agents online for every inbox with a widget open here; tell each widget whose
        visitor was last shown something else (a widget is never sent what it already shows)."""
        if not self._widgets:
            return
        async with db.transaction() as session:
            inboxes = list((await session.scalars(select(Inbox).where(Inbox.id.in_(list(self._widgets))))).all())
            counts = await self.refresh(session, inboxes)
        now = clock.now()
        for inbox in inboxes:
            key = availability_key(availability(inbox, counts[inbox.id], email_known=True, now=now))
            for widget in list(self._widgets.get(inbox.id, ())):
                if widget.told != key:
                    widget.told = key
                    self._spawn(widget.tell_availability(inbox, counts[inbox.id]))

    def _spawn(self, work: Any) -> None:
        async def run() -> None:
            with contextlib.suppress(Exception):  # a socket closing meanwhile
                await work

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        await self.limiter.close()
        for task in list(self._tasks):
            task.cancel()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None


def runtime(app: Starlette | ListenerContext) -> Runtime:
    """This process's web-chat state (``app.state.webchat``), made on first use."""
    rt: Runtime | None = getattr(app.state, "webchat", None)
    if rt is None:
        from frontdesk.channels.webchat.visitor import token_key

        settings = app.state.settings
        rt = Runtime(
            key=token_key(settings.secret()),
            limiter=make_limiter(
                settings.redis_url,
                settings.redis_prefix,
                name="webchat:rl",
                memory=MemoryLimiter(now=time.monotonic, max_keys=200_000),
                fall_back=True,
            ),
            redis_url=settings.redis_url,
            redis_prefix=settings.redis_prefix,
        )
        app.state.webchat = rt
    return rt


def desk_opened(app: Starlette, user_id: uuid.UUID) -> None:
    """For the desk page's socket (``/ws?desk=1``): the agent is at their desk on this process."""
    runtime(app).desk_opened(user_id)


def desk_closed(app: Starlette, user_id: uuid.UUID) -> None:
    """For the desk page's socket, when it closes (after a grace the agent no longer counts)."""
    rt: Runtime | None = getattr(app.state, "webchat", None)
    if rt is not None:
        rt.desk_closed(user_id)


def client_ip(client: Any) -> str:
    return str(client.host) if client else "unknown"


PRESENCE_EVERY_SECONDS = 10.0


async def start_webchat(ctx: ListenerContext) -> Stop:
    """Make the runtime; tell open widgets when their inbox's availability changes; with Redis,
    publish this node's agents at their desk (at once when it changes, else every few seconds)."""
    rt = runtime(ctx)

    async def watch() -> None:
        while True:
            await asyncio.sleep(max(AVAILABILITY_SECONDS, 0.1))
            try:
                await rt.tell_widgets(ctx.db)
            except Exception:
                log.warning("webchat: could not tell open widgets about availability", exc_info=True)

    async def beacon() -> None:
        while True:
            rt.desks_changed.clear()
            try:
                await rt.publish_desks()
            except Exception:
                log.warning("webchat: could not publish agent desks", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rt.desks_changed.wait(), PRESENCE_EVERY_SECONDS)
            await asyncio.sleep(0.2)  # a burst of desks opening is one publish

    tasks = [asyncio.create_task(watch(), name="webchat-availability")]
    if rt.redis_url:
        tasks.append(asyncio.create_task(beacon(), name="webchat-desks"))

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        await rt.close()
        if getattr(ctx.state, "webchat", None) is rt:
            ctx.state.webchat = None

    return stop
