"""Long-running channel listeners that live as long as the server: the SMTP receiver, IMAP pollers…

The wiring (``frontdesk/wiring.py: listeners``) lists the starters; the app's lifespan calls
:func:`start_all` with them after the database and hub are up, and :func:`stop_all` before they
go. A starter gets the process's context (``channels.context.ListenerContext``: database, hub,
settings, ingest writer, attachment store) and returns an async ``stop`` function, or ``None``
when it has nothing to run (not configured). This module knows no channel and no context type.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

log = logging.getLogger(__name__)

Ctx = TypeVar("Ctx")
Stop = Callable[[], Awaitable[None]]
Starter = Callable[[Ctx], Awaitable[Stop | None]]


async def start_all(ctx: Ctx, starters: Iterable[Starter[Ctx]]) -> list[Stop]:
    """Start each listener in order; their ``stop`` functions (what :func:`stop_all` takes)."""
    stops: list[Stop] = []
    for start in starters:
        stop = await start(ctx)
        if stop is not None:
            stops.append(stop)
    return stops


async def stop_all(stops: list[Stop]) -> None:
    for stop in reversed(stops):
        try:
            await stop()
        except Exception:
            log.exception("a channel listener failed to stop cleanly")
