"""The one clock. Every "now" in Frontdesk comes from here so tests can move time.

Always aware UTC. Tests call :func:`set_clock` (or use the ``frozen_clock`` fixture).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

_clock: Callable[[], datetime] | None = None


def now() -> datetime:
    """Current time, aware UTC."""
    if _clock is not None:
        return _clock()
    return datetime.now(UTC)


def set_clock(fn: Callable[[], datetime] | None) -> None:
    """Replace the clock (``None`` restores the system clock)."""
    global _clock
    _clock = fn


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` as aware UTC; naive values are taken to be UTC (SQLite returns those)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
