"""A short-lived, in-process cache of resolved API tokens.

Resolving a Bearer token costs a database round trip; on the inbound hot path that was most
of a request's cost. A resolved token is kept for ``TTL_SECONDS``. Anything that can make a
cached answer wrong — revoking a token, disabling a user, changing a role or password — is a
credential change (:mod:`frontdesk.auth.revocation`): this process forgets every cached token at
once, and every other process when it hears of the change (through the realtime hub at once, from
the ``credential_changes`` table within ``auth_watch_seconds``). ``TTL_SECONDS`` only bounds an
entry's life if both of those fail.

A lookup that started before a change must not put its (now stale) answer into the cache after
the change emptied it: :func:`generation` is taken before the lookup and handed to :func:`put`,
which ignores the answer when the cache was cleared in between.
"""

from __future__ import annotations

import time
from typing import Any

TTL_SECONDS = 10.0
MAX_ENTRIES = 10_000

_entries: dict[str, tuple[float, Any]] = {}
_generation = 0


def generation() -> int:
    """Changes every time the cache is cleared."""
    return _generation


def get(token_hash: str) -> Any | None:
    entry = _entries.get(token_hash)
    if entry is None:
        return None
    if entry[0] < time.monotonic():
        _entries.pop(token_hash, None)
        return None
    return entry[1]


def put(token_hash: str, value: Any, since: int | None = None) -> None:
    """Remember ``value``, unless the cache was cleared after ``since`` (a :func:`generation`)."""
    if since is not None and since != _generation:
        return
    if len(_entries) >= MAX_ENTRIES:
        _entries.clear()
    _entries[token_hash] = (time.monotonic() + TTL_SECONDS, value)


def clear() -> None:
    global _generation
    _generation += 1
    _entries.clear()
