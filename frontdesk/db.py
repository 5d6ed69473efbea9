"""Database plumbing: engine, sessions, the declarative ``Base`` and column types.

Only the request or job boundary commits (:func:`Database.session` / :func:`transaction`);
services ``flush()`` when they need ids. Side effects that must not happen for rolled-back
work (realtime pushes, wake-ups of the outbox) are queued with :func:`after_commit` and run
by the boundary after a successful commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import JSON, ColumnElement, DateTime, MetaData, String, Table, bindparam, event, func, literal, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, Uuid
from sqlalchemy.util.concurrency import await_

from frontdesk import bus, clock
from frontdesk.errors import Conflict, NotFound
from frontdesk.ids import new_id

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use frontdesk.clock.now()")
        value = clock.ensure_utc(value)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else clock.ensure_utc(value)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), uuid.UUID: Uuid(), dict[str, Any]: JSONType}


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


# -- small session helpers shared by every service -----------------------------------------

M = TypeVar("M")


async def get_or_404(session: AsyncSession, model: type[M], ident: Any, what: str) -> M:
    """``session.get(model, ident)``, or :class:`NotFound` "No <what> with id <ident>."."""
    row = await session.get(model, ident)
    if row is None:
        raise NotFound(f"No {what} with id {ident}.")
    return row


async def flush_or_conflict(session: AsyncSession, conflict: str) -> None:
    """Flush; a unique-index violation (two requests racing past a pre-check) becomes a 409."""
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(conflict) from exc


# -- engine and sessions ------------------------------------------------------------------


def _casefold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def folded(session: AsyncSession, column: Any) -> Any:
    """``column`` case-folded in SQL, to compare with ``str.casefold()``: PostgreSQL's lower() is
    Unicode-aware; SQLite's is ASCII-only, so :func:`make_engine` registers ``fd_casefold``.
    Accents count (``Café`` and ``Cafe`` are two names); :func:`contains_folded` ignores them."""
    return func.fd_casefold(column) if session.get_bind().dialect.name == "sqlite" else func.lower(column)


# Latin letters whose accent is not a combining mark in Unicode (NFKD leaves them whole), and ё,
# folded the way PostgreSQL's unaccent folds them.
_FOLD_LETTERS = str.maketrans(
    {"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ħ": "h", "Ħ": "H", "\u0131": "i", "ŀ": "l",
     "Ŀ": "L", "ŧ": "t", "Ŧ": "T", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ß": "ss",
     "\u0451": "\u0435", "\u0401": "\u0415"}
)  # fmt: skip


def fold_accents(value: Any) -> Any:
    """Text without case and Latin accents (``José`` → ``jose``, ``Łukasz`` → ``lukasz``); SQLite's
    ``fd_fold``. Marks on other scripts stay (``й`` is not ``и``), as with PostgreSQL's unaccent."""
    if not isinstance(value, str):
        return value
    out: list[str] = []
    for ch in unicodedata.normalize("NFKD", value.translate(_FOLD_LETTERS)):
        if unicodedata.combining(ch) and out and ord(out[-1]) < 0x250:
            continue
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out)).casefold()


def _like_escaped(value: Any) -> Any:
    return value.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def contains_folded(session: AsyncSession, column: Any, term: str) -> ColumnElement[bool]:
    """``column`` contains ``term``, ignoring case and accents ("jose" finds "José"), alike on both
    databases; ``%`` and ``_`` in ``term`` are plain characters. Each side is folded by the same
    code — SQLite: :func:`fold_accents` (``fd_fold``); PostgreSQL: ``lower(fd_unaccent(…))`` (the
    search's IMMUTABLE unaccent wrapper) — and the term is escaped only after folding."""
    if session.get_bind().dialect.name == "sqlite":
        return func.fd_fold(column).like(f"%{_like_escaped(fold_accents(term))}%", escape="!")  # type: ignore[no-any-return]
    folded_term = func.lower(func.fd_unaccent(literal(term, String())))
    pattern = func.replace(func.replace(func.replace(folded_term, "!", "!!"), "%", "!%"), "_", "!_")
    return func.lower(func.fd_unaccent(column)).like(literal("%") + pattern + literal("%"), escape="!")  # type: ignore[no-any-return]


WRITE_GATE_WAIT_SECONDS = 120.0
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLAC")


