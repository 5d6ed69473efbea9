"""A short-lived, in-process cache of resolved API tokens.

Resolving a Bearer token costs a database round trip; on the inbound hot path that was most
of a request's cost. A resolved token is kept for ``TTL_SECONDS``. Anything that can make a
cached answer wrong — revoking a token, disabling a user, changing a role — calls
:func:`invalidate_after_commit`, which empties this process's cache at once and, after the
commit, tells every other process through the realtime hub (topic ``system.auth``). If the hub
message is lost, an entry still dies within the TTL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.db import after_commit

if TYPE_CHECKING:
    from frontdesk.realtime import Hub

log = logging.getLogger(__name__)

TTL_SECONDS = 10.0
MAX_ENTRIES = 10_000
TOPIC = "system.auth"

_entries: dict[str, tuple[float, Any]] = {}


def get(token_hash: str) -> Any | None:
    entry = _entries.get(token_hash)
    if entry is None:
        return None
    if entry[0] < time.monotonic():
        _entries.pop(token_hash, None)
        return None
    return entry[1]


def put(token_hash: str, value: Any) -> None:
    if len(_entries) >= MAX_ENTRIES:
        _entries.clear()
    _entries[token_hash] = (time.monotonic() + TTL_SECONDS, value)


def clear() -> None:
    _entries.clear()


def invalidate_after_commit(session: AsyncSession) -> None:
    """Forget every cached token now and after the commit, here and in every other process."""
    clear()

    async def _effect() -> None:
        clear()
        hub: Hub | None = session.info.get("hub")
        if hub is not None:
            await hub.publish(TOPIC, "auth.credentials_changed", {})

    after_commit(session, _effect)


async def listen(hub: Hub) -> None:
    """Clear the cache whenever another process says credentials changed (runs for the app's life)."""
    while True:
        try:
            async for _event in hub.subscribe([TOPIC]):
                clear()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("auth cache listener lost the hub; retrying", exc_info=True)
            clear()
            await asyncio.sleep(1)
