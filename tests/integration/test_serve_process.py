"""``frontdesk serve`` as operators run it, in a child process: what its access log shows and how it
treats clients that are slow to send their request headers."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from frontdesk.db import Database
from tests.builders import make_token, make_user
from tests.builders.webchat import make_webchat_inbox
from tests.builders.ws import hello, process_env, recv, serve_process, still_open, token_socket
from tests.conftest import truncate_all

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def test_the_access_log_never_shows_a_token(database_url: str, tmp_path: Path):
    env = process_env(database_url, tmp_path / "var", FRONTDESK_LOG_LEVEL="info")
    db = Database(database_url)
    try:
        token = await make_token(db, await make_user(db))
        inbox = await make_webchat_inbox(db)
        log_path = tmp_path / "serve.log"
        with serve_process(env, log_path) as srv:
            async with httpx.AsyncClient(base_url=srv.http) as c:
                session = (await c.post("/api/v1/widget/sessions", json={"inbox": inbox.public_token})).json()
                visitor = session["visitor_token"]
                # Every way a credential could reach a URL: the deprecated forms and the signed link.
                async with connect(srv.url(f"/ws?token={token}&desk=0")) as ws:
                    await hello(ws)
                ws = await token_socket(srv.url("/ws"), token)
                await hello(ws)
                await ws.close()
                async with connect(srv.url(f"/widget/ws?visitor_token={visitor}")) as ws:
                    await recv(ws, lambda m: m.get("type") == "welcome")
                uploaded = (
                    await c.post(
                        "/api/v1/widget/attachments",
                        files={"file": ("a.png", PNG, "image/png")},
                        headers={"Authorization": f"Visitor {visitor}"},
                    )
                ).json()
                assert (await c.get(uploaded["url"])).status_code == 200
                r = await c.get(f"/api/v1/widget/attachments/{uploaded['id']}", params={"visitor_token": visitor})
                assert r.status_code == 200
                assert (await c.get("/api/v1/auth/me", params={"token": token})).status_code == 401
        log = log_path.read_text(errors="replace")
        assert "/widget/ws" in log  # the access log was on…
        assert "/api/v1/widget/attachments/" in log
        assert "[redacted]" in log
        signature = uploaded["url"].rpartition("sig=")[2]
        for secret in (token, visitor, signature):  # …and shows no credential
            assert secret not in log, f"{secret[:12]}… is in the access log"
    finally:
        await truncate_all(db)
        await db.dispose()


async def _closed_after(reader: asyncio.StreamReader, since: float, timeout: float = 5) -> float:
    """Seconds from ``since`` until the server closed the connection (fails if still open after ``timeout``)."""
    data = await asyncio.wait_for(reader.read(), timeout)
    assert data == b"", data
    return time.monotonic() - since


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *parts: bytes, pause: float = 0) -> bytes:
    for part in parts:
        writer.write(part)
        await writer.drain()
        if pause:
            await asyncio.sleep(pause)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    await reader.readexactly(length)
    return head.split(b"\r\n", 1)[0]


async def test_slow_request_headers_are_cut_off_and_normal_clients_are_not(database_url: str, tmp_path: Path):
    env = process_env(database_url, tmp_path / "var", FRONTDESK_HTTP_HEADER_TIMEOUT_SECONDS="1")
    db = Database(database_url)
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    try:
        token = await make_token(db, await make_user(db))
        with serve_process(env, tmp_path / "serve.log") as srv:
            # Half a request line, then nothing: closed once the second is up.
            t1 = time.monotonic()
            r1, w1 = await asyncio.open_connection("127.0.0.1", srv.port)
            w1.write(b"GET /healthz HT")
            # Connected and silent: the same.
            t2 = time.monotonic()
            r2, w2 = await asyncio.open_connection("127.0.0.1", srv.port)
            # A normal client meanwhile, and one whose headers come in two parts within the second.
            r3, w3 = await asyncio.open_connection("127.0.0.1", srv.port)
            assert await _get(r3, w3, request) == b"HTTP/1.1 200 OK"
            r4, w4 = await asyncio.open_connection("127.0.0.1", srv.port)
            assert await _get(r4, w4, request[:20], request[20:], pause=0.4) == b"HTTP/1.1 200 OK"
            ws = await token_socket(srv.url("/ws"), token)  # a WebSocket outlives the deadline
            await hello(ws)

            assert 0.9 < await _closed_after(r1, t1) < 3
            assert 0.9 < await _closed_after(r2, t2) < 3
            # The kept-alive connection answers its next request, and its next half request is cut off too.
            await asyncio.sleep(0.5)
            assert await _get(r3, w3, request) == b"HTTP/1.1 200 OK"
            t3 = time.monotonic()
            w3.write(b"GET /hea")
            assert 0.9 < await _closed_after(r3, t3) < 3
            assert await still_open(ws)
            await ws.send(json.dumps({"type": "ping"}))
            await ws.close()
            for w in (w1, w2, w3, w4):
                w.close()
    finally:
        await truncate_all(db)
        await db.dispose()
