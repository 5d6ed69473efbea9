# ruff: noqa: RUF001  (Russian text is Cyrillic on purpose)
"""The signed-in pages as the server renders them: who may open /desk, /wallboard and /admin,
the language they come in, the security headers, and the boot data embedded safely.

Fast (no browser): the browser side is tests/e2e/test_admin_wallboard_browser.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from frontdesk.web import pages
from tests.builders import DEFAULT_PASSWORD, make_user

PAGES = ["/desk", "/wallboard", "/admin"]
STATIC = Path(pages.__file__).parent / "static"
BOOT = re.compile(r'<script type="application/json" id="fd-boot">(.*?)</script>', re.S)

SignIn = Callable[..., Any]


@pytest.fixture
def sign_in(app: Any) -> SignIn:
    """``async with sign_in(role, name=…, locale=…) as client`` — a browser-like client with a session cookie."""

    @asynccontextmanager
    async def _sign_in(
        role: str, *, name: str = "Test User", locale: str | None = None
    ) -> AsyncIterator[httpx.AsyncClient]:
        user = await make_user(app.state.db, role=role, name=name)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            r = await c.post("/api/v1/auth/login", json={"email": user.email, "password": DEFAULT_PASSWORD})
            assert r.status_code == 200, r.text
            if locale is not None:
                csrf = r.json()["csrf_token"]
                r = await c.patch(f"/api/v1/users/{user.id}", json={"locale": locale}, headers={"X-CSRF-Token": csrf})
                assert r.status_code == 200, r.text
            yield c

    return _sign_in


def boot_of(html: str) -> dict[str, Any]:
    found = BOOT.search(html)
    assert found, "the page embeds its boot JSON"
    return dict(json.loads(found.group(1)))


def assert_secure_headers(r: httpx.Response) -> None:
    csp = r.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp
    assert "style-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert r.headers.get("x-content-type-options") == "nosniff"
    assert r.headers.get("cache-control") == "no-store"


# -- who may open what ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
async def test_a_signed_out_browser_is_sent_to_sign_in_and_back(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path, headers={"Accept": "text/html"})
    assert r.status_code == 303
    assert r.headers["location"] == f"/?next={path}"
    assert_secure_headers(r)


async def test_a_stale_session_cookie_is_treated_as_signed_out(client: httpx.AsyncClient) -> None:
    client.cookies.set("frontdesk_session", "not-a-real-session")
    r = await client.get("/wallboard")
    assert r.status_code == 303
    assert r.headers["location"] == "/?next=/wallboard"


@pytest.mark.parametrize(
    ("role", "path"),
    [("agent", "/wallboard"), ("agent", "/admin"), ("supervisor", "/admin")],
)
async def test_a_role_too_low_gets_403(sign_in: SignIn, role: str, path: str) -> None:
    async with sign_in(role) as c:
        r = await c.get(path)
    assert r.status_code == 403
    assert "403" in r.text
    assert 'href="/desk"' in r.text  # a way back
    assert "fd-boot" not in r.text  # no CSRF token or catalog for a page they may not use
    assert_secure_headers(r)


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("agent", ["/desk"]),
        ("supervisor", ["/desk", "/wallboard"]),
        ("admin", ["/desk", "/wallboard", "/admin"]),
    ],
)
async def test_each_role_opens_its_pages_and_sees_only_their_links(
    sign_in: SignIn, role: str, allowed: list[str]
) -> None:
    async with sign_in(role) as c:
        for path in allowed:
            r = await c.get(path)
            assert r.status_code == 200, (path, r.text[:300])
            assert r.headers["content-type"].startswith("text/html")
            assert_secure_headers(r)
            page = path.strip("/")
            assert f'<script type="module" src="/static/js/{page}.js"></script>' in r.text
            assert 'aria-current="page">' in r.text
            nav = r.text.split('class="app-nav"', 1)[1].split("</nav>", 1)[0]
            for other in PAGES:
                assert (f'href="{other}"' in nav) == (other in allowed), (path, other)


async def test_the_wallboard_page_has_its_board_and_styles(sign_in: SignIn) -> None:
    async with sign_in("supervisor") as c:
        html = (await c.get("/wallboard")).text
    assert "<fd-wallboard" in html
    assert "<fd-agent-panel" in html
    assert '<link rel="stylesheet" href="/static/css/wallboard.css">' in html
    assert 'id="wb-fullscreen"' in html


async def test_the_admin_page_links_every_section(sign_in: SignIn) -> None:
    async with sign_in("admin") as c:
        html = (await c.get("/admin")).text
    assert '<link rel="stylesheet" href="/static/css/admin.css">' in html
    for section in ["users", "teams", "inboxes", "webhooks", "canned", "hours", "rejected"]:
        assert f'<a href="#{section}" data-section="{section}">' in html


# -- language ---------------------------------------------------------------------------------------


async def test_pages_follow_the_browsers_language(sign_in: SignIn) -> None:
    async with sign_in("admin") as c:
        en_admin = (await c.get("/admin", headers={"Accept-Language": "en-GB,en;q=0.9"})).text
        ru_admin = (await c.get("/admin", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})).text
        en_board = (await c.get("/wallboard", headers={"Accept-Language": "en"})).text
        ru_board = (await c.get("/wallboard", headers={"Accept-Language": "ru"})).text

    assert '<html lang="en">' in en_admin
    assert "Users &amp; roles" in en_admin
    assert "Canned responses" in en_admin
    assert "Full screen" in en_board

    assert '<html lang="ru">' in ru_admin
    assert "Пользователи и роли" in ru_admin
    assert "Шаблоны ответов" in ru_admin
    assert "Users &amp; roles" not in ru_admin
    assert "Во весь экран" in ru_board
    assert "Табло" in ru_board  # the shell's own navigation too

    # The scripts get the same language: the catalog embedded for t() is the Russian one.
    boot = boot_of(ru_board)
    assert boot["lang"] == "ru"
    assert boot["catalog"]["Waiting now"] == "Ждут сейчас"
    assert boot["catalog"]["Service level today"] == "Уровень сервиса сегодня"
    ru_catalog = boot_of(ru_admin)["catalog"]
    assert ru_catalog["Create inbox"] == "Создать канал"
    assert ru_catalog["Monday"] == "Понедельник"
    assert boot_of(en_board)["catalog"]["Waiting now"] == "Waiting now"


async def test_the_users_own_language_beats_the_browsers(sign_in: SignIn) -> None:
    async with sign_in("supervisor", locale="ru") as c:
        html = (await c.get("/wallboard", headers={"Accept-Language": "en-US,en;q=0.9"})).text
    assert '<html lang="ru">' in html
    assert "Во весь экран" in html


# -- what the browser is handed -------------------------------------------------------------------


async def test_boot_json_is_escaped_and_survives_a_hostile_name(sign_in: SignIn) -> None:
    hostile = "</script><script>alert(1)</script><!-- & 'quotes' \"double\""
    async with sign_in("admin", name=hostile) as c:
        for path in PAGES:
            html = (await c.get(path)).text
            assert "<script>alert(1)" not in html, path
            assert "</script><script>" not in html, path
            boot = boot_of(html)
            assert boot["user"]["name"] == hostile  # exact, after JSON parsing
            assert boot["user"]["role"] == "admin"
            assert re.fullmatch(r"[\w-]{16,}", boot["csrf"]), "a CSRF token for the page's writes"
            # The header shows the name as text.
            assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_pages_carry_no_inline_script_or_style(sign_in: SignIn) -> None:
    """The CSP forbids inline code; a page that relied on it would silently break in the browser."""
    async with sign_in("admin") as c:
        for path in PAGES:
            html = (await c.get(path)).text
            for tag in re.findall(r"<script\b[^>]*>", html):
                assert 'src="/static/' in tag or 'type="application/json"' in tag, (path, tag)
            assert not re.search(r"<style\b", html), path
            assert not re.search(r"\sstyle=", html), path
            assert not re.search(r"\son[a-z]+=", html), path


def _module_graph(entry: str) -> set[str]:
    """Every static path the entry module imports, transitively (relative imports only)."""
    seen: set[str] = set()
    todo = [entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        source = (STATIC / path.removeprefix("/static/")).read_text("utf-8")
        for spec in re.findall(r"""^\s*import\s+(?:[^"';]*?\s+from\s+)?["'](\.{1,2}/[^"']+)["']""", source, re.M):
            base = path.rsplit("/", 1)[0]
            parts = f"{base}/{spec}".split("/")
            out: list[str] = []
            for part in parts:
                if part == "..":
                    out.pop()
                elif part not in (".", ""):
                    out.append(part)
            todo.append("/" + "/".join(out))
    return seen


