"""Highlighting: the joined-rules lexer gives Pygments' own tokens, and the colours.

:class:`CombinedRegexLexer` replaces Pygments' rule-by-rule loop, so every test of it
compares with that loop on the same text: real code in the languages replies use,
Python's and Pygments' own sources, and random splices of them (unclosed strings, stray
quotes and brackets: what an open fence streams).
"""

from __future__ import annotations

import html
import inspect
import random
import re
from typing import Any

import pygments.lexers.python
import pygments.lexers.shell
import pytest
from pygments.lexer import RegexLexer, bygroups, combined, default, include, this, using, words
from pygments.lexers import get_lexer_by_name
from pygments.token import Comment, Keyword, Name, Number, Punctuation, String, Text

import nbclaude.highlight
from nbclaude.highlight import TOKEN_STYLES, CombinedRegexLexer, highlight, lexer_for
from nbclaude.markdown import render

SAMPLES = {
    "python": '''
import re, sys
from dataclasses import dataclass

@dataclass(frozen=True)
class Point:
    """A point.\\n"""
    x: float = 0.0
    y: float = -1e-3

    def norm(self) -> float:
        return (self.x ** 2 + self.y ** 2) ** 0.5  # euclid

async def main(*args, **kw):
    s = f"{args!r:>10} {kw['a']} {{literal}}" + rb'\\x00' + u'ü'
    match args:
        case [x, *rest] if x > 0x1F:
            await thing(lambda q: q @ q, 0o17, 0b101, 1_000j)
        case _:
            pass
    print(r"\\d+", """multi
line""", file=sys.stderr)
''',
    "javascript": r"""
// a comment
const re = /ab+c/gi, t = `x ${a + `inner ${b}`} y`;
function* gen(a = 1, ...rest) { yield a?.b ?? rest[0]; }
class A extends B { #p = 0x1f; static async m() { return await import('./x.js'); } }
let s = 'it\'s', d = "q\"q"; /* block
comment */ export default { a: 1n, b: .5e-3 };
""",
    "typescript": r"""
interface P<T extends object = {}> { readonly a?: T; [k: string]: unknown }
type U = 'a' | "b" | `c${number}`;
enum E { A = 1 << 2, B }
export abstract class C implements P<Map<string, number[]>> {
  constructor(private x: number) { super(); }
  @dec() method<T>(this: C, y: T): asserts y is T { return <any>y as never; }
}
""",
    "bash": r"""
#!/usr/bin/env bash
set -euo pipefail
for f in "$@" *.txt; do echo "${f%.txt} $((1 + 2)) `date`" > /dev/null 2>&1; done
cat <<EOF
heredoc $HOME
EOF
if [[ -n ${VAR:-x} && $# -gt 0 ]]; then arr=(a 'b c'); fi; x=$(ls | wc -l) # c
""",
    "sql": """
SELECT a.id, COUNT(*) AS n, 'it''s' FROM users a
LEFT JOIN orders o ON o.user_id = a.id -- comment
WHERE a.created_at >= DATE '2024-01-01' AND a.name LIKE "%x%" /* block */
GROUP BY 1 HAVING n > 3.5e2 ORDER BY n DESC;
""",
    "html": """
<!DOCTYPE html><html lang="en"><!-- c --><head><style>p { color: red; }</style>
<script>if (a < b && c) { alert("x"); }</script></head>
<body class=x data-a='1'>&amp; &#169; <br/><p>text</p></body></html>
""",
    "css": """
@media (max-width: 600px) { .a > .b:hover::after, #id[data-x="1"] { color: #fff !important;
  margin: 0 auto; width: calc(100% - 2em); background: url(x.png) } }
@import url("x.css"); :root { --var: 1.5rem; } /* c */
""",
    "java": """
package a.b; import java.util.*;
@SuppressWarnings("unchecked") public final class M<T extends Comparable<T>> {
  private static final long X = 0xFFL; char c = '\\n'; String s = "q\\"q";
  public static void main(String... args) throws Exception { var r = switch (x) { case 1 -> 2;
  default -> { yield 3; } }; /* c */ }
}
""",
    "go": """
package main
import ("fmt"; "os")
type T struct{ A int `json:"a"` }
func (t *T) M(ch chan<- int) (err error) { defer func() { recover() }(); ch <- 0x1f; return }
func main() { s := []rune("ü"); fmt.Println(s, 'x', 1.5i, os.Args) // c
}
""",
    "rust": r"""
#[derive(Debug, Clone)]
pub struct S<'a, T: Copy> { r: &'a str, v: Vec<T> }
impl<'a, T: Copy> S<'a, T> { fn f(&self) -> Option<u8> { let b = b'x'; let s = r#"raw "q""#;
  match self.v.len() { 0 => None, n @ 1..=9 => Some(n as u8), _ => panic!("{}", 1_000u32) } } }
// c
/* block /* nested */ */
""",
    "yaml": """
key: value
list:
  - a: 1
    b: "two"
  - !tag &anchor {x: [1, 2], y: 'z'}
multi: |
  line one
  line two
ref: *anchor # comment
""",
    "toml": """
[tool.x]
a = 1
b = "str"
c = [1, 2.5, true, 1979-05-27T07:32:00Z]
d = { inline = 'yes' }
""",
    "diff": """
--- a/x.py
+++ b/x.py
@@ -1,3 +1,3 @@
-old line
+new line
 context
""",
    "latex": r"""
\documentclass{article}
\begin{document}
$E = mc^2$ and \[ \int_0^1 x\,dx \] % comment
\section{Title} \textbf{bold}
\end{document}
""",
}

