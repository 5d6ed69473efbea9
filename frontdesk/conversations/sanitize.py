"""HTML that agents (and later customers' emails) write, made safe to show and to send.

:func:`sanitize_html` keeps ordinary formatting (paragraphs, lists, links, tables, images) and
removes everything that can run code: ``<script>``/``<style>`` with their content, every ``on*``
attribute, ``style`` attributes, and links or images whose URL scheme is not on the allow-list
(``javascript:``, ``data:``, ``vbscript:`` …). :func:`html_to_text` gives the plain-text version
every message carries (SMS, search, the timeline).
"""

from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser

import nh3

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del", "div",
        "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li",
        "mark", "ol", "p", "pre", "q", "s", "small", "span", "strike", "strong", "sub", "sup", "table",
        "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
    "ol": {"start"},
    "blockquote": {"cite"},
    "q": {"cite"},
}
ALLOWED_URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
# Removed together with everything inside them (not just the tags).
DROP_WITH_CONTENT = frozenset({"script", "style", "template", "iframe", "object", "embed", "noscript", "title"})

_BLOCK_TAGS = frozenset(
    {
        "p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "hr",
        "table", "ul", "ol", "dl", "dt", "dd", "caption",
    }
)  # fmt: skip
_BLANK_LINES = re.compile(r"\n{3,}")
_SPACES = re.compile(r"[ \t\r\f\v]+")


def sanitize_html(value: str) -> str:
    """A safe HTML fragment: allow-listed tags, attributes and URL schemes only."""
    return nh3.clean(
        value,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROP_WITH_CONTENT),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(ALLOWED_URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    ).strip()


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROP_WITH_CONTENT:
            self._skip += 1
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in ("td", "th"):
            self.parts.append(" ")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in DROP_WITH_CONTENT:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS and tag not in ("li", "tr"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(value: str) -> str:
    """Readable plain text from HTML: block elements become line breaks, list items dashes."""
    parser = _TextExtractor()
    parser.feed(value)
    parser.close()
    text = html_lib.unescape("".join(parser.parts))
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
