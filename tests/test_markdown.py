"""The configured parser: safety, links and images, math, highlighting, fixtures.

The expected HTML of ``tests/fixtures/markdown/*.md`` is in the ``.html`` file beside
each one. After an intended change of output, regenerate them and review the diff::

    python -c "from pathlib import Path; from nbclaude.markdown import render; \
[p.with_suffix('.html').write_text(render(p.read_text('utf-8')), 'utf-8') \
for p in Path('tests/fixtures/markdown').glob('*.md')]"
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from markdown_it.utils import read_fixture_file

import nbclaude.markdown
from nbclaude import look
from nbclaude.highlight import TOKEN_STYLES
from nbclaude.markdown import IncrementalRenderer, make_parser, render

FIXTURES = Path(__file__).parent / "fixtures" / "markdown"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "markdown"


def test_public_names() -> None:
    assert nbclaude.markdown.__all__ == [
        "IncrementalRenderer",
        "Update",
        "make_parser",
        "render",
    ]


_CODE_BLOCK = re.compile(r"<pre\b.*?</pre>", re.DOTALL)
_WHITESPACE_TOKEN = re.compile(r'<span class="w">(\s*)</span>')


def same_highlighting(html: str) -> str:
    """``html`` with what Pygments releases write differently in code blocks made alike.

    Pygments 2.19 began to mark some spaces as tokens of their own, and 2.21 stopped
    escaping ``"`` in text; the fixtures hold the newest output. Only code blocks are
    touched: a quote in an attribute must stay escaped.
    """

    def alike(match: re.Match[str]) -> str:
        return _WHITESPACE_TOKEN.sub(r"\1", match[0]).replace("&quot;", '"')

    return _CODE_BLOCK.sub(alike, html)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.md")), ids=lambda path: path.stem)
def test_fixture(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    expected = same_highlighting(path.with_suffix(".html").read_text(encoding="utf-8"))
    assert same_highlighting(render(text)) == expected
    renderer = IncrementalRenderer()
    for line in text.splitlines(keepends=True):
        renderer.append(line)
        renderer.update()
    assert same_highlighting(renderer.finish()) == expected


def test_make_parser_builds_the_parser_render_uses() -> None:
    text = (FIXTURES / "answer.md").read_text(encoding="utf-8")
    assert make_parser().render(text) == render(text)
    assert make_parser() is not make_parser()


# --------------------------------------------------------------------------------------
# Untrusted input
# --------------------------------------------------------------------------------------

SAFE_TAGS = {
    "a", "blockquote", "br", "code", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "input", "li", "ol", "p", "pre", "s", "section", "span", "strong", "sup",
    "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
SAFE_SCHEMES = {"", "http", "https", "mailto"}


class _TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def assert_inert(page: str, *, images: bool = False) -> None:
    """Check HTML the way a browser would read it: tags, attributes, URLs."""
    assert "<script" not in page.lower()
    collector = _TagCollector()
    collector.feed(page)
    collector.close()
    for tag, attrs in collector.tags:
        assert tag in SAFE_TAGS | ({"img"} if images else set()), page
        if tag == "input":  # a task list's checkbox, which nothing can tick
            assert ("type", "checkbox") in attrs, page
            assert ("disabled", "disabled") in attrs, page
        for name, value in attrs:
            assert not name.startswith("on"), page
            if name in {"href", "src"}:
                # What a browser does first: drop tabs and newlines, trim controls.
                url = re.sub(r"[\t\n\r]", "", value or "").strip("".join(map(chr, range(33))))
                assert urlsplit(url).scheme.lower() in SAFE_SCHEMES, f"{name}={value!r}: {page!r}"


def _xss_payloads() -> list[str]:
    return [markdown for _, _, markdown, _ in read_fixture_file(SHARED_DATA / "xss.md")]


OWN_ATTACKS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    '<img src="x" onerror="alert(1)">',
    "<svg/onload=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](  javascript:alert(1)  )",
    "[x](<java\tscript:alert(1)>)",
    "[x](&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1))",
    "[x](&#x6A;avascript&colon;alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](file:///etc/passwd)",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "[x](data:image/png;base64,iVBORw0KGgo=)",
    "![x](data:image/png;base64,iVBORw0KGgo=)",
    "![x](javascript:alert(1))",
    '![x](https://evil.example/a.png "onerror=alert(1)")',
    '![x" onerror="alert(1)](https://evil.example/a.png)',
    "<javascript:alert(1)>",
    "<JAVASCRIPT:alert(1)>",
    "<data:text/html,<script>alert(1)</script>>",
    "[x]: javascript:alert(1)\n\n[x]",
    '[x]: https://ok.example "a" onclick="b"\n\n[x]',
    '```"><script>alert(1)</script>\ncode\n```',
    "```js onload=alert(1)\ncode\n```",
    "$<script>alert(1)</script>$",
    "$$\n</div><script>alert(1)</script>\n$$",
    "\\(<img src=x onerror=alert(1)>\\)",
    "| a |\n|---|\n| <script>alert(1)</script> |",
    "[x](vscode://command/workbench.action.terminal.new)",
    # Bare URLs: only the schemes of the allowlist become links.
    "javascript:alert(1)",
    "javascript://www.example.com/%0Aalert(1)",
    "JAVASCRIPT://example.com/%0aalert(1) vbscript://x.org data://x.org file:///etc/passwd",
    'www.example.com/"onmouseover="alert(1) https://example.com/"><script>',
    "a@b.example?subject=%22%3E%3Cscript%3E and mailto:a@b.example",
    # Task lists and footnotes: their markup is the plugin's, their text is escaped.
    "- [ ] <img src=x onerror=alert(1)>\n- [x] [x](javascript:alert(1))",
    "a[^1]\n\n[^1]: [x](javascript:alert(1)) <script>alert(1)</script>",
    '[^"><script>]\n\n[^"><script>]: <b onclick=alert(1)>',
]


@pytest.mark.parametrize("remote_images", [False, True])
@pytest.mark.parametrize("payload", _xss_payloads() + OWN_ATTACKS)
def test_untrusted_markdown_renders_inert(payload: str, remote_images: bool) -> None:
    assert_inert(render(payload, remote_images=remote_images), images=remote_images)
    renderer = IncrementalRenderer(remote_images=remote_images)
    live = ""
    for char in payload:
        renderer.append(char)
        update = renderer.update()
        live += update.frozen
        assert_inert(live + update.tail, images=remote_images)
    assert_inert(renderer.finish(), images=remote_images)


def test_raw_html_shows_as_text() -> None:
    assert render("<b>bold</b> <!-- c -->") == "<p>&lt;b&gt;bold&lt;/b&gt; &lt;!-- c --&gt;</p>\n"


@pytest.mark.parametrize(
    "url", ["https://example.com/a?b=c#d", "http://x", "mailto:a@b.c", "/relative", "#anchor"]
)
def test_safe_links_are_kept(url: str) -> None:
    assert render(f"[x]({url})").startswith(f'<p><a href="{html.escape(url)}"')


# --------------------------------------------------------------------------------------
# Links and images
# --------------------------------------------------------------------------------------


def test_links_open_in_a_new_tab_without_referrer() -> None:
    expected = '<a href="https://example.com" rel="noopener noreferrer" target="_blank">'
    assert render("[x](https://example.com)") == f"<p>{expected}x</a></p>\n"
    assert render("<https://example.com>") == f"<p>{expected}https://example.com</a></p>\n"


def test_images_are_links_by_default() -> None:
    assert render('![a *cat*](https://img.example/cat.png "Cat")') == (
        '<p><a href="https://img.example/cat.png" title="Cat" rel="noopener noreferrer"'
        ' target="_blank">\N{FRAME WITH PICTURE} a cat</a></p>\n'
    )


def test_image_without_alt_text_shows_its_url() -> None:
    assert "\N{FRAME WITH PICTURE} https://img.example/x.png</a>" in render(
        "![](https://img.example/x.png)"
    )


def test_image_inside_a_link_is_its_label() -> None:
    assert render("[![build](https://ci.example/b.svg)](https://ci.example)") == (
        '<p><a href="https://ci.example" rel="noopener noreferrer" target="_blank">'
        "\N{FRAME WITH PICTURE} build</a></p>\n"
    )


def test_remote_images_when_allowed() -> None:
    assert render("![a](https://img.example/a.png)", remote_images=True) == (
        '<p><img src="https://img.example/a.png" alt="a"></p>\n'
    )


# --------------------------------------------------------------------------------------
# Task lists
# --------------------------------------------------------------------------------------

_CHECKBOX = '<input class="task-list-item-checkbox" {}disabled="disabled" type="checkbox">'
_UNCHECKED, _CHECKED = _CHECKBOX.format(""), _CHECKBOX.format('checked="checked" ')


def test_task_lists_are_checkboxes_nobody_can_tick() -> None:
    assert render("- [ ] todo\n- [x] done\n- [X] also\n- not a task\n") == (
        '<ul class="contains-task-list">\n'
        f'<li class="task-list-item">{_UNCHECKED} todo</li>\n'
        f'<li class="task-list-item">{_CHECKED} done</li>\n'
        f'<li class="task-list-item">{_CHECKED} also</li>\n'
        "<li>not a task</li>\n"
        "</ul>\n"
    )
    assert render("1. [x] *done*") == (
        '<ol class="contains-task-list">\n'
        f'<li class="task-list-item">{_CHECKED} <em>done</em></li>\n'
        "</ol>\n"
    )


@pytest.mark.parametrize("markdown", ["[ ] not in a list", "- [] no space", "- [ ]", "- [y] no"])
def test_brackets_that_are_not_tasks(markdown: str) -> None:
    assert "<input" not in render(markdown)


def test_checkboxes_are_not_clickable() -> None:
    page = render("- [ ] a\n  - [x] nested\n\n> - [ ] quoted\n")
    assert page.count("<input") == page.count('disabled="disabled"') == 3
    assert "<label" not in page
    assert "enabled" not in page


# --------------------------------------------------------------------------------------
# Bare URLs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "href"),
    [
        ("www.example.com", "http://www.example.com"),
        ("WWW.Example.com/a?b=c", "http://WWW.Example.com/a?b=c"),
        ("https://example.com/a_b", "https://example.com/a_b"),
        ("https://example.com/a_b_c_", "https://example.com/a_b_c_"),
        ("http://localhost:8888/lab", "http://localhost:8888/lab"),
        ("someone@example.com", "mailto:someone@example.com"),
        ("mailto:someone@example.com", "mailto:someone@example.com"),
    ],
)
def test_bare_urls_are_links(url: str, href: str) -> None:
    assert render(f"See {url} now") == (
        f'<p>See <a href="{html.escape(href)}" rel="noopener noreferrer" target="_blank">'
        f"{html.escape(url)}</a> now</p>\n"
    )


def test_bare_urls_keep_the_markdown_around_them() -> None:
    link = '<a href="{0}" rel="noopener noreferrer" target="_blank">{0}</a>'
    assert render("*https://example.com/x* (https://example.com/y).") == (
        f"<p><em>{link.format('https://example.com/x')}</em>"
        f" ({link.format('https://example.com/y')}).</p>\n"
    )
    assert render("`https://example.com` and [a](https://a.example)") == (
        "<p><code>https://example.com</code> and"
        ' <a href="https://a.example" rel="noopener noreferrer" target="_blank">a</a></p>\n'
    )


@pytest.mark.parametrize(
    "text",
    [
        "setup.py",
        "README.md",
        "src/main.rs",
        "example.com",
        "notes.txt and v1.2.3",
        "javascript:alert(1)",
        "ftp://example.com/file",
        "file:///etc/passwd",
        "http\\://example.com/",
    ],
)
def test_text_that_is_not_a_bare_link(text: str) -> None:
    assert "<a" not in render(text)


def test_unsafe_schemes_never_become_links() -> None:
    page = render("javascript://www.example.com/%0Aalert(1) and JavaScript:alert(1)")
    assert_inert(page)
    assert 'href="javascript' not in page.lower()


# --------------------------------------------------------------------------------------
# Footnotes
# --------------------------------------------------------------------------------------

FOOTNOTES = (
    "Claim[^1] and another[^note].\n\n[^1]: First.\n[^note]: Second, see https://example.com.\n"
)


def test_footnotes() -> None:
    assert render(FOOTNOTES) == (
        '<p>Claim<sup class="footnote-ref"><a href="#fn-d718c98c-1" id="fnref-d718c98c-1">'
        '[1]</a></sup> and another<sup class="footnote-ref">'
        '<a href="#fn-d718c98c-2" id="fnref-d718c98c-2">[2]</a></sup>.</p>\n'
        '<hr class="footnotes-sep">\n'
        '<section class="footnotes">\n'
        '<ol class="footnotes-list">\n'
        '<li id="fn-d718c98c-1" class="footnote-item"><p>First.'
        ' <a href="#fnref-d718c98c-1" class="footnote-backref">\N{LEFTWARDS ARROW WITH HOOK}</a>'
        "</p>\n</li>\n"
        '<li id="fn-d718c98c-2" class="footnote-item"><p>Second, see'
        ' <a href="https://example.com" rel="noopener noreferrer" target="_blank">'
        "https://example.com</a>."
        ' <a href="#fnref-d718c98c-2" class="footnote-backref">\N{LEFTWARDS ARROW WITH HOOK}</a>'
        "</p>\n</li>\n"
        "</ol>\n"
        "</section>\n"
    )


def test_footnotes_are_numbered_in_order_of_first_reference() -> None:
    page = render("a[^z] b[^y] c[^z]\n\n[^y]: Y\n[^z]: Z\n[^x]: never used\n")
    ids = [re.sub("-[0-9a-f]{8}-", "-", id_) for id_ in re.findall(r'id="(fn[^"]*)"', page)]
    assert ids == ["fnref-1", "fnref-2", "fnref-1:1", "fn-1", "fn-2"]
    assert re.findall(r"<p>(\w) <a", page) == ["Z", "Y"]
    assert "never used" not in page


def test_footnote_links_jump_within_the_page() -> None:
    page = render(FOOTNOTES)
    anchors = re.findall(r'<a href="#[^"]*"[^>]*>', page)
    assert len(anchors) == 4
    assert not any("target" in anchor or "rel=" in anchor for anchor in anchors)


def test_the_back_link_is_plain_text() -> None:
    page = render(FOOTNOTES)
    assert page.count(">\N{LEFTWARDS ARROW WITH HOOK}</a>") == 2
    assert "\N{VARIATION SELECTOR-15}" not in page


def test_footnote_ids_differ_between_replies_and_not_between_renderings() -> None:
    other = FOOTNOTES.replace("Claim", "Another claim")
    ids = re.findall(r'id="([^"]+)"', render(FOOTNOTES))
    assert ids == re.findall(r'id="([^"]+)"', render(FOOTNOTES))
    assert ids == re.findall(r'id="([^"]+)"', make_parser().render(FOOTNOTES))
    assert set(ids).isdisjoint(re.findall(r'id="([^"]+)"', render(other)))
    # The id names the text before the first definition: the notes may change without it.
    assert ids == re.findall(r'id="([^"]+)"', render(FOOTNOTES.replace("First", "1st")))


@pytest.mark.parametrize(
    "markdown",
    ["Undefined[^nope].", "Inline ^[footnotes] are off: ^[a-z]+", "[^ spaced]\n\n[^ spaced]: x"],
)
def test_what_is_not_a_footnote_stays_text(markdown: str) -> None:
    page = render(markdown)
    assert "<sup" not in page
    assert "<section" not in page
    assert "^" in page


# --------------------------------------------------------------------------------------
# Math
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "html_math"),
    [
        ("$a_1 * b_2 * c$", '<span class="math inline">\\(a_1 * b_2 * c\\)</span>'),
        ("$x_1$ and $y_2$", '<span class="math inline">\\(y_2\\)</span>'),
        ("$a\\$b$", '<span class="math inline">\\(a\\$b\\)</span>'),
        ("$a < b$", '<span class="math inline">\\(a &lt; b\\)</span>'),
        (
            "\\(\\alpha_1 * \\beta_2\\)",
            '<span class="math inline">\\(\\alpha_1 * \\beta_2\\)</span>',
        ),
        ("a \\[x_1 = y_2\\] b", '<span class="math display">\\[x_1 = y_2\\]</span>'),
        ("a $$x_1 = *y*$$ b", '<span class="math display">\\[x_1 = *y*\\]</span>'),
        (
            "$$\na_1 & b_2 \\\\\n- c\n$$",
            '<div class="math display">\\[a_1 &amp; b_2 \\\\\n- c\n\\]</div>',
        ),
        ("\\[\n\\sum_i x_i\n\\]", '<div class="math display">\\[\\sum_i x_i\n\\]</div>'),
        ("$$ E = mc^2 $$", '<div class="math display">\\[ E = mc^2 \\]</div>'),
        ("- $$\n  x_1\n  $$", '<li>\n<div class="math display">\\[x_1\n\\]</div>\n</li>'),
        ("$$\nx_1\n\ny_2", '<div class="math display">\\[x_1\n\ny_2\\]</div>'),
    ],
)
def test_math_survives_markdown(markdown: str, html_math: str) -> None:
    assert html_math in render(markdown)


@pytest.mark.parametrize(
    "markdown",
    [
        "It costs $5 and $10.",
        "Between $5-$10 a month.",
        "$20,000 and $30,000",
        "$ x $ has spaces inside",
        "one $x $ two",
        "$x$5",
        "Escaped \\$x\\$ dollars",
        "`$x$` in code",
        "I paid\n$$ in cash",
        "It costs $$ a lot",
        "\\\\(not math\\\\)",
    ],
)
def test_text_that_is_not_math(markdown: str) -> None:
    assert not re.search('class="math (inline|display)"', render(markdown))


def test_literal_dollars_and_backslashes_are_kept_from_typesetting() -> None:
    page = render("It costs $5 and $10 in C:\\Users.")
    guard = '<span class="mathjax_ignore">{}</span>'
    assert page == (
        f"<p>It costs {guard.format('$')}5 and {guard.format('$')}10"
        f" in C:{guard.format(chr(92))}Users.</p>\n"
    )


# --------------------------------------------------------------------------------------
# Code highlighting
# --------------------------------------------------------------------------------------


def _code_of(page: str) -> str:
    """The text inside ``<code>``, as the browser shows it."""
    match = re.search(r"<code[^>]*>(.*)</code>", page, re.DOTALL)
    assert match is not None
    return html.unescape(re.sub(r"<[^>]+>", "", match.group(1)))


def test_python_fence_is_highlighted() -> None:
    code = "\n\ndef f(x):\n    return x + 1  # one more\n\n"
    page = render(f"```python\n{code}```")
    assert '<code class="language-python" style="' in page
    assert f'<span style="{TOKEN_STYLES["k"]}">def</span>' in page
    assert f'<span style="{TOKEN_STYLES["nf"]}">f</span>' in page
    assert f'<span style="{TOKEN_STYLES["c1"]}"># one more</span>' in page
    assert _code_of(page) == code  # no line dropped, none added


def test_a_fence_is_a_panel_labelled_with_its_language() -> None:
    page = render("```python\nx = 1\n```\n\n```\nplain\n```")
    first, second = page.split("</div>\n")[:2]
    assert first.startswith(f'<div style="{look.CODE_PANEL}">')
    assert f'<div style="{look.CODE_LABEL}">python</div><pre style="{look.PRE}">' in first
    assert second.startswith(f'<div style="{look.CODE_PANEL}"><pre style="{look.PRE}">')
    assert look.CODE.endswith("white-space: pre")  # long lines scroll, never wrap mid-word


@pytest.mark.parametrize("code", ["x = 1", 'x = """\nopen string', "def f(", "# comment", "\tx"])
def test_highlighting_keeps_the_code_of_an_open_fence(code: str) -> None:
    assert _code_of(render(f"```python\n{code}")) == code


def test_unknown_language_is_escaped_plain_code() -> None:
    assert render("```no-such-language\na < b\n```") == look.code_panel(
        "a &lt; b\n", "no-such-language"
    )


def test_fence_without_language_is_plain_code() -> None:
    assert render("```\n<b>\n```") == look.code_panel("&lt;b&gt;\n")
