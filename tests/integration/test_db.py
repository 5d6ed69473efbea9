"""Units of work against a database another process (or the routing leader) writes to at the same
time: a write behind a savepoint must wait its turn, never fail."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import StatementError

from frontdesk.db import Database
from frontdesk.models import Skill


async def test_a_savepoint_write_waits_for_a_writer_that_committed_after_its_read(db: Database) -> None:
    """The shape of the events batch (``begin_nested`` per item: read, then insert). On SQLite a
    savepoint opened a deferred transaction: its read pinned a snapshot, and once another
    connection had committed, the insert failed at once with "database is locked"."""
    read_done = asyncio.Event()

    async def other_writer() -> None:
        await read_done.wait()
        async with db.transaction() as session:
            session.add(Skill(name="retention"))

    async def batch() -> None:
        async with db.transaction() as session, session.begin_nested():
            await session.scalar(select(func.count()).select_from(Skill))
            read_done.set()
            # Let the other writer commit — or, where the savepoint holds the write lock,
            # find it waiting for that lock.
            await asyncio.wait({other}, timeout=0.5)
            session.add(Skill(name="billing"))
            await session.flush()

    other = asyncio.create_task(other_writer())
    await asyncio.wait_for(asyncio.gather(batch(), other), 30)
    async with db.transaction() as session:
        names = set((await session.scalars(select(Skill.name))).all())
    assert names == {"billing", "retention"}


# -- insert_rows: the hot path's multi-row insert, the same meaning on both databases ------------


async def test_insert_rows_skips_conflicts_and_returns_what_it_inserted(db: Database) -> None:
    from datetime import UTC, datetime

    import pytest

    from frontdesk.db import insert_parents_and_rows, insert_rows
    from frontdesk.ids import new_id
    from frontdesk.models import Customer, Identity

    customers: Any = Customer.__table__
    identities: Any = Identity.__table__
    at = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)

    def customer(name: str | None, attributes: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": new_id(),
            "name": name,
            "locale": None,
            "time_zone": None,
            "attributes": attributes,
            "satisfaction_tier": "unknown",
            "lifetime_value": Decimal("12.50"),
            "merged_into_id": None,
            "created_at": at,
            "updated_at": at,
        }

    def identity(customer_id: Any, value: str) -> dict[str, Any]:
        return {
            "id": new_id(),
            "customer_id": customer_id,
            "kind": "email",
            "value": value,
            "verified": False,
            "undeliverable": False,
            "created_at": at,
        }

    ada, bob = customer("Ada", {"plan": "gold", "tags": ["a", "b"]}), customer(None, {})
    taken = identity(ada["id"], "ada@example.com")
    async with db.engine.begin() as conn:
        await insert_rows(conn, customers, [ada, bob])
        assert await insert_rows(conn, identities, [taken], conflict=("kind", "value"), returning="id") == [taken["id"]]
        # Bob's address is new, Ada's is taken: only Bob's row goes in, and only its id comes back.
        carol = customer("Carol", {"n": 1})
        rows = [identity(bob["id"], "bob@example.com"), identity(carol["id"], "ada@example.com")]
        got = await insert_parents_and_rows(
            conn, customers, [carol], identities, rows, conflict=("kind", "value"), returning="id"
        )
        assert got == [rows[0]["id"]]
        naive = {**identity(bob["id"], "x@example.com"), "created_at": at.replace(tzinfo=None)}
        with pytest.raises((ValueError, StatementError), match="naive datetime"):
            await insert_rows(conn, identities, [naive])
    async with db.sessionmaker() as s:
        stored = {c.name: c for c in (await s.scalars(select(Customer))).all()}
        owners = {r[0]: r[1] for r in await s.execute(select(Identity.value, Identity.customer_id))}
    assert set(stored) == {"Ada", None, "Carol"}
    assert stored["Ada"].attributes == {"plan": "gold", "tags": ["a", "b"]}  # JSON round-trips
    assert stored["Ada"].lifetime_value == Decimal("12.50")
    assert stored["Ada"].created_at == at
    assert owners == {"ada@example.com": ada["id"], "bob@example.com": bob["id"]}


async def test_insert_rows_refuses_a_value_longer_than_its_column_on_postgresql(postgres_url: str) -> None:
    """The unnest arrays are cast without the column's length, so PostgreSQL refuses an over-long
    value as a plain INSERT does, instead of cutting it to fit."""
    from datetime import UTC, datetime

    import pytest
    from sqlalchemy.exc import DBAPIError

    from frontdesk.db import insert_rows
    from frontdesk.ids import new_id
    from frontdesk.models import Identity

    db = Database(postgres_url)
    row = {
        "id": new_id(),
        "customer_id": new_id(),
        "kind": "k" * 40,  # the column holds 32
        "value": "over-long@example.com",
        "verified": False,
        "undeliverable": False,
        "created_at": datetime(2026, 12, 7, tzinfo=UTC),
    }
    try:
        with pytest.raises(DBAPIError, match="too long"):
            async with db.engine.begin() as conn:
                await insert_rows(conn, Identity.__table__, [row])  # type: ignore[arg-type]
    finally:
        await db.dispose()


async def test_among_selects_the_listed_rows_and_leaves_no_reference_cycle(db: Database) -> None:
    """``among`` (``= any(array)`` on PostgreSQL, ``IN`` elsewhere) runs on every routing step: on
    PostgreSQL it must not leave garbage only the collector frees (``any_()`` did: a parameter and
    its comparator point at each other)."""
    import gc
    import uuid

    from frontdesk.db import among

    async with db.transaction() as s:
        skills = [Skill(name=f"among-{n}") for n in range(4)]
        s.add_all(skills)
        await s.flush()
        wanted = [skills[0].id, skills[2].id, uuid.uuid4()]
    async with db.sessionmaker() as s:
        found = set((await s.scalars(select(Skill.name).where(among(db.dialect, Skill.id, wanted)))).all())
    assert found == {"among-0", "among-2"}

    gc.collect()
    gc.disable()
    try:
        for _ in range(50):
            among("postgresql", Skill.id, wanted)
        cyclic = gc.collect()
    finally:
        gc.enable()
    assert cyclic == 0


async def test_the_operator_is_warned_when_postgresql_never_analyses_its_tables(db: Database) -> None:
    """Autovacuum off (this development machine's PostgreSQL runs so) leaves the planner with the
    plans it made for empty tables: the warning logged at start-up says so, and only then."""
    warnings = await db.maintenance_warnings()
    if db.dialect != "postgresql":
        assert warnings == []
        return
    async with db.engine.connect() as conn:
        autovacuum = (await conn.execute(text("SELECT current_setting('autovacuum')"))).scalar()
    if autovacuum == "on":
        assert warnings == []
    else:
        assert len(warnings) == 1
        assert "autovacuum off" in warnings[0]
        assert "VACUUM ANALYZE" in warnings[0]
