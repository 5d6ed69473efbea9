"""Search customers (name, email, phone…) and conversations (subject, message and note text).

The user's text is never handed to the database's query language as is: it is split into words
(each must hold a letter or a digit), and every word becomes one quoted prefix term —
``"word"*`` in an FTS5 MATCH expression, ``'word':*`` in a PostgreSQL tsquery — AND-ed together.
A query that looks like a phone number (``+7 (916) 123-45-67``) is also searched as its digits
(the last ten, so a national ``8 916…`` finds ``+7916…``) among the identities.

Merged-away and erased customers, and their conversations, are never returned. Each list is
bounded by ``limit``; both backends answer from their full-text indexes (see ``ddl.py``).
"""

from __future__ import annotations

import functools
import re
import unicodedata
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    bindparam,
    column,
    func,
    intersect,
    literal,
    literal_column,
    select,
    text,
    union,
)
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.db import UTCDateTime
from frontdesk.errors import Invalid
from frontdesk.models import Conversation, Customer, Identity, Message
from frontdesk.search import ddl
from frontdesk.search.schemas import ConversationHit, CustomerHit, IdentityHit, SearchResults

MAX_WORDS = 8
MAX_WORD = 64
SNIPPET_CHARS = 160
_PHONE_LIKE = re.compile(r"^[\d\s()+.\-]+$")


@dataclass(frozen=True)
class SearchQuery:
    words: tuple[str, ...]  # each holds at least one letter or digit
    phone_digits: str | None = None

    @property
    def customer_terms(self) -> tuple[str, ...]:
        return (self.phone_digits,) if self.phone_digits else self.words


def parse_query(q: str) -> SearchQuery:
    """Words of ``q`` worth searching for; 422 (field ``q``) when there are none."""
    if "\x00" in q:
        raise Invalid("q must not contain NUL characters", field="q")
    words = [w[:MAX_WORD] for w in q.split() if any(ch.isalnum() for ch in w)]
    if not words:
        raise Invalid("q must contain at least one letter or digit", field="q")
    words = list(dict.fromkeys(words))[:MAX_WORDS]
    phone = None
    stripped = q.strip()
    if _PHONE_LIKE.match(stripped):
        digits = re.sub(r"\D", "", stripped)
        if len(digits) >= 4 and (len(words) > 1 or not stripped.isdigit()):
            phone = digits[-10:]
    return SearchQuery(tuple(words), phone)


def fts5_expression(terms: tuple[str, ...]) -> str:
    """``"ива"* AND "maria@example.com"*``: each term a quoted phrase (quotes doubled), prefix-matched."""
    return " AND ".join('"' + t.replace('"', '""') + '"*' for t in terms)


# -- matching predicates per backend -----------------------------------------------------------


def _fts5_rowids(table: str, param: str, expression: str) -> Any:
    return (
        text(f"SELECT rowid FROM {table} WHERE {table} MATCH :{param}")
        .bindparams(**{param: expression})
        .columns(column("rowid"))
    )


def _tsquery(param: str, terms: tuple[str, ...]) -> ColumnElement[Any]:
    """``to_tsquery(…) && …``: each term accent-folded like the indexed text (``fd_unaccent``),
    THEN quoted — folding can turn a typographic apostrophe into a quote, so the quoting happens
    in SQL after it (``'`` doubled, ``\\`` escaped), never in Python before."""
    queries: list[ColumnElement[Any]] = []
    for n, term in enumerate(terms):
        folded = func.fd_unaccent(bindparam(f"{param}_{n}", term, type_=String()))
        escaped = func.replace(func.replace(folded, "\\", "\\\\"), "'", "''")
        quoted = literal("'", String()) + escaped + literal("':*", String())
        queries.append(func.to_tsquery(literal_column(ddl.PG_CONFIG), quoted))
    return functools.reduce(lambda a, b: a.op("&&")(b), queries)


def _matches(vector: str, param: str, terms: tuple[str, ...]) -> ColumnElement[bool]:
    return literal_column(vector).op("@@")(_tsquery(param, terms))


