"""English and Russian for every page: gettext catalogs (``.po``) read with Babel.

Catalogs live in ``frontdesk/web/locale/<lang>/*.po`` — one file per area of the UI (``common``,
``desk``, ``admin``, ``wallboard``…), merged into one catalog per language at start. The English
catalog is the source (msgid = the English text); Russian translates it. Templates call
``_("Text")``; JavaScript modules call ``t("Text")`` from ``/static/js/lib/boot.js``, which reads the
same catalog embedded in the page, so one file holds every string the browser shows.

Placeholders are ``{name}`` in both languages and are filled after translation.

**Labels** — the words for the codes the server sends (channels, conversation statuses,
priorities, presence states, roles, delivery states, identity kinds, satisfaction tiers, how a
queue picks an agent) — have one source: :data:`LABELS` names the msgid of every code, and
``labels.po`` translates them with a ``msgctxt`` of their kind (so the channel "E-mail" and the
form field "Email" may read differently). Every page gets them translated in its boot data
(:func:`page_labels`); ``/static/js/lib/labels.js`` is the one module that hands them to the
desk, the wallboard and the admin pages. Templates use :func:`label`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

from frontdesk.models.enums import (
    Channel,
    ConversationStatus,
    DeliveryStatus,
    IdentityKind,
    PresenceStatus,
    Priority,
    Role,
    SatisfactionTier,
)
from frontdesk.routing.schemas import Selection

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("en", "ru")
DEFAULT_LANGUAGE = "en"
LANGUAGE_NAMES = {"en": "English", "ru": "Русский"}
CONTEXT_SEPARATOR = "\x04"  # GNU gettext's key for a message with a context: "context\x04msgid"

# The English word for every code, by kind (the kind is the msgctxt in labels.po). The order of
# each kind is the order lists and menus show.
LABELS: dict[str, dict[str, str]] = {
    "channel": {
        Channel.webchat: "Web chat",
        Channel.email: "E-mail",
        Channel.sms: "SMS",
        Channel.voice: "Voice",
        Channel.whatsapp: "WhatsApp",
        Channel.telegram: "Telegram",
        Channel.api: "API",
    },
    "status": {
        ConversationStatus.open: "Open",
        ConversationStatus.pending: "Pending",
        ConversationStatus.snoozed: "Snoozed",
        ConversationStatus.resolved: "Resolved",
    },
    "priority": {
        Priority.urgent: "Urgent",
        Priority.high: "High",
        Priority.normal: "Normal",
        Priority.low: "Low",
    },
    "presence": {
        PresenceStatus.available: "Available",
        PresenceStatus.busy: "Busy",
        PresenceStatus.after_call_work: "After-call work",
        PresenceStatus.away: "Away",
        PresenceStatus.offline: "Offline",
    },
    "role": {Role.agent: "agent", Role.supervisor: "supervisor", Role.admin: "admin"},
    "delivery": {
        DeliveryStatus.received: "Received",
        DeliveryStatus.queued: "Queued",
        DeliveryStatus.sent: "Sent",
        DeliveryStatus.delivered: "Delivered",
        DeliveryStatus.read: "Read",
        DeliveryStatus.failed: "Failed",
        DeliveryStatus.caught: "Not sent",
    },
    "identity": {
        IdentityKind.email: "E-mail",
        IdentityKind.phone: "Phone",
        IdentityKind.webchat_visitor: "Web chat visitor",
        IdentityKind.external_id: "External id",
        IdentityKind.messenger: "Messenger",
    },
    "selection": {Selection.longest_idle: "Longest idle", Selection.least_occupied: "Least occupied"},
    "tier": {
        SatisfactionTier.unknown: "Unknown",
        SatisfactionTier.promoter: "Promoter",
        SatisfactionTier.passive: "Passive",
        SatisfactionTier.detractor: "Detractor",
    },
}


@cache
def catalog(lang: str) -> dict[str, str]:
    """``{msgid: translation}`` for one language (empty translations fall back to the msgid).

    A message with a context is keyed ``"<context>\\x04<msgid>"``, as GNU gettext does."""
    out: dict[str, str] = {}
    folder = LOCALE_DIR / lang
    for path in sorted(folder.glob("*.po")):
        with path.open("rb") as fh:
            for message in read_po(fh, locale=lang):
                if not message.id or not isinstance(message.id, str):
                    continue
                text = message.string if isinstance(message.string, str) else ""
                key = f"{message.context}{CONTEXT_SEPARATOR}{message.id}" if message.context else message.id
                out[key] = text or message.id
    return out


def N_(msgid: str) -> str:
    """Mark a text that server code translates later (``gettext(lang, MSGID)``): it goes into the
    catalogs like the texts of templates and JavaScript, and tests/unit/test_i18n.py finds it."""
    return msgid


def gettext(lang: str, msgid: str, **values: object) -> str:
    text = catalog(lang if lang in LANGUAGES else DEFAULT_LANGUAGE).get(msgid, msgid)
    return text.format(**values) if values else text


def pgettext(lang: str, context: str, msgid: str) -> str:
    """The translation of ``msgid`` in ``context`` (``msgctxt``); the msgid when there is none."""
    return catalog(lang if lang in LANGUAGES else DEFAULT_LANGUAGE).get(f"{context}{CONTEXT_SEPARATOR}{msgid}", msgid)


def label(lang: str, kind: str, code: str) -> str:
    """The word for ``code`` of ``kind`` (``"channel"``, ``"role"``…) in ``lang``; the code itself
    when it has none (a value newer than this list)."""
    msgid = LABELS.get(kind, {}).get(code)
    return pgettext(lang, kind, msgid) if msgid else code


@cache
def labels(lang: str) -> dict[str, dict[str, str]]:
    """Every label in ``lang``, ``{kind: {code: word}}`` in display order."""
    return {kind: {str(c): pgettext(lang, kind, msgid) for c, msgid in codes.items()} for kind, codes in LABELS.items()}


@cache
def page_labels(lang: str) -> dict[str, list[tuple[str, str]]]:
    """The pages' boot data: ``{kind: [[code, word], …]}`` — lists, because the page's JSON has its
    keys sorted and the display order would be lost in an object."""
    return {kind: list(words.items()) for kind, words in labels(lang).items()}


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
