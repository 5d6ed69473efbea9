"""Webhook subscriptions and the dead-letter list (admin only). See docs/channels/api.md."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from frontdesk.auth.deps import AdminDep
from frontdesk.deps import SessionDep, SettingsDep
from frontdesk.pagination import Page
from frontdesk.webhooks import service
from frontdesk.webhooks.schemas import (
    DeadLetterOut,
    DeliveryOut,
    ReplayOut,
    WebhookCreate,
    WebhookOut,
    WebhookUpdate,
    WebhookWithSecret,
)

router = APIRouter(tags=["webhooks"])


@router.get("/webhooks", response_model=list[WebhookOut], summary="List webhook subscriptions")
async def list_webhooks(session: SessionDep, principal: AdminDep) -> list[WebhookOut]:
    return [WebhookOut.model_validate(s) for s in await service.list_subscriptions(session)]


@router.post(
    "/webhooks",
    response_model=WebhookWithSecret,
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe a URL to conversation events (the signing secret is shown once)",
)
async def create_webhook(
    body: WebhookCreate, session: SessionDep, principal: AdminDep, settings: SettingsDep
) -> WebhookWithSecret:
    sub = await service.create_subscription(session, principal, body, settings)
    return WebhookWithSecret.model_validate(sub)


@router.get("/webhooks/{webhook_id}", response_model=WebhookOut, summary="One webhook subscription")
async def get_webhook(webhook_id: uuid.UUID, session: SessionDep, principal: AdminDep) -> WebhookOut:
    return WebhookOut.model_validate(await service.get_subscription(session, webhook_id))


@router.patch(
    "/webhooks/{webhook_id}",
    response_model=WebhookOut,
    summary="Change a subscription's URL, events, description or active flag",
)
async def update_webhook(
    webhook_id: uuid.UUID, body: WebhookUpdate, session: SessionDep, principal: AdminDep, settings: SettingsDep
) -> WebhookOut:
    sub = await service.update_subscription(session, principal, webhook_id, body, settings)
    return WebhookOut.model_validate(sub)


@router.post(
    "/webhooks/{webhook_id}/rotate-secret",
    response_model=WebhookWithSecret,
    summary="Replace the signing secret (the new one is shown once)",
)
async def rotate_webhook_secret(webhook_id: uuid.UUID, session: SessionDep, principal: AdminDep) -> WebhookWithSecret:
    return WebhookWithSecret.model_validate(await service.rotate_secret(session, principal, webhook_id))


@router.delete(
    "/webhooks/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a subscription and its queued or failed deliveries",
)
async def delete_webhook(webhook_id: uuid.UUID, session: SessionDep, principal: AdminDep) -> Response:
    await service.delete_subscription(session, principal, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/dead-letters",
    response_model=Page[DeadLetterOut],
    summary="Outbox items and webhook deliveries that failed for good, newest first",
)
async def list_dead_letters(
    session: SessionDep,
    principal: AdminDep,
    kind: Annotated[Literal["outbox", "webhook"] | None, Query(description="Only this kind")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[DeadLetterOut]:
    items, next_cursor = await service.list_dead_letters(session, kind=kind, limit=limit, cursor=cursor)
    return Page[DeadLetterOut](items=items, next_cursor=next_cursor)


@router.post(
    "/dead-letters/{item_id}/replay",
    response_model=ReplayOut,
    summary="Send a dead letter again (back to pending with a fresh set of attempts; audited)",
)
async def replay_dead_letter(item_id: uuid.UUID, session: SessionDep, principal: AdminDep) -> ReplayOut:
    kind = await service.replay_dead_letter(session, principal, item_id)
    return ReplayOut(id=item_id, kind=kind, status="pending")  # type: ignore[arg-type]


@router.delete(
    "/dead-letters/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Discard a dead letter for good (audited)",
)
async def discard_dead_letter(item_id: uuid.UUID, session: SessionDep, principal: AdminDep) -> Response:
    await service.discard_dead_letter(session, principal, item_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/messages/{message_id}/delivery",
    response_model=DeliveryOut,
    summary="Why an outbound message was not delivered (admins; agents see only that it failed)",
)
async def get_delivery(message_id: uuid.UUID, session: SessionDep, principal: AdminDep) -> DeliveryOut:
    return await service.delivery_of(session, message_id)
