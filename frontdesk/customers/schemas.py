"""Customers API shapes, and the bounded JSON / safe text types other packages reuse."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from frontdesk.models.enums import Channel, ConsentStatus, IdentityKind, SatisfactionTier
from frontdesk.models.merge import MergeStatus, MergeSuggestionStatus

MAX_ATTRIBUTES_BYTES = 16 * 1024
MAX_JSON_DEPTH = 16

# -- reusable validators -------------------------------------------------------------------


def clean_text(value: str) -> str:
    """Reject text no database will store: NUL characters and lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("is not valid Unicode text") from exc
    return value


def _check_json(value: Any, depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"is nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        clean_text(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            clean_text(str(k))
            _check_json(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_json(v, depth + 1)


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON (raises ``ValueError`` for NaN/Infinity)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())


def bounded_json_object(max_bytes: int) -> AfterValidator:
    """A validator for a JSON object of at most ``max_bytes`` that every backend can store."""

    def _validate(value: dict[str, Any]) -> dict[str, Any]:
        _check_json(value)
        try:
            size = json_size(value)
        except ValueError as exc:
            raise ValueError("must not contain NaN or Infinity") from exc
        if size > max_bytes:
            raise ValueError(f"is {size} bytes as JSON; the limit is {max_bytes}")
        return value

    return AfterValidator(_validate)


def _time_zone(value: str) -> str:
    if value not in _zones():
        raise ValueError(f"'{value[:64]}' is not an IANA time zone name (e.g. Europe/London)")
    return value


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


SafeStr = Annotated[str, AfterValidator(clean_text)]
Name = Annotated[str, StringConstraints(max_length=300, strip_whitespace=True), AfterValidator(clean_text)]
Locale = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$", max_length=20)]
TimeZone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_time_zone)]
Attributes = Annotated[dict[str, Any], Field(max_length=200), bounded_json_object(MAX_ATTRIBUTES_BYTES)]
AttributesPatch = Annotated[dict[str, Any | None], Field(max_length=200), bounded_json_object(MAX_ATTRIBUTES_BYTES)]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2, allow_inf_nan=False)]
Category = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.\-]{0,63}$")]
Source = Annotated[str, StringConstraints(max_length=500), AfterValidator(clean_text)]
IdentityValue = Annotated[str, StringConstraints(min_length=1, max_length=320), AfterValidator(clean_text)]


# -- identities and consents -----------------------------------------------------------------


class IdentityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: IdentityKind
    value: IdentityValue = Field(description="Normalised on the way in: E.164 phones, lower-cased emails.")


class IdentityOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    value: str
    verified: bool
    undeliverable: bool
    created_at: datetime


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: ConsentStatus
    source: Source | None = Field(None, description="Where the answer came from: a form, a call, an import…")


class ConsentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    channel: Channel
    category: str
    status: ConsentStatus
    source: str | None
    recorded_at: datetime


# -- customers --------------------------------------------------------------------------------


class CustomerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    locale: Locale | None = Field(None, description="BCP 47 tag, e.g. en-GB or ru.")
    time_zone: TimeZone | None = Field(None, description="IANA name, e.g. Europe/Moscow.")
    attributes: Attributes = Field(default_factory=dict, description="Free JSON object, at most 16 KB.")
    satisfaction_tier: SatisfactionTier = SatisfactionTier.unknown
    lifetime_value: Money = Decimal("0")
    identities: list[IdentityIn] = Field(default_factory=list, max_length=20)


class CustomerUpdate(BaseModel):
    """Fields not sent are left alone.

    ``attributes`` is **merged** into the stored object: each key sent replaces that key, a key
    sent as ``null`` is deleted, keys not sent are kept. ``name``, ``locale`` and ``time_zone``
    may be set to ``null`` to clear them.
    """

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    locale: Locale | None = None
    time_zone: TimeZone | None = None
    attributes: AttributesPatch | None = Field(
        None, description="Merged into the stored attributes; a key sent as null is deleted."
    )
    satisfaction_tier: SatisfactionTier | None = None
    lifetime_value: Money | None = None


class CustomerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str | None
    locale: str | None
    time_zone: str | None
    attributes: dict[str, Any]
    satisfaction_tier: SatisfactionTier
    lifetime_value: Decimal
    created_at: datetime
    updated_at: datetime
    erased_at: datetime | None = None
    identities: list[IdentityOut] = Field(
        default_factory=list, description="The first 50 identities, oldest first (see identities_next_cursor)."
    )
    identities_next_cursor: str | None = Field(
        None,
        description="Set when the customer has more identities than listed: "
        "GET /api/v1/customers/{id}/identities?cursor=… lists the rest.",
    )
    merged_from: uuid.UUID | None = Field(
        None, description="Set when the id asked for was merged into this customer (this is the survivor)."
    )


