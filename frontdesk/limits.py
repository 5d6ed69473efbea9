"""How large a request body may be, per kind of route, counted on the bytes actually received.

Without it a client could make the server read any amount before a route even looks at the body:
FastAPI parses JSON (and Starlette spools multipart uploads) before validation or sign-in, and a
chunked body declares no length at all. :class:`BodyLimits` is a pure ASGI middleware (it sits on
the benchmarked hot path): a declared ``Content-Length`` over the route's limit is answered 413
at once, before a byte of the body is read; a chunked body is counted as it arrives and answered
413 as soon as it passes the limit — the rest is never read. The 413 closes the connection (the
unread body is still on the wire).

Limits, by route (``docs/configuration.md``):

* sign-in, the widget's JSON calls, ``/api/v1/echo`` and anything outside ``/api/v1``: 64 KB;
* inbound messages, event batches, API-channel messages, replies and notes: ``max_bulk_body_mb``
  (16 MB);
* attachment uploads: ``max_attachment_mb`` (``widget_max_attachment_mb`` for the widget) plus
  64 KB of multipart overhead;
* every other API call: ``max_body_kb`` (1 MB).

Routes keep their own, finer checks (an event at most 64 KB, an attachment at most its limit).
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from frontdesk.errors import problem_response
from frontdesk.settings import Settings

KB = 1024
MB = 1024 * 1024
SMALL_BODY = 64 * KB
MULTIPART_OVERHEAD = 64 * KB
API = "/api/v1/"
_BULK_EXACT = frozenset({"messages/inbound", "events/batch"})
_WRITES_WITH_TEXT = ("/messages", "/notes")


class _TooLarge(Exception):
    """The body passed the limit; the 413 has been sent."""


def limit_for(path: str, settings: Settings) -> int:
    """The most body bytes a request to ``path`` may send."""
    if not path.startswith(API):
        return SMALL_BODY
    rest = path[len(API) :]
    if rest in _BULK_EXACT:
        return settings.max_bulk_body_mb * MB
    if rest == "attachments":
        return settings.max_attachment_mb * MB + MULTIPART_OVERHEAD
    if rest == "widget/attachments":
        return settings.widget_max_attachment_mb * MB + MULTIPART_OVERHEAD
    if rest == "echo" or rest.startswith(("auth/", "widget/")):
        return SMALL_BODY
    if rest.startswith(("conversations/", "inboxes/")) and rest.endswith(_WRITES_WITH_TEXT):
        return settings.max_bulk_body_mb * MB
    return settings.max_body_kb * KB


def _too_large(path: str, limit: int) -> Any:
    size = f"{limit // MB} MB" if limit % MB == 0 else f"{limit // KB} KB"
    return problem_response(
        413,
        "Payload too large",
        f"The request body is larger than {size}, the limit of {path}.",
        slug="too-large",
        instance=path,
        extra={"limit_bytes": limit},
        headers={"Connection": "close"},
    )


class BodyLimits:
    """Refuse request bodies over the route's limit (see the module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        if length is None and not chunked:  # no body
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = limit_for(path, self.settings)
        if length is not None and length.isdigit() and int(length) > limit:
            await _too_large(path, limit)(scope, receive, send)
            return
        if not chunked:  # the server hands over no more than the declared length
            await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send, path, limit)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, path: str, limit: int) -> None:
        received = 0
        started = answered = False

        async def counting_receive() -> Message:
            nonlocal received, answered
            if answered:
                raise _TooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started:
                        await _too_large(path, limit)(scope, receive, send)
                        answered = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the app's own answer to the broken-off body; the 413 went out
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not answered:
                raise
