"""Every string the UI shows exists in English and has a Russian translation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from frontdesk.web import i18n

WEB = Path(i18n.__file__).parent
# _("…") / _('…') in templates and t("…") / t('…') / t(`…`) in JavaScript (a literal, no expressions).
TEMPLATE_CALL = re.compile(r"""\b_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")
JS_CALL = re.compile(r"""(?<![\w.$])t\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")


def _used() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for path in sorted((WEB / "templates").glob("*.html")):
        for match in TEMPLATE_CALL.finditer(path.read_text("utf-8")):
            used.setdefault(match.group(1) or match.group(2), set()).add(path.name)
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
    untranslated = {m: f for m, f in untranslated.items() if m not in {"Frontdesk"} and re.search(r"[A-Za-z]{3}", m)}
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


def test_no_two_catalog_files_translate_one_text_differently():
    """All .po files of a language merge into one catalog: a clash would silently override."""
    from babel.messages.pofile import read_po

    for lang in i18n.LANGUAGES:
        seen: dict[str, tuple[str, str]] = {}
        clashes = []
        for path in sorted((i18n.LOCALE_DIR / lang).glob("*.po")):
            with path.open("rb") as fh:
                for message in read_po(fh, locale=lang):
                    if not message.id or not isinstance(message.id, str) or not message.string:
                        continue
                    before = seen.setdefault(message.id, (str(message.string), path.name))
                    if before[0] != message.string:
                        clashes.append((message.id, before, (message.string, path.name)))
        assert clashes == [], f"{lang}: the same text translated differently"
