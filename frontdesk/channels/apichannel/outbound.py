"""The API channel's outbound side: a signed POST to the integrator's webhook URL.

Outbound messages of an ``api`` inbox are POSTed as JSON to ``config["webhook_url"]`` by the
outbox dispatcher. Webhook subscriptions (``frontdesk.webhooks``) are delivered by the same
:func:`post_signed`, and inbound API requests are verified with the same scheme
(``frontdesk.signing``), so an integrator writes one verifier.

Connections go only where ``frontdesk.netguard`` allows (public addresses,
or what ``FRONTDESK_OUTBOUND_ALLOW`` lists), checked at connect time; a refused destination or a
redirect (not followed) fails permanently. 2xx = delivered (a JSON ``id``/``external_id`` in the answer is kept as the
provider id); 4xx other than 408/429 = permanent failure; anything else (timeouts, 5xx, refused
connections) is retried with exponential backoff and jitter (``frontdesk.timers.backoff``) until
the item's ``max_attempts``, then it is ``failed`` and shows in the dead-letter list
(``GET /api/v1/dead-letters``) where an admin can replay it. See docs/channels/api.md.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from frontdesk import netguard
from frontdesk.channels.base import (
    ChannelContext,
    OutboundMessage,
    PermanentError,
    SendResult,
    TransientError,
)
from frontdesk.signing import signed_headers

TIMEOUT_SECONDS = 10.0
EXCERPT_CHARS = 200


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """A bounded, one-line excerpt of a receiver's answer (for admins' eyes: see ``netguard``)."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text[: limit * 4]).split())
    return flat[:limit] + ("…" if len(flat) > limit else "")


async def post_signed(
    url: str,
    body: bytes,
    secret: str | None,
    delivery_id: str,
    *,
    client: httpx.AsyncClient | None = None,
    policy: netguard.Policy | None = None,
) -> httpx.Response:
    """POST ``body`` signed; a 2xx response, else :class:`PermanentError` / :class:`TransientError`.

    The connection goes only to an address ``netguard`` allows (``client`` must be one of
    :func:`netguard.http_client`, or ``policy`` is used to make one). Redirects are not followed.
    The errors name the status and a bounded excerpt of the answer: they are shown to admins
    (dead letters, ``GET /messages/{id}/delivery``), agents read only that delivery failed.
    """
    headers = signed_headers(body, secret, delivery_id)
    try:
        if client is None:
            async with netguard.http_client(policy or netguard.policy_of(None), timeout=TIMEOUT_SECONDS) as own:
                response = await own.post(url, content=body, headers=headers)
        else:
            response = await client.post(url, content=body, headers=headers)
    except netguard.DestinationRefused as exc:
        raise PermanentError(f"webhook destination refused: {exc}") from exc
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise PermanentError(f"not a valid webhook URL: {exc}") from exc
    except httpx.HTTPError as exc:
        raise TransientError(f"webhook unreachable: {type(exc).__name__}: {excerpt(str(exc))}") from exc
    code = response.status_code
    if 200 <= code < 300:
        return response
    text = excerpt(response.text)
    if 300 <= code < 400:
        where = excerpt(response.headers.get("location", ""), 200)
        raise PermanentError(f"webhook answered HTTP {code} (redirects are not followed) to {where!r}: {text}")
    if 400 <= code < 500 and code not in (408, 429):
        raise PermanentError(f"webhook answered HTTP {code}: {text}")
    raise TransientError(f"webhook answered HTTP {code}: {text}")


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


class WebhookAdapter:
    name = "api"

    def __init__(self, ctx: ChannelContext) -> None:
        self.ctx = ctx

    @property
    def policy(self) -> netguard.Policy:
        return netguard.policy_of(self.ctx.settings)

    async def send(self, message: OutboundMessage) -> SendResult:
        url = message.inbox_config.get("webhook_url")
        if not url or not isinstance(url, str):
            raise PermanentError("the API inbox has no webhook_url configured")
        body = orjson.dumps(message.as_payload())
        secret = message.inbox_config.get("webhook_secret")
        response = await post_signed(
            url, body, str(secret) if secret else None, str(message.delivery_id), policy=self.policy
        )
        return SendResult(status="sent", external_id=_external_id(response), detail=f"HTTP {response.status_code}")