class CustomerDetail(CustomerOut):
    consents: list[ConsentOut] = Field(default_factory=list)


class EraseResult(BaseModel):
    customer_id: uuid.UUID
    erased_customer_ids: list[uuid.UUID]
    identities_removed: int
    consents_removed: int
    conversations_redacted: int
    messages_redacted: int
    attachments_redacted: int
    events_redacted: int
    rejected_inputs_removed: int = Field(0, description="Refused inputs that named them (raw bodies), deleted.")
    erased_at: datetime


class CustomerExport(BaseModel):
    """Everything Frontdesk holds about one customer (and any records merged into them)."""

    exported_at: datetime
    customer: dict[str, Any]
    merged_records: list[dict[str, Any]]
    identities: list[dict[str, Any]]
    consents: list[dict[str, Any]]
    events: list[dict[str, Any]]
    conversations: list[dict[str, Any]]
    merges: list[dict[str, Any]] = Field(default_factory=list, description="Merges the customer took part in.")
    merge_suggestions: list[dict[str, Any]] = Field(default_factory=list)
    rejected_inputs: list[dict[str, Any]] = Field(
        default_factory=list, description="Refused inputs that name them (by id or one of their identities)."
    )


# -- one customer: merge suggestions and merges ----------------------------------------------


class MergeSuggestionOut(BaseModel):
    """Two customers that may be one person, with the reason and the evidence."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    customer_a_id: uuid.UUID
    customer_b_id: uuid.UUID
    reason: str = Field(
        description="Why: identity_claimed, attribute_matches_identity, identity_in_attributes, "
        "same_name_overlapping_identity, or a channel's own reason (e.g. webchat_prechat_email)."
    )
    evidence: dict[str, Any] = Field(description="What matched (which identity or attribute).")
    status: MergeSuggestionStatus
    merge_id: uuid.UUID | None = Field(None, description="The merge made when the suggestion was accepted.")
    created_at: datetime
    decided_at: datetime | None = None
    decided_by_id: uuid.UUID | None = None


class AcceptSuggestionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    survivor_id: uuid.UUID | None = Field(
        None, description="Which of the two customers survives; the older one when not given."
    )


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    other_id: uuid.UUID = Field(description="The customer merged into the one in the path (which survives).")


class CustomerMergeOut(BaseModel):
    """One merge: what moved from ``merged_id`` to ``survivor_id``, and whether it was undone."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    survivor_id: uuid.UUID
    merged_id: uuid.UUID
    suggestion_id: uuid.UUID | None = None
    status: MergeStatus
    created_at: datetime
    merged_by_id: uuid.UUID | None = None
    unmerged_at: datetime | None = None
    unmerged_by_id: uuid.UUID | None = None
    moved: dict[str, int] = Field(description="Rows moved to the survivor, per table.")
    lifetime_value_moved: Decimal
    attributes_added: list[str] = Field(description="Attribute keys the survivor took from the merged record.")
    attributes_overridden: dict[str, Any] = Field(
        description="The merged record's values for keys where the survivor's value won (kept here)."
    )
    fields_filled: list[str] = Field(description="Blank survivor fields filled from the merged record.")
    consents_overwritten: int = Field(description="Survivor consents replaced by the merged record's newer answer.")

    @classmethod
    def of(cls, merge: Any) -> CustomerMergeOut:
        restore = merge.restore or {}
        return cls(
            id=merge.id,
            survivor_id=merge.survivor_id,
            merged_id=merge.merged_id,
            suggestion_id=merge.suggestion_id,
            status=merge.status,
            created_at=merge.created_at,
            merged_by_id=merge.merged_by_id,
            unmerged_at=merge.unmerged_at,
            unmerged_by_id=merge.unmerged_by_id,
            moved={name: len(ids) for name, ids in (merge.moved or {}).items()},
            lifetime_value_moved=merge.lifetime_value_moved,
            attributes_added=sorted(restore.get("attributes_added") or {}),
            attributes_overridden=restore.get("attributes_overridden") or {},
            fields_filled=sorted(restore.get("fields_filled") or {}),
            consents_overwritten=len(restore.get("consents_overwritten") or []),
        )
