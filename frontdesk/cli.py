"""The ``frontdesk`` command: serve, worker, migrate, demo, user, token, config.

Every command reads its configuration from ``FRONTDESK_*`` variables and ``frontdesk.toml``
(see :mod:`frontdesk.settings`). Expected problems (a database that is not migrated or not
reachable, an unknown user, a duplicate email…) end with one line on stderr and exit code 1,
never a traceback. Commands that print data meant for scripts (``token create``) print only
that on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from frontdesk import __version__, logs
from frontdesk.models.enums import Role
from frontdesk.settings import Settings, mask_url

T = TypeVar("T")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

app = typer.Typer(
    name="frontdesk",
    help="Frontdesk: omnichannel, proactive customer service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
user_app = typer.Typer(help="Create, list and disable users (agents, supervisors, admins).", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for integrations.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")


# -- errors and plumbing ----------------------------------------------------------------------


class CliError(Exception):
    """An expected problem; reported as one line and exit code 1."""


def fail(message: str) -> NoReturn:
    err.print(f"[bold red]Error:[/] {message}", markup=True)
    raise typer.Exit(1)


def print_table(table: Table) -> None:
    """Tables on stdout, at least 120 columns wide so emails and URLs stay on one line when piped."""
    Console(highlight=False, width=max(out.width, 120)).print(table)


def load_settings() -> Settings:
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"FRONTDESK_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        fail(f"invalid configuration: {problems}")
    except (OSError, ValueError) as exc:  # an unreadable or malformed frontdesk.toml
        fail(f"cannot read the configuration: {exc}")


def _describe(exc: BaseException, settings: Settings | None) -> str | None:
    """A one-line message for an expected failure, or ``None`` if it is a bug (let it raise)."""
    from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, InterfaceError, OperationalError

    from frontdesk.app import SchemaNotReady
    from frontdesk.errors import ProblemError

    where = mask_url(settings.effective_database_url) if settings else "the database"
    if isinstance(exc, CliError):
        return str(exc)
    if isinstance(exc, ProblemError):
        return exc.detail
    if isinstance(exc, SchemaNotReady):
        return str(exc)
    if isinstance(exc, ArgumentError):  # includes NoSuchModuleError (an unknown driver)
        return f"FRONTDESK_DATABASE_URL is not a usable SQLAlchemy URL ({where}): {_first_line(exc)}"
    if isinstance(exc, IntegrityError):
        return f"the database refused the change (a duplicate or a missing reference): {_first_line(exc.orig)}"
    if isinstance(exc, OperationalError | InterfaceError):
        return f"cannot use the database at {where}: {_first_line(exc.orig)}"
    if isinstance(exc, DBAPIError):
        return f"database error at {where}: {_first_line(exc.orig)}"
    if isinstance(exc, ConnectionError | TimeoutError) or (isinstance(exc, OSError) and exc.errno is not None):
        return f"cannot reach the database at {where}: {exc}"
    try:
        import asyncpg
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, asyncpg.PostgresError):
        return f"database error at {where}: {_first_line(exc)}"
    return None


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def expected_errors(settings: Settings | None = None) -> Any:
    try:
        yield
    except typer.Exit:
        raise
    except Exception as exc:
        message = _describe(exc, settings)
        if message is None:
            raise
        fail(message)


def run(coro: Coroutine[Any, Any, T], settings: Settings | None = None) -> T:
    with expected_errors(settings):
        return asyncio.run(coro)
    raise AssertionError("unreachable")  # pragma: no cover


async def with_database(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Make sure the schema is right (migrating in embedded mode), then run ``work(db)``."""
    from frontdesk.app import prepare_database
    from frontdesk.db import Database

    await prepare_database(settings)
    db = Database(settings.effective_database_url)
    try:
        return await work(db)
    finally:
        await db.dispose()


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"frontdesk {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Configuration file (default: ./frontdesk.toml, or $FRONTDESK_CONFIG)."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Frontdesk: omnichannel, proactive customer service.

    Configuration comes from FRONTDESK_* environment variables and an optional frontdesk.toml;
    `frontdesk config` shows the effective values.
    """
    from frontdesk.wiring import register_subscribers

    register_subscribers()  # every command (worker, demo, import) runs units of work that emit events
    if config is not None:
        if not config.is_file():
            fail(f"configuration file {config} does not exist")
        os.environ["FRONTDESK_CONFIG"] = str(config)
        from frontdesk.settings import get_settings

        get_settings.cache_clear()


# -- serve / worker ---------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on. [default: FRONTDESK_HOST or 127.0.0.1]")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on. [default: FRONTDESK_PORT or 8000]")] = None,
    reload: Annotated[bool, typer.Option("--reload", help="Restart when the code changes (development).")] = False,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes (scaled mode; needs PostgreSQL and Redis to share state).")
    ] = 1,
) -> None:
    """Run the web server (API, agent pages, WebSocket); in embedded mode also the timers and outbox.

    Refuses to start on a database that is not migrated or is newer than this version; an embedded
    SQLite database is migrated automatically.
    """
    import uvicorn

    from frontdesk.app import prepare_database

    settings = load_settings()
    if reload and workers > 1:
        fail("--reload and --workers cannot be used together")
    if workers > 1 and settings.is_sqlite:
        err.print("[yellow]Warning:[/] several workers on SQLite share one file; use PostgreSQL for the scaled mode.")
    if workers > 1 and not settings.redis_url:
        err.print("[yellow]Warning:[/] several workers without FRONTDESK_REDIS_URL do not see each other's pushes.")
    run(prepare_database(settings), settings)
    host = host or settings.host
    port = port or settings.port
    os.environ["FRONTDESK_HOST"] = host  # so the app (and reloaded/forked workers) agree with the command line
    os.environ["FRONTDESK_PORT"] = str(port)
    os.environ["FRONTDESK_CONFIGURE_LOGGING"] = "1"  # each server process sets up structured logs
    where = mask_url(settings.effective_database_url)
    err.print(f"Frontdesk {__version__} on [bold]http://{host}:{port}[/]  (database {where})")
    from frontdesk.httpserver import IMPORT_NAME as http_protocol

    uvicorn.run(
        "frontdesk.app:create_app",
        factory=True,
        host=host,
        port=port,
        reload=reload,
        workers=None if reload else workers,
        log_level=settings.log_level.lower(),
        log_config=None,
        proxy_headers=True,
        lifespan="on",
        http=http_protocol,  # httptools with a deadline for request headers (slow clients)
    )


@app.command()
def worker() -> None:
    """Run the timers and outbox loops without a web server (scaled mode: next to several `frontdesk serve`)."""
    from frontdesk import worker as background
    from frontdesk.app import prepare_database

    settings = load_settings()
    run(prepare_database(settings), settings)
    logs.configure(settings)
    err.print(f"Frontdesk worker (database {mask_url(settings.effective_database_url)}); Ctrl+C stops it.")
    try:
        run(background.main(settings), settings)
    except KeyboardInterrupt:
        err.print("stopped")


# -- migrate ----------------------------------------------------------------------------------


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Revision to upgrade to.")] = "head",
    down: Annotated[
        str | None, typer.Option("--down", metavar="REV", help="Downgrade to REV instead (e.g. base, -1). Loses data.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before a downgrade.")] = False,
) -> None:
    """Bring the database schema up to date (or, with --down, back to an earlier revision)."""
    from frontdesk import migrate as migrations

    settings = load_settings()
    url = settings.effective_database_url
    where = mask_url(url)
    state = run(migrations.schema_state(url), settings)
    if state.current is not None and state.current not in migrations.known_revisions():
        fail(state.problem() or "the database schema is unknown to this version")
    if down is not None:
        if not yes:
            typer.confirm(
                f"Downgrade {where} from {state.current or 'base'} to {down}? Tables and data may be dropped",
                abort=True,
                err=True,
            )
        with expected_errors(settings):
            migrations.downgrade(url, down)
        after = run(migrations.schema_state(url), settings)
        err.print(f"Downgraded {where}: now at {after.current or 'base'}.")
        return
    if state.current == state.head and revision == "head":
        err.print(f"{where} is up to date ({state.head}).")
        return
    with expected_errors(settings):
        migrations.upgrade(url, revision)
    after = run(migrations.schema_state(url), settings)
    err.print(f"Migrated {where}: {state.current or 'base'} → {after.current}.")


# -- demo -------------------------------------------------------------------------------------


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same data.")] = 2026,
    customers: Annotated[int, typer.Option(min=1, max=20_000, help="How many customers to create.")] = 300,
) -> None:
    """Load demo data (teams, agents, customers, conversations, events) and print the demo logins.

    Running it again changes nothing.
    """
    from frontdesk import demo as demo_data

    settings = load_settings()

    async def work(db: Any) -> demo_data.DemoResult:
        return await demo_data.load(db, seed=seed, customers=customers, console=err)

    result = run(with_database(settings, work), settings)
    if result.created:
        err.print(f"Loaded demo data: {result.summary()}.")
    else:
        err.print("Demo data is already loaded; nothing changed.")
    table = Table(title="Demo logins", title_justify="left")
    table.add_column("role")
    table.add_column("email", style="bold", no_wrap=True)
    table.add_column("password", no_wrap=True)
    table.add_column("name")
    table.add_column("team")
    for login in demo_data.LOGINS:
        table.add_row(login.role, login.email, login.password, login.name, login.team or "")
    print_table(table)
    base = settings.public_url.rstrip("/") or f"http://{settings.host}:{settings.port}"
    out.print(
        f"Sign in at {base}/ — then, in the desk, set yourself Available and chat as a customer at "
        f"{base}/chat/{demo_data.public_token(demo_data.WEBCHAT_INBOX)}",
        soft_wrap=True,
    )


# -- users and tokens -------------------------------------------------------------------------


class RoleChoice(StrEnum):
    admin = Role.admin.value
    supervisor = Role.supervisor.value
    agent = Role.agent.value


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(help="Sign-in email (unique).")],
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="Password (asked when omitted).")
    ],
    role: Annotated[RoleChoice, typer.Option(help="What the user may do.")] = RoleChoice.agent,
    name: Annotated[str | None, typer.Option(help="Display name (default: from the email).")] = None,
) -> None:
    """Create a user who can sign in to the web app and the API."""
    from frontdesk.auth import service

    settings = load_settings()

    async def work(db: Any) -> Any:
        async with db.transaction() as session:
            return await service.create_user(session, email=email, password=password, role=Role(role.value), name=name)

    user = run(with_database(settings, work), settings)
    err.print(f"Created {user.role} {user.email} ({user.id}).")


@user_app.command("list")
def user_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List users."""
    from frontdesk.auth import service

    settings = load_settings()

    async def work(db: Any) -> list[dict[str, Any]]:
        async with db.transaction() as session:
            users = await service.list_users(session)
            return [
                {
                    "id": str(u.id),
                    "email": u.email,
                    "name": u.name,
                    "role": str(u.role),
                    "active": bool(u.is_active),
                    "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
                }
                for u in users
            ]

    rows = run(with_database(settings, work), settings)
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"{len(rows)} users", title_justify="left")
    for column in ("email", "name", "role", "active", "last sign-in"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["email"], r["name"], r["role"], "yes" if r["active"] else "[red]no[/]", r["last_login_at"] or ""
        )
    print_table(table)


