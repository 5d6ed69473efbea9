"""Short-lived signed download links for web-chat attachments.

A widget shows an attachment with ``<img src>`` or ``<a href>``, which cannot carry a header, and
the visitor's token must not sit in a URL (URLs end up in logs, histories and proxies). So every
attachment the server hands the widget carries its own link::

    /api/v1/widget/attachments/<id>?expires=<unix seconds>&sig=<HMAC-SHA256 of id and expiry>

good for ``URL_SECONDS`` to ``URL_SECONDS + BUCKET_SECONDS``. The expiry is rounded up to a
bucket so the same attachment keeps the same link for a while (the browser caches the file).
The key is derived from the server's secret key; a link names one attachment and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import uuid
from typing import Any

from frontdesk import clock

URL_SECONDS = 3600
BUCKET_SECONDS = 600
PATH = "/api/v1/widget/attachments/{id}"


def link_key(visitor_key: bytes) -> bytes:
    """The signing key of attachment links (derived from the visitor-token key, never the same)."""
    return hmac.new(visitor_key, b"frontdesk webchat attachment link", hashlib.sha256).digest()


def _sig(key: bytes, attachment_id: uuid.UUID | str, expires: int) -> str:
    mac = hmac.new(key, f"webchat-attachment:{attachment_id}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")


def signed_url(key: bytes, attachment_id: uuid.UUID | str) -> str:
    now = clock.now().timestamp()
    expires = math.ceil((now + URL_SECONDS) / BUCKET_SECONDS) * BUCKET_SECONDS
    return f"{PATH.format(id=attachment_id)}?expires={expires}&sig={_sig(key, attachment_id, expires)}"


def check(key: bytes, attachment_id: uuid.UUID, expires: int, sig: str) -> str | None:
    """``None`` when the link is good, else why not (for the 403's detail)."""
    if not hmac.compare_digest(sig.encode(), _sig(key, attachment_id, expires).encode()):
        return "This attachment link is not valid."
    if expires < clock.now().timestamp():
        return "This attachment link has expired; reopen the chat to get a fresh one."
    return None


def sign_views(key: bytes, messages: list[Any]) -> list[Any]:
    """Copies of widget message views whose attachments carry signed links (others are returned as is)."""
    out = []
    for m in messages:
        atts = m.get("attachments") if isinstance(m, dict) else None
        if atts:
            m = {
                **m,
                "attachments": [
                    {**a, "url": signed_url(key, a["id"])} if isinstance(a, dict) and a.get("id") else a for a in atts
                ],
            }
        out.append(m)
    return out
