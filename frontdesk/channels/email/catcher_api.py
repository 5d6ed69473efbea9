"""The local mail catcher for admins (``/api/v1/caught-mail``): e-mail kept because no relay is set.

See ``frontdesk/channels/email/catcher.py``. Admins only: the mails are replies to customers.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from frontdesk.auth.deps import AdminDep
from frontdesk.channels.email import catcher
from frontdesk.channels.email.schemas import CaughtMailDetail, CaughtMailOut, ClearedOut
from frontdesk.deps import SessionDep, StoreDep
from frontdesk.errors import NotFound, ServiceUnavailable
from frontdesk.models import CaughtMail
from frontdesk.openapi import problem as _problem
from frontdesk.pagination import Page
from frontdesk.storage import ObjectMissing, StorageError, UnsafeKey

router = APIRouter(
    tags=["email"],
    responses={
        401: _problem("Not signed in"),
        403: _problem("Admins only"),
        404: _problem("No such caught mail"),
        422: _problem("Invalid input; `errors` names the fields"),
    },
)


def _out(mail: CaughtMail) -> dict[str, Any]:
    return {
        "id": mail.id,
        "message_id": mail.message_id,
        "conversation_id": mail.conversation_id,
        "from": mail.mail_from,
        "to": mail.mail_to,
        "subject": mail.subject,
        "header_message_id": mail.header_message_id,
        "size": mail.size,
        "created_at": mail.created_at,
    }


async def _raw(store: Any, mail: CaughtMail) -> bytes:
    try:
        return await catcher.raw_of(store, mail)
    except (ObjectMissing, UnsafeKey) as exc:
        raise NotFound(f"The e-mail of caught mail {mail.id} is missing from the store.") from exc
    except StorageError as exc:
        raise ServiceUnavailable("The attachment store is not reachable; try again.") from exc


@router.get(
    "/caught-mail",
    response_model=Page[CaughtMailOut],
    response_model_by_alias=True,
    summary="E-mail kept in the local mail catcher (no SMTP relay configured), newest first",
)
async def list_caught_mail(
    session: SessionDep,
    principal: AdminDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[CaughtMailOut]:
    rows, next_cursor = await catcher.list_mail(session, limit=limit, cursor=cursor)
    return Page[CaughtMailOut](items=[CaughtMailOut.model_validate(_out(r)) for r in rows], next_cursor=next_cursor)


@router.get(
    "/caught-mail/{mail_id}",
    response_model=CaughtMailDetail,
    response_model_by_alias=True,
    summary="One caught mail: headers, text and HTML bodies, attachments",
    responses={503: _problem("The attachment store is not reachable")},
)
async def get_caught_mail(mail_id: uuid.UUID, session: SessionDep, store: StoreDep, principal: AdminDep) -> Any:
    mail = await catcher.get_mail(session, mail_id)
    return CaughtMailDetail.model_validate(_out(mail) | catcher.read(await _raw(store, mail)))


@router.get(
    "/caught-mail/{mail_id}/raw",
    response_class=Response,
    summary="Download a caught mail (.eml) exactly as a relay would have received it",
    responses={
        200: {
            "content": {"message/rfc822": {"schema": {"type": "string", "format": "binary"}}},
            "description": "The e-mail",
        },
        503: _problem("The attachment store is not reachable"),
    },
)
async def get_caught_mail_raw(
    mail_id: uuid.UUID, session: SessionDep, store: StoreDep, principal: AdminDep
) -> Response:
    mail = await catcher.get_mail(session, mail_id)
    return Response(
        content=await _raw(store, mail),
        media_type="message/rfc822",
        headers={
            "Content-Disposition": f'attachment; filename="mail-{mail.message_id or mail.id}.eml"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
            "Cache-Control": "private, no-store",
        },
    )


@router.delete(
    "/caught-mail/{mail_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete one caught mail (audited; the message stays `caught`)",
)
async def delete_caught_mail(mail_id: uuid.UUID, session: SessionDep, principal: AdminDep) -> Response:
    await catcher.delete_mail(session, principal, mail_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/caught-mail",
    response_model=ClearedOut,
    summary="Delete every caught mail (audited; the messages stay `caught`)",
)
async def clear_caught_mail(session: SessionDep, principal: AdminDep) -> ClearedOut:
    return ClearedOut(deleted=await catcher.clear(session, principal))
