"""Rate limits, one module for every caller: fixed windows per key, and a token bucket.

**Fixed windows** (:class:`MemoryLimiter`, :class:`RedisLimiter`; :func:`make_limiter` picks one):
each key counts uses in a window that starts with its first use and is not extended by later ones;
each check gives its own limit, so one key can be held at a low limit (an account's failed
sign-ins) and another at a high one (a client address). Two ways to use it:

- :meth:`~Limiter.hit` counts one use and answers whether it went over: the widget's messages,
  uploads and sessions (``channels/webchat``);
- :meth:`~Limiter.retry_after` asks before, :meth:`~Limiter.fail` counts after: failed sign-ins
  (``auth/api.py``), so only failures count.

A wait is the time left in the window of the key that blocks, so it counts down on every try.
Redis counters (``SET NX EX`` + ``INCR`` in one transaction, shared by every node of a cluster)
when ``FRONTDESK_REDIS_URL`` is set, an in-process dictionary otherwise. Counters are rebuildable
state: losing them only forgets recent uses. When Redis fails, a limiter either refuses
(``ServiceUnavailable``: sign-in fails closed) or, given a ``fallback``, counts in-process and logs.

**Token bucket** (:class:`TokenBucket`): per connection, in memory (an agent socket's typing
frames): ``rate`` tokens a second, bursts of ``burst``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from frontdesk import clock
from frontdesk.errors import ServiceUnavailable

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60


def _clock_seconds() -> float:
    return clock.now().timestamp()


class Limiter(Protocol):
    async def hit(self, key: str, limit: int) -> int | None:
        """Count one use of ``key``; ``None`` if within ``limit``, else seconds until its window ends."""
        ...

    async def retry_after(self, limits: Mapping[str, int]) -> int | None:
        """Seconds until every key is below its limit (``{key: limit}``) again, or ``None`` if none is blocked."""
        ...

    async def fail(self, *keys: str) -> None:
        """Count one use (a failure) against each key."""
        ...

    async def reset(self, *keys: str) -> None: ...

    async def close(self) -> None: ...


class MemoryLimiter:
    """One process's counters; enough for the embedded (single-process) mode.

    ``now`` is the time source in seconds: the shared clock by default (tests move it), or
    ``time.monotonic`` where wall-clock jumps must not matter."""

    MAX_KEYS = 100_000

    def __init__(
        self, window: int = WINDOW_SECONDS, *, now: Callable[[], float] = _clock_seconds, max_keys: int = MAX_KEYS
    ) -> None:
        self.window = window
        self.now = now
        self.max_keys = max_keys
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (uses, window ends at)

    def _live(self, key: str, now: float) -> tuple[int, float] | None:
        entry = self._counts.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._counts[key]
            return None
        return entry

    def _bound(self, now: float) -> None:
        if len(self._counts) >= self.max_keys:  # keep memory bounded under a spray of keys
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}

    async def hit(self, key: str, limit: int) -> int | None:
        now = self.now()
        self._bound(now)
        entry = self._live(key, now)
        count, ends = (entry[0] + 1, entry[1]) if entry else (1, now + self.window)
        self._counts[key] = (count, ends)
        return None if count <= limit else max(1, math.ceil(ends - now))

    async def retry_after(self, limits: Mapping[str, int]) -> int | None:
        now = self.now()
        waits = [e[1] - now for k, limit in limits.items() if (e := self._live(k, now)) is not None and e[0] >= limit]
        return max(1, math.ceil(max(waits))) if waits else None

    async def fail(self, *keys: str) -> None:
        now = self.now()
        self._bound(now)
        for key in keys:
            entry = self._live(key, now)
            self._counts[key] = (entry[0] + 1, entry[1]) if entry else (1, now + self.window)

    async def reset(self, *keys: str) -> None:
        for key in keys:
            self._counts.pop(key, None)

    async def close(self) -> None:
        self._counts.clear()


class RedisLimiter:
    """Counters in Redis under ``<prefix>:<name>:<key>``, shared by every node.

    On a Redis error: with a ``fallback`` (a :class:`MemoryLimiter`) this process counts alone and
    a warning is logged; without one, :class:`ServiceUnavailable` ("``what`` is briefly
    unavailable") — except :meth:`reset`, which only logs (a counter left behind expires later)."""

    def __init__(
        self,
        url: str,
        window: int = WINDOW_SECONDS,
        prefix: str = "fd",
        *,
        name: str,
        what: str = "This",
        fallback: MemoryLimiter | None = None,
    ) -> None:
        import redis.asyncio as redis

        self.window = window
        self.key_prefix = f"{prefix}:{name}:"
        self.what = what
        self.fallback = fallback
        self._redis: Any = redis.from_url(url)

    def _failed(self, exc: Exception) -> None:
        """Raise for a Redis error unless a fallback takes over."""
        if self.fallback is None:
            raise ServiceUnavailable(
                f"{self.what} is briefly unavailable (rate-limit store: {type(exc).__name__})."
            ) from exc
        log.warning("Redis rate-limit counters %s unavailable; counting in-process", self.key_prefix, exc_info=True)

    async def hit(self, key: str, limit: int) -> int | None:
        try:
            full = self.key_prefix + key
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(full, 0, ex=self.window, nx=True)
                pipe.incr(full)
                pipe.ttl(full)
                _set, count, ttl = await pipe.execute()
            return None if int(count) <= limit else max(1, int(ttl) if ttl and ttl > 0 else self.window)
        except Exception as exc:  # counters are rebuildable: see _failed
            self._failed(exc)
            assert self.fallback is not None
            return await self.fallback.hit(key, limit)

    async def retry_after(self, limits: Mapping[str, int]) -> int | None:
        from redis.exceptions import RedisError

        try:
            return await self._retry_after(limits)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            assert self.fallback is not None
            return await self.fallback.retry_after(limits)

    async def fail(self, *keys: str) -> None:
        from redis.exceptions import RedisError

        try:
            await self._fail(*keys)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            assert self.fallback is not None
            await self.fallback.fail(*keys)

    async def _retry_after(self, limits: Mapping[str, int]) -> int | None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in limits:
                pipe.get(self.key_prefix + key)
                pipe.pttl(self.key_prefix + key)
            values = await pipe.execute()
        waits = []
        for limit, count, pttl in zip(limits.values(), values[::2], values[1::2], strict=True):
            if count is not None and int(count) >= limit:
                waits.append(max(1, math.ceil(pttl / 1000)) if pttl and pttl > 0 else self.window)
        return max(waits) if waits else None

    async def _fail(self, *keys: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in keys:
                # The window starts with the first use and is not extended by later ones:
                # create the counter with its expiry only if missing (works on any Redis), then INCR,
                # which keeps the expiry. Both in one MULTI so no counter is left without one.
                pipe.set(self.key_prefix + key, 0, ex=self.window, nx=True)
                pipe.incr(self.key_prefix + key)
            await pipe.execute()

    async def reset(self, *keys: str) -> None:
        from redis.exceptions import RedisError

        try:
            if keys:
                await self._redis.delete(*(self.key_prefix + k for k in keys))
        except (RedisError, OSError):  # a counter left behind only expires later
            log.warning("could not reset rate-limit counters %s in Redis", self.key_prefix, exc_info=True)
        if self.fallback is not None:
            await self.fallback.reset(*keys)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self.fallback is not None:
            await self.fallback.close()


def make_limiter(
    redis_url: str | None,
    prefix: str = "fd",
    *,
    name: str,
    what: str = "This",
    memory: MemoryLimiter | None = None,
    fall_back: bool = False,
) -> Limiter:
    """Redis counters when ``redis_url`` is set (falling back to ``memory`` on errors if
    ``fall_back``), else ``memory`` (a :class:`MemoryLimiter` on the shared clock by default)."""
    memory = memory or MemoryLimiter()
    if redis_url:
        return RedisLimiter(redis_url, prefix=prefix, name=name, what=what, fallback=memory if fall_back else None)
    return memory


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; each allowed use takes one."""

    def __init__(self, rate: float, burst: float, *, now: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.now = now
        self.tokens = burst
        self.at = now()

    def allow(self) -> bool:
        now = self.now()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True
