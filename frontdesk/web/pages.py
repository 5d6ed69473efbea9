"""Server-rendered pages: ``/`` (sign in), ``/desk`` (agents), ``/wallboard`` (supervisors),
``/admin`` (admins), ``/chat/<public token>`` (a web-chat inbox's hosted page, public); static
assets under ``/static``.

Every page is rendered in the viewer's language (:mod:`frontdesk.web.i18n`) with Jinja2
autoescaping on; the page's JavaScript module gets the same catalog embedded as JSON, the signed-in
user, the CSRF token and the viewer's time zone. Pages that need a role send a signed-out browser
to the sign-in page (``/?next=…``) and answer 403 for a role that is too low.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from frontdesk.auth import service as auth_service
from frontdesk.auth.deps import ROLE_RANK, SESSION_COOKIE
from frontdesk.channels.webchat import snapshot as webchat_snapshot
from frontdesk.deps import SessionDep
from frontdesk.errors import NotFound
from frontdesk.models import User, UserSession
from frontdesk.models.enums import Role
from frontdesk.web import i18n
from frontdesk.web.i18n import pick_language

HERE = Path(__file__).parent
templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True))

router = APIRouter(include_in_schema=False)
router.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

__all__ = ["pick_language", "router"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

# The sign-in page's strings, by the key login.js reads them with (values are msgids).
LOGIN_STRINGS = {
    "title": "Sign in · Frontdesk",
    "heading": "Sign in to Frontdesk",
    "tagline": "One customer, one timeline.",
    "email": "Email",
    "password": "Password",
    "sign_in": "Sign in",
    "signing_in": "Signing in…",
    "sign_out": "Sign out",
    "signed_in_as": "Signed in as",
    "wrong_credentials": "Wrong email or password.",
    "too_many": "Too many failed attempts. Try again in {seconds} seconds.",
    "failed": "Something went wrong. Please try again.",
    "signed_out": "You have signed out.",
    "no_js": "This page needs JavaScript to sign in.",
    "open_desk": "Open the desk",
}


def _secure(response: Response, *, vary: str = "Accept-Language, Cookie") -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = vary
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


async def _viewer(request: Request, session: SessionDep) -> tuple[UserSession, User] | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    return await auth_service.find_session(session, cookie)


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "locale": user.locale,
        "time_zone": user.time_zone,
    }


@router.get("/", response_class=HTMLResponse, summary="The sign-in page")
async def index(request: Request, session: SessionDep) -> Response:
    found = await _viewer(request, session)
    lang = pick_language(request.headers.get("accept-language"), found[1].locale if found else None)
    _ = i18n.translator(lang)
    t = {key: _(msgid) for key, msgid in LOGIN_STRINGS.items()}
    t.update({f"role_{role}": word for role, word in i18n.labels(lang)["role"].items()})
    context: dict[str, Any] = {"lang": lang, "t": t, "user": None, "role_label": "", "csrf_token": ""}
    if found is not None:
        user_session, user = found
        context.update(user=user, role_label=t.get(f"role_{user.role}", user.role), csrf_token=user_session.csrf_token)
    return _secure(templates.TemplateResponse(request, "login.html", context))


async def _app_page(request: Request, session: SessionDep, page: str, title: str, minimum: Role) -> Response:
    """One page of the signed-in application (``base.html`` + ``<page>.html`` + ``/static/js/<page>.js``)."""
    found = await _viewer(request, session)
    if found is None:
        return _secure(RedirectResponse(f"/?next={quote(request.url.path)}", status_code=303))
    user_session, user = found
    lang = pick_language(request.headers.get("accept-language"), user.locale)
    _ = i18n.translator(lang)
    rank = ROLE_RANK[Role(user.role)]
    if rank < ROLE_RANK[minimum]:
        html = templates.get_template("forbidden.html").render(
            lang=lang, _=_, user=user, minimum=minimum.value, role=i18n.label(lang, "role", user.role)
        )
        return _secure(HTMLResponse(html, status_code=403))
    context: dict[str, Any] = {
        "lang": lang,
        "_": _,
        "page": page,
        "title": _(title),
        "user": user,
        "user_json": user_json(user),
        "can_supervise": rank >= ROLE_RANK[Role.supervisor],
        "can_admin": user.role == Role.admin.value,
        "csrf_token": user_session.csrf_token,
        "catalog": i18n.catalog(lang),
        "labels": i18n.page_labels(lang),
        "languages": i18n.LANGUAGE_NAMES,
        # "UTC" is the stored default and means "not chosen": the browser's own zone is used then.
        "time_zone": "" if user.time_zone in ("", "UTC") else user.time_zone,
    }
    return _secure(templates.TemplateResponse(request, f"{page}.html", context))


@router.get("/desk", response_class=HTMLResponse)
async def desk(request: Request, session: SessionDep) -> Response:
    return await _app_page(request, session, "desk", "Desk", Role.agent)


@router.get("/wallboard", response_class=HTMLResponse)
async def wallboard(request: Request, session: SessionDep) -> Response:
    return await _app_page(request, session, "wallboard", "Wallboard", Role.supervisor)


@router.get("/admin", response_class=HTMLResponse)
async def admin(request: Request, session: SessionDep) -> Response:
    return await _app_page(request, session, "admin", "Admin", Role.admin)


# The hosted chat page embeds the widget, which styles its shadow root with a <style> element.
CHAT_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")


@router.get("/chat/{public_token}", response_class=HTMLResponse)
async def hosted_chat(public_token: str, request: Request, session: SessionDep) -> Response:
    """A web-chat inbox's own page: the widget, opened, on a plain page — a link to share with
    customers (an e-mail signature, a QR code) and the quickest way to try an inbox (``make demo``
    prints it). Public, like the widget itself."""
    lang = pick_language(request.headers.get("accept-language"))
    _ = i18n.translator(lang)
    try:
        inbox = await webchat_snapshot.public_inbox(session, public_token[:64])
    except NotFound:
        context = {"lang": lang, "_": _, "title": "", "public_token": None}
        page = templates.TemplateResponse(request, "chat.html", context, status_code=404)
        return _secure(page, vary="Accept-Language")
    title = webchat_snapshot.widget_config(inbox, 0)["title"]
    context = {"lang": lang, "_": _, "title": title, "public_token": inbox.public_token}
    response = _secure(templates.TemplateResponse(request, "chat.html", context), vary="Accept-Language")
    response.headers["Content-Security-Policy"] = CHAT_CSP
    return response
