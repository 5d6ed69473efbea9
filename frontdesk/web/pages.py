"""Server-rendered pages: ``/`` is the sign-in page; static assets under ``/static``.

Strings come in English and Russian, chosen by ``Accept-Language`` (a small dictionary for now;
gettext arrives with the agent desktop). Jinja2 autoescaping is on for every template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from frontdesk.auth import service as auth_service
from frontdesk.auth.deps import SESSION_COOKIE
from frontdesk.deps import SessionDep

HERE = Path(__file__).parent
templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True))

router = APIRouter(include_in_schema=False)
router.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
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
        "role_admin": "admin",
        "role_supervisor": "supervisor",
        "role_agent": "agent",
        "no_js": "This page needs JavaScript to sign in.",
    },
    "ru": {
        "title": "Вход · Frontdesk",
        "heading": "Вход в Frontdesk",
        "tagline": "Один клиент — одна история.",
        "email": "Электронная почта",
        "password": "Пароль",
        "sign_in": "Войти",
        "signing_in": "Выполняется вход…",
        "sign_out": "Выйти",
        "signed_in_as": "Вы вошли как",
        "wrong_credentials": "Неверная почта или пароль.",
        "too_many": "Слишком много неудачных попыток. Повторите через {seconds} сек.",
        "failed": "Что-то пошло не так. Попробуйте ещё раз.",
        "signed_out": "Вы вышли из системы.",
        "role_admin": "администратор",
        "role_supervisor": "супервизор",
        "role_agent": "оператор",
        "no_js": "Для входа на этой странице нужен JavaScript.",
    },
}
DEFAULT_LANGUAGE = "en"


def pick_language(accept_language: str | None) -> str:
    """The best supported language for an ``Accept-Language`` header (q-values respected)."""
    best, best_q = DEFAULT_LANGUAGE, 0.0
    for position, part in enumerate((accept_language or "")[:500].split(",")):
        tag, _, params = part.strip().partition(";")
        lang = tag.strip().lower().split("-", 1)[0]
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        q -= position * 1e-6  # earlier wins a tie
        if lang in MESSAGES and q > best_q:
            best, best_q = lang, q
    return best


@router.get("/", response_class=HTMLResponse, summary="The sign-in page")
async def index(request: Request, session: SessionDep) -> HTMLResponse:
    lang = pick_language(request.headers.get("accept-language"))
    t = MESSAGES[lang]
    context: dict[str, Any] = {"lang": lang, "t": t, "user": None, "role_label": "", "csrf_token": ""}
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and (found := await auth_service.find_session(session, cookie)) is not None:
        user_session, user = found
        context.update(user=user, role_label=t.get(f"role_{user.role}", user.role), csrf_token=user_session.csrf_token)
    response = templates.TemplateResponse(request, "login.html", context)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = "Accept-Language, Cookie"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response
