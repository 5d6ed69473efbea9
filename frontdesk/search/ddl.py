"""The full-text indexes behind ``GET /api/v1/search``, as plain DDL for each backend.

SQLite: FTS5 tables kept current by triggers, so every writer — the ORM, the ingest writer's Core
statements, bulk updates of an erase — is covered without application code on the hot path.

- ``search_messages(text)``: external content (``content='messages'``), rowid = ``messages.rowid``;
  the text is not stored twice. Notes are messages too and are indexed.
- ``search_conversations(subject)``: external content on ``conversations``.
- ``search_customers(name, identities)``: its own content, rowid = ``customers.rowid``;
  ``identities`` is a document built from the customer's email, phone, external and messenger ids
  (a phone also contributes the suffixes of its digits, so a prefix query finds any part of it).

The triggers fire only on the columns they index (``UPDATE OF text`` …): the ingest writer's
per-message conversation bump does not touch the index. ``rowid`` of these tables is stable
(``VACUUM`` keeps it in practice); :func:`rebuild_statements` re-creates everything from the
tables if it ever drifts.

PostgreSQL: GIN expression indexes on ``to_tsvector('simple', fd_unaccent(…))`` (no stemming, so
Russian and English both match word prefixes; accents folded like SQLite's ``remove_diacritics``,
so "Jose" finds "José"). ``fd_unaccent`` is an ``IMMUTABLE`` wrapper of the ``unaccent``
extension's function with its dictionary named (``unaccent(text)`` alone is only ``STABLE`` and
cannot be indexed); the DDL creates the extension (trusted since PostgreSQL 13) and the wrapper.
Queries must use exactly the same expressions (:func:`pg_message_vector` …) for the planner to
pick the indexes.

Tests build the schema with ``Base.metadata.create_all``; the ``after_create`` listener below adds
these statements there. Migrations take them from :func:`sqlite_ddl` / :func:`postgresql_ddl`
(and :func:`sqlite_drop` / :func:`postgresql_drop` to go down); :func:`include_object` keeps
Alembic's comparison from reporting them as tables or indexes unknown to the models.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.pool import Pool

from frontdesk.db import Base

TOKENIZE = "unicode61 remove_diacritics 2"
PG_CONFIG = "'simple'::regconfig"
PG_FOLD = "fd_unaccent"  # IMMUTABLE wrapper of unaccent(); see postgresql_functions()
# A phone's digits contribute their suffixes from the 2nd to this position (E.164 has at most 15).
PHONE_SUFFIXES = 12
# Identity kinds that are not worth finding by text (random visitor tokens).
UNSEARCHED_KINDS = ("webchat_visitor",)

SEARCH_TABLES = ("search_customers", "search_conversations", "search_messages")
_BASE_TABLES = ("customers", "identities", "conversations", "messages")


# -- identity documents ----------------------------------------------------------------------


def _phone_suffixes(digits: str) -> str:
    return " || ' ' || ".join(f"substr({digits}, {k})" for k in range(2, PHONE_SUFFIXES + 1))


def _identity_doc(prefix: str) -> str:
    """SQL text of one identity's searchable document (the same on both backends).

    ``maria@example.com`` → ``maria@example.com maria example.com``;
    ``+79161234567`` → ``+79161234567 maria… 79161234567 9161234567 161234567 …``.
    """
    value, kind = f"{prefix}value", f"{prefix}kind"
    digits = f"replace({value}, '+', '')"
    skipped = ", ".join(f"'{k}'" for k in UNSEARCHED_KINDS)
    return (
        f"(CASE WHEN {kind} IN ({skipped}) THEN '' ELSE {value} || ' ' || replace({value}, '@', ' ') || "
        f"CASE WHEN {kind} = 'phone' THEN ' ' || {digits} || ' ' || {_phone_suffixes(digits)} ELSE '' END END)"
    )


def _pg_vector(document: str, fold: bool) -> str:
    return f"to_tsvector({PG_CONFIG}, {PG_FOLD}({document}))" if fold else f"to_tsvector({PG_CONFIG}, {document})"


def pg_identity_vector(prefix: str = "identities.", *, fold: bool = True) -> str:
    """The indexed expression of ``identities`` (use it verbatim in queries). ``fold=False`` is the
    expression before migration 0004 (accents kept), for its downgrade."""
    return _pg_vector(_identity_doc(prefix), fold)


def pg_message_vector(prefix: str = "messages.", *, fold: bool = True) -> str:
    return _pg_vector(f"{prefix}text", fold)


def pg_subject_vector(prefix: str = "conversations.", *, fold: bool = True) -> str:
    return _pg_vector(f"coalesce({prefix}subject, '')", fold)


def pg_name_vector(prefix: str = "customers.", *, fold: bool = True) -> str:
    return _pg_vector(f"coalesce({prefix}name, '')", fold)


# -- SQLite ----------------------------------------------------------------------------------


def _sqlite_identities_of(customer_id: str) -> str:
    """All searchable identities of one customer as one document ('' when none)."""
    return (
        f"coalesce((SELECT group_concat({_identity_doc('i.')}, ' ') FROM identities i "
        f"WHERE i.customer_id = {customer_id}), '')"
    )


def _sqlite_refresh_identities(customer_id: str) -> str:
    return (
        f"UPDATE search_customers SET identities = {_sqlite_identities_of(customer_id)} "
        f"WHERE rowid = (SELECT c.rowid FROM customers c WHERE c.id = {customer_id});"
    )


def sqlite_ddl() -> list[str]:
    """CREATE statements of the SQLite full-text tables and the triggers that keep them current."""
    tok = f"tokenize = '{TOKENIZE}'"
    return [
        # -- customers: name + identities, own content, rowid = customers.rowid
        f"CREATE VIRTUAL TABLE IF NOT EXISTS search_customers USING fts5(name, identities, {tok})",
        "CREATE TRIGGER IF NOT EXISTS search_customers_ai AFTER INSERT ON customers BEGIN "
        "INSERT INTO search_customers(rowid, name, identities) "
        f"VALUES (new.rowid, new.name, {_sqlite_identities_of('new.id')}); END",
        "CREATE TRIGGER IF NOT EXISTS search_customers_au AFTER UPDATE OF name ON customers BEGIN "
        "UPDATE search_customers SET name = new.name WHERE rowid = new.rowid; END",
        "CREATE TRIGGER IF NOT EXISTS search_customers_ad AFTER DELETE ON customers BEGIN "
        "DELETE FROM search_customers WHERE rowid = old.rowid; END",
        "CREATE TRIGGER IF NOT EXISTS search_identities_ai AFTER INSERT ON identities BEGIN "
        f"{_sqlite_refresh_identities('new.customer_id')} END",
        "CREATE TRIGGER IF NOT EXISTS search_identities_ad AFTER DELETE ON identities BEGIN "
        f"{_sqlite_refresh_identities('old.customer_id')} END",
        "CREATE TRIGGER IF NOT EXISTS search_identities_au AFTER UPDATE OF kind, value, customer_id ON identities "
        f"BEGIN {_sqlite_refresh_identities('old.customer_id')} {_sqlite_refresh_identities('new.customer_id')} END",
        # -- conversations: subject, external content
        "CREATE VIRTUAL TABLE IF NOT EXISTS search_conversations USING fts5("
        f"subject, content = 'conversations', {tok})",
        "CREATE TRIGGER IF NOT EXISTS search_conversations_ai AFTER INSERT ON conversations BEGIN "
        "INSERT INTO search_conversations(rowid, subject) VALUES (new.rowid, new.subject); END",
        "CREATE TRIGGER IF NOT EXISTS search_conversations_au AFTER UPDATE OF subject ON conversations BEGIN "
        "INSERT INTO search_conversations(search_conversations, rowid, subject) "
        "VALUES ('delete', old.rowid, old.subject); "
        "INSERT INTO search_conversations(rowid, subject) VALUES (new.rowid, new.subject); END",
        "CREATE TRIGGER IF NOT EXISTS search_conversations_ad AFTER DELETE ON conversations BEGIN "
        "INSERT INTO search_conversations(search_conversations, rowid, subject) "
        "VALUES ('delete', old.rowid, old.subject); END",
        # -- messages (notes included): text, external content
        f"CREATE VIRTUAL TABLE IF NOT EXISTS search_messages USING fts5(text, content = 'messages', {tok})",
        "CREATE TRIGGER IF NOT EXISTS search_messages_ai AFTER INSERT ON messages BEGIN "
        "INSERT INTO search_messages(rowid, text) VALUES (new.rowid, new.text); END",
        "CREATE TRIGGER IF NOT EXISTS search_messages_au AFTER UPDATE OF text ON messages BEGIN "
        "INSERT INTO search_messages(search_messages, rowid, text) VALUES ('delete', old.rowid, old.text); "
        "INSERT INTO search_messages(rowid, text) VALUES (new.rowid, new.text); END",
        "CREATE TRIGGER IF NOT EXISTS search_messages_ad AFTER DELETE ON messages BEGIN "
        "INSERT INTO search_messages(search_messages, rowid, text) VALUES ('delete', old.rowid, old.text); END",
    ]


def sqlite_drop() -> list[str]:
    triggers = [
        "search_customers_ai", "search_customers_au", "search_customers_ad",
        "search_identities_ai", "search_identities_ad", "search_identities_au",
        "search_conversations_ai", "search_conversations_au", "search_conversations_ad",
        "search_messages_ai", "search_messages_au", "search_messages_ad",
    ]  # fmt: skip
    return [f"DROP TRIGGER IF EXISTS {t}" for t in triggers] + [f"DROP TABLE IF EXISTS {t}" for t in SEARCH_TABLES]


# -- PostgreSQL ------------------------------------------------------------------------------


# The wrapper names the schema the extension lives in and its dictionary, so its result never
# depends on the caller's search_path: that is what makes declaring it IMMUTABLE sound.
_PG_FOLD_FUNCTION = (
    "DO $fd$ DECLARE s name; BEGIN "
    "SELECT n.nspname INTO s FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
    "WHERE e.extname = 'unaccent'; "
    f"EXECUTE format('CREATE OR REPLACE FUNCTION {PG_FOLD}(text) RETURNS text "
    "LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS %L', "
    "format('SELECT %I.unaccent(%L::regdictionary, $1)', s, quote_ident(s) || '.unaccent')); "
    "END $fd$"
)


def postgresql_functions() -> list[str]:
    """The ``unaccent`` extension and the ``fd_unaccent`` wrapper the indexes use."""
    return ["CREATE EXTENSION IF NOT EXISTS unaccent", _PG_FOLD_FUNCTION]


def postgresql_indexes(*, fold: bool = True) -> list[str]:
    """CREATE INDEX statements of the PostgreSQL GIN expression indexes."""
    return [
        "CREATE INDEX IF NOT EXISTS ix_search_messages_text ON messages "
        f"USING gin ({pg_message_vector('', fold=fold)})",
        "CREATE INDEX IF NOT EXISTS ix_search_conversations_subject ON conversations "
        f"USING gin ({pg_subject_vector('', fold=fold)})",
        f"CREATE INDEX IF NOT EXISTS ix_search_customers_name ON customers USING gin ({pg_name_vector('', fold=fold)})",
        "CREATE INDEX IF NOT EXISTS ix_search_identities_value ON identities "
        f"USING gin ({pg_identity_vector('', fold=fold)})",
    ]


def postgresql_ddl() -> list[str]:
    """What the PostgreSQL search needs: the folding function, then the GIN indexes."""
    return postgresql_functions() + postgresql_indexes()


def postgresql_drop() -> list[str]:
    """Drop the indexes (the function stays: migration 0004's downgrade removes it)."""
    names = ("ix_search_messages_text", "ix_search_conversations_subject", "ix_search_customers_name",
             "ix_search_identities_value")  # fmt: skip
    return [f"DROP INDEX IF EXISTS {n}" for n in names]


# -- both --------------------------------------------------------------------------------------


def ddl(dialect: str) -> list[str]:
    return sqlite_ddl() if dialect == "sqlite" else postgresql_ddl() if dialect == "postgresql" else []


def drop(dialect: str) -> list[str]:
    return sqlite_drop() if dialect == "sqlite" else postgresql_drop() if dialect == "postgresql" else []


def rebuild_statements(dialect: str) -> list[str]:
    """Statements that refill the index from the tables (existing data; a drifted index).

    PostgreSQL expression indexes are always complete: nothing to do there.
    """
    if dialect != "sqlite":
        return []
    return [
        "DELETE FROM search_customers",
        "INSERT INTO search_customers(rowid, name, identities) "
        f"SELECT c.rowid, c.name, {_sqlite_identities_of('c.id')} FROM customers c",
        "INSERT INTO search_conversations(search_conversations) VALUES ('rebuild')",
        "INSERT INTO search_messages(search_messages) VALUES ('rebuild')",
    ]


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """For Alembic (``context.configure(include_object=…)``): ignore the search tables and indexes,
    which live outside ``Base.metadata``."""
    if reflected and compare_to is None and name:
        if type_ == "table" and name.startswith("search_"):
            return False
        if type_ == "index" and name.startswith("ix_search_"):
            return False
    return True


def _after_create(target: Any, connection: Connection, **kw: Any) -> None:
    statements = ddl(connection.dialect.name)
    if not statements:
        return
    inspector = inspect(connection)
    if not all(inspector.has_table(t) for t in _BASE_TABLES):
        return  # a partial create_all (tables=…): nothing to index yet
    for statement in statements:
        connection.exec_driver_sql(statement)


def _before_drop(target: Any, connection: Connection, **kw: Any) -> None:
    for statement in drop(connection.dialect.name):
        connection.exec_driver_sql(statement)


def _connect_search_tables(dbapi_connection: Any, _record: Any) -> None:
    """Open the FTS5 tables as soon as a SQLite connection is made.

    FTS5 reads its configuration the first time a connection uses one of its tables — when the
    first statement that touches it is *prepared*. If that happens inside a transaction that has
    not written yet (SQLAlchemy's ``SAVEPOINT`` starts one), the connection then holds a read
    snapshot when its ``INSERT`` asks for the write lock, and SQLite answers ``database is
    locked`` at once instead of waiting (``busy_timeout`` cannot help a reader that wants to
    write). Touching the tables here, outside any transaction, takes that read out of the way.
    """
    kind = type(dbapi_connection)
    if "sqlite" not in f"{kind.__module__}.{kind.__name__}".lower():
        return
    cursor = dbapi_connection.cursor()
    try:
        for table in SEARCH_TABLES:
            try:
                cursor.execute(f"SELECT 1 FROM {table} WHERE rowid = 0")
            except Exception:  # not migrated yet: nothing to warm up
                return
    finally:
        cursor.close()


event.listen(Base.metadata, "after_create", _after_create)
event.listen(Base.metadata, "before_drop", _before_drop)
# Every pool: the SQLite engines of the server, the ingest writer and the migrations.
event.listen(Pool, "connect", _connect_search_tables)
