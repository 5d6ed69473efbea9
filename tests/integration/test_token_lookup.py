"""A token whose cache entry ran out is looked up once for all the requests that carry it at that
moment, and a credential change is never answered from a lookup that began before it."""

from __future__ import annotations

import asyncio

from frontdesk.auth import cache, deps
from frontdesk.auth.deps import resolve_credentials
from frontdesk.errors import Unauthorized
from tests.builders import make_token, make_user


async def test_concurrent_misses_share_one_lookup_and_a_change_starts_a_new_one(app, monkeypatch):
    db = app.state.db
    token = await make_token(db, await make_user(db))
    cache.clear()
    lookups = 0
    real = deps._token_principal

    async def counted(*args, **kwargs):
        nonlocal lookups
        lookups += 1
        await asyncio.sleep(0.05)  # long enough for every request below to arrive while it runs
        return await real(*args, **kwargs)

    monkeypatch.setattr(deps, "_token_principal", counted)
    principals = await asyncio.gather(*(resolve_credentials(db, token=token) for _ in range(20)))
    assert lookups == 1
    assert len({p.user_id for p in principals}) == 1

    # A change empties the cache while a lookup is in flight: a request after it does not join
    # that lookup, and the stale answer is not cached.
    cache.clear()
    first = asyncio.ensure_future(resolve_credentials(db, token=token))
    await asyncio.sleep(0.01)
    cache.clear()
    second = asyncio.ensure_future(resolve_credentials(db, token=token))
    await asyncio.gather(first, second)
    assert lookups == 3
    assert not deps._in_flight


async def test_a_shared_refusal_reaches_every_caller(app):
    db = app.state.db
    results = await asyncio.gather(
        *(resolve_credentials(db, token="fd_not-a-token") for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, Unauthorized) for r in results)
    assert not deps._in_flight
