"""Customers API: CRUD, search, identities, consents, export and erase (``/api/v1/customers``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response, status
from pydantic import StringConstraints

from frontdesk.auth.deps import AgentDep, SupervisorDep
from frontdesk.customers import merge, service
from frontdesk.customers.schemas import (
    AcceptSuggestionIn,
    Category,
    ConsentIn,
    ConsentOut,
    CustomerCreate,
    CustomerDetail,
    CustomerExport,
    CustomerMergeOut,
    CustomerOut,
    CustomerUpdate,
    EraseResult,
    IdentityIn,
    IdentityOut,
    MergeIn,
    MergeSuggestionOut,
)
from frontdesk.deps import SessionDep, StoreDep
from frontdesk.errors import Conflict, problem_response
from frontdesk.models import Customer
from frontdesk.models.enums import Channel, SatisfactionTier
from frontdesk.models.merge import MergeSuggestionStatus
from frontdesk.pagination import Page

customers = APIRouter(prefix="/customers", tags=["customers"])

AttributeFilter = Annotated[str, StringConstraints(max_length=700)]


def _max_identities(request: Request) -> int:
    return int(request.app.state.settings.max_identities_per_customer)


async def _detail(session: SessionDep, customer: Customer, merged_from: uuid.UUID | None = None) -> CustomerDetail:
    identities, more = (await service.identities_of(session, [customer.id]))[customer.id]
    consents = await service.consents_of(session, customer.id)
    return CustomerDetail.model_validate(customer).model_copy(
        update={
            "identities": [IdentityOut.model_validate(i) for i in identities],
            "identities_next_cursor": more,
            "consents": [ConsentOut.model_validate(c) for c in consents],
            "merged_from": merged_from,
        }
    )


@customers.post(
    "",
    response_model=CustomerDetail,
    status_code=status.HTTP_201_CREATED,
    summary="Create a customer",
    responses={409: {"description": "An identity already belongs to another customer"}},
)
async def create_customer(
    body: CustomerCreate, session: SessionDep, principal: AgentDep, request: Request
) -> CustomerDetail:
    customer = await service.create_customer(session, body, principal, max_identities=_max_identities(request))
    return await _detail(session, customer)


@customers.get("", response_model=Page[CustomerOut], summary="Search customers")
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
            update={
                "identities": [IdentityOut.model_validate(i) for i in identities[c.id][0]],
                "identities_next_cursor": identities[c.id][1],
            }
        )
        for c in customers
    ]
    return Page[CustomerOut](items=items, next_cursor=next_cursor)


@customers.get(
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


@customers.patch(
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


@customers.delete(
    "/{customer_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a customer who has no conversations",
    responses={409: {"description": "The customer has conversations; erase instead"}},
)
async def delete_customer(customer_id: uuid.UUID, session: SessionDep, principal: SupervisorDep) -> None:
    await service.delete_customer(session, customer_id, principal)


@customers.post(
    "/{customer_id}/identities",
    response_model=IdentityOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add an identity to a customer",
    description="201 when added, 200 when the customer already had it, 409 when another customer owns it: "
    "then the two may be one person, so a merge suggestion is recorded (never a silent merge) and its id is "
    "in the problem as `merge_suggestion_id` (null when agents already rejected that pair).",
    responses={409: {"description": "Another customer owns the identity; carries `merge_suggestion_id`"}},
)
async def add_identity(
    customer_id: uuid.UUID,
    body: IdentityIn,
    session: SessionDep,
    principal: AgentDep,
    request: Request,
    response: Response,
) -> Any:
    try:
        identity, created = await service.add_identity(
            session, customer_id, body.kind.value, body.value, principal, max_identities=_max_identities(request)
        )
    except Conflict as exc:
        suggestion = await merge.suggest_for_identity_conflict(session, customer_id, exc)
        if suggestion is None and "identity" not in exc.extra:
            raise
        # Answered, not raised: the suggestion is committed with the request.
        return problem_response(
            exc.status,
            exc.title,
            exc.detail + (" A merge suggestion was recorded for an agent to review." if suggestion is not None else ""),
            slug=exc.slug,
            instance=request.url.path,
            extra={**exc.extra, "merge_suggestion_id": str(suggestion.id) if suggestion is not None else None},
        )
    if not created:
        response.status_code = status.HTTP_200_OK
    return IdentityOut.model_validate(identity)


@customers.get(
    "/{customer_id}/identities",
    response_model=Page[IdentityOut],
    summary="A customer's identities, page by page",
    description="Oldest first. A customer merged into another lists the survivor's. The customer's record "
    "shows the first page; its `identities_next_cursor` is the cursor of the second.",
)
async def list_identities(
    customer_id: uuid.UUID,
    session: SessionDep,
    principal: AgentDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500, description="next_cursor of the previous page")] = None,
) -> Page[IdentityOut]:
    customer = await service.follow_merges(session, await service.get_customer(session, customer_id))
    rows, next_cursor = await service.list_identities(session, customer.id, limit=limit, cursor=cursor)
    return Page[IdentityOut](items=[IdentityOut.model_validate(i) for i in rows], next_cursor=next_cursor)


@customers.delete(
    "/{customer_id}/identities/{identity_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Remove an identity from a customer",
)
async def remove_identity(
    customer_id: uuid.UUID, identity_id: uuid.UUID, session: SessionDep, principal: AgentDep
) -> None:
    await service.remove_identity(session, customer_id, identity_id, principal)


@customers.get("/{customer_id}/consents", response_model=list[ConsentOut], summary="A customer's consents")
async def list_consents(customer_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> list[ConsentOut]:
    customer = await service.follow_merges(session, await service.get_customer(session, customer_id))
    return [ConsentOut.model_validate(c) for c in await service.consents_of(session, customer.id)]


@customers.put(
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


@customers.get(
    "/{customer_id}/export",
    response_model=CustomerExport,
    summary="Export everything held about a customer",
    description="Customer, records merged into them, identities, consents, events, conversations with "
    "messages. The export is audited.",
)
async def export_customer(customer_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> CustomerExport:
    return CustomerExport.model_validate(await service.export_customer(session, customer_id, principal))


@customers.post(
    "/{customer_id}/erase",
    response_model=EraseResult,
    summary="Erase a customer's personal data",
    description="Removes identities and consents, blanks name and attributes, redacts message text and "
    "event properties and deletes attachment files of the customer and every record merged into them. The "
    "rows stay (reports keep counting them); the erase is audited and cannot be undone.",
)
async def erase_customer(
    customer_id: uuid.UUID, session: SessionDep, principal: SupervisorDep, store: StoreDep
) -> EraseResult:
    return EraseResult.model_validate(await service.erase_customer(session, customer_id, principal, store))


# -- one customer: merge suggestions, merge and unmerge ------------------------------------------
# Agents may review suggestions (accept merges the pair: the evidence is on the suggestion and a
# supervisor can undo it); merging two customers directly and undoing a merge is supervisor+.

merges = APIRouter(tags=["customer merges"])


@customers.post(
    "/{customer_id}/merge-suggestions",
    response_model=list[MergeSuggestionOut],
    summary="Look for duplicates of a customer and suggest merging them",
    description="Runs the matcher (an email or phone in the attributes that is another customer's identity, "
    "this customer's email or phone in another's attributes, same name with an identity value in common) and "
    "returns the open suggestion for each candidate. Idempotent: a repeat returns the same suggestions.",
)
async def suggest_duplicates(
    customer_id: uuid.UUID, session: SessionDep, principal: AgentDep
) -> list[MergeSuggestionOut]:
    found = await merge.suggest_candidates(session, customer_id)
    return [MergeSuggestionOut.model_validate(s) for s in found]


@customers.post(
    "/{customer_id}/merge",
    response_model=CustomerMergeOut,
    status_code=status.HTTP_201_CREATED,
    summary="Merge another customer into this one (supervisor)",
    description="The customer in the path survives: identities, conversations, messages, events and other rows "
    "of `other_id` move to it; consents by the newer answer; attributes keep the survivor's value on conflict "
    "(the other's value is kept in the merge record); lifetime values are summed. `other_id` then reads as the "
    "survivor. Undo with POST /api/v1/customer-merges/{merge_id}/unmerge.",
    responses={409: {"description": "One of them was already merged or erased"}},
)
async def merge_customer(
    customer_id: uuid.UUID, body: MergeIn, session: SessionDep, principal: SupervisorDep, request: Request
) -> CustomerMergeOut:
    done = await merge.merge_customers(
        session, customer_id, body.other_id, principal, max_identities=_max_identities(request)
    )
    return CustomerMergeOut.of(done)


@customers.get(
    "/{customer_id}/merges",
    response_model=list[CustomerMergeOut],
    summary="Merges a customer took part in",
    description="As survivor or as the merged record, newest first, including undone ones.",
)
async def list_customer_merges(
    customer_id: uuid.UUID, session: SessionDep, principal: AgentDep
) -> list[CustomerMergeOut]:
    return [CustomerMergeOut.of(m) for m in await merge.list_merges(session, customer_id)]


@merges.get("/merge-suggestions", response_model=Page[MergeSuggestionOut], summary="Merge suggestions to review")
async def list_merge_suggestions(
    session: SessionDep,
    principal: AgentDep,
    status_: Annotated[MergeSuggestionStatus | None, Query(alias="status")] = None,
    customer_id: Annotated[uuid.UUID | None, Query(description="Suggestions naming this customer.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500, description="next_cursor of the previous page")] = None,
) -> Page[MergeSuggestionOut]:
    rows, next_cursor = await merge.list_suggestions(
        session,
        status=status_.value if status_ else None,
        customer_id=customer_id,
        limit=limit,
        cursor=cursor,
    )
    return Page[MergeSuggestionOut](items=[MergeSuggestionOut.model_validate(s) for s in rows], next_cursor=next_cursor)


@merges.get("/merge-suggestions/{suggestion_id}", response_model=MergeSuggestionOut, summary="A merge suggestion")
async def get_merge_suggestion(
    suggestion_id: uuid.UUID, session: SessionDep, principal: AgentDep
) -> MergeSuggestionOut:
    return MergeSuggestionOut.model_validate(await merge.get_suggestion(session, suggestion_id))


@merges.post(
    "/merge-suggestions/{suggestion_id}/accept",
    response_model=CustomerMergeOut,
    summary="Accept a merge suggestion: merge the two customers",
    description="The older customer survives unless `survivor_id` names the other. 409 when the suggestion "
    "was already decided.",
)
async def accept_merge_suggestion(
    suggestion_id: uuid.UUID,
    session: SessionDep,
    principal: AgentDep,
    request: Request,
    body: Annotated[AcceptSuggestionIn | None, Body()] = None,
) -> CustomerMergeOut:
    done = await merge.accept_suggestion(
        session,
        suggestion_id,
        principal,
        survivor_id=body.survivor_id if body else None,
        max_identities=_max_identities(request),
    )
    return CustomerMergeOut.of(done)


@merges.post(
    "/merge-suggestions/{suggestion_id}/reject",
    response_model=MergeSuggestionOut,
    summary="Reject a merge suggestion",
    description="The pair is not suggested again for the same reason.",
)
async def reject_merge_suggestion(
    suggestion_id: uuid.UUID, session: SessionDep, principal: AgentDep
) -> MergeSuggestionOut:
    return MergeSuggestionOut.model_validate(await merge.reject_suggestion(session, suggestion_id, principal))


@merges.get("/customer-merges/{merge_id}", response_model=CustomerMergeOut, summary="A customer merge")
async def get_customer_merge(merge_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> CustomerMergeOut:
    return CustomerMergeOut.of(await merge.get_merge(session, merge_id))


@merges.post(
    "/customer-merges/{merge_id}/unmerge",
    response_model=CustomerMergeOut,
    summary="Undo a merge (supervisor)",
    description="Moves back exactly the rows the merge moved (rows created for the survivor since stay; a "
    "message follows its conversation) and the values it changed, unless changed again since. 409 when already "
    "undone or when the survivor was merged again later (undo that first).",
)
async def unmerge_customers(merge_id: uuid.UUID, session: SessionDep, principal: SupervisorDep) -> CustomerMergeOut:
    return CustomerMergeOut.of(await merge.unmerge(session, merge_id, principal))


router = APIRouter()
router.include_router(customers)
router.include_router(merges)
