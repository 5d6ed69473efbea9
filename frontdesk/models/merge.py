"""Merge suggestions and merge records: two customer records found to be one person.

A :class:`MergeSuggestion` is a possible duplicate with its reason and evidence, waiting for an
agent. A :class:`CustomerMerge` is a merge that happened: it lists the id of every row it moved
(per table) and the values it changed, so an unmerge can put back exactly what moved.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk import clock
from frontdesk.db import Base, IdMixin


class MergeSuggestionStatus(StrEnum):
    open = "open"
    accepted = "accepted"
    rejected = "rejected"


class MergeStatus(StrEnum):
    merged = "merged"
    unmerged = "unmerged"


class MergeSuggestion(IdMixin, Base):
    """Two customers that may be one person. ``customer_a_id < customer_b_id`` (an unordered pair)."""

    __tablename__ = "merge_suggestions"
    __table_args__ = (Index("ix_merge_suggestions_status_created", "status", "created_at"),)

    customer_a_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    customer_b_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    # "<a>:<b>" while the suggestion is open, NULL after: at most one open suggestion per pair.
    open_pair: Mapped[str | None] = mapped_column(String(80), unique=True)
    reason: Mapped[str] = mapped_column(String(100))
    # Why: which identity or attribute matched (may hold personal values; blanked on erase).
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default=MergeSuggestionStatus.open.value)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    decided_at: Mapped[datetime | None]
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    merge_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customer_merges.id", ondelete="SET NULL"))


class CustomerMerge(IdMixin, Base):
    """One merge of ``merged_id`` into ``survivor_id``, detailed enough to undo.

    ``moved`` holds the ids of the rows whose ``customer_id`` changed, per table name. ``restore``
    holds the values the merge changed on the survivor (attributes added, blank fields filled,
    consents overwritten by a newer answer) and the merged record's attribute values that lost to
    the survivor's; it may hold personal values and is blanked on erase.
    """

    __tablename__ = "customer_merges"

    survivor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    merged_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    # The suggestion that was accepted, if any (no foreign key: suggestions point here already).
    suggestion_id: Mapped[uuid.UUID | None]
    status: Mapped[str] = mapped_column(String(16), default=MergeStatus.merged.value)
    moved: Mapped[dict[str, Any]] = mapped_column(default=dict)
    restore: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lifetime_value_moved: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    merged_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    unmerged_at: Mapped[datetime | None]
    unmerged_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
