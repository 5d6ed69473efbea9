"""Long-running channel listeners that live as long as the server: the SMTP receiver, IMAP pollers…

A module in :data:`LISTENER_MODULES` registers a starter with :func:`listener`. The app's lifespan
calls :func:`start_all` after the database and hub are up and :func:`stop_all` before they go.
A starter gets the FastAPI app (``app.state.db``, ``.hub``, ``.settings``, ``.ingest``) and
returns an async ``stop`` function, or ``None`` when it has nothing to run (not configured).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Stop = Callable[[], Awaitable[None]]
Starter = Callable[[Any], Awaitable[Stop | None]]

LISTENER_MODULES: list[str] = [
    "frontdesk.channels.email.imap",
    "frontdesk.channels.email.smtp_server",
    "frontdesk.channels.webchat.runtime",
]
_starters: list[Starter] = []


def listener(fn: Starter) -> Starter:
    """Register ``fn`` to start with the server."""
    if fn not in _starters:
        _starters.append(fn)
    return fn


async def start_all(app: Any) -> list[Stop]:
    for module in LISTENER_MODULES:
        importlib.import_module(module)
    stops: list[Stop] = []
    for start in _starters:
        stop = await start(app)
        if stop is not None:
            stops.append(stop)
    return stops


async def stop_all(stops: list[Stop]) -> None:
    for stop in reversed(stops):
        try:
            await stop()
        except Exception:
            log.exception("a channel listener failed to stop cleanly")
