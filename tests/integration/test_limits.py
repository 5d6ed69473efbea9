"""Request body limits against the real server process: a huge body, chunked or declared, is
answered 413 as soon as it passes the route's limit, and the server never holds it in memory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from frontdesk.limits import MB, MULTIPART_OVERHEAD, SMALL_BODY, limit_for
from frontdesk.settings import Settings
from tests.e2e.browser import ServerProcess
from tests.integration.raw_http import Connection, rss_bytes

HUGE = 150 * MB
CHUNK = 64 * 1024


def huge_json() -> Iterator[bytes]:
    """150 MB of one JSON object, in 64 KB pieces."""
    yield b'{"email": "a@example.com", "password": "'
    for _ in range(HUGE // CHUNK):
        yield b"x" * CHUNK
    yield b'"}'


@pytest.fixture
async def server(database_url: str, tmp_path: Path):
    srv = ServerProcess(
        database_url,
        tmp_path / "var",
        tmp_path / "server.log",
        "limits-test-secret-0123456789",
        env={"FRONTDESK_RUN_LOOPS": "false"},
    )
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def _pid(server: ServerProcess) -> int:
    assert server.proc is not None
    return server.proc.pid


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("path", ["/api/v1/echo", "/api/v1/auth/login"])
async def test_a_huge_chunked_body_is_refused_at_the_limit(server, path):
    before = rss_bytes(_pid(server))
    started = time.monotonic()
    async with Connection.open(server.base) as conn:
        conn.send_head("POST", path, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        answered = asyncio.ensure_future(conn.answer())
        sent = await conn.send_chunked(huge_json(), answered)
        answer = await asyncio.wait_for(answered, 30)
    took = time.monotonic() - started
    assert answer.status == 413, answer.body[:300]
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["connection"] == "close"
    problem = answer.json()
    assert problem["instance"] == path
    assert problem["limit_bytes"] == SMALL_BODY
    assert "64 KB" in problem["detail"]
    assert sent < HUGE / 4, f"the client could send {sent} bytes before the answer"
    assert took < 10, f"the 413 took {took:.1f} s"
    grown = rss_bytes(_pid(server)) - before
    assert grown < 20 * MB, f"the server grew by {grown // MB} MB"
    async with httpx.AsyncClient(base_url=server.base) as client:  # and it serves the next caller
        r = await client.post("/api/v1/echo", json={"ok": True})
        assert r.status_code == 200
        assert r.json() == {"ok": True}


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(server):
    async with Connection.open(server.base) as conn:
        conn.send_head("POST", "/api/v1/auth/login", {"Content-Type": "application/json", "Content-Length": str(HUGE)})
        await conn.writer.drain()
        answer = await asyncio.wait_for(conn.answer(), 10)  # without a byte of the body
    assert answer.status == 413
    assert answer.json()["limit_bytes"] == SMALL_BODY


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_bodies_within_the_limit_pass_chunked_or_not(server):
    body = b'{"note": "' + b"y" * (SMALL_BODY - 100) + b'"}'
    async with Connection.open(server.base) as conn:
        answer = await conn.request("POST", "/api/v1/echo", body, {"Content-Type": "application/json"})
        assert answer.status == 400  # the echo's own, smaller limit (16 KB): it answers, not the middleware
        assert "16384 bytes" in answer.json()["detail"]
    async with Connection.open(server.base) as conn:
        conn.send_head(
            "POST", "/api/v1/auth/login", {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        )
        answered = asyncio.ensure_future(conn.answer())
        await conn.send_chunked(iter([b'{"email": "nobody@example.com", ', b'"password": "wrong-password"}']), answered)
        answer = await asyncio.wait_for(answered, 10)
    assert answer.status == 401  # read in full and checked by the route


def test_limits_by_route() -> None:
    settings = Settings(max_attachment_mb=25, widget_max_attachment_mb=10, max_body_kb=1024, max_bulk_body_mb=16)
    assert limit_for("/api/v1/auth/login", settings) == SMALL_BODY
    assert limit_for("/api/v1/widget/sessions", settings) == SMALL_BODY
    assert limit_for("/api/v1/widget/attachments", settings) == 10 * MB + MULTIPART_OVERHEAD
    assert limit_for("/api/v1/attachments", settings) == 25 * MB + MULTIPART_OVERHEAD
    for bulk in (
        "/api/v1/events/batch",
        "/api/v1/messages/inbound",
        "/api/v1/inboxes/0198/messages",
        "/api/v1/conversations/0198/messages",
        "/api/v1/conversations/0198/notes",
    ):
        assert limit_for(bulk, settings) == 16 * MB, bulk
    assert limit_for("/api/v1/customers", settings) == 1024 * 1024
    assert limit_for("/api/v1/events", settings) == 1024 * 1024
    assert limit_for("/desk", settings) == SMALL_BODY
