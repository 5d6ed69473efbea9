"""Passwords, tokens, the failed-sign-in limiter (memory and real Redis), secret masking, languages."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from frontdesk.auth.api import LOGIN_FAILURES
from frontdesk.auth.security import (
    constant_time_equal,
    hash_password,
    hash_token,
    new_secret_token,
    verify_password,
)
from frontdesk.channels.service import MASK, masked_config, merge_masked
from frontdesk.errors import Invalid, ServiceUnavailable
from frontdesk.ratelimit import MemoryLimiter, RedisLimiter, make_limiter
from frontdesk.web.pages import pick_language


def test_password_hash_verifies_only_the_right_password():
    h = hash_password("correct horse")
    assert h.startswith("$argon2id$")
    assert verify_password(h, "correct horse")
    assert not verify_password(h, "correct horsE")
    assert not verify_password(None, "correct horse")  # no such user: still False, same work done
    assert not verify_password("not-a-hash", "x")


def test_tokens_are_random_and_stored_as_sha256():
    a, b = new_secret_token(), new_secret_token()
    assert a != b
    assert a.startswith("fd_")
    assert len(a) > 40
    assert len(hash_token(a)) == 64
    assert hash_token(a) != hash_token(b)
    assert constant_time_equal("abc", "abc")
    assert not constant_time_equal("abc", "abd")


async def test_memory_limiter_blocks_after_limit_and_forgets_after_window(frozen_clock):
    limiter = MemoryLimiter()
    for _ in range(2):
        await limiter.fail("ip:1", "email:a")
    assert await limiter.retry_after({"ip:1": 3}) is None
    await limiter.fail("ip:1", "email:a")
    assert await limiter.retry_after({"ip:1": 3}) == 60
    assert await limiter.retry_after({"ip:1": 30}) is None  # each key has its own limit
    assert await limiter.retry_after({"ip:2": 3, "email:a": 3}) == 60  # either key blocks
    assert await limiter.retry_after({"ip:2": 3, "email:b": 3}) is None
    frozen_clock.advance(seconds=45)
    assert await limiter.retry_after({"ip:1": 3}) == 15
    await limiter.reset("email:a")
    assert await limiter.retry_after({"email:a": 3}) is None
    frozen_clock.advance(seconds=16)
    assert await limiter.retry_after({"ip:1": 3}) is None


async def test_redis_limiter_counts_in_redis(redis_url):
    import redis.asyncio as redis

    prefix = f"t{uuid.uuid4().hex[:8]}"
    limiter = make_limiter(redis_url, prefix, name=LOGIN_FAILURES, what="Sign-in")
    assert isinstance(limiter, RedisLimiter)
    KEY_PREFIX = f"{prefix}:login-failures:"
    key = f"test:{uuid.uuid4().hex}"
    raw = redis.from_url(redis_url)
    try:
        await limiter.fail(key)
        assert await limiter.retry_after({key: 2}) is None
        ttl = await raw.ttl(KEY_PREFIX + key)
        assert 0 < ttl <= 60  # every counter expires
        await limiter.fail(key)
        wait = await limiter.retry_after({key: 2, "test:other": 2})
        assert wait is not None
        assert 0 < wait <= 60
        assert await raw.get(KEY_PREFIX + key) == b"2"
        # A second limiter (another node) sees the same counters.
        other = RedisLimiter(redis_url, prefix=prefix, name=LOGIN_FAILURES)
        assert await other.retry_after({key: 2}) is not None
        assert await other.retry_after({key: 3}) is None
        await other.close()
        await limiter.reset(key)
        assert await limiter.retry_after({key: 2}) is None
        assert await raw.exists(KEY_PREFIX + key) == 0
    finally:
        await raw.delete(KEY_PREFIX + key)
        await raw.aclose()
        await limiter.close()


async def test_redis_limiter_fails_closed_when_redis_is_down():
    limiter = RedisLimiter("redis://127.0.0.1:1/0", name=LOGIN_FAILURES, what="Sign-in")
    try:
        with pytest.raises(ServiceUnavailable):
            await limiter.retry_after({"ip:x": 3})
        with pytest.raises(ServiceUnavailable):
            await limiter.fail("ip:x")
        await limiter.reset("email:x")  # after a good password: logged, not fatal
    finally:
        await limiter.close()


def test_config_secrets_are_masked_at_any_depth():
    config: dict[str, Any] = {
        "smtp": {"host": "mail.example.com", "Password": "hunter22", "api_token": "t0k"},
        "client_secret": "s3",
        "empty_secret": "",
        "hooks": [{"signing_secret": "x", "url": "https://h"}],
        "tokenless": 1,
    }
    masked = masked_config(config)
    assert masked["smtp"] == {"host": "mail.example.com", "Password": MASK, "api_token": MASK}
    assert masked["client_secret"] == MASK
    assert masked["empty_secret"] == ""  # nothing to hide; shows it is unset
    assert masked["hooks"] == [{"signing_secret": MASK, "url": "https://h"}]
    assert masked["tokenless"] == MASK  # "token" in the name: better masked than leaked
    assert config["smtp"]["Password"] == "hunter22"  # the original is untouched


def test_sending_the_mask_back_keeps_the_stored_secret():
    stored = {"smtp": {"host": "a", "password": "old"}, "client_secret": "s3"}
    sent = {"smtp": {"host": "b", "password": MASK}, "client_secret": "new"}
    assert merge_masked(sent, stored) == {"smtp": {"host": "b", "password": "old"}, "client_secret": "new"}
    with pytest.raises(Invalid) as err:
        merge_masked({"other_token": MASK}, stored)
    assert err.value.extra["errors"][0]["field"] == "config.other_token"
    # A mask under a key that is not secret is just a value.
    assert merge_masked({"label": MASK}, {}) == {"label": MASK}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "en"),
        ("", "en"),
        ("ru", "ru"),
        ("ru-RU,ru;q=0.9,en-US;q=0.8", "ru"),
        ("en-GB,en;q=0.9,ru;q=0.8", "en"),
        ("de-DE,ru;q=0.5,en;q=0.3", "ru"),
        ("fr, de", "en"),
        ("en;q=0.2, ru;q=0.7", "ru"),
        ("ru;q=bogus, en", "en"),
    ],
)
def test_language_follows_accept_language(header, expected):
    assert pick_language(header) == expected