LANGUAGES = [
    "python",
    "javascript",
    "typescript",
    "bash",
    "sql",
    "html",
    "css",
    "java",
    "go",
    "rust",
    "yaml",
    "toml",
    "diff",
    "latex",
]

_ALPHABET = "abcxyz_019 \t\n\n" + "\"'`" * 3 + "\\\\#/*<>{}[]()$@%&|!?:;.,=+-~^" + "üé€→\u200b"


def tokens(lexer: Any, text: str) -> list[tuple[Any, str]]:
    return list(lexer.get_tokens(text))


def pygments_lexer(language: str) -> Any:
    return get_lexer_by_name(language, stripnl=False, ensurenl=False)


def splices(sample: str, count: int, seed: int) -> list[str]:
    """Random texts made of pieces of ``sample`` and of characters code is made of."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        pieces = []
        for _ in range(rng.randint(1, 6)):
            if rng.random() < 0.6:
                start = rng.randrange(len(sample))
                pieces.append(sample[start : start + rng.randint(1, 60)])
            else:
                pieces.append("".join(rng.choices(_ALPHABET, k=rng.randint(1, 12))))
        texts.append("".join(pieces))
    return texts


def test_public_names() -> None:
    assert nbclaude.highlight.__all__ == [
        "TOKEN_STYLES",
        "CombinedRegexLexer",
        "highlight",
        "lexer_for",
    ]


# --------------------------------------------------------------------------------------
# The joined-rules lexer
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_tokens_are_pygments_own_on_code(language: str) -> None:
    sample = SAMPLES[language]
    assert tokens(lexer_for(language), sample) == tokens(pygments_lexer(language), sample)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_tokens_are_pygments_own_on_broken_code(language: str) -> None:
    ours, theirs = lexer_for(language), pygments_lexer(language)
    for text in splices(SAMPLES[language], 150, seed=sum(map(ord, language))):
        assert tokens(ours, text) == tokens(theirs, text), text


@pytest.mark.parametrize(
    "module", [inspect, re, pygments.lexers.python, pygments.lexers.shell], ids=str
)
def test_the_tokens_are_pygments_own_on_long_sources(module: object) -> None:
    """Whole modules: Python's own, and Pygments' lexers, which are mostly regexes."""
    source = inspect.getsource(module)  # type: ignore[arg-type]
    for language in ("python", "ipython"):
        assert tokens(lexer_for(language), source) == tokens(pygments_lexer(language), source)


@pytest.mark.parametrize(
    "language", ["python", "javascript", "typescript", "sql", "html", "css", "java", "go"]
)
def test_the_languages_replies_use_most_lex_with_joined_rules(language: str) -> None:
    lexer = lexer_for(language)
    assert isinstance(lexer, CombinedRegexLexer)
    assert type(lexer.lexer) is type(pygments_lexer(language))


def test_lexers_with_a_loop_of_their_own_are_used_as_they_are() -> None:
    assert type(lexer_for("json")) is type(pygments_lexer("json"))  # hand-written lexer
    assert type(lexer_for("c")) is type(pygments_lexer("c"))  # post-processes its tokens
    assert lexer_for("no-such-language") is None


class Tricky(RegexLexer):
    """Every kind of rule and transition Pygments has, and rules that cannot be joined."""

    name = "tricky"
    tokens = {  # noqa: RUF012 (Pygments' layout)
        "root": [
            (r"\s+", Text),
            (r"#.*?$", Comment),
            (r"(?i)select\b", Keyword),  # a global flag of its own
            (words(("if", "else"), suffix=r"\b"), Keyword),
            (r"(def)(\s+)(\w+)", bygroups(Keyword, Text, Name.Function)),
            (r"\[", Punctuation, "list"),
            (r'"', String, combined("string", "escape")),
            (r"\{", Punctuation, ("block", "block")),  # two states at once
            (r"(`)([^`]*)(`)", bygroups(Punctuation, using(this, state="list"), Punctuation)),
            (r"\d+", Number),
            (r"\w+", Name),
        ],
        "list": [
            (r"\]", Punctuation, "#pop"),
            (r"\[", Punctuation, "#push"),
            (r",", Punctuation),
            include("root"),
        ],
        "block": [
            (r"\}\}", Punctuation, "#pop:2"),
            (r"\}", Punctuation, "#pop"),
            default("root"),  # an empty match that changes state
        ],
        "string": [(r'"', String, "#pop"), (r'[^"\\]+', String)],
        "escape": [(r"\\.", String.Escape)],
        "heredoc": [
            (r"<<(\w+).*?\1", String),  # a numbered back reference: not joined
            (r"(?x) \w+  # a verbose rule with a comment", Name),  # not joined either
            (r"(?s)\.+", Punctuation, "#pop"),
        ],
        "heredocs": [(r"<<", String, "heredoc"), include("root")],
    }


TRICKY_SAMPLE = """select x, SELECT [1, [2, 3], y] "a\\"b" {z} {{w}} `q, [r]` def f
if 12 else # c
"unclosed [ { } }} ]] `"""