@pytest.mark.parametrize("page", ["desk", "wallboard", "admin"])
async def test_every_module_a_page_loads_is_served(sign_in: SignIn, page: str) -> None:
    graph = _module_graph(f"/static/js/{page}.js")
    assert len(graph) > 3, graph
    async with sign_in("admin") as c:
        for path in sorted(graph):
            r = await c.get(path)
            assert r.status_code == 200, path
            assert "javascript" in r.headers["content-type"], path
        css = await c.get(f"/static/css/{page}.css")
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")


async def test_the_hosted_chat_page_embeds_the_inbox_widget_in_the_visitors_language(
    app: Any, client: httpx.AsyncClient
) -> None:
    from sqlalchemy import update

    from frontdesk.models import Inbox
    from tests.builders.webchat import make_webchat_inbox

    inbox = await make_webchat_inbox(app.state.db, title="Поддержка <Acme>")
    r = await client.get(f"/chat/{inbox.public_token}", headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    assert r.status_code == 200
    assert '<html lang="ru">' in r.text
    assert "<title>Поддержка &lt;Acme&gt;</title>" in r.text  # the inbox's title, escaped
    assert f'<script src="/widget.js" data-inbox="{inbox.public_token}" data-locale="ru" async>' in r.text
    assert "Напишите нам в окне чата" in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "style-src 'self' 'unsafe-inline'" in csp  # the widget styles its shadow root with <style>
    assert "frame-ancestors 'none'" in csp

    async with app.state.db.transaction() as s:
        await s.execute(update(Inbox).where(Inbox.id == inbox.id).values(is_active=False))
    gone = await client.get(f"/chat/{inbox.public_token}", headers={"Accept-Language": "en"})
    assert gone.status_code == 404
    assert "This chat is not available." in gone.text
    assert "/widget.js" not in gone.text