@user_app.command("disable")
def user_disable(email: Annotated[str, typer.Option(help="The user's email.")]) -> None:
    """Disable a user: they can no longer sign in, and their sessions and API tokens stop working."""
    from frontdesk.auth import service

    settings = load_settings()

    async def work(db: Any) -> Any:
        async with db.transaction() as session:
            user = await service.get_user_by_email(session, email)
            if user is None:
                raise CliError(f"no user with email {email}")
            await service.disable_user(session, user)
            return user

    user = run(with_database(settings, work), settings)
    err.print(f"Disabled {user.email}.")


@token_app.command("create")
def token_create(
    email: Annotated[str, typer.Option(help="The user the token acts as.")],
    name: Annotated[str, typer.Option(help="What the token is for (shown in token lists).")] = "cli",
    scopes: Annotated[str, typer.Option(help="Comma-separated: read (GET only), write (changes).")] = "read,write",
    expires_days: Annotated[
        int | None, typer.Option(min=1, help="Expire after this many days (default: never).")
    ] = None,
) -> None:
    """Create an API token and print it (only it, on stdout): it is shown once and stored hashed."""
    from datetime import timedelta

    from frontdesk import clock
    from frontdesk.auth import service

    wanted = [s.strip() for s in scopes.split(",") if s.strip()]
    unknown = sorted(set(wanted) - {"read", "write"})
    if unknown or not wanted:
        fail(f"unknown scope {', '.join(unknown)}; use read, write or read,write" if unknown else "give a scope")
    settings = load_settings()
    expires_at = clock.now() + timedelta(days=expires_days) if expires_days else None

    async def work(db: Any) -> str:
        async with db.transaction() as session:
            user = await service.get_user_by_email(session, email)
            if user is None:
                raise CliError(f"no user with email {email}")
            if not user.is_active:
                raise CliError(f"{email} is disabled")
            _, secret = await service.create_token(session, user=user, name=name, scopes=wanted, expires_at=expires_at)
            return secret

    secret = run(with_database(settings, work), settings)
    print(secret)


# -- config -----------------------------------------------------------------------------------


@app.command("config")
def show_config(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the effective configuration (environment + frontdesk.toml + defaults), secrets masked."""
    settings = load_settings()
    values = settings.masked()
    if as_json:
        print(json.dumps(values, indent=2, default=str, sort_keys=True))
        return
    table = Table(title="Effective configuration (secrets masked)", title_justify="left")
    table.add_column("environment variable", no_wrap=True)
    table.add_column("value", style="bold", overflow="fold")
    for key in sorted(values):
        value = values[key]
        table.add_row(f"FRONTDESK_{key.upper()}", "[dim]unset[/]" if value is None else str(value))
    print_table(table)


if __name__ == "__main__":  # pragma: no cover
    app()