class SQLiteWriteGate:
    """One writer at a time per SQLite engine, waiting its turn in line (FIFO) on the event loop.

    SQLite has one write lock per file. Left to SQLite, writers that find it taken poll for it
    (``busy_timeout``), unfairly, and fail with "database is locked" after the timeout — which a
    few large writes in a row (parallel event batches) exceed. Here every write transaction
    first takes an ``asyncio.Lock``, then ``BEGIN IMMEDIATE`` (the SQLite write lock at once,
    never a stale read snapshot), and gives both back when it commits or rolls back. Readers
    never wait: WAL lets them read beside the writer. ``busy_timeout`` still covers writers in
    other processes (the CLI).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.lock = asyncio.Lock()
        self.holder: Any = None  # the DBAPI connection in the write transaction
        dialect = engine.sync_engine.dialect
        commit, rollback = dialect.do_commit, dialect.do_rollback

        def do_commit(dbapi_connection: Any) -> None:
            try:
                commit(dbapi_connection)
            finally:
                self.release(dbapi_connection)

        def do_rollback(dbapi_connection: Any) -> None:  # also the pool's reset on check-in
            try:
                rollback(dbapi_connection)
            finally:
                self.release(dbapi_connection)

        dialect.do_commit = do_commit  # type: ignore[method-assign]
        dialect.do_rollback = do_rollback  # type: ignore[method-assign]
        event.listen(engine.sync_engine, "before_cursor_execute", self._before_execute)
        event.listen(engine.sync_engine, "savepoint", self._before_savepoint)

    @staticmethod
    def _raw(connection: Any) -> Any:
        return getattr(connection, "dbapi_connection", connection)

    def release(self, dbapi_connection: Any) -> None:
        if self.holder is not None and self.holder is self._raw(dbapi_connection):
            self.holder = None
            self.lock.release()

    def _enter(self, conn: Any, begin: Callable[[], Any]) -> None:
        """Take the gate and SQLite's write lock for ``conn`` unless its transaction already writes."""
        if conn.connection.driver_connection.in_transaction:
            return
        raw = conn.connection.dbapi_connection
        await_(self._acquire())
        self.holder = raw
        try:
            begin()
        except BaseException:
            self.release(raw)
            raise

    async def _acquire(self) -> None:
        try:
            async with asyncio.timeout(WRITE_GATE_WAIT_SECONDS):
                await self.lock.acquire()
        except TimeoutError:
            raise TimeoutError(
                f"waited {WRITE_GATE_WAIT_SECONDS:.0f} s for another write to the SQLite database to finish"
            ) from None

    def _before_execute(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        # pysqlite would open a deferred transaction right before a write; open it here instead,
        # in line and with the write lock.
        if statement[:6].upper() in _WRITES:
            self._enter(conn, lambda: cursor.execute("BEGIN IMMEDIATE"))

    def _before_savepoint(self, conn: Any, _name: str) -> None:
        # A SAVEPOINT outside a transaction would start a *deferred* one in SQLite: its first read
        # pins a snapshot, and if another connection commits before its first write, that write
        # fails at once with "database is locked". A savepoint here always guards a write.
        self._enter(conn, lambda: conn.exec_driver_sql("BEGIN IMMEDIATE"))


def among(dialect: str, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column IN (values)`` that PostgreSQL prepares once, whatever the number of values.

    SQLAlchemy renders ``IN`` with one parameter per value, so every new list length is a new
    statement for asyncpg to prepare (and evict from its cache): on a loop that runs every
    quarter second with lists of 1 to 500 ids that cost a few per cent of the process. On
    PostgreSQL this is ``column = ANY(:array)`` instead, one statement for every length.
    """
    values = list(values)
    if dialect == "postgresql":
        # func.any, not any_(): any_() ties the parameter and its comparator in a reference cycle,
        # garbage only the collector frees (and its pauses were the hot path's tail latency).
        return cast(ColumnElement[bool], column == func.any(bindparam(None, values, type_=ARRAY(column.type))))
    return cast(ColumnElement[bool], column.in_(values))


def among_param(dialect: str, column: Any, name: str) -> ColumnElement[bool]:
    """:func:`among` with a named parameter, for a statement built once and run many times
    (``execute(stmt, {name: [...]})``).

    Building a statement on every call costs more than the cache key: each expression made on the
    fly (a bound value, its array type) points at its comparator and back, so it is freed only by
    the garbage collector. On the hot path that garbage was what triggered its pauses.
    """
    if dialect == "postgresql":
        return cast(ColumnElement[bool], column == func.any(bindparam(name, type_=ARRAY(column.type))))
    return cast(ColumnElement[bool], column.in_(bindparam(name, expanding=True)))


_UNNEST_SQL: dict[tuple[str, tuple[str, ...], Any, str | None, int], str] = {}


def _unnest_insert_sql(
    table: Table, columns: tuple[str, ...], conflict: bool | tuple[str, ...], returning: str | None, first: int = 1
) -> str:
    """``INSERT … SELECT … FROM unnest($1::t1[], …)``: one array per column, one statement for
    every number of rows (prepared once by asyncpg; the arrays are encoded in C, not row by row).
    ``first`` is the number of the first parameter."""
    key = (table.name, columns, conflict, returning, first)
    sql = _UNNEST_SQL.get(key)
    if sql is not None:
        return sql
    pg = postgresql.dialect()
    arrays, picks = [], []
    for n, name in enumerate(columns, start=first):
        col = table.c[name]
        is_json = _is_json(col.type)
        # The element type without its length (VARCHAR(32) → VARCHAR): an explicit cast to
        # VARCHAR(32) would silently cut a longer value; the INSERT's own assignment refuses it.
        element = "TEXT" if is_json else re.sub(r"\(.*?\)", "", col.type.compile(dialect=pg))
        arrays.append(f"${n}::{element}[]")
        picks.append(f"u.c{n}::jsonb" if is_json else f"u.c{n}")
    names = ", ".join(f'"{c}"' for c in columns)
    aliases = ", ".join(f"c{n}" for n in range(first, first + len(columns)))
    sql = f'INSERT INTO "{table.name}" ({names}) SELECT {", ".join(picks)}'
    sql += f" FROM unnest({', '.join(arrays)}) AS u({aliases})"
    if conflict is True:
        sql += " ON CONFLICT DO NOTHING"
    elif conflict:
        sql += f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
    if returning:
        sql += f' RETURNING "{returning}"'
    _UNNEST_SQL[key] = sql
    return sql


async def insert_rows(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    conflict: bool | tuple[str, ...] = False,
    returning: str | None = None,
) -> list[Any]:
    """Insert ``rows`` (dicts with the same keys) in one statement; the ``returning`` column of
    each row inserted. ``conflict``: ``True`` skips rows that break any unique constraint, a
    tuple of columns skips rows that break that one (``ON CONFLICT … DO NOTHING``).

    The hot path's writes: on PostgreSQL one ``unnest`` statement whatever the number of rows
    (SQLAlchemy's multi-row ``VALUES`` binds every value of every row in Python, and makes a new
    statement for every row count); elsewhere SQLAlchemy's insert, with the same meaning.
    """
    if not rows:
        return []
    columns = tuple(rows[0])
    if conn.dialect.name == "postgresql":
        sql = _unnest_insert_sql(table, columns, conflict, returning)
        params = tuple(_column_array(table.c[name], [row[name] for row in rows]) for name in columns)
        result = await conn.exec_driver_sql(sql, params)
        return [r[0] for r in result] if returning else []
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    stmt: Any = sqlite_insert(table)
    if conflict is True:
        stmt = stmt.on_conflict_do_nothing()
    elif conflict:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(conflict))
    if returning:
        return [r[0] for r in await conn.execute(stmt.returning(table.c[returning]), list(rows))]
    await conn.execute(stmt, list(rows))
    return []


async def insert_parents_and_rows(
    conn: AsyncConnection,
    parents: Table,
    parent_rows: Sequence[dict[str, Any]],
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    conflict: bool | tuple[str, ...] = False,
    returning: str | None = None,
) -> list[Any]:
    """:func:`insert_rows` of ``parent_rows`` (plainly), then of ``rows`` that refer to them; on
    PostgreSQL in ONE statement (the parents' insert as a ``WITH`` clause: a round trip less)."""
    if conn.dialect.name != "postgresql" or not parent_rows or not rows:
        await insert_rows(conn, parents, parent_rows)
        return await insert_rows(conn, table, rows, conflict=conflict, returning=returning)
    parent_columns, columns = tuple(parent_rows[0]), tuple(rows[0])
    head = _unnest_insert_sql(parents, parent_columns, False, None)
    body = _unnest_insert_sql(table, columns, conflict, returning, first=len(parent_columns) + 1)
    params = tuple(_column_array(parents.c[n], [r[n] for r in parent_rows]) for n in parent_columns)
    params += tuple(_column_array(table.c[n], [r[n] for r in rows]) for n in columns)
    result = await conn.exec_driver_sql(f"WITH parents AS ({head}) {body}", params)
    return [r[0] for r in result] if returning else []


def _is_json(kind: Any) -> bool:
    """A JSON column, or a type decorator over one: its arrays go as text, cast back to jsonb."""
    return isinstance(kind, JSON) or isinstance(getattr(kind, "impl", None), JSON)


def _column_array(column: Any, values: list[Any]) -> list[Any]:
    kind = column.type
    if _is_json(kind):
        return [None if v is None else json.dumps(v, separators=(",", ":")) for v in values]
    if isinstance(kind, UTCDateTime):
        for v in values:
            if v is not None and v.tzinfo is None:
                raise ValueError("naive datetime given to the database; use frontdesk.clock.now()")
    return values


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()
            # SQLite's lower()/LIKE fold ASCII only; searches on names (Иван, Ærø) need Unicode.
            dbapi_conn.create_function("fd_casefold", 1, _casefold, deterministic=True)
            dbapi_conn.create_function("fd_fold", 1, fold_accents, deterministic=True)

        SQLiteWriteGate(engine)
        return engine
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 20)
    ping = kwargs.pop("pool_pre_ping", True)
    engine = create_async_engine(url, **kwargs)
    if ping:
        _ping_when_idle(engine)
    return engine


PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """``pool_pre_ping``, for a connection that sat in the pool for a second or more only.

    asyncpg's ping is three round trips (BEGIN, an empty query, ROLLBACK); pinging at every
    checkout cost 5-7% of the server's CPU under load, where a connection goes back out within
    milliseconds of coming back. A connection that broke while in use is invalidated by its
    error anyway (and, a disconnect, the pool's older connections with it)."""
    sync = engine.sync_engine

    @event.listens_for(sync, "checkin")
    def _idle_since(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(sync, "checkout")
    def _ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return  # new, or back in use within the second
        try:
            sync.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError("connection failed its ping; the pool reconnects") from exc


Effect = Callable[[], Awaitable[None]]


def after_commit(session: AsyncSession, effect: Effect) -> None:
    """Run ``effect`` once the surrounding unit of work has committed (never if it rolls back)."""
    session.info.setdefault("after_commit", []).append(effect)


# -- before commit: work that must land in the SAME transaction as the change ---------------
#
# Domain events (``frontdesk.bus.emit``) are kept on the session; just before the boundary commits,
# the bus's in-transaction subscribers turn them into rows of the same transaction (routing's
# inbox, webhook deliveries: a transactional outbox). The ingest writer, which commits with Core,
# calls ``bus.run_in_transaction`` on its connection the same way.


def before_commit(session: AsyncSession, fn: Effect) -> None:
    """Run ``fn`` inside the unit of work just before it commits (an error rolls it back)."""
    session.info.setdefault("before_commit", []).append(fn)


async def run_before_commit(session: AsyncSession) -> None:
    """The boundary calls this right before ``commit()``: per-session hooks, then the in-transaction
    subscribers of the unit of work's domain events (``frontdesk.bus``)."""
    for fn in session.info.pop("before_commit", []):
        await fn()
    events = session.info.pop(bus.EVENTS_KEY, None)
    if not events:
        return
    callbacks = await bus.bus.run_in_transaction(await session.connection(), events)
    for callback in callbacks:

        async def _run(cb: Callable[[], None] = callback) -> None:
            cb()

        after_commit(session, _run)


def discard_pending(session: AsyncSession) -> None:
    """Forget what a rolled-back unit of work queued (effects, recorded events, hooks)."""
    for key in ("after_commit", "before_commit", bus.EVENTS_KEY):
        session.info.pop(key, None)


async def run_after_commit(session: AsyncSession) -> None:
    effects: list[Effect] = session.info.pop("after_commit", [])
    for effect in effects:
        try:
            await effect()
        except Exception:  # an effect must never undo a committed request
            log.exception("after-commit effect failed")


class Database:
    """One engine and its session factory. ``app.state.db`` in the server."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self.hub: Any = None

    def attach_hub(self, hub: Any, *, outbox_wakeup: Callable[[], None] | None = None) -> None:
        """Make the realtime hub reachable from every session (``session.info["hub"]``).

        ``outbox_wakeup`` (set by ``timers.start_loops``) becomes ``session.info["outbox_wakeup"]``:
        ``outbox.enqueue`` calls it after commit so the dispatcher delivers at once.
        """
        self.hub = hub
        info: dict[str, Any] = {"hub": hub}
        wakeup = outbox_wakeup or getattr(self, "_outbox_wakeup", None)
        if wakeup is not None:
            self._outbox_wakeup = wakeup
            info["outbox_wakeup"] = wakeup
        self.sessionmaker.configure(info=info)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: commit on success, roll back on error, then release after-commit effects."""
        async with self.sessionmaker() as session:
            try:
                yield session
                await run_before_commit(session)
                await session.commit()
            except BaseException:
                await session.rollback()
                discard_pending(session)
                raise
            await run_after_commit(session)

    async def maintenance_warnings(self) -> list[str]:
        """What in the database server's configuration will slow Frontdesk down, in words for the
        operator (logged at start-up). On PostgreSQL: autovacuum off. Without it no table is ever
        analysed, so the planner keeps the plans it made for empty tables (the ingest path's
        identity lookup then reads every email identity per batch), and dead rows pile up."""
        if self.dialect != "postgresql":
            return []
        async with self.engine.connect() as conn:
            autovacuum = (await conn.execute(text("SHOW autovacuum"))).scalar()
        if autovacuum == "on":
            return []
        return [
            "PostgreSQL runs with autovacuum off: tables are never analysed or vacuumed, and queries "
            "slow down as they grow (the ingest path several-fold). Set autovacuum = on in "
            "postgresql.conf, or run VACUUM ANALYZE on a schedule (docs/deployment.md)."
        ]

    async def dispose(self) -> None:
        await self.engine.dispose()
