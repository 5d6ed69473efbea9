"""The widget's texts in a web-chat inbox's ``config``: checked when they are saved, picked per visitor.

``title`` and ``greeting`` are text (every visitor's) or an object from language code to text
(``{"en": "Hi!", "ru": "Здравствуйте!"}``). ``default_language`` (``en`` when unset) is the
language shown to a visitor whose own language has no text. Codes are compared without case
(``pt-BR`` is ``pt-br``), and a visitor's ``pt-BR`` falls back to ``pt``, and ``pt`` to ``pt-BR``.

Pure functions, no I/O: :func:`check` for the inbox service (422 naming the key), :func:`pick`
for the widget session.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from frontdesk.errors import Invalid

LANGUAGE_CODE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$")
DEFAULT_LANGUAGE = "en"
MAX_CHARS = {"title": 200, "greeting": 1000}
MAX_LANGUAGES = 50
_CODES_HINT = "use codes like en, ru or pt-BR"
_SHAPE_HINT = 'text, or an object from language code to text ({"en": "Hi!", "ru": "Здравствуйте!"})'


def norm(code: str) -> str:
    return code.strip().lower().replace("_", "-")


def is_language(code: Any) -> bool:
    return isinstance(code, str) and bool(LANGUAGE_CODE.match(code))


def _check_text(value: Any, where: str, limit: int) -> None:
    if not isinstance(value, str):
        raise Invalid(f"{where} must be text", field=where)
    if len(value) > limit:
        raise Invalid(f"{where} must be at most {limit} characters (this one has {len(value)})", field=where)


def _check_texts(value: Any, key: str, limit: int) -> None:
    where = f"config.{key}"
    if value is None or isinstance(value, str):
        if value:
            _check_text(value, where, limit)
        return
    if not isinstance(value, dict):
        raise Invalid(f"{where} must be {_SHAPE_HINT}", field=where)
    if not value:
        raise Invalid(f"{where} needs at least one language (or send text for every language)", field=where)
    if len(value) > MAX_LANGUAGES:
        raise Invalid(f"{where} lists {len(value)} languages; at most {MAX_LANGUAGES} are allowed", field=where)
    seen: set[str] = set()
    for code, text in value.items():
        here = f"{where}.{code}"
        if not is_language(code):
            raise Invalid(f"{where}: {code!r} is not a language code ({_CODES_HINT})", field=here)
        if norm(code) in seen:
            raise Invalid(f"{where}: {code!r} is listed twice (codes are compared without case)", field=here)
        seen.add(norm(code))
        _check_text(text, here, limit)
        if not text.strip():
            raise Invalid(f"{here} must not be empty (leave the language out instead)", field=here)


def check(config: dict[str, Any]) -> None:
    """Raise :class:`Invalid` (422, naming the key) unless the widget's texts are well formed."""
    for key, limit in MAX_CHARS.items():
        if key in config:
            _check_texts(config[key], key, limit)
    if config.get("default_language") is not None and not is_language(config["default_language"]):
        where = "config.default_language"
        raise Invalid(
            f"{where}: {str(config['default_language'])!r} is not a language code ({_CODES_HINT})", field=where
        )


def _wanted(languages: Iterable[str | None]) -> list[str]:
    out: list[str] = []
    for code in languages:
        if is_language(code):
            assert code is not None
            for tag in (norm(code), norm(code).split("-")[0]):
                if tag not in out:
                    out.append(tag)
    return out


def pick(value: Any, languages: Iterable[str | None]) -> tuple[str | None, str | None]:
    """``(text, its language code)`` for the first of ``languages`` the value has; text is every
    language's (code ``None``); ``(None, None)`` when nothing fits."""
    if isinstance(value, str):
        return (value.strip() and value) or None, None
    if not isinstance(value, dict):
        return None, None
    texts = {norm(k): (k, v) for k, v in value.items() if is_language(k) and isinstance(v, str) and v.strip()}
    for tag in _wanted(languages):
        if tag in texts:
            return texts[tag][1], texts[tag][0]
        for key in sorted(texts):  # a visitor's "pt" takes the inbox's "pt-BR"
            if key.split("-")[0] == tag:
                return texts[key][1], texts[key][0]
    return None, None


def visitor_texts(config: dict[str, Any], language: str | None) -> dict[str, str | None]:
    """The title and greeting for a visitor speaking ``language``, else the inbox default language's."""
    default = config.get("default_language")
    languages = [language, default if is_language(default) else DEFAULT_LANGUAGE]
    title, title_language = pick(config.get("title"), languages)
    greeting, greeting_language = pick(config.get("greeting"), languages)
    return {"title": title, "greeting": greeting, "language": title_language or greeting_language}
