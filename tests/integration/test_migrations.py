"""The Alembic migrations, on a fresh empty database of each backend.

The rest of the suite builds its schema from the models (tests/conftest.py); this file proves the
migrations build the same schema, go down cleanly and come back up, and that the server refuses
a database at the wrong schema.
"""

from __future__ import annotations

import asyncio
import pprint
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

import frontdesk.models  # noqa: F401  (registers every table)
from frontdesk import migrate
from frontdesk.app import SchemaNotReady, create_app
from frontdesk.db import Base, UTCDateTime, make_engine
from frontdesk.search import ddl
from frontdesk.settings import Settings
from tests.integration.freshdb import fresh_database

VERSION_TABLE = "alembic_version"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(str(request.param), tmp_path) as url:
        yield url


@pytest.fixture
def empty_postgres_url(tmp_path: Path) -> Iterator[str]:
    with fresh_database("postgresql", tmp_path) as url:
        yield url


async def _on(url: str, fn: Any) -> Any:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "compare_server_default": False, "include_object": ddl.include_object}
    )
    return list(compare_metadata(context, Base.metadata))


async def upgrade(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(migrate.upgrade, url, revision)


async def downgrade(url: str, revision: str) -> None:
    await asyncio.to_thread(migrate.downgrade, url, revision)


async def test_upgrade_to_head_builds_exactly_the_models(empty_url: str) -> None:
    await upgrade(empty_url)
    state = await migrate.schema_state(empty_url)
    assert state.current == migrate.head_revision()
    assert state.problem() is None

    differences = await _on(empty_url, _differences)
    assert differences == [], (
        "the migrations and frontdesk/models disagree; regenerate the migration:\n" + pprint.pformat(differences)
    )


async def test_downgrade_to_base_leaves_no_tables_and_upgrades_again(empty_url: str) -> None:
    await upgrade(empty_url)
    migrated = await _on(empty_url, _tables)
    assert {"customers", "conversations", "messages", "users"} <= migrated
    await downgrade(empty_url, "base")
    assert await _on(empty_url, _tables) - {VERSION_TABLE} == set()
    assert (await migrate.schema_state(empty_url)).current is None

    await upgrade(empty_url)
    assert await _on(empty_url, _tables) == migrated
    assert (await migrate.schema_state(empty_url)).ok


def _settings(url: str, tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(database_url=url, data_dir=tmp_path / "var", secret_key="migration-test-key", run_loops=False,
                    **overrides)  # fmt: skip


async def _start(settings: Settings) -> None:
    from asgi_lifespan import LifespanManager

    async with LifespanManager(create_app(settings), startup_timeout=60, shutdown_timeout=60):
        pass


async def test_app_refuses_an_unmigrated_postgres_database(empty_postgres_url: str, tmp_path: Path) -> None:
    with pytest.raises(SchemaNotReady, match=r"not been migrated.*frontdesk migrate"):
        await _start(_settings(empty_postgres_url, tmp_path))
    assert await _on(empty_postgres_url, _tables) == set()  # nothing was created behind the operator's back


async def test_embedded_sqlite_migrates_on_start(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'embedded.db'}"
    await _start(_settings(url, tmp_path))
    assert (await migrate.schema_state(url)).ok


async def test_app_refuses_a_newer_schema(empty_url: str, tmp_path: Path) -> None:
    await upgrade(empty_url)

    def stamp_future(conn: Connection) -> None:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'ffff_from_the_future'"))
        conn.commit()

    await _on(empty_url, stamp_future)
    # Neither the scaled mode nor the embedded mode (which would otherwise migrate) touches it.
    for auto_migrate in (False, True):
        with pytest.raises(SchemaNotReady, match="newer than this Frontdesk"):
            await _start(_settings(empty_url, tmp_path, auto_migrate=auto_migrate))
    assert (await migrate.schema_state(empty_url)).current == "ffff_from_the_future"


async def test_0004_keeps_every_row_and_lets_a_team_go(empty_url: str) -> None:
    """From 0003 with data: the conversations table is rebuilt (SQLite) without losing a row of it
    or of the tables that refer to it, and afterwards a deleted team leaves its conversations."""
    await upgrade(empty_url, "0003")
    postgres = "postgresql" in empty_url
    at = datetime(2026, 12, 1, 10, tzinfo=UTC)
    now = at if postgres else at.replace(tzinfo=None)  # as UTCDateTime stores it on each backend
    ids: dict[str, Any] = {
        name: uuid.uuid4() if postgres else uuid.uuid4().hex
        for name in ("team", "queue", "user", "customer", "conversation", "message")
    }

    def fill(conn: Connection) -> None:
        rows = [
            ("teams", {"id": ids["team"], "name": "Escalations", "created_at": now, "updated_at": now}),
            ("queues", {"id": ids["queue"], "name": "General", "channels": "[]", "priority": 50,
                        "service_level_percent": 80, "service_level_seconds": 60, "selection": "longest_idle",
                        "sticky_wait_seconds": 0, "offer_timeout_seconds": 30, "auto_accept": False,
                        "team_ids": "[]", "ageing_per_minute": 1.0, "handle_time_seconds": 300,
                        "redecline_after_seconds": 60, "bullseye": "[]", "created_at": now, "updated_at": now}),
            ("users", {"id": ids["user"], "email": "a@example.com", "name": "A", "role": "agent",
                       "password_hash": "x", "is_active": True, "time_zone": "UTC",
                       "created_at": now, "updated_at": now}),
            ("customers", {"id": ids["customer"], "attributes": "{}", "satisfaction_tier": "unknown",
                           "lifetime_value": 0, "created_at": now, "updated_at": now}),
            ("conversations", {"id": ids["conversation"], "customer_id": ids["customer"], "channel": "email",
                               "status": "open", "priority": "normal", "team_id": ids["team"],
                               "queue_id": ids["queue"], "assignee_id": ids["user"], "message_count": 1,
                               "created_at": now, "updated_at": now}),
            ("messages", {"id": ids["message"], "conversation_id": ids["conversation"], "customer_id": ids["customer"],
                          "direction": "inbound", "channel": "email", "author_type": "customer", "text": "hello",
                          "delivery_status": "received", "meta": "{}", "created_at": now}),
            ("conversation_tags", {"conversation_id": ids["conversation"], "tag": "billing", "created_at": now}),
        ]  # fmt: skip
        for table, row in rows:
            columns = ", ".join(row)
            conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(':' + c for c in row)})"), row)
        conn.commit()

    await _on(empty_url, fill)
    await upgrade(empty_url)

    def check(conn: Connection) -> None:
        for table in ("conversations", "messages", "conversation_tags"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 1, table
        conn.execute(text("DELETE FROM teams"))
        conn.execute(text("DELETE FROM queues"))
        conn.execute(text("DELETE FROM users"))
        row = conn.execute(text("SELECT team_id, queue_id, assignee_id FROM conversations")).one()
        assert tuple(row) == (None, None, None)
        assert conn.execute(text("SELECT count(*) FROM messages")).scalar() == 1
        conn.commit()

    await _on(empty_url, check)


async def test_0005_marks_earlier_identities_proven_except_pre_chat_claims(empty_url: str) -> None:
    """Before 0004 nothing was ever marked proven but visitors and HMAC users. The upgrade marks
    the rest proven, except what the pre-chat form attached: an e-mail address added to a customer
    after it had a chat visitor (the identity rule: a claim must stay a claim)."""
    await upgrade(empty_url, "0003")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    customers = sa.table(
        "customers",
        sa.column("id", sa.Uuid()),
        sa.column("attributes", sa.JSON()),
        sa.column("satisfaction_tier", sa.String()),
        sa.column("lifetime_value", sa.Numeric()),
        sa.column("created_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
    )
    identities = sa.table(
        "identities",
        sa.column("id", sa.Uuid()),
        sa.column("customer_id", sa.Uuid()),
        sa.column("kind", sa.String()),
        sa.column("value", sa.String()),
        sa.column("verified", sa.Boolean()),
        sa.column("undeliverable", sa.Boolean()),
        sa.column("created_at", UTCDateTime()),
    )
    mailed, chatter, joined = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    rows = [  # (customer, kind, value, verified, minutes after t0)
        (mailed, "email", "mailed@example.com", False, 0),  # an e-mail customer
        (mailed, "external_id", "shop:1", False, 1),  # an id the API gave
        (chatter, "webchat_visitor", "v-1", True, 0),  # a visitor who then typed an address
        (chatter, "email", "typed@example.com", False, 5),
        (joined, "email", "owner@example.com", False, 0),  # a customer a visitor later joined
        (joined, "webchat_visitor", "v-2", True, 9),
    ]

    def seed(conn: Connection) -> None:
        for cid in (mailed, chatter, joined):
            conn.execute(
                customers.insert().values(
                    id=cid, attributes={}, satisfaction_tier="unknown", lifetime_value=0, created_at=t0, updated_at=t0
                )
            )
        for cid, kind, value, verified, minutes in rows:
            conn.execute(
                identities.insert().values(
                    id=uuid.uuid4(), customer_id=cid, kind=kind, value=value, verified=verified,
                    undeliverable=False, created_at=t0 + timedelta(minutes=minutes),
                )
            )  # fmt: skip
        conn.commit()

    await _on(empty_url, seed)
    await upgrade(empty_url)

    def flags(conn: Connection) -> dict[str, bool]:
        return {value: bool(v) for value, v in conn.execute(sa.select(identities.c.value, identities.c.verified))}

    assert await _on(empty_url, flags) == {
        "mailed@example.com": True,
        "shop:1": True,
        "v-1": True,
        "typed@example.com": False,
        "owner@example.com": True,
        "v-2": True,
    }