def _customer_match(dialect: str, query: SearchQuery) -> ColumnElement[bool]:
    terms = query.customer_terms
    if dialect == "sqlite":
        return literal_column("customers.rowid").in_(_fts5_rowids("search_customers", "cq", fts5_expression(terms)))
    # Every word must match the name or one of the identities (as in the SQLite document): per word
    # the union of two GIN index scans, intersected across words.
    per_word = [
        union(
            select(Customer.id).where(_matches(ddl.pg_name_vector(), f"cn{n}", (term,))),
            select(Identity.customer_id).where(_matches(ddl.pg_identity_vector(), f"ci{n}", (term,))),
        )
        for n, term in enumerate(terms)
    ]
    ids = per_word[0] if len(per_word) == 1 else intersect(*per_word)
    return Customer.id.in_(ids)


def _message_match(dialect: str, query: SearchQuery) -> ColumnElement[bool]:
    if dialect == "sqlite":
        return literal_column("messages.rowid").in_(_fts5_rowids("search_messages", "mq", fts5_expression(query.words)))
    return _matches(ddl.pg_message_vector(), "mq", query.words)


def _subject_match(dialect: str, query: SearchQuery) -> ColumnElement[bool]:
    if dialect == "sqlite":
        return literal_column("conversations.rowid").in_(
            _fts5_rowids("search_conversations", "sq", fts5_expression(query.words))
        )
    return _matches(ddl.pg_subject_vector(), "sq", query.words)


_LIVE = (Customer.merged_into_id.is_(None), Customer.erased_at.is_(None))


# -- the search ----------------------------------------------------------------------------------


async def search(session: AsyncSession, q: str, *, limit: int = 20) -> SearchResults:
    query = parse_query(q)
    dialect = session.get_bind().dialect.name
    customers = await _search_customers(session, dialect, query, limit)
    conversations = await _search_conversations(session, dialect, query, limit)
    return SearchResults(customers=customers, conversations=conversations)


def customers_statement(dialect: str, query: SearchQuery, limit: int) -> Select[uuid.UUID, str | None, str]:
    """Matching live customers, most recently changed first."""
    return (
        select(Customer.id, Customer.name, Customer.satisfaction_tier)
        .where(_customer_match(dialect, query), *_LIVE)
        .order_by(Customer.updated_at.desc(), Customer.id.desc())
        .limit(limit)
    )


def message_hits_statement(dialect: str, query: SearchQuery, limit: int) -> Select[uuid.UUID, datetime]:
    """(conversation id, newest match time) of conversations of live customers with a matching
    message, newest first. Aggregated before the joins: a common word matches many messages."""
    matched = (
        select(Message.conversation_id, func.max(Message.created_at).label("at"))
        .where(_message_match(dialect, query))
        .group_by(Message.conversation_id)
        .subquery()
    )
    return (
        select(matched.c.conversation_id, matched.c.at)
        .join(Conversation, Conversation.id == matched.c.conversation_id)
        .join(Customer, Customer.id == Conversation.customer_id)
        .where(*_LIVE)
        .order_by(matched.c.at.desc(), matched.c.conversation_id.desc())
        .limit(limit)
    )


def newest_matches_statement(
    dialect: str, query: SearchQuery, conversation_ids: list[uuid.UUID]
) -> Select[uuid.UUID, uuid.UUID, str]:
    """(message id, conversation id, text) of the newest matching message of each conversation."""
    ranked = (
        select(
            Message.id,
            Message.conversation_id,
            Message.text,
            func.row_number()
            .over(partition_by=Message.conversation_id, order_by=(Message.created_at.desc(), Message.id.desc()))
            .label("rn"),
        )
        .where(Message.conversation_id.in_(conversation_ids), _message_match(dialect, query))
        .subquery()
    )
    return select(ranked.c.id, ranked.c.conversation_id, ranked.c.text).where(ranked.c.rn == 1)


def subject_hits_statement(dialect: str, query: SearchQuery, limit: int) -> Select[uuid.UUID, datetime]:
    """(conversation id, last activity) of live customers' conversations whose subject matches."""
    activity = func.coalesce(Conversation.last_message_at, Conversation.created_at, type_=UTCDateTime())
    return (
        select(Conversation.id, activity)
        .join(Customer, Customer.id == Conversation.customer_id)
        .where(_subject_match(dialect, query), *_LIVE)
        .order_by(activity.desc(), Conversation.id.desc())
        .limit(limit)
    )


