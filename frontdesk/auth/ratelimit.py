"""Counting failed sign-ins: fixed one-minute windows per key, each key with its own limit.

Sign-in counts failures per account (``email:<address>``, a low limit) and per client address
(``ip:<address>``, a much higher one), so one person's typos hold only their own account, while one
address spraying many accounts is still stopped. The wait reported is the time left in the window
of the key that blocks, so it counts down on every try.

One small interface, two backends: Redis counters (``INCR`` + ``EXPIRE``, shared by every node of a
cluster) when ``FRONTDESK_REDIS_URL`` is set, an in-process dictionary otherwise. Counters are
rebuildable state: losing them only forgets recent failures.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Protocol

from frontdesk import clock
from frontdesk.errors import ServiceUnavailable

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
KEY_SUFFIX = ":login-failures:"  # after the deployment's Redis prefix (settings.redis_prefix)


class FailureLimiter(Protocol):
    async def retry_after(self, limits: Mapping[str, int]) -> int | None:
        """Seconds until every key is below its limit (``{key: limit}``) again, or ``None`` if none is blocked."""
        ...

    async def fail(self, *keys: str) -> None:
        """Count one failure against each key."""
        ...

    async def reset(self, *keys: str) -> None: ...

    async def close(self) -> None: ...


class MemoryLimiter:
    """One process's counters; enough for the embedded (single-process) mode."""

    MAX_KEYS = 100_000

    def __init__(self, window: int = WINDOW_SECONDS) -> None:
        self.window = window
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (failures, window ends at)

    def _live(self, key: str, now: float) -> tuple[int, float] | None:
        entry = self._counts.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._counts[key]
            return None
        return entry

    async def retry_after(self, limits: Mapping[str, int]) -> int | None:
        now = clock.now().timestamp()
        waits = [e[1] - now for k, limit in limits.items() if (e := self._live(k, now)) is not None and e[0] >= limit]
        return max(1, math.ceil(max(waits))) if waits else None

    async def fail(self, *keys: str) -> None:
        now = clock.now().timestamp()
        if len(self._counts) >= self.MAX_KEYS:  # keep memory bounded under a spray of keys
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        for key in keys:
            entry = self._live(key, now)
            self._counts[key] = (entry[0] + 1, entry[1]) if entry else (1, now + self.window)

    async def reset(self, *keys: str) -> None:
        for key in keys:
            self._counts.pop(key, None)

    async def close(self) -> None:
        self._counts.clear()


def _unavailable(exc: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(f"Sign-in is briefly unavailable (rate-limit store: {type(exc).__name__}).")


class RedisLimiter:
    """Counters in Redis, shared by every node: ``INCR`` on a key that expires a window after the first failure."""

    def __init__(self, url: str, window: int = WINDOW_SECONDS, prefix: str = "fd") -> None:
        import redis.asyncio as redis

        self.window = window
        self.key_prefix = prefix + KEY_SUFFIX
        self._redis: Any = redis.from_url(url)

    async def retry_after(self, limits: Mapping[str, int]) -> int | None:
        from redis.exceptions import RedisError

        try:
            return await self._retry_after(limits)
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def fail(self, *keys: str) -> None:
        from redis.exceptions import RedisError

        try:
            await self._fail(*keys)
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

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
                # The window starts with the first failure and is not extended by later ones:
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
        except (RedisError, OSError):  # a counter left behind only expires later; the sign-in stands
            log.warning("could not reset sign-in counters in Redis", exc_info=True)

    async def close(self) -> None:
        await self._redis.aclose()


def make_limiter(redis_url: str | None, prefix: str = "fd") -> FailureLimiter:
    if redis_url:
        return RedisLimiter(redis_url, prefix=prefix)
    return MemoryLimiter()
