"""HTML sanitising and text extraction for agent replies."""

from __future__ import annotations

import pytest

from frontdesk.conversations.sanitize import html_to_text, sanitize_html


@pytest.mark.parametrize(
    ("dirty", "forbidden"),
    [
        ("<p>hi<script>alert(1)</script></p>", ["<script", "alert"]),
        ("<SCRIPT SRC=//evil.example/x.js></SCRIPT>ok", ["script", "evil"]),
        ('<p onclick="steal()">x</p>', ["onclick", "steal"]),
        ('<img src="x.png" onerror="alert(1)">', ["onerror", "alert"]),
        ('<a href="javascript:alert(1)">x</a>', ["javascript:"]),
        ('<a href="JaVaScRiPt:alert(1)">x</a>', ["javascript:"]),
        ('<a href="&#106;avascript:alert(1)">x</a>', ["avascript:"]),
        ('<img src="data:text/html;base64,PHNjcmlwdD4=">', ["data:"]),
        ('<iframe src="https://evil.example"></iframe>ok', ["iframe", "evil"]),
        ("<style>body{display:none}</style>ok", ["style", "display"]),
        ('<p style="background:url(javascript:x)">x</p>', ["style", "javascript"]),
        ('<svg onload="alert(1)"><circle/></svg>', ["svg", "onload"]),
        ('<form action="https://evil.example"><input name=p></form>', ["form", "input"]),
    ],
)
def test_dangerous_markup_is_removed(dirty: str, forbidden: list[str]) -> None:
    clean = sanitize_html(dirty).lower()
    for word in forbidden:
        assert word not in clean, (dirty, clean)


def test_ordinary_formatting_survives() -> None:
    html = (
        "<p>Hello <b>Anna</b>, <em>thanks</em>!</p><ul><li>one</li><li>two</li></ul>"
        '<a href="https://example.com/track?id=1&amp;x=2" title="Track">track</a>'
        '<a href="mailto:help@example.com">mail</a>'
    )
    clean = sanitize_html(html)
    assert "<b>Anna</b>" in clean
    assert "<li>one</li>" in clean
    assert 'href="https://example.com/track?id=1&amp;x=2"' in clean
    assert 'rel="noopener noreferrer nofollow"' in clean
    assert 'href="mailto:help@example.com"' in clean


def test_text_version() -> None:
    html = "<p>Hello&nbsp;<b>Anna</b>,</p><p>Your order:</p><ul><li>Tea</li><li>Cups &amp; saucers</li></ul>"
    html += "<script>x()</script><p>Bye<br>Team</p>"
    assert html_to_text(html) == "Hello\xa0Anna,\n\nYour order:\n\n- Tea\n- Cups & saucers\n\nBye\nTeam"
    assert html_to_text("plain") == "plain"
    assert html_to_text("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>") == "a b\nc"
    assert html_to_text("<style>p{}</style>") == ""