async def _search_customers(session: AsyncSession, dialect: str, query: SearchQuery, limit: int) -> list[CustomerHit]:
    rows = list((await session.execute(customers_statement(dialect, query, limit))).all())
    if not rows:
        return []
    identities: dict[uuid.UUID, list[IdentityHit]] = defaultdict(list)
    for customer_id, kind, value in await session.execute(
        select(Identity.customer_id, Identity.kind, Identity.value)
        .where(Identity.customer_id.in_([r[0] for r in rows]), Identity.kind.not_in(ddl.UNSEARCHED_KINDS))
        .order_by(Identity.kind, Identity.created_at, Identity.id)
    ):
        identities[customer_id].append(IdentityHit(kind=kind, value=value))
    return [
        CustomerHit(id=cid, name=name, identities=identities.get(cid, []), satisfaction_tier=tier)
        for cid, name, tier in rows
    ]


async def _search_conversations(
    session: AsyncSession, dialect: str, query: SearchQuery, limit: int
) -> list[ConversationHit]:
    message_hits = (await session.execute(message_hits_statement(dialect, query, limit))).all()
    subject_hits = (await session.execute(subject_hits_statement(dialect, query, limit))).all()

    found: dict[uuid.UUID, tuple[datetime, bool]] = {cid: (at, True) for cid, at in message_hits}
    for conversation_id, at in subject_hits:
        found.setdefault(conversation_id, (at, False))
    chosen = sorted(found.items(), key=lambda kv: (kv[1][0], kv[0]), reverse=True)[:limit]
    if not chosen:
        return []

    conv_ids = [cid for cid, _ in chosen]
    convs = {
        c.id: (c, name)
        for c, name in (
            await session.execute(
                select(Conversation, Customer.name)
                .join(Customer, Customer.id == Conversation.customer_id)
                .where(Conversation.id.in_(conv_ids))
            )
        ).all()
    }
    by_message = [cid for cid, (_, in_messages) in chosen if in_messages]
    newest: dict[uuid.UUID, tuple[uuid.UUID, str]] = {}
    if by_message:
        for message_id, conversation_id, body in await session.execute(
            newest_matches_statement(dialect, query, by_message)
        ):
            newest[conversation_id] = (message_id, body)
    out = []
    for cid, _ in chosen:
        conversation, customer_name = convs[cid]
        mid, source = newest.get(cid, (None, conversation.subject or ""))
        out.append(
            ConversationHit(
                id=conversation.id,
                customer_id=conversation.customer_id,
                customer_name=customer_name,
                channel=conversation.channel,
                status=conversation.status,
                subject=conversation.subject,
                last_message_at=conversation.last_message_at,
                snippet=make_snippet(source, query.words),
                message_id=mid,
            )
        )
    return out


# -- snippets ------------------------------------------------------------------------------------


def _fold_char(ch: str) -> str:
    """One character, lower-cased and without diacritics (always one character long)."""
    base = unicodedata.normalize("NFD", ch)[0]
    folded = base.casefold()
    return folded if len(folded) == 1 else ch.lower()[:1] or ch


def _fold(value: str) -> str:
    return "".join(_fold_char(ch) for ch in value)


def make_snippet(value: str, words: tuple[str, ...], width: int = SNIPPET_CHARS) -> str:
    """``value`` (whitespace collapsed) cut to about ``width`` characters around the first match."""
    flat = " ".join(value.split())
    if len(flat) <= width:
        return flat
    folded = _fold(flat)
    positions = []
    for word in words:
        for needle in (word, *re.findall(r"\w+", word)):
            at = folded.find(_fold(needle))
            if at >= 0:
                positions.append(at)
                break
    at = min(positions) if positions else 0
    start = max(0, at - width // 3)
    if start > 0:
        space = flat.rfind(" ", 0, start + 1)
        start = space + 1 if space >= 0 and start - space < 20 else start
    end = min(len(flat), start + width)
    if end < len(flat):
        space = flat.rfind(" ", start, end)
        end = space if space > start + width // 2 else end
    return ("…" if start > 0 else "") + flat[start:end].strip() + ("…" if end < len(flat) else "")


async def rebuild(session: AsyncSession) -> None:
    """Refill the full-text index from the tables (existing data, or an index that drifted)."""
    for statement in ddl.rebuild_statements(session.get_bind().dialect.name):
        await session.execute(text(statement))