def test_every_kind_of_rule_and_transition_gives_pygments_tokens() -> None:
    ours, theirs = CombinedRegexLexer(Tricky(stripnl=False)), Tricky(stripnl=False)
    for text in [TRICKY_SAMPLE, *splices(TRICKY_SAMPLE, 300, seed=7)]:
        assert tokens(ours, text) == tokens(theirs, text), text


@pytest.mark.parametrize(
    "text", ["<<EOF body EOF. rest", "<<a b c...", "<<\n", "select <<x x.. [1]"]
)
def test_states_whose_rules_cannot_be_joined_still_lex_as_pygments_does(text: str) -> None:
    ours, theirs = CombinedRegexLexer(Tricky(stripnl=False)), Tricky(stripnl=False)
    for stack in (("root", "heredocs"), ("root", "heredoc")):
        assert list(ours.get_tokens_unprocessed(text, stack)) == list(
            theirs.get_tokens_unprocessed(text, stack)
        )


def test_highlight_is_pygments_html_coloured_inline() -> None:
    from pygments import highlight as pygments_highlight
    from pygments.formatters import HtmlFormatter

    sample = SAMPLES["python"]
    pygments = pygments_highlight(sample, pygments_lexer("python"), HtmlFormatter(nowrap=True))
    ours = highlight(sample, "python", "")
    # The same text, with the same tokens coloured: only the markup around them differs.
    assert html.unescape(re.sub(r"<[^>]+>", "", ours)) == html.unescape(
        re.sub(r"<[^>]+>", "", pygments)
    )
    keywords = [
        text
        for name, text in re.findall(r'<span class="([^"]+)">([^<]*)</span>', pygments)
        if TOKEN_STYLES.get(name) == TOKEN_STYLES["k"]
    ]
    assert keywords
    # Neighbouring keywords share a span ("async def"), so compare the words.
    keyword_span = rf'<span style="{re.escape(TOKEN_STYLES["k"])}">([^<]*)</span>'
    ours_keywords = re.findall(keyword_span, ours)
    assert " ".join(ours_keywords).split() == keywords


def test_neighbours_of_one_colour_share_a_span() -> None:
    ours = highlight('x = "a" if y is not None else 1\n', "python", "")
    string, keyword = TOKEN_STYLES["s2"], TOKEN_STYLES["k"]
    assert f'<span style="{string}">"a"</span>' in ours  # quotes and text: one span
    assert f'<span style="{keyword}">is not</span>' in ours  # the space between joins them
    assert ours.startswith("x = <span")  # "=" keeps the text colour
    assert ours.endswith("</span>\n")  # trailing plain text is kept


# --------------------------------------------------------------------------------------
# Colours
# --------------------------------------------------------------------------------------


def test_every_coloured_token_is_styled_inline_and_plain_ones_bare() -> None:
    page = render("```python\n@cache\nclass A(B):\n    x: int = 0x1F  # c\n    s = f'{x}'\n```")
    assert "<span class=" not in page  # no class needs a stylesheet
    styles = set(re.findall(r'<span style="([^"]+)">', page))
    assert {TOKEN_STYLES[c] for c in ("k", "nc", "nd", "mh", "c1", "s1")} <= styles
    assert "font-style: italic" in TOKEN_STYLES["c1"]


def test_colours_follow_the_jupyterlab_theme_with_fallbacks() -> None:
    for style in TOKEN_STYLES.values():
        colour = re.search(r"color: ([^;]+)", style)
        if colour is not None:
            assert re.fullmatch(
                r"var\(--jp-mirror-editor-[\w-]+-color, #[0-9a-f]{6}\)|#[0-9a-f]{6}", colour[1]
            ), colour[1]
    assert "var(--jp-mirror-editor-keyword-color, " in TOKEN_STYLES["k"]
