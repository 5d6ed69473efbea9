"""Shared helpers of the ``/ws`` tests: a real uvicorn server in this process, the real
``websockets`` client, sign-in over HTTP, and a ``frontdesk serve`` in a child process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from frontdesk.app import create_app
from frontdesk.auth.deps import CSRF_HEADER, SESSION_COOKIE
from frontdesk.realtime import Hub
from frontdesk.settings import Settings
from tests.builders.users import DEFAULT_PASSWORD
from tests.integration.webhook_sink import free_port

REPO = Path(__file__).resolve().parents[2]


class Server:
    """uvicorn serving a fresh app in this process (``start``/``stop``; ``restart()`` is a new app on
    the same database)."""

    def __init__(self, settings: Settings, redis_url: str | None, **overrides: Any) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.overrides = overrides
        self.port = free_port()
        self.app: Any = None
        self._srv: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, heartbeat: float | None = None) -> Server:
        self.app = create_app(self.settings, redis_url=self.redis_url, **self.overrides)
        if heartbeat is not None:
            self.app.state.ws_heartbeat_seconds = heartbeat
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self._srv = uvicorn.Server(config)
        self._task = asyncio.create_task(self._srv.serve())
        for _ in range(500):
            if self._srv.started:
                return self
            await asyncio.sleep(0.02)
        raise AssertionError("uvicorn did not start")

    async def stop(self) -> None:
        if self._srv is not None and self._task is not None:
            self._srv.should_exit = True
            await asyncio.wait_for(self._task, 30)
            self._srv = self._task = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    @property
    def hub(self) -> Hub:
        return self.app.state.hub  # type: ignore[no-any-return]

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return self.http

    def url(self, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/ws{query}"


async def recv(ws: ClientConnection, pred: Callable[[dict], bool] = lambda m: True, timeout: float = 5) -> dict:
    """The next message matching ``pred`` (skipping heartbeats and other tests' events)."""

    async def _loop() -> dict:
        while True:
            msg = json.loads(await ws.recv())
            if pred(msg):
                return msg

    return await asyncio.wait_for(_loop(), timeout)


def marked(marker: str) -> Callable[[dict], bool]:
    return lambda m: isinstance(m.get("data"), dict) and m["data"].get("marker") == marker


async def none_marked(ws: ClientConnection, marker: str, wait: float = 0.4) -> bool:
    try:
        await recv(ws, marked(marker), timeout=wait)
    except TimeoutError:
        return True
    return False


async def token_socket(url: str, token: str, **kwargs: Any) -> ClientConnection:
    """A ``/ws`` client authenticated the documented way: the API token in the first frame."""
    ws = await connect(url, **kwargs)
    await ws.send(json.dumps({"type": "auth", "token": token}))
    return ws


async def cookie_socket(server: Server, cookie: str, query: str = "") -> ClientConnection:
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    return await connect(server.url(query), additional_headers=headers, origin=server.origin)  # type: ignore[arg-type]


async def hello(ws: ClientConnection) -> dict:
    msg = await recv(ws, lambda m: m.get("type") == "hello")
    return msg


async def closed_with(ws: ClientConnection, timeout: float = 5, marker: str | None = None) -> int:
    """Read until the server closes the socket; its close code. No event marked ``marker`` may come first."""

    async def _loop() -> int:
        while True:
            try:
                msg = json.loads(await ws.recv())
            except ConnectionClosed as exc:
                if exc.rcvd is None:
                    raise AssertionError("closed without a close frame") from exc
                return exc.rcvd.code
            if marker is not None:
                assert not marked(marker)(msg), f"an event reached a socket that should be closed: {msg}"

    return await asyncio.wait_for(_loop(), timeout)


async def still_open(ws: ClientConnection) -> bool:
    """The socket answers a ping with a pong."""
    await ws.send(json.dumps({"type": "ping"}))
    try:
        await recv(ws, lambda m: m.get("type") == "pong", timeout=5)
    except (TimeoutError, ConnectionClosed):
        return False
    return True


async def sign_in(base_url: str, email: str, password: str = DEFAULT_PASSWORD) -> tuple[str, str]:
    """Sign in over HTTP like a browser: the session cookie's value and the CSRF token."""
    async with httpx.AsyncClient(base_url=base_url) as c:
        r = await c.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        return r.cookies[SESSION_COOKIE], r.json()["csrf_token"]


def browser_headers(cookie: str, csrf: str | None = None) -> dict[str, str]:
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    if csrf:
        headers[CSRF_HEADER] = csrf
    return headers


@asynccontextmanager
async def running(settings: Settings, redis_url: str | None, **overrides: Any) -> AsyncIterator[Server]:
    srv = await Server(settings, redis_url, **overrides).start(heartbeat=0.3)
    try:
        yield srv
    finally:
        await srv.stop()


# -- `frontdesk serve` in a child process ----------------------------------------------------------


def process_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "FRONTDESK_DATABASE_URL": database_url,
        "FRONTDESK_DATA_DIR": str(data_dir),
        "FRONTDESK_SECRET_KEY": "test-secret-key-0123456789",
        "FRONTDESK_CONFIG": str(data_dir / "absent.toml"),
        "FRONTDESK_REDIS_URL": "",
        "FRONTDESK_AUTO_MIGRATE": "false",
        "FRONTDESK_TUNE_GC": "false",
    }
    env.update(extra)
    return env


def frontdesk_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "frontdesk.cli", *args]


class ServeProcess:
    def __init__(self, port: int, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.port = port
        self.proc = proc
        self.log_path = log_path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def serve_process(env: dict[str, str], log_path: Path, timeout: float = 60) -> Iterator[ServeProcess]:
    """``frontdesk serve`` on a free port until the block ends; its stdout and stderr go to ``log_path``."""
    port = free_port()
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            frontdesk_command("serve", "--port", str(port)), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    served = ServeProcess(port, proc, log_path)
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(port):
            if proc.poll() is not None:
                raise AssertionError(f"frontdesk serve exited with {proc.returncode}:\n{served.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"frontdesk serve did not answer /healthz:\n{served.log()}")
            time.sleep(0.1)
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _healthy(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
