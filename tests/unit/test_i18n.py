"""Every string the UI shows exists in English and has a Russian translation."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

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
from frontdesk.web import i18n

WEB = Path(i18n.__file__).parent
PACKAGE = WEB.parent
# _("…") / _('…') in templates and t("…") / t('…') / t(`…`) in JavaScript (a literal, no expressions).
TEMPLATE_CALL = re.compile(r"""\b_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")
JS_CALL = re.compile(r"""(?<![\w.$])t\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")


def _used() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for path in sorted((WEB / "templates").glob("*.html")):
        for match in TEMPLATE_CALL.finditer(path.read_text("utf-8")):
            used.setdefault(match.group(1) or match.group(2), set()).add(path.name)
    for path in sorted(PACKAGE.rglob("*.py")):  # server code marks what it translates later: N_("…")
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "N_"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                used.setdefault(node.args[0].value, set()).add(path.name)
    for path in sorted((WEB / "static" / "js").rglob("*.js")):
        for match in JS_CALL.finditer(path.read_text("utf-8")):
            text = (match.group(1) or match.group(2)).replace('\\"', '"').replace("\\'", "'")
            used.setdefault(text, set()).add(path.name)
    return used


def test_the_ui_uses_the_catalogs():
    assert len(_used()) >= 20


def test_every_ui_string_is_in_the_english_catalog():
    en = i18n.catalog("en")
    missing = {msgid: sorted(files) for msgid, files in _used().items() if msgid not in en}
    assert missing == {}, "add these to frontdesk/web/locale/en/*.po"


def test_every_ui_string_has_a_russian_translation():
    ru = i18n.catalog("ru")
    untranslated = {msgid: sorted(files) for msgid, files in _used().items() if ru.get(msgid, msgid) == msgid}
    # Brand names and pure placeholders read the same in both languages.
    untranslated = {
        m: f
        for m, f in untranslated.items()
        if m not in {"Frontdesk"} and re.search(r"[A-Za-z]{3}", re.sub(r"\{\w+\}", "", m))
    }
    assert untranslated == {}, "translate these in frontdesk/web/locale/ru/*.po"


def test_placeholders_survive_translation():
    en, ru = i18n.catalog("en"), i18n.catalog("ru")
    for msgid in en:
        assert set(re.findall(r"\{(\w+)\}", msgid)) == set(re.findall(r"\{(\w+)\}", ru.get(msgid, msgid))), msgid


@pytest.mark.parametrize(
    ("header", "preferred", "expected"),
    [("ru-RU,ru;q=0.9", None, "ru"), ("ru-RU,ru;q=0.9", "en", "en"), (None, "ru_RU", "ru"), ("de", None, "en")],
)
def test_the_users_choice_beats_the_browser(header, preferred, expected):
    assert i18n.pick_language(header, preferred) == expected


def _entries(lang: str) -> dict[tuple[str | None, str], list[tuple[str, str]]]:
    """``{(msgctxt, msgid): [(file, translation), …]}`` of one language's ``.po`` files."""
    from babel.messages.pofile import read_po

    out: dict[tuple[str | None, str], list[tuple[str, str]]] = {}
    for path in sorted((i18n.LOCALE_DIR / lang).glob("*.po")):
        with path.open("rb") as fh:
            for message in read_po(fh, locale=lang):
                if message.id and isinstance(message.id, str):
                    out.setdefault((message.context, message.id), []).append((path.name, str(message.string or "")))
    return out


def test_every_text_is_defined_once():
    """One source: a text lives in one catalog file, so two pages cannot translate it differently
    (all files of a language merge into one catalog, and a clash would silently override)."""
    for lang in i18n.LANGUAGES:
        twice = {key: [f for f, _ in found] for key, found in _entries(lang).items() if len(found) > 1}
        assert twice == {}, f"{lang}: keep each text in one .po file (shared ones in common.po)"


def test_both_languages_have_the_same_texts_in_the_same_files():
    en, ru = _entries("en"), _entries("ru")
    assert {k: [f for f, _ in v] for k, v in en.items()} == {k: [f for f, _ in v] for k, v in ru.items()}


def test_every_catalog_text_is_used():
    """A text nobody shows is a leftover that drifts (an old label translated one way, a new one
    another)."""
    from frontdesk.web.pages import LOGIN_STRINGS

    used = set(_used()) | set(LOGIN_STRINGS.values())
    labels = {(kind, msgid) for kind, codes in i18n.LABELS.items() for msgid in codes.values()}
    unused = sorted(k for k in _entries("en") if (k[1] not in used if k[0] is None else k not in labels))
    assert unused == []


# -- labels: one source for the words of channels, statuses, presence states… ---------------------

LABEL_ENUMS = {
    "channel": Channel,
    "status": ConversationStatus,
    "priority": Priority,
    "presence": PresenceStatus,
    "role": Role,
    "delivery": DeliveryStatus,
    "identity": IdentityKind,
    "tier": SatisfactionTier,
    "selection": Selection,
}
# Brand names read the same in every language.
BRANDS = {"WhatsApp", "Telegram", "API"}


@pytest.mark.parametrize("kind", sorted(LABEL_ENUMS))
def test_every_code_has_a_label_in_both_languages(kind):
    assert set(i18n.LABELS[kind]) == {e.value for e in LABEL_ENUMS[kind]}
    for lang in i18n.LANGUAGES:
        words = i18n.labels(lang)[kind]
        assert set(words) == set(i18n.LABELS[kind])
        for code, english in i18n.LABELS[kind].items():
            entry = _entries(lang).get((kind, english))
            assert entry is not None, (lang, kind, code)
            assert entry[0][0] == "labels.po", (lang, kind, code)
            if lang == "ru" and english not in BRANDS:
                assert words[code] != english, (kind, code)
                assert re.search("[\u0400-\u04ff]", words[code]), (kind, code, words[code])  # Cyrillic
    # Within a kind, two codes never read the same (a menu would show the same word twice).
    for lang in i18n.LANGUAGES:
        words = list(i18n.labels(lang)[kind].values())
        assert len(set(words)) == len(words), (lang, kind)


def test_the_pages_read_labels_from_one_module():
    """Only ``lib/labels.js`` turns codes into words: no other module keeps its own list of
    channel, status or presence names (the desk said "Почта", the admin "Электронная почта")."""
    code = "|".join(sorted({str(c) for codes in i18n.LABELS.values() for c in codes}, key=len, reverse=True))
    own_map = re.compile(rf"""(?:^|[{{,\[\s])["']?({code})["']?\s*[:,]\s*t\(""")
    words = {msgid for codes in i18n.LABELS.values() for msgid in codes.values()}
    # "Email" (a form field, the sign-in page) and "Unknown" (an unknown state) have plain entries too.
    words -= {"Email", "Unknown"}
    offenders: dict[str, list[str]] = {}
    for path in sorted((WEB / "static" / "js").rglob("*.js")):
        if path.relative_to(WEB / "static" / "js").as_posix() == "lib/labels.js":
            continue
        source = path.read_text("utf-8")
        found = [m.group(1) for m in own_map.finditer(source)]
        found += [w for w in words if f't("{w}")' in source or f"t('{w}')" in source]
        if found:
            offenders[path.name] = sorted(set(found))
    assert offenders == {}


def test_the_js_labels_module_reads_the_server_labels():
    source = (WEB / "static" / "js" / "lib" / "labels.js").read_text("utf-8")
    assert "boot.labels" in source
    assert "labels" in (WEB / "templates" / "base.html").read_text("utf-8")
