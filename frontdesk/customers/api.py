"""Customers API: CRUD, search, identities, consents, export and erase (``/api/v1/customers``)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import StringConstraints

from frontdesk.auth.deps import AgentDep, SupervisorDep
from frontdesk.customers import service
from frontdesk.customers.schemas import (
    Category,
    ConsentIn,
    ConsentOut,
    CustomerCreate,
    CustomerDetail,
    CustomerExport,
    CustomerOut,
    CustomerUpdate,
    EraseResult,
    IdentityIn,
    IdentityOut,
)
from frontdesk.deps import SessionDep
from frontdesk.models import Customer
from frontdesk.models.enums import Channel, SatisfactionTier
from frontdesk.pagination import Page

router = APIRouter(prefix="/customers", tags=["customers"])

AttributeFilter = Annotated[str, StringConstraints(max_length=700)]


async def _detail(session: SessionDep, customer: Customer, merged_from: uuid.UUID | None = None) -> CustomerDetail:
    identities = (await service.identities_of(session, [customer.id]))[customer.id]
    consents = await service.consents_of(session, customer.id)
    return CustomerDetail.model_validate(customer).model_copy(
        update={
            "identities": [IdentityOut.model_validate(i) for i in identities],
            "consents": [ConsentOut.model_validate(c) for c in consents],
            "merged_from": merged_from,
        }
    )


@router.post(
    "",
    response_model=CustomerDetail,
    status_code=status.HTTP_201_CREATED,
    summary="Create a customer",
    responses={409: {"description": "An identity already belongs to another customer"}},
)
async def create_customer(body: CustomerCreate, session: SessionDep, principal: AgentDep) -> CustomerDetail:
    customer = await service.create_customer(session, body, principal)
    return await _detail(session, customer)


@router.get("", response_model=Page[CustomerOut], summary="Search customers")
async def list_customers(
    session: SessionDep,
    principal: AgentDep,
    q: Annotated[
        str | None, Query(max_length=200, description="Part of the name (any case), or an identity value.")
    ] = None,
    identity: Annotated[
        str | None,
        Query(max_length=400, description="kind:value (e.g. phone:+447700900123) or a bare email or phone."),
    ] = None,
    attribute: Annotated[
        list[AttributeFilter],
        Query(max_length=20, description="key=value, exact match on an attribute; repeat to AND several."),
    ] = [],  # noqa: B006 — FastAPI copies query defaults
    satisfaction_tier: SatisfactionTier | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500, description="next_cursor of the previous page")] = None,
) -> Page[CustomerOut]:
    customers, next_cursor = await service.list_customers(
        session,
        q=q,
        identity=identity,
        attributes=attribute,
        satisfaction_tier=satisfaction_tier.value if satisfaction_tier else None,
        limit=limit,
        cursor=cursor,
    )
    identities = await service.identities_of(session, [c.id for c in customers])
    items = [
        CustomerOut.model_validate(c).model_copy(
            update={"identities": [IdentityOut.model_validate(i) for i in identities[c.id]]}
        )
        for c in customers
    ]
    return Page[CustomerOut](items=items, next_cursor=next_cursor)


@router.get(
    "/{customer_id}",
    response_model=CustomerDetail,
    summary="Get a customer",
    description="A customer merged into another returns the survivor's record, with `merged_from` set to "
    "the id asked for.",
)
async def get_customer(customer_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> CustomerDetail:
    customer = await service.get_customer(session, customer_id)
    survivor = await service.follow_merges(session, customer)
    return await _detail(session, survivor, merged_from=customer_id if survivor.id != customer_id else None)


@router.patch(
    "/{customer_id}",
    response_model=CustomerDetail,
    summary="Change a customer",
    description="Fields not sent are kept. `attributes` is merged into the stored object: a key sent "
    "replaces that key, a key sent as null is deleted, other keys stay.",
)
async def update_customer(
    customer_id: uuid.UUID, body: CustomerUpdate, session: SessionDep, principal: AgentDep
) -> CustomerDetail:
    customer = await service.update_customer(session, customer_id, body, principal)
    return await _detail(session, customer)


@router.delete(
    "/{customer_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a customer who has no conversations",
    responses={409: {"description": "The customer has conversations; erase instead"}},
)
async def delete_customer(customer_id: uuid.UUID, session: SessionDep, principal: SupervisorDep) -> None:
    await service.delete_customer(session, customer_id, principal)


@router.post(
    "/{customer_id}/identities",
    response_model=IdentityOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add an identity to a customer",
    description="201 when added, 200 when the customer already had it, 409 when another customer owns it.",
)
async def add_identity(
    customer_id: uuid.UUID, body: IdentityIn, session: SessionDep, principal: AgentDep, response: Response
) -> IdentityOut:
    identity, created = await service.add_identity(session, customer_id, body.kind.value, body.value, principal)
    if not created:
        response.status_code = status.HTTP_200_OK
    return IdentityOut.model_validate(identity)


@router.delete(
    "/{customer_id}/identities/{identity_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Remove an identity from a customer",
)
async def remove_identity(
    customer_id: uuid.UUID, identity_id: uuid.UUID, session: SessionDep, principal: AgentDep
) -> None:
    await service.remove_identity(session, customer_id, identity_id, principal)


@router.get("/{customer_id}/consents", response_model=list[ConsentOut], summary="A customer's consents")
async def list_consents(customer_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> list[ConsentOut]:
    customer = await service.follow_merges(session, await service.get_customer(session, customer_id))
    return [ConsentOut.model_validate(c) for c in await service.consents_of(session, customer.id)]


@router.put(
    "/{customer_id}/consents/{channel}/{category}",
    response_model=ConsentOut,
    summary="Record a customer's consent for a channel and category",
)
async def set_consent(
    customer_id: uuid.UUID,
    channel: Channel,
    category: Category,
    body: ConsentIn,
    session: SessionDep,
    principal: AgentDep,
) -> ConsentOut:
    consent = await service.set_consent(
        session, customer_id, channel.value, category, body.status.value, body.source, principal
    )
    return ConsentOut.model_validate(consent)


@router.get(
    "/{customer_id}/export",
    response_model=CustomerExport,
    summary="Export everything held about a customer",
    description="Customer, records merged into them, identities, consents, events, conversations with "
    "messages. The export is audited.",
)
async def export_customer(customer_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> CustomerExport:
    return CustomerExport.model_validate(await service.export_customer(session, customer_id, principal))


@router.post(
    "/{customer_id}/erase",
    response_model=EraseResult,
    summary="Erase a customer's personal data",
    description="Removes identities and consents, blanks name and attributes, redacts message text and "
    "event properties of the customer and every record merged into them. The rows stay (reports keep "
    "counting them); the erase is audited and cannot be undone.",
)
async def erase_customer(customer_id: uuid.UUID, session: SessionDep, principal: SupervisorDep) -> EraseResult:
    return EraseResult.model_validate(await service.erase_customer(session, customer_id, principal))
