"""Web-chat test helpers: a web-chat inbox, a live server with the widget socket, reading frames."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from frontdesk.db import Database
from frontdesk.models import Inbox
from frontdesk.settings import Settings
from tests.builders import ws as _ws
from tests.builders.conversations import make_inbox
from tests.conftest import truncate_all

IDENTITY_SECRET = "site-identity-secret"


async def make_webchat_inbox(db: Database, **config: Any) -> Inbox:
    return await make_inbox(
        db,
        "webchat",
        name=f"Chat {uuid.uuid4().hex[:8]}",
        public_token=secrets.token_urlsafe(18),
        config={"identity_secret": IDENTITY_SECRET, **config},
    )


class Server(_ws.Server):
    """A live server (:class:`tests.builders.ws.Server`) with the widget's socket."""

    def ws_url(self, token: str | None = None) -> str:
        """The socket's URL; with ``token`` the deprecated form that carries it in the query."""
        base = f"ws://127.0.0.1:{self.port}/widget/ws"
        return base if token is None else f"{base}?visitor_token={token}"

    @asynccontextmanager
    async def widget(self, token: str) -> AsyncIterator[ClientConnection]:
        """A widget socket authenticated the way widget.js does it: the token in the first frame."""
        async with connect(self.ws_url()) as sock:
            await sock.send(json.dumps({"type": "auth", "visitor_token": token}))
            yield sock


@asynccontextmanager
async def serving(settings: Settings, redis_url: str | None = None) -> AsyncIterator[Server]:
    """A started :class:`Server`; when the block ends its database is emptied and it stops."""
    srv = Server(settings, redis_url)
    await srv.start()
    try:
        yield srv
    finally:
        await truncate_all(srv.app.state.db)
        await srv.stop()


async def recv(ws: ClientConnection, pred: Callable[[dict], bool] = lambda m: True, timeout: float = 10) -> dict:
    """The next frame matching ``pred`` (a widget waits longer than a desk socket by default)."""
    return await _ws.recv(ws, pred, timeout)


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
