"""Shared helpers of the web-chat tests: a web-chat inbox, a real server that can restart."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from frontdesk.app import create_app
from frontdesk.db import Database
from frontdesk.models import Inbox
from frontdesk.settings import Settings
from tests.integration.webhook_sink import free_port

IDENTITY_SECRET = "site-identity-secret"


async def make_webchat_inbox(db: Database, **config: Any) -> Inbox:
    async with db.transaction() as s:
        inbox = Inbox(
            name=f"Chat {uuid.uuid4().hex[:8]}",
            channel="webchat",
            public_token=secrets.token_urlsafe(18),
            config={"identity_secret": IDENTITY_SECRET, **config},
        )
        s.add(inbox)
    return inbox


class Server:
    """uvicorn serving a fresh app on a port; ``restart()`` is a new app on the same database."""

    def __init__(self, settings: Settings, redis_url: str | None) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.port = free_port()
        self.app: Any = None
        self._srv: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.app = create_app(self.settings, redis_url=self.redis_url)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self._srv = uvicorn.Server(config)
        self._task = asyncio.create_task(self._srv.serve())
        for _ in range(500):
            if self._srv.started:
                return
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
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, token: str | None = None) -> str:
        """The socket's URL; with ``token`` the deprecated form that carries it in the query."""
        base = f"ws://127.0.0.1:{self.port}/widget/ws"
        return base if token is None else f"{base}?visitor_token={token}"

    @asynccontextmanager
    async def widget(self, token: str) -> AsyncIterator[ClientConnection]:
        """A widget socket authenticated the way widget.js does it: the token in the first frame."""
        async with connect(self.ws_url()) as ws:
            await ws.send(json.dumps({"type": "auth", "visitor_token": token}))
            yield ws


async def recv(ws: ClientConnection, pred: Callable[[dict], bool] = lambda m: True, timeout: float = 10) -> dict:
    async def _loop() -> dict:
        while True:
            msg = json.loads(await ws.recv())
            if pred(msg):
                return msg

    return await asyncio.wait_for(_loop(), timeout)


def of_type(kind: str) -> Callable[[dict], bool]:
    return lambda m: m.get("type") == kind


async def nothing(ws: ClientConnection, pred: Callable[[dict], bool], wait: float = 0.5) -> bool:
    try:
        await recv(ws, pred, timeout=wait)
    except TimeoutError:
        return True
    return False


async def send(ws: ClientConnection, frame: dict) -> None:
    await ws.send(json.dumps(frame))
