"""The ``frontdesk`` command, run in-process with Typer's CliRunner against both backends."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from frontdesk import clock
from frontdesk.cli import app as cli_app
from frontdesk.db import Base, Database
from frontdesk.demo import ADMIN_EMAIL, ADMIN_PASSWORD, _Builder
from frontdesk.settings import Settings
from tests.conftest import truncate_all
from tests.integration.freshdb import fresh_database

PASSWORD = "a long enough password"


class Cli:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.runner = CliRunner()

    def __call__(self, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
        return self.runner.invoke(cli_app, list(args), env={**self.env, **(env or {})}, input=input)


def base_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {
        "FRONTDESK_DATABASE_URL": database_url,
        "FRONTDESK_DATA_DIR": str(tmp_path / "var"),
        "FRONTDESK_CONFIG": str(tmp_path / "absent.toml"),
        "FRONTDESK_SECRET_KEY": "cli-test-secret-key",
        "FRONTDESK_REDIS_URL": "",
    }


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Any:
    yield Cli(base_env(tmp_path, database_url))

    async def cleanup() -> None:
        database = Database(database_url)
        try:
            await truncate_all(database)
        finally:
            await database.dispose()

    asyncio.run(cleanup())


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_help_everywhere() -> None:
    runner = CliRunner()
    for command in (
        [], ["serve"], ["worker"], ["migrate"], ["demo"], ["user"], ["user", "create"], ["user", "list"],
        ["user", "disable"], ["token"], ["token", "create"], ["config"],
    ):  # fmt: skip
        result = runner.invoke(cli_app, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage: frontdesk" in result.output


def test_user_create_list_disable(cli: Cli) -> None:
    created = cli("user", "create", "--email", "Ops.Lead@Example.com", "--password", PASSWORD, "--role", "admin",
                  "--name", "Ops Lead")  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "ops.lead@example.com" in created.stderr

    listed = cli("user", "list", "--json")
    assert listed.exit_code == 0, listed.output
    users = {u["email"]: u for u in json.loads(listed.stdout)}
    assert users["ops.lead@example.com"]["role"] == "admin"
    assert users["ops.lead@example.com"]["name"] == "Ops Lead"
    assert users["ops.lead@example.com"]["active"] is True
    table = cli("user", "list")
    assert "ops.lead@example.com" in table.stdout

    assert_one_line_error(
        cli("user", "create", "--email", "ops.lead@example.com", "--password", PASSWORD), "already exists"
    )
    assert_one_line_error(cli("user", "create", "--email", "x@example.com", "--password", "short"), "password")

    disabled = cli("user", "disable", "--email", "ops.lead@example.com")
    assert disabled.exit_code == 0, disabled.output
    users = {u["email"]: u for u in json.loads(cli("user", "list", "--json").stdout)}
    assert users["ops.lead@example.com"]["active"] is False
    assert_one_line_error(cli("user", "disable", "--email", "nobody@example.com"), "nobody@example.com")
    # A disabled user gets no new token.
    assert_one_line_error(cli("token", "create", "--email", "ops.lead@example.com"))


def test_user_create_asks_for_the_password(cli: Cli) -> None:
    result = cli("user", "create", "--email", "asked@example.com", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    users = {u["email"]: u for u in json.loads(cli("user", "list", "--json").stdout)}
    assert users["asked@example.com"]["role"] == "agent"


async def _call_api(settings: Settings, token: str) -> list[tuple[int, Any]]:
    import httpx
    from asgi_lifespan import LifespanManager

    from frontdesk.app import create_app

    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=60):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            answers = []
            for bearer in (token, token + "x"):
                r = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {bearer}"})
                answers.append((r.status_code, r.json()))
            return answers


def test_token_create_prints_a_working_token(cli: Cli, database_url: str, tmp_path: Path) -> None:
    assert (
        cli("user", "create", "--email", "bot@example.com", "--password", PASSWORD, "--role", "supervisor").exit_code
        == 0
    )
    result = cli("token", "create", "--email", "bot@example.com", "--name", "crm sync", "--scopes", "read")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout  # only the token: scripts use $(frontdesk token create ...)
    token = lines[0]
    assert token.startswith("fd_")

    settings = Settings(database_url=database_url, data_dir=tmp_path / "var", secret_key="cli-test-secret-key",
                        auto_migrate=False, run_loops=False)  # fmt: skip
    (ok_status, me), (bad_status, problem) = asyncio.run(_call_api(settings, token))
    assert ok_status == 200, me
    assert me["user"]["email"] == "bot@example.com"
    assert me["via"] == "token"
    assert me["scopes"] == ["read"]
    assert bad_status == 401, problem

    assert_one_line_error(cli("token", "create", "--email", "bot@example.com", "--scopes", "admin"), "admin")
    assert_one_line_error(cli("token", "create", "--email", "ghost@example.com"), "ghost@example.com")


def test_config_masks_secrets(tmp_path: Path) -> None:
    env = {
        **base_env(tmp_path, "postgresql+asyncpg://fd:pa55-w0rd-xyz@db.example:5432/frontdesk"),
        "FRONTDESK_SECRET_KEY": "super-secret-signing-key",
        "FRONTDESK_REDIS_URL": "redis://:redis-pass-123@cache.example:6379/0",
    }
    runner = CliRunner()
    as_json = runner.invoke(cli_app, ["config", "--json"], env=env)
    table = runner.invoke(cli_app, ["config"], env=env)
    for result in (as_json, table):
        assert result.exit_code == 0, result.output
        for secret in ("pa55-w0rd-xyz", "super-secret-signing-key", "redis-pass-123"):
            assert secret not in result.output
    values = json.loads(as_json.stdout)
    assert values["database_url"] == "postgresql+asyncpg://fd:****@db.example:5432/frontdesk"
    assert values["redis_url"] == "redis://:****@cache.example:6379/0"
    assert values["secret_key"] == "********"
    assert "FRONTDESK_DATABASE_URL" in table.stdout
    assert "db.example" in table.stdout

    bad = runner.invoke(cli_app, ["config"], env={**env, "FRONTDESK_PORT": "eighty"})
    assert_one_line_error(bad, "FRONTDESK_PORT")


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    env = base_env(tmp_path, "postgresql+asyncpg://fd:hunter2-secret@127.0.0.1:1/frontdesk")
    result = CliRunner().invoke(cli_app, ["user", "list"], env=env)
    assert_one_line_error(result, "127.0.0.1")
    assert "hunter2-secret" not in result.output


def test_serve_refuses_an_unmigrated_postgres_database(tmp_path: Path) -> None:
    with fresh_database("postgresql", tmp_path) as url:
        cli = Cli(base_env(tmp_path, url))
        assert_one_line_error(cli("serve", "--port", "1"), "has not been migrated", "frontdesk migrate")
        assert_one_line_error(cli("worker"), "has not been migrated")
        # Commands that need the schema refuse the same way (no auto-migration outside SQLite).
        assert_one_line_error(cli("user", "list"), "has not been migrated")


def test_migrate_then_serve_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "fd.db"
    cli = Cli(base_env(tmp_path, f"sqlite+aiosqlite:///{path}"))
    first = cli("migrate")
    assert first.exit_code == 0, first.output
    assert "Migrated" in first.stderr
    again = cli("migrate")
    assert again.exit_code == 0
    assert "up to date" in again.stderr
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff_from_the_future'")
    assert_one_line_error(cli("serve", "--port", "1"), "newer")
    assert_one_line_error(cli("migrate"), "newer")


def test_migrate_down_asks_first(tmp_path: Path) -> None:
    path = tmp_path / "fd.db"
    cli = Cli(base_env(tmp_path, f"sqlite+aiosqlite:///{path}"))
    assert cli("migrate").exit_code == 0
    refused = cli("migrate", "--down", "base", input="n\n")
    assert refused.exit_code == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
    done = cli("migrate", "--down", "base", "--yes")
    assert done.exit_code == 0, done.output
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'customers'").fetchone() == (0,)


async def _row_counts(url: str) -> dict[str, int]:
    database = Database(url)
    try:
        async with database.sessionmaker() as session:
            return {
                t.name: int(await session.scalar(select(func.count()).select_from(t)) or 0)
                for t in Base.metadata.sorted_tables
            }
    finally:
        await database.dispose()


def test_demo_twice_is_idempotent(cli: Cli, database_url: str) -> None:
    first = cli("demo", "--customers", "40")
    assert first.exit_code == 0, first.output
    assert ADMIN_EMAIL in first.stdout
    assert ADMIN_PASSWORD in first.stdout
    counts = asyncio.run(_row_counts(database_url))
    for table in ("users", "teams", "inboxes", "customers", "identities", "conversations", "messages",
                  "customer_events", "conversation_tags", "consents"):  # fmt: skip
        assert counts[table] > 0, table
    assert counts["customers"] == 40
    assert counts["outbox"] == 0  # demo history is already delivered

    second = cli("demo", "--customers", "40")
    assert second.exit_code == 0, second.output
    assert "already loaded" in second.stderr
    assert ADMIN_EMAIL in second.stdout
    assert asyncio.run(_row_counts(database_url)) == counts


def test_demo_data_is_deterministic_and_varied() -> None:
    from frontdesk.models import Conversation, Customer, Message, User

    now = clock.now()

    def build(seed: int) -> dict[Any, list[dict[str, Any]]]:
        rows = _Builder(seed, 150, now).build()
        for user in rows[User]:
            assert user.pop("password_hash").startswith("$argon2")  # salted: differs on every run
        return rows

    first, second, other = build(7), build(7), build(8)
    assert first == second
    assert first != other
    names = [c["name"] for c in first[Customer]]
    assert any(any("\u0430" <= ch <= "\u044f" for ch in name.lower()) for name in names)  # Cyrillic names
    assert any(name.isascii() for name in names)
    assert {c["status"] for c in first[Conversation]} == {"open", "pending", "snoozed", "resolved"}
    assert {m["direction"] for m in first[Message]} == {"in", "out", "note"}
    assert all(m["created_at"] <= now for m in first[Message])


async def test_every_printed_demo_login_signs_in(app: Any, client: Any) -> None:
    from frontdesk.demo import LOGINS, load

    result = await load(app.state.db, customers=10)
    assert result.created
    for login in {login.role: login for login in LOGINS}.values():  # one per role: argon2 is slow on purpose
        r = await client.post("/api/v1/auth/login", json={"email": login.email, "password": login.password})
        assert r.status_code == 200, (login.email, r.text)
        assert r.json()["user"]["role"] == login.role


def test_demo_rows_of_one_table_have_the_same_columns() -> None:
    """A bulk insert takes its columns from the first row: a setting only a later row had (the
    Retention queue's sticky wait) was silently dropped."""
    rows = _Builder(7, 40, clock.now()).build()
    for model, table_rows in rows.items():
        shapes = {frozenset(row) for row in table_rows}
        assert len(shapes) <= 1, f"{model.__tablename__}: rows with different columns {shapes}"


async def test_demo_queue_settings_are_stored_and_every_shown_channel_has_a_queue(app: Any) -> None:
    from sqlalchemy import select

    from frontdesk.demo import load
    from frontdesk.models import Inbox, Queue, RoutingRule

    await load(app.state.db, customers=10)
    async with app.state.db.transaction() as s:
        queues = {q.name: q for q in (await s.scalars(select(Queue))).all()}
        targets = set((await s.scalars(select(RoutingRule.queue_id))).all())
        channels = set((await s.scalars(select(Inbox.channel))).all())
    assert queues["Retention"].sticky_wait_seconds == 300
    assert queues["E-mail"].auto_accept
    # The leader's fallback for what no rule matches: a queue no rule names, serving the channel.
    general = [q for q in queues.values() if q.id not in targets]
    for channel in channels:
        assert any(not q.channels or channel in q.channels for q in general), f"nothing takes {channel}"
