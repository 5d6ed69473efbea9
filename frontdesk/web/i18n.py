"""English and Russian for every page: gettext catalogs (``.po``) read with Babel.

Catalogs live in ``frontdesk/web/locale/<lang>/*.po`` — one file per area of the UI (``common``,
``desk``, ``admin``, ``wallboard``…), merged into one catalog per language at start. The English
catalog is the source (msgid = the English text); Russian translates it. Templates call
``_("Text")``; JavaScript modules call ``t("Text")`` from ``/static/js/i18n.js``, which reads the
same catalog embedded in the page, so one file holds every string the browser shows.

Placeholders are ``{name}`` in both languages and are filled after translation.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("en", "ru")
DEFAULT_LANGUAGE = "en"
LANGUAGE_NAMES = {"en": "English", "ru": "Русский"}


@cache
def catalog(lang: str) -> dict[str, str]:
    """``{msgid: translation}`` for one language (empty translations fall back to the msgid)."""
    out: dict[str, str] = {}
    folder = LOCALE_DIR / lang
    for path in sorted(folder.glob("*.po")):
        with path.open("rb") as fh:
            for message in read_po(fh, locale=lang):
                if not message.id or not isinstance(message.id, str):
                    continue
                text = message.string if isinstance(message.string, str) else ""
                out[message.id] = text or message.id
    return out


def gettext(lang: str, msgid: str, **values: object) -> str:
    text = catalog(lang if lang in LANGUAGES else DEFAULT_LANGUAGE).get(msgid, msgid)
    return text.format(**values) if values else text


def translator(lang: str):  # type: ignore[no-untyped-def]
    """The ``_`` callable handed to templates."""

    def _(msgid: str, **values: object) -> str:
        return gettext(lang, msgid, **values)

    return _


def pick_language(accept_language: str | None, preferred: str | None = None) -> str:
    """The user's own choice if set, else the best ``Accept-Language`` match (q-values respected)."""
    if preferred:
        lang = preferred.strip().lower().split("-", 1)[0].split("_", 1)[0]
        if lang in LANGUAGES:
            return lang
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
        if lang in LANGUAGES and q > best_q:
            best, best_q = lang, q
    return best
