"""The signing every Frontdesk HTTP exchange shares: outbound messages of API inboxes, webhook
deliveries (``frontdesk.webhooks``) and inbound API-channel requests, so an integrator writes one
verifier (see docs/channels/api.md):

- ``X-Frontdesk-Timestamp``: Unix seconds when the request was signed;
- ``X-Frontdesk-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`` keyed with
  the secret (an inbox's ``webhook_secret`` / ``inbound_secret``, or a subscription's secret);
- ``X-Frontdesk-Delivery``: the delivery id, the same on every retry, so receivers dedupe by it.

Receivers refuse a timestamp more than :data:`TOLERANCE_SECONDS` away from their clock (replay
protection): :func:`fresh`. The signed POST itself is ``frontdesk.channels.apichannel.outbound.post_signed``.
"""

from __future__ import annotations

import hashlib
import hmac

from frontdesk import clock

SIGNATURE_HEADER = "X-Frontdesk-Signature"
TIMESTAMP_HEADER = "X-Frontdesk-Timestamp"
DELIVERY_HEADER = "X-Frontdesk-Delivery"
TOLERANCE_SECONDS = 300
USER_AGENT = "Frontdesk-Webhook/1"


def sign(body: bytes, secret: str, timestamp: str | int) -> str:
    """``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`` keyed with ``secret``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(body: bytes, secret: str, header: str | None, timestamp: str | int | None) -> bool:
    """Does ``header`` sign ``timestamp`` and ``body`` with ``secret``? (Constant-time; no clock check.)"""
    if not header or timestamp is None or not secret:
        return False
    return hmac.compare_digest(sign(body, secret, timestamp).encode(), header.strip().encode(errors="replace"))


def fresh(timestamp: str | None, *, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """Is ``timestamp`` (Unix seconds) within ``tolerance`` seconds of now?"""
    if not timestamp or not timestamp.strip().isdigit() or len(timestamp.strip()) > 12:
        return False
    return abs(int(clock.now().timestamp()) - int(timestamp)) <= tolerance


def signed_headers(body: bytes, secret: str | None, delivery_id: str) -> dict[str, str]:
    """The headers of a signed POST (unsigned when there is no secret)."""
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, DELIVERY_HEADER: delivery_id}
    if secret:
        timestamp = str(int(clock.now().timestamp()))
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = sign(body, secret, timestamp)
    return headers
