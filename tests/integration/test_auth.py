"""Sign-in, sessions and CSRF, the failed-sign-in limiter, API tokens and scopes, the login page."""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from frontdesk import clock
from frontdesk.auth import service
from frontdesk.auth.api import LOGIN_FAILURES
from frontdesk.auth.deps import SESSION_COOKIE
from frontdesk.auth.security import hash_token
from frontdesk.models import AuditEntry, UserSession
from frontdesk.ratelimit import RedisLimiter
from tests.builders import DEFAULT_PASSWORD, auth_headers, make_user, token_headers

LOGIN = "/api/v1/auth/login"


def other_client(app, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 4321))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def sign_in(client, email: str, password: str = DEFAULT_PASSWORD) -> dict:
    r = await client.post(LOGIN, json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return r.json()


async def audit_actions(app) -> list[str]:
    async with app.state.db.transaction() as s:
        return list((await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all())


# -- sign-in and sessions --------------------------------------------------------------------


async def test_sign_in_sets_a_safe_cookie_and_me_reports_the_user(client, app):
    user = await make_user(app.state.db, role="supervisor", email="sam@example.com", name="Sam")
    r = await client.post(LOGIN, json={"email": "  SAM@Example.com ", "password": DEFAULT_PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"]["id"] == str(user.id)
    assert body["user"]["role"] == "supervisor"
    assert "password_hash" not in body["user"]
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain-http test server; see the secure-cookie test

    # Only the SHA-256 of the cookie is stored, with the CSRF token handed out.
    value = client.cookies[SESSION_COOKIE]
    async with app.state.db.transaction() as s:
        row = await s.get(UserSession, hash_token(value))
        assert row is not None
        assert row.csrf_token == body["csrf_token"]
        assert row.user_id == user.id
        assert await s.get(UserSession, value) is None

    me = await client.get("/api/v1/auth/me")
    assert me.status_code == 200
    assert me.json()["user"]["email"] == "sam@example.com"
    assert me.json()["role"] == "supervisor"
    assert me.json()["via"] == "session"
    assert me.json()["csrf_token"] == body["csrf_token"]
    assert "auth.signed_in" in await audit_actions(app)


async def test_secure_cookie_when_configured(app, client):
    await make_user(app.state.db, email="sec@example.com")
    app.state.settings = app.state.settings.model_copy(update={"cookie_secure": True})
    r = await client.post(LOGIN, json={"email": "sec@example.com", "password": DEFAULT_PASSWORD})
    assert r.status_code == 200
    assert "Secure" in r.headers["set-cookie"]


@pytest.mark.parametrize(
    ("base_url", "public_url", "setting", "secure"),
    [
        ("https://support.example.com", "", None, True),  # TLS: always
        ("http://127.0.0.1:8000", "", None, True),  # `make demo`: browsers treat loopback as secure
        ("http://localhost:8000", "", None, True),
        ("http://[::1]:8000", "", None, True),
        ("http://10.0.0.5:8000", "", None, False),  # plain http elsewhere: a Secure cookie would be dropped
        ("http://10.0.0.5:8000", "https://support.example.com", None, True),  # TLS ends at a proxy
        ("https://support.example.com", "", False, False),  # FRONTDESK_COOKIE_SECURE wins
        ("http://10.0.0.5:8000", "", True, True),
    ],
)
async def test_the_session_cookie_is_secure_unless_plain_http_off_loopback(
    app, base_url: str, public_url: str, setting: bool | None, secure: bool
):
    app.state.settings = app.state.settings.model_copy(update={"public_url": public_url, "cookie_secure": setting})
    user = await make_user(app.state.db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as c:
        r = await c.post(LOGIN, json={"email": user.email, "password": DEFAULT_PASSWORD})
        assert r.status_code == 200
        assert ("; secure" in r.headers["set-cookie"].lower()) is secure, r.headers["set-cookie"]
        out = await c.post(
            "/api/v1/auth/logout",
            headers={"Cookie": f"{SESSION_COOKIE}={r.cookies[SESSION_COOKIE]}", "X-CSRF-Token": r.json()["csrf_token"]},
        )
        assert out.status_code == 204
        assert ("; secure" in out.headers["set-cookie"].lower()) is secure  # the same flags clear it


async def test_wrong_password_unknown_user_and_disabled_user_are_401(client, app):
    db = app.state.db
    await make_user(db, email="ann@example.com")
    for email, password in [("ann@example.com", "wrong password"), ("nobody@example.com", DEFAULT_PASSWORD)]:
        r = await client.post(LOGIN, json={"email": email, "password": password})
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["detail"] == "Wrong email or password."
        assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
    off = await make_user(db, email="off@example.com")
    async with db.transaction() as s:
        await service.disable_user(s, await service.get_user(s, off.id))
    r = await client.post(LOGIN, json={"email": "off@example.com", "password": DEFAULT_PASSWORD})
    assert r.status_code == 401
    # The failed attempts are audited although the requests failed; the password never is.
    async with db.transaction() as s:
        rows = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "auth.sign_in_failed"))).all()
    assert len(rows) == 3
    assert {r.data.get("email") for r in rows} == {"ann@example.com", "nobody@example.com", "off@example.com"}
    assert all(r.ip == "127.0.0.1" for r in rows)
    assert not any("wrong password" in str(r.data) for r in rows)


async def test_login_validates_its_body(client):
    r = await client.post(LOGIN, json={"email": "a@example.com"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "password"


async def test_logout_needs_csrf_ends_the_session_and_clears_the_cookie(client, app):
    await make_user(app.state.db, email="lou@example.com")
    body = await sign_in(client, "lou@example.com")
    r = await client.post("/api/v1/auth/logout")
    assert r.status_code == 403
    r = await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": body["csrf_token"]})
    assert r.status_code == 204
    assert f'{SESSION_COOKIE}=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    async with app.state.db.transaction() as s:
        assert (await s.scalars(select(UserSession))).all() == []
    assert (await client.get("/api/v1/auth/me")).status_code == 401
    # Signing out again (stale or no cookie) is harmless.
    assert (await client.post("/api/v1/auth/logout")).status_code == 204


async def test_new_sign_in_replaces_the_old_session(client, app):
    await make_user(app.state.db, email="fix@example.com")
    await sign_in(client, "fix@example.com")
    first = client.cookies[SESSION_COOKIE]
    await sign_in(client, "fix@example.com")
    assert client.cookies[SESSION_COOKIE] != first
    async with app.state.db.transaction() as s:
        assert await s.get(UserSession, hash_token(first)) is None


async def test_expired_session_is_401(client, app, frozen_clock):
    await make_user(app.state.db, email="exp@example.com")
    await sign_in(client, "exp@example.com")
    assert (await client.get("/api/v1/auth/me")).status_code == 200
    frozen_clock.advance(hours=app.state.settings.session_hours + 1)
    r = await client.get("/api/v1/auth/me")
    assert r.status_code == 401


async def test_unauthenticated_is_401(client):
    r = await client.get("/api/v1/auth/me")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


# -- CSRF -----------------------------------------------------------------------------------


async def test_unsafe_cookie_requests_need_the_csrf_header(client, app):
    await make_user(app.state.db, email="csrf@example.com")
    body = await sign_in(client, "csrf@example.com")
    r = await client.post("/api/v1/tokens", json={"name": "ci"})
    assert r.status_code == 403
    assert "X-CSRF-Token" in r.json()["detail"]
    r = await client.post("/api/v1/tokens", json={"name": "ci"}, headers={"X-CSRF-Token": "not-the-token"})
    assert r.status_code == 403
    r = await client.post("/api/v1/tokens", json={"name": "ci"}, headers={"X-CSRF-Token": body["csrf_token"]})
    assert r.status_code == 201, r.text
    # Safe methods do not need it.
    assert (await client.get("/api/v1/tokens")).status_code == 200


# -- rate limit -----------------------------------------------------------------------------


async def _fail_until_limited(client, email: str, limit: int) -> httpx.Response:
    for _ in range(limit):
        r = await client.post(LOGIN, json={"email": email, "password": "wrong-password"})
        assert r.status_code == 401
    return await client.post(LOGIN, json={"email": email, "password": DEFAULT_PASSWORD})


async def test_one_users_typos_do_not_lock_out_another_user_behind_the_same_ip(client, app):
    db = app.state.db
    limit = app.state.settings.login_attempts_per_minute
    await make_user(db, email="victim@example.com")
    await make_user(db, email="bystander@example.com", name="Bystander")
    r = await _fail_until_limited(client, "victim@example.com", limit)
    assert r.status_code == 429  # even the right password waits
    assert r.headers["content-type"].startswith("application/problem+json")
    assert 0 < int(r.headers["retry-after"]) <= 60
    # A colleague behind the same address (the same office NAT) signs in as usual…
    body = await sign_in(client, "bystander@example.com")
    assert body["user"]["name"] == "Bystander"
    # …and the attacked account is held for the minute whichever IP asks.
    async with other_client(app, "10.1.2.3") as elsewhere:
        r = await elsewhere.post(LOGIN, json={"email": "victim@example.com", "password": DEFAULT_PASSWORD})
        assert r.status_code == 429


async def test_one_address_spraying_many_accounts_is_limited(client, app):
    app.state.settings = app.state.settings.model_copy(update={"login_attempts_per_ip_per_minute": 12})
    await make_user(app.state.db, email="target@example.com")
    async with other_client(app, "10.9.9.9") as sprayer:
        for i in range(12):  # one wrong guess each for twelve accounts: no account reaches its own limit
            r = await sprayer.post(LOGIN, json={"email": f"user{i}@example.com", "password": "guess"})
            assert r.status_code == 401
        r = await sprayer.post(LOGIN, json={"email": "target@example.com", "password": DEFAULT_PASSWORD})
        assert r.status_code == 429
        assert "try again in" in r.json()["detail"]
    await sign_in(client, "target@example.com")  # from anywhere else the account is fine


async def test_the_retry_after_counts_down(client, app, frozen_clock):
    await make_user(app.state.db, email="waiting@example.com")
    limit = app.state.settings.login_attempts_per_minute
    first = await _fail_until_limited(client, "waiting@example.com", limit)
    assert first.status_code == 429
    frozen_clock.advance(seconds=20)
    later = await client.post(LOGIN, json={"email": "waiting@example.com", "password": DEFAULT_PASSWORD})
    assert later.status_code == 429
    assert int(later.headers["retry-after"]) == int(first.headers["retry-after"]) - 20
    assert f"try again in {later.headers['retry-after']} seconds" in later.json()["detail"]


async def test_rate_limit_window_passes(client, app, frozen_clock):
    await make_user(app.state.db, email="later@example.com")
    limit = app.state.settings.login_attempts_per_minute
    assert (await _fail_until_limited(client, "later@example.com", limit)).status_code == 429
    frozen_clock.advance(seconds=61)
    assert (
        await client.post(LOGIN, json={"email": "later@example.com", "password": DEFAULT_PASSWORD})
    ).status_code == 200


async def test_rate_limit_with_redis_counters(client, app, redis_url):
    import redis.asyncio as redis

    limiter = RedisLimiter(redis_url, prefix=app.state.settings.redis_prefix, name=LOGIN_FAILURES, what="Sign-in")
    app.state.login_limiter = limiter
    KEY_PREFIX = limiter.key_prefix
    app.state.settings = app.state.settings.model_copy(
        update={"login_attempts_per_minute": 3, "login_attempts_per_ip_per_minute": 30}
    )
    ip = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    email = f"redis-{uuid.uuid4().hex[:8]}@example.com"
    colleague = f"redis-{uuid.uuid4().hex[:8]}@example.com"
    await make_user(app.state.db, email=email)
    await make_user(app.state.db, email=colleague)
    raw = redis.from_url(redis_url)
    try:
        async with other_client(app, ip) as c:
            r = await _fail_until_limited(c, email, 3)
            answered = time.monotonic()
            assert r.status_code == 429
            first = int(r.headers["retry-after"])
            assert 0 < first <= 60
            await sign_in(c, colleague)  # the same address, another account: fine
            await asyncio.sleep(2.1)
            asked = time.monotonic()
            r = await c.post(LOGIN, json={"email": email, "password": DEFAULT_PASSWORD})
            assert r.status_code == 429
            waited = time.monotonic() - answered
            # It counts down by the time that passed (whole seconds, rounded up on both answers).
            assert (
                first - math.ceil(waited) - 1 <= int(r.headers["retry-after"]) <= first - math.floor(asked - answered)
            )
        assert await raw.get(f"{KEY_PREFIX}ip:{ip}") == b"3"
        assert await raw.get(f"{KEY_PREFIX}email:{email}") == b"3"
    finally:
        await raw.delete(f"{KEY_PREFIX}ip:{ip}", f"{KEY_PREFIX}email:{email}")
        await raw.aclose()
        await limiter.close()


async def test_success_resets_the_email_counter(client, app):
    await make_user(app.state.db, email="oops@example.com")
    limit = app.state.settings.login_attempts_per_minute
    async with other_client(app, "10.0.0.7") as c:
        for _ in range(limit - 1):
            assert (await c.post(LOGIN, json={"email": "oops@example.com", "password": "typo-typo"})).status_code == 401
        await sign_in(c, "oops@example.com")
    async with other_client(app, "10.0.0.8") as c:
        assert (await c.post(LOGIN, json={"email": "oops@example.com", "password": "typo-typo"})).status_code == 401
        await sign_in(c, "oops@example.com")  # the earlier failures no longer count


# -- API tokens -----------------------------------------------------------------------------


async def test_token_lifecycle_scopes_and_revocation(client, app):
    db = app.state.db
    user = await make_user(db, email="tok@example.com")
    headers = await token_headers(db, user)
    r = await client.post("/api/v1/tokens", json={"name": "reporting", "scopes": ["read"]}, headers=headers)
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["token"]
    assert secret.startswith("fd_")
    assert created["scopes"] == ["read"]
    assert created["prefix"] == secret[:10]
    listed = (await client.get("/api/v1/tokens", headers=headers)).json()
    assert {t["name"] for t in listed} == {"test", "reporting"}
    assert all("token" not in t for t in listed)  # the secret is shown once only
    async with db.transaction() as s:
        assert (await service.list_tokens(s, user.id))[0].token_hash == hash_token(secret)

    read_only = {"Authorization": f"Bearer {secret}"}
    me = await client.get("/api/v1/auth/me", headers=read_only)
    assert me.status_code == 200
    assert me.json()["scopes"] == ["read"]
    assert me.json()["csrf_token"] is None
    r = await client.post("/api/v1/tokens", json={"name": "escalate"}, headers=read_only)
    assert r.status_code == 403
    assert "write" in r.json()["detail"]

    r = await client.delete(f"/api/v1/tokens/{created['id']}", headers=headers)
    assert r.status_code == 200
    assert r.json()["revoked_at"] is not None
    r = await client.get("/api/v1/auth/me", headers=read_only)
    assert r.status_code == 401
    assert "revoked" in r.json()["detail"]
    assert {"token.created", "token.revoked"} <= set(await audit_actions(app))


async def test_tokens_are_private_to_their_owner_except_for_admins(client, app):
    db = app.state.db
    alice = await make_user(db, email="alice@example.com")
    bob = await make_user(db, email="bob@example.com")
    admin = await make_user(db, role="admin", email="root@example.com")
    alice_h = await token_headers(db, alice)
    bob_h = await token_headers(db, bob)
    admin_h = await token_headers(db, admin)
    created = (await client.post("/api/v1/tokens", json={"name": "a"}, headers=alice_h)).json()
    assert all(t["user_id"] == str(bob.id) for t in (await client.get("/api/v1/tokens", headers=bob_h)).json())
    assert (await client.delete(f"/api/v1/tokens/{created['id']}", headers=bob_h)).status_code == 404
    assert len((await client.get("/api/v1/tokens", headers=admin_h)).json()) == 4
    assert (await client.delete(f"/api/v1/tokens/{created['id']}", headers=admin_h)).status_code == 200
    assert (await client.delete(f"/api/v1/tokens/{uuid.uuid4()}", headers=admin_h)).status_code == 404


async def test_token_input_is_validated(client, app):
    headers = await auth_headers(app)
    for body, field in [
        ({"name": "x", "scopes": ["admin"]}, "scopes.0"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": ""}, "name"),
        ({"name": "x", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "expires_at": "2999-01-01T00:00:00"}, "expires_at"),
    ]:
        r = await client.post("/api/v1/tokens", json=body, headers=headers)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["errors"][0]["field"] == field, r.json()


async def test_expired_token_is_401(client, app, frozen_clock):
    db = app.state.db
    user = await make_user(db, email="soon@example.com")
    async with db.transaction() as s:
        _, secret = await service.create_token(
            s, user=await service.get_user(s, user.id), name="short", expires_at=clock.now() + timedelta(minutes=5)
        )
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 200
    frozen_clock.advance(minutes=6)
    r = await client.get("/api/v1/auth/me", headers=headers)
    assert r.status_code == 401
    assert "expired" in r.json()["detail"]


async def test_disabled_user_loses_tokens_and_sessions(client, app):
    db = app.state.db
    agent = await make_user(db, email="leaver@example.com")
    token_h = await token_headers(db, agent)
    admin_h = await auth_headers(app, "admin")
    async with other_client(app, "10.0.0.9") as browser:
        await sign_in(browser, "leaver@example.com")
        assert (await browser.get("/api/v1/auth/me")).status_code == 200
        r = await client.post(f"/api/v1/users/{agent.id}/disable", headers=admin_h)
        assert r.status_code == 200
        assert r.json()["is_active"] is False
        assert (await browser.get("/api/v1/auth/me")).status_code == 401
    r = await client.get("/api/v1/auth/me", headers=token_h)
    assert r.status_code == 401
    async with db.transaction() as s:
        assert (await s.scalars(select(UserSession).where(UserSession.user_id == agent.id))).all() == []


async def test_bad_bearer_token_is_401(client):
    r = await client.get("/api/v1/auth/me", headers={"Authorization": "Bearer fd_nope"})
    assert r.status_code == 401


# -- the sign-in page -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "lang", "words"),
    [
        ("en-US,en;q=0.9", "en", ["Sign in to Frontdesk", "Password", ">Sign in<"]),
        ("ru-RU,ru;q=0.9,en;q=0.5", "ru", ["Вход в Frontdesk", "Пароль", ">Войти<"]),
    ],
)
async def test_login_page_in_english_and_russian(client, accept, lang, words):
    r = await client.get("/", headers={"Accept-Language": accept})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert f'<html lang="{lang}">' in html
    for word in words:
        assert word in html
    assert 'id="login-form"' in html
    assert 'id="login-form" class="stack" method="post" autocomplete="on">' in html
    assert 'type="password"' in html
    assert 'autocomplete="current-password"' in html
    assert '<script type="module" src="/static/login.js">' in html
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"


async def test_login_page_shows_the_signed_in_user_escaped(client, app):
    await make_user(app.state.db, email="xss@example.com", name='<script>alert("x")</script>', role="admin")
    body = await sign_in(client, "xss@example.com")
    r = await client.get("/", headers={"Accept-Language": "ru"})
    html = r.text
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "Вы вошли как" in html
    assert "администратор" in html
    assert 'id="login-form" class="stack" method="post" autocomplete="on" hidden>' in html
    assert f'content="{body["csrf_token"]}"' in html
    # A stale cookie simply shows the form.
    client.cookies.set(SESSION_COOKIE, "stale")
    r = await client.get("/")
    assert r.status_code == 200
    assert 'id="signed-in" class="stack" hidden' in r.text


async def test_static_assets_are_served(client):
    js = await client.get("/static/login.js")
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    assert "/api/v1/auth/login" in js.text
    assert "textContent" in js.text
    assert "innerHTML" not in js.text
    css = await client.get("/static/login.css")
    assert css.status_code == 200
    assert ":focus-visible" in css.text
    assert (await client.get("/static/../pages.py")).status_code == 404
