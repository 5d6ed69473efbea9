"""The API channel: outbound messages are POSTed as JSON to the integrator's webhook.

Inbox config: ``webhook_url`` (required) and ``webhook_secret`` (recommended). Each request is
signed ``X-Frontdesk-Signature: sha256=<hex HMAC-SHA256 of the raw body with webhook_secret>``
and names the delivery in ``X-Frontdesk-Delivery`` (the outbox item id, the same on every
retry: receivers dedupe by it). 2xx = sent (a JSON ``id``/``external_id`` in the answer is kept
as the provider id); 4xx other than 408/429 = permanent failure; anything else is retried.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx
import orjson

from frontdesk.channels.base import (
    ChannelContext,
    OutboundMessage,
    PermanentError,
    SendResult,
    TransientError,
    register_adapter,
)

SIGNATURE_HEADER = "X-Frontdesk-Signature"
DELIVERY_HEADER = "X-Frontdesk-Delivery"
TIMEOUT_SECONDS = 10.0


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str) -> bool:
    """For receivers (and tests): does ``header`` sign ``body`` with ``secret``?"""
    return hmac.compare_digest(sign(body, secret), header or "")


def _external_id(response: httpx.Response) -> str | None:
    try:
        data: Any = response.json()
    except ValueError:
        return None
    if isinstance(data, dict):
        value = data.get("external_id") or data.get("id")
        if isinstance(value, str | int) and str(value):
            return str(value)[:500]
    return None


@register_adapter("api")
class WebhookAdapter:
    name = "api"

    def __init__(self, ctx: ChannelContext) -> None:
        self.ctx = ctx

    async def send(self, message: OutboundMessage) -> SendResult:
        url = message.inbox_config.get("webhook_url")
        if not url or not isinstance(url, str):
            raise PermanentError("the API inbox has no webhook_url configured")
        body = orjson.dumps(message.as_payload())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Frontdesk-Webhook/1",
            DELIVERY_HEADER: str(message.delivery_id),
        }
        secret = message.inbox_config.get("webhook_secret")
        if secret:
            headers[SIGNATURE_HEADER] = sign(body, str(secret))
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
                response = await client.post(url, content=body, headers=headers)
        except httpx.InvalidURL as exc:
            raise PermanentError(f"webhook_url is not a valid URL: {exc}") from exc
        except httpx.HTTPError as exc:
            raise TransientError(f"webhook unreachable: {type(exc).__name__}: {exc}") from exc
        code = response.status_code
        if 200 <= code < 300:
            return SendResult(status="sent", external_id=_external_id(response), detail=f"HTTP {code}")
        text = response.text[:200]
        if 400 <= code < 500 and code not in (408, 429):
            raise PermanentError(f"webhook answered HTTP {code}: {text}")
        raise TransientError(f"webhook answered HTTP {code}: {text}")
