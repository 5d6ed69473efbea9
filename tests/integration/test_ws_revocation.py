"""A ``/ws`` socket lives only as long as its credential: sign-out, password change, a disabled user
and a revoked token close it at once (4401) — in this process, in another app instance (Redis) and
when ``frontdesk user disable`` runs in another process against a running ``frontdesk serve``.
Sockets of other users, and of the same user on a credential still good, stay open."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from frontdesk.db import Database
from frontdesk.settings import Settings
from tests.builders import DEFAULT_PASSWORD, make_conversation, make_customer, make_token, make_user
from tests.builders.ws import (
    REPO,
    Server,
    browser_headers,
    closed_with,
    cookie_socket,
    frontdesk_command,
    hello,
    marked,
    process_env,
    recv,
    running,
    serve_process,
    sign_in,
    still_open,
    token_socket,
)
from tests.conftest import truncate_all

REVOKED = 4401


@pytest.fixture
async def server(settings: Settings, hub_backend: str | None) -> AsyncIterator[Server]:
    async with running(settings, hub_backend) as srv:
        try:
            yield srv
        finally:
            await truncate_all(srv.app.state.db)


async def publish_marker(server: Server) -> str:
    marker = uuid.uuid4().hex
    await server.hub.publish("desk", "conversation.updated", {"marker": marker})
    return marker


async def test_sign_out_closes_that_browsers_socket_only(server: Server):
    db = server.app.state.db
    user = await make_user(db)
    bystander = await make_user(db)
    cookie_a, csrf_a = await sign_in(server.http, user.email)
    cookie_b, _ = await sign_in(server.http, user.email)  # the same user in a second browser
    other = await token_socket(server.url(), await make_token(db, bystander))
    a = await cookie_socket(server, cookie_a)
    b = await cookie_socket(server, cookie_b)
    for ws in (a, b, other):
        await hello(ws)

    async with httpx.AsyncClient(base_url=server.http) as c:
        r = await c.post("/api/v1/auth/logout", headers=browser_headers(cookie_a, csrf_a))
    assert r.status_code == 204
    marker = await publish_marker(server)
    assert await closed_with(a, marker=marker) == REVOKED
    for ws in (b, other):  # the user's other browser and another user keep their desks
        assert (await recv(ws, marked(marker)))["data"]["marker"] == marker
        assert await still_open(ws)
        await ws.close()


async def test_password_change_closes_the_other_browsers(server: Server):
    db = server.app.state.db
    user = await make_user(db)
    bystander = await make_user(db)
    cookie_a, csrf_a = await sign_in(server.http, user.email)
    cookie_b, _ = await sign_in(server.http, user.email)
    a = await cookie_socket(server, cookie_a)
    b = await cookie_socket(server, cookie_b)
    other = await token_socket(server.url(), await make_token(db, bystander))
    for ws in (a, b, other):
        await hello(ws)

    async with httpx.AsyncClient(base_url=server.http) as c:
        r = await c.patch(
            f"/api/v1/users/{user.id}",
            json={"password": "a brand new password", "current_password": DEFAULT_PASSWORD},
            headers=browser_headers(cookie_a, csrf_a),
        )
    assert r.status_code == 200, r.text
    marker = await publish_marker(server)
    assert await closed_with(b, marker=marker) == REVOKED  # signed in with the old password
    for ws in (a, other):  # the browser that changed it stays signed in, and so does everyone else
        assert (await recv(ws, marked(marker)))["data"]["marker"] == marker
        assert await still_open(ws)
        await ws.close()


async def test_disabling_a_user_closes_all_their_sockets(server: Server):
    db = server.app.state.db
    admin = await make_user(db, role="admin")
    admin_token = await make_token(db, admin)
    user = await make_user(db)
    token = await make_token(db, user)
    cookie, _ = await sign_in(server.http, user.email)
    by_cookie = await cookie_socket(server, cookie)
    by_token = await token_socket(server.url(), token)
    other = await token_socket(server.url(), admin_token)
    for ws in (by_cookie, by_token, other):
        await hello(ws)

    async with httpx.AsyncClient(base_url=server.http) as c:
        r = await c.post(f"/api/v1/users/{user.id}/disable", headers={"Authorization": f"Bearer {admin_token}"})
        assert r.status_code == 200, r.text
        marker = await publish_marker(server)
        assert await closed_with(by_cookie, marker=marker) == REVOKED
        assert await closed_with(by_token, marker=marker) == REVOKED
        assert (await recv(other, marked(marker)))["data"]["marker"] == marker
        assert await still_open(other)
        # …and the token is refused at once, even though it was just used (and cached).
        assert (await c.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})).status_code == 401
    # A closed desk cannot come back on the old credentials.
    again = await token_socket(server.url(), token)
    assert await closed_with(again) == REVOKED
    await other.close()


async def test_revoking_a_token_closes_its_sockets_only(server: Server):
    db = server.app.state.db
    user = await make_user(db)
    revoked, kept = await make_token(db, user), await make_token(db, user)
    gone = await token_socket(server.url(), revoked)
    stays = await token_socket(server.url(), kept)
    for ws in (gone, stays):
        await hello(ws)
    async with httpx.AsyncClient(base_url=server.http, headers={"Authorization": f"Bearer {kept}"}) as c:
        tokens = (await c.get("/api/v1/tokens")).json()
        token_id = next(t["id"] for t in tokens if revoked.startswith(t["prefix"]))
        assert (await c.delete(f"/api/v1/tokens/{token_id}")).status_code == 200
    marker = await publish_marker(server)
    assert await closed_with(gone, marker=marker) == REVOKED
    assert (await recv(stays, marked(marker)))["data"]["marker"] == marker
    # The open socket of the other token may still follow what its user may read.
    conversation = await make_conversation(db, await make_customer(db))
    await stays.send(f'{{"type": "subscribe", "topics": ["conversation:{conversation.id}"]}}')
    assert (await recv(stays, lambda m: m.get("type") == "subscribed"))["type"] == "subscribed"
    await stays.close()


async def test_a_change_on_one_instance_closes_the_socket_on_another(settings: Settings, redis_url: str):
    # The second instance reads the table rarely: only the Redis hub can be this quick.
    async with (
        running(settings, redis_url) as first,
        running(settings, redis_url, auth_watch_seconds=10.0) as second,
    ):
        db = first.app.state.db
        try:
            user, bystander = await make_user(db), await make_user(db)
            token, kept = await make_token(db, user), await make_token(db, bystander)
            on_second = await token_socket(second.url(), token)
            other = await token_socket(second.url(), kept)
            for ws in (on_second, other):
                await hello(ws)
            started = time.monotonic()
            async with httpx.AsyncClient(base_url=first.http, headers={"Authorization": f"Bearer {token}"}) as c:
                token_id = next(t["id"] for t in (await c.get("/api/v1/tokens")).json())
                assert (await c.delete(f"/api/v1/tokens/{token_id}")).status_code == 200
            assert await closed_with(on_second, timeout=3) == REVOKED
            assert time.monotonic() - started < 3
            assert await still_open(other)
            await other.close()
        finally:
            await truncate_all(db)


# -- `frontdesk user disable` in another process, against `frontdesk serve` in a third --------------


async def test_cli_disable_reaches_a_running_server(database_url: str, tmp_path: Path):
    """Embedded mode: no Redis anywhere; the server reads the credential change from the database."""
    env = process_env(database_url, tmp_path / "var")
    db = Database(database_url)
    try:
        user, bystander = await make_user(db), await make_user(db)
        token, kept = await make_token(db, user), await make_token(db, bystander)
        with serve_process(env, tmp_path / "serve.log") as srv:
            doomed = await token_socket(srv.url("/ws"), token)
            other = await token_socket(srv.url("/ws"), kept)
            for ws in (doomed, other):
                await hello(ws)
            async with httpx.AsyncClient(base_url=srv.http, headers={"Authorization": f"Bearer {token}"}) as c:
                assert (await c.get("/api/v1/auth/me")).status_code == 200  # the token is now cached

                done = await asyncio.to_thread(
                    subprocess.run,
                    frontdesk_command("user", "disable", "--email", user.email),
                    cwd=REPO,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert done.returncode == 0, done.stderr
                disabled_at = time.monotonic()
                assert await closed_with(doomed, timeout=5) == REVOKED
                closed_after = time.monotonic() - disabled_at
                status = (await c.get("/api/v1/auth/me")).status_code
                refused_after = time.monotonic() - disabled_at
            assert closed_after < 1.5, closed_after  # FRONTDESK_AUTH_WATCH_SECONDS is 0.5 by default
            assert status == 401
            assert refused_after < 1.5, refused_after
            assert await still_open(other)
            await other.close()
    finally:
        await truncate_all(db)
        await db.dispose()
