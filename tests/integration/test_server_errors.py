"""An unexpected error against the real server process (uvicorn, structured logging on).

It is answered with a problem+json 500 on a connection that stays open, its traceback is logged
once, plainly and without the failing code's local variables, and logging it does not stop the
server: /healthz keeps answering at once meanwhile.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import text

from frontdesk.app import create_app
from frontdesk.deps import SessionDep
from tests.e2e.browser import ServerProcess
from tests.integration.raw_http import Connection

FAILING = "/test-only/fail"
MARKER_HEADER = "X-Test-Marker"


def failing_app() -> FastAPI:
    """The real app plus one route that fails deep inside SQLAlchemy (uvicorn factory, tests only)."""
    app = create_app()

    @app.get(FAILING, include_in_schema=False)
    async def fail(request: Request, session: SessionDep) -> None:
        marker = request.headers[MARKER_HEADER]
        card_number = " ".join(["4111"] * 4)  # a local no log may show (not written out in the source)
        try:
            await session.execute(text(f"SELECT '{len(card_number)}' FROM no_such_table_for_the_test"))
        except Exception as exc:
            raise RuntimeError(f"the test failure {marker}") from exc

    return app


@pytest.fixture
async def server(database_url: str, tmp_path: Path):
    srv = ServerProcess(
        database_url,
        tmp_path / "var",
        tmp_path / "server.log",
        "server-errors-test-secret-0123456789",
        env={"FRONTDESK_CONFIGURE_LOGGING": "1", "FRONTDESK_RUN_LOOPS": "false"},
        factory="tests.integration.test_server_errors:failing_app",
    )
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_500_is_answered_on_a_kept_alive_connection_and_logged_once_without_locals(server):
    marker = uuid.uuid4().hex
    slowest_health = 0.0
    stop_probing_at = float("inf")

    async def health_meanwhile() -> None:
        nonlocal slowest_health
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
            while time.monotonic() < stop_probing_at:
                started = time.monotonic()
                assert (await client.get("/healthz")).status_code == 200
                slowest_health = max(slowest_health, time.monotonic() - started)

    probe = asyncio.create_task(health_meanwhile())
    async with Connection.open(server.base) as conn:
        failed = await conn.request("GET", FAILING, headers={MARKER_HEADER: marker})
        assert failed.status == 500
        assert failed.headers["content-type"] == "application/problem+json"
        problem = failed.json()
        assert problem["status"] == 500
        assert problem["instance"] == FAILING
        assert marker not in failed.body.decode()
        # The same connection answers the next request: the 500 did not cost the client its connection.
        again = await conn.request("GET", "/healthz")
        assert again.status == 200
        # The logging of the error (and anything after the answer) runs while /healthz is probed.
        after = await conn.request("GET", FAILING, headers={MARKER_HEADER: marker + "-2"})
        assert after.status == 500
        assert (await conn.request("GET", "/healthz")).status == 200
    stop_probing_at = time.monotonic() + 2  # logging may follow the answer: keep probing a moment
    await probe
    assert slowest_health < 1.0, f"/healthz took {slowest_health:.2f} s while an error was logged"

    await server.stop()  # the log is complete once the process has exited
    log = server.log.read_text(errors="replace")
    assert log.count(f"RuntimeError: the test failure {marker}\n") == 1, log[-3000:]
    assert log.count(f"RuntimeError: the test failure {marker}-2\n") == 1
    assert log.count("no_such_table_for_the_test") >= 1  # the cause is in the traceback
    assert "Exception in ASGI application" not in log
    assert "4111 4111" not in log
