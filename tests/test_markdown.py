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
    "hr", "li", "ol", "p", "pre", "s", "span", "strong", "table", "tbody", "td", "th",
    "thead", "tr", "ul",
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
    assert page.startswith('<pre><code class="language-python">')
    assert '<span class="k">def</span>' in page
    assert '<span class="nf">f</span>' in page
    assert '<span class="c1"># one more</span>' in page
    assert _code_of(page) == code  # no line dropped, none added


@pytest.mark.parametrize("code", ["x = 1", 'x = """\nopen string', "def f(", "# comment", "\tx"])
def test_highlighting_keeps_the_code_of_an_open_fence(code: str) -> None:
    assert _code_of(render(f"```python\n{code}")) == code


def test_unknown_language_is_escaped_plain_code() -> None:
    assert render("```no-such-language\na < b\n```") == (
        '<pre><code class="language-no-such-language">a &lt; b\n</code></pre>\n'
    )


def test_fence_without_language_is_plain_code() -> None:
    assert render("```\n<b>\n```") == "<pre><code>&lt;b&gt;\n</code></pre>\n"
