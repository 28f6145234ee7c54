"""Markdown for Claude's replies: one safe parser, and a renderer that streams.

:func:`make_parser` builds the one configured markdown-it parser: the ``js-default``
preset (raw HTML off, so HTML written by the model shows as text), tables and
strikethrough, an allowlist of link schemes, links that open in a new tab without a
referrer, images shown as links unless remote images are allowed, Pygments
highlighting for fenced code, and TeX math (``$…$``, ``$$…$$``, ``\\(…\\)``,
``\\[…\\]``) passed through verbatim for MathJax or KaTeX to typeset, while the
dollars and backslashes of ordinary text are kept from being typeset ("costs $5 and
$10"). :func:`render` is the one-shot reference rendering.

Three features come from the plugins made for them, with no parsing rules of our own:

- Task lists (``- [ ] todo``, ``- [x] done``), from ``mdit_py_plugins.tasklists``:
  disabled checkboxes with no ``<label>``, so nothing in a reply is clickable but its
  links.
- Bare URLs, from markdown-it's ``linkify`` option and ``linkify-it-py``:
  ``https://…``, ``mailto:`` and e-mail addresses, and links without a scheme only
  after ``www.`` (as GitHub does: linkify-it alone would link ``setup.py`` and
  ``README.md`` to web sites). They pass the same scheme allowlist and open in a new
  tab like every other link; ``javascript:`` never becomes one.
- Footnotes (``text[^1]``, ``[^1]: note``), from ``mdit_py_plugins.footnote``,
  without its inline footnotes (``^[…]``, which regular expressions look like). A
  reference is a link only when its label is defined somewhere in the reply; the
  footnotes are numbered in order of first reference, and listed after the last
  block. Several replies share a notebook page, so each reply's footnote ids carry a
  short hash of its text before its first definition (the plugin's ``docId``): the same
  text always renders to the same HTML. The links between references and notes are
  in-page anchors, rendered by the plugin's own rules (not ``link_open``): they jump
  within the page rather than open a tab. The back-link is a plain "↩", without the
  plugin's emoji variation selector.

:class:`IncrementalRenderer` renders a reply while it streams, at a cost that follows
the open end of the reply rather than its length. It freezes every finished top-level
block, once, and re-renders only the open tail. Where one block ends and the next
begins is read from markdown-it's own top-level tokens over *complete lines only*: a
partial last line can fake a block start (``#`` vs ``#tag``, ``2`` vs ``2.``), and
lines still to come can change the block they follow (a setext underline, a table's
delimiter row, a list item or lazy continuation line, a fence's closing line). So the
last top-level block of the complete lines stays open, and everything before it is
frozen. Blocks before the last one are final, because markdown-it decides where a block
ends from lines up to the first line of the next block, all of them complete. The one
block that reads further is a link reference definition, whose title may start on the
next line and end lines later: a definition stays open with the blocks that follow it
until a blank line. A footnote definition is a top-level block like the others, and
freezing goes on after it.

Invariants, for any way of cutting the text into chunks:

1. :meth:`IncrementalRenderer.finish` returns ``render(text)``, byte for byte.
2. After every :meth:`IncrementalRenderer.update`, the frozen HTML so far plus the
   latest tail equals ``render(text so far)``, with one documented exception:
   a frozen block that uses a link reference (``[label]``, ``[text][label]``,
   ``![alt][label]``) or a footnote (``[^label]``) defined *later* in the reply keeps
   the rendering it had when it was frozen (plain text, where the label was not yet
   defined; for a footnote, also the numbers of the footnotes that follow it in the
   blocks frozen until the definition came) until :meth:`~IncrementalRenderer.finish`,
   which then renders the whole text once more, so that the final HTML is exact. The
   tail is rendered with every definition seen so far, and is exact but for the same
   exception where it shows frozen blocks: the footnote list at its end shows each
   frozen footnote definition as it was rendered when frozen.

Footnotes keep state across the whole reply, which the renderer carries from the frozen
blocks to later ones: the labels defined so far, the references made so far to each
label, defined or not yet (found by parsing the inline text that holds a ``[^`` once
more, as if every label were defined), and the tokens of the frozen definitions. So,
while a reply streams, the live view shows:

- a footnote reference whose definition came before it: as in the final HTML;
- a reference whose definition has not come yet: its text, ``[^label]``. In the tail
  it becomes a link as soon as the definition arrives; in a frozen block it stays text
  until :meth:`~IncrementalRenderer.finish` (the exception above). Replies usually
  define their footnotes at the end, so their references mostly show as text until
  then;
- no definition where it is written, but, at the end of the tail, the footnote list of
  the final HTML for the text so far: every footnote referenced so far whose definition
  has arrived, numbered and in order as it will be, with a back-link per reference
  (which leads nowhere while its reference shows as text).

The renderer works with any markdown-it parser whose rules are local to a block,
which the parser here is but for its footnotes, streamed as above. Rules that keep
other state across the whole document (heading anchors made unique, inline footnotes)
cannot be exact while streaming; when a parse leaves anything else in ``env``,
:meth:`~IncrementalRenderer.finish` renders the whole text once, so invariant 1 still
holds. Block rules that consume lines without emitting a top-level token, other than
link reference definitions, are not supported.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import re
from collections import ChainMap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from weakref import WeakKeyDictionary

from linkify_it import LinkifyIt
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml, unescapeAll
from markdown_it.renderer import RendererHTML
from markdown_it.rules_block import StateBlock
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.footnote.index import render_footnote_anchor
from mdit_py_plugins.tasklists import tasklists_plugin

from .highlight import highlight
from .look import TABLE, code_panel

__all__ = [
    "IncrementalRenderer",
    "Update",
    "make_parser",
    "render",
]


# --------------------------------------------------------------------------------------
# Links and images
# --------------------------------------------------------------------------------------

_SAFE_SCHEMES: Final = frozenset({"http", "https", "mailto"})
"""URL schemes a link or image may use. URLs without a scheme (relative, ``#anchor``,
``//host``) are allowed too; everything else (``javascript:``, ``vbscript:``,
``data:``, ``file:``, ``blob:``, app-launching schemes) is refused."""

_SCHEME_RE: Final = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")

# Browsers drop ASCII tab and newline anywhere in a URL, and C0 controls and spaces
# around it, before they look at the scheme: "java\tscript:" is "javascript:".
_URL_IGNORED_RE: Final = re.compile(r"[\t\n\r]")
_URL_TRIMMED: Final = "".join(map(chr, range(0x21)))

_LINK_ATTRS: Final = (("rel", "noopener noreferrer"), ("target", "_blank"))
_IMAGE_MARK: Final = "\N{FRAME WITH PICTURE}"


def _is_safe_url(url: str) -> bool:
    """Say whether a link or image may point at ``url``.

    Args:
        url: The destination, normalized by markdown-it (entities decoded,
            unsafe characters percent-encoded).

    Returns:
        ``True`` for URLs without a scheme and for the schemes in ``_SAFE_SCHEMES``.
    """
    url = _URL_IGNORED_RE.sub("", url).strip(_URL_TRIMMED)
    match = _SCHEME_RE.match(url)
    return match is None or match.group(1).lower() in _SAFE_SCHEMES


class _UntrustedMarkdownIt(MarkdownIt):
    """A parser for Markdown written by someone else: links keep to safe schemes."""

    def validateLink(self, url: str) -> bool:  # noqa: N802 (markdown-it's name)
        """Refuse any scheme outside the allowlist, ``data:image/…`` included."""
        return _is_safe_url(url)


def _render_link_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """Open links in a new tab, with no access to the notebook and no referrer."""
    token = tokens[idx]
    for name, value in _LINK_ATTRS:
        token.attrSet(name, value)
    return self.renderToken(tokens, idx, options, env)


class _Linkify(LinkifyIt):  # type: ignore[misc]  # linkify-it-py has no type hints
    """linkify-it for bare URLs, taking a link without a scheme only after ``www.``, as
    GitHub does.

    Left to itself, linkify-it takes any word that ends in a known top-level domain for a
    host name, and a reply about code is full of them: ``setup.py`` (Paraguay),
    ``README.md`` (Moldova), ``main.rs`` (Serbia) would each link to a web site.
    Addresses with a scheme (``https://…``) and e-mail addresses are kept as it finds them.
    """

    def match(self, text: str) -> list[Any] | None:
        """linkify-it's matches in ``text``, less the schemeless ones not after ``www.``."""
        found = super().match(text)
        kept = [link for link in found or () if link.schema or link.raw[:4].lower() == "www."]
        return kept or None


def _render_image_as_link(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """Show an image as a link to it, so that nothing is fetched until the user clicks.

    An image inside a link (a badge) shows as its label alone: links do not nest.
    """
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    label = (
        _IMAGE_MARK + " " + escapeHtml(self.renderInlineAsText(token.children, options, env) or src)
    )
    if _inside_link(tokens, idx):
        return label
    link = Token("link_open", "a", 1, attrs={"href": src})
    title = token.attrGet("title")
    if title is not None:
        link.attrSet("title", title)
    for name, value in _LINK_ATTRS:
        link.attrSet(name, value)
    return "<a" + self.renderAttrs(link) + ">" + label + "</a>"


def _inside_link(tokens: Sequence[Token], idx: int) -> bool:
    """Say whether ``tokens[idx]`` lies between a ``link_open`` and its ``link_close``."""
    depth = 0
    for token in tokens[:idx]:
        if token.type == "link_open":
            depth += 1
        elif token.type == "link_close":
            depth -= 1
    return depth > 0


# Each literal "$" and "\\" of the text goes into a span of its own. Front ends typeset
# TeX in HTML outputs (JupyterLab does, with "$" and "\\(" as delimiters), and would
# pair the dollars of "costs $5 and $10" into math. MathJax and KaTeX never pair
# delimiters across elements, and MathJax skips the "mathjax_ignore" class (the
# convention pandas uses for the same problem in tables).
_TEX_GUARD: Final = str.maketrans(
    {char: f'<span class="mathjax_ignore">{char}</span>' for char in "$\\"}
)


def _render_text(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """Escape text, and keep it from being typeset as math by the front end."""
    html = escapeHtml(tokens[idx].content)
    return html.translate(_TEX_GUARD) if "$" in html or "\\" in html else html


# --------------------------------------------------------------------------------------
# Math
# --------------------------------------------------------------------------------------

# Where each math delimiter closes: the first closer outside a backslash pair, so that
# "\$" inside "$…$" and "\\" before ")" do not close.
_CLOSER_RES: Final = {
    "$": re.compile(r"(?:[^\\$]|\\.)*\$", re.DOTALL),
    "$$": re.compile(r"(?:[^\\$]|\\.|\$(?!\$))*\$\$", re.DOTALL),
    "\\)": re.compile(r"(?:[^\\]|\\[^)])*\\\)", re.DOTALL),
    "\\]": re.compile(r"(?:[^\\]|\\[^\]])*\\\]", re.DOTALL),
}

# (opener, closer, display); "$$" before "$" so that the longer opener wins.
_INLINE_MATH: Final = (
    ("\\(", "\\)", False),
    ("\\[", "\\]", True),
    ("$$", "$$", True),
    ("$", "$", False),
)
_BLOCK_MATH: Final = (("$$", "$$"), ("\\[", "\\]"))
_MATH_OPENERS: Final = frozenset("$\\")
"""The first characters of every opener, inline or block."""

_UNCLOSED: Final[WeakKeyDictionary[StateInline, dict[tuple[str, int], int]]] = WeakKeyDictionary()
"""For each inline parse and (closer, end of range): the first position from which the
closer was not found. An opener after it cannot close either (the scan from there
would have stopped at it, or passed its delimiters as a backslash pair), so it is not
scanned again: without this, "\\( \\( \\( …" would take quadratic time."""


def _math_inline(state: StateInline, silent: bool) -> bool:
    """Inline rule: TeX math between ``$``, ``$$``, ``\\(``…``\\)`` or ``\\[``…``\\]``.

    The source between the delimiters is kept verbatim: no emphasis, no escapes.
    ``$…$`` follows pandoc, so that prices stay text: the opening ``$`` is not
    followed by whitespace, the closing ``$`` (the first one not escaped) is not
    preceded by whitespace nor followed by a digit, else there is no math at all.
    """
    src, start, end = state.src, state.pos, state.posMax
    if src[start] not in _MATH_OPENERS:  # the common case: tried at every inline position
        return False
    delimiters = next((d for d in _INLINE_MATH if src.startswith(d[0], start, end)), None)
    if delimiters is None:
        return False
    opener, closer, display = delimiters

    content_start = start + len(opener)
    unclosed = _UNCLOSED.setdefault(state, {})
    if content_start >= unclosed.get((closer, end), end + 1):
        return False
    match = _CLOSER_RES[closer].match(src, content_start, end)
    if match is None:
        unclosed[closer, end] = min(content_start, unclosed.get((closer, end), end))
        return False
    content_end = match.end() - len(closer)
    content = src[content_start:content_end]
    if not content.strip():
        return False
    if opener == "$" and (
        content[0].isspace()
        or content[-1].isspace()
        or (match.end() < end and src[match.end()].isdigit())
    ):
        return False

    if not silent:
        token = state.push("math_display" if display else "math_inline", "math", 0)
        token.content = content
        token.markup = opener
    state.pos = match.end()
    return True


def _math_block(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    """Block rule: display math on lines of its own, between ``$$`` or ``\\[``…``\\]``.

    Either the whole line is the math (``$$ x $$``), or the opener stands alone on its
    line and the math runs to the first line ending with the closer, or, like a fenced
    code block, to the end of its container. A line with text after the opener and no
    closer is left to the inline rule.
    """
    begin = state.bMarks[start_line] + state.tShift[start_line]
    # The common case first: tried at the start of every block.
    if begin >= state.eMarks[start_line] or state.src[begin] not in _MATH_OPENERS:
        return False
    if state.is_code_block(start_line):
        return False
    first = state.src[begin : state.eMarks[start_line]]
    delimiters = next((d for d in _BLOCK_MATH if first.startswith(d[0])), None)
    if delimiters is None:
        return False
    opener, closer = delimiters

    rest = first[len(opener) :]
    match = _CLOSER_RES[closer].match(rest)
    if match is not None:
        content = rest[: match.end() - len(closer)]
        if not content.strip() or rest[match.end() :].strip():
            return False
    elif rest.strip():
        return False
    if silent:
        return True

    next_line = start_line + 1
    if match is None:
        closing: str | None = None
        while next_line < end_line:
            begin = state.bMarks[next_line] + state.tShift[next_line]
            line_end = state.eMarks[next_line]
            if begin < line_end and state.sCount[next_line] < state.blkIndent:
                break  # the container ends here: "- $$" then an unindented line
            line = state.src[begin:line_end].rstrip()
            if line.endswith(closer):
                closing = line[: -len(closer)]
                break
            next_line += 1
        content = state.getLines(start_line + 1, next_line, state.sCount[start_line], True)
        if closing is not None:
            content += closing
            next_line += 1

    token = state.push("math_block", "math", 0)
    token.block = True
    token.content = content
    token.markup = opener
    token.map = [start_line, next_line]
    state.line = next_line
    return True


def _render_math_inline(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """Inline math, delimited for MathJax and KaTeX."""
    return '<span class="math inline">\\(' + escapeHtml(tokens[idx].content) + "\\)</span>"


def _render_math_display(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """Display math inside a paragraph."""
    return '<span class="math display">\\[' + escapeHtml(tokens[idx].content) + "\\]</span>"


def _render_math_block(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """Display math on lines of its own."""
    return '<div class="math display">\\[' + escapeHtml(tokens[idx].content) + "\\]</div>\n"


# --------------------------------------------------------------------------------------
# Footnotes
# --------------------------------------------------------------------------------------

_PRECEDING_TEXT: Final = "nbclaude_preceding_text"
"""Key of a parse environment: a hash of the text that comes before the source parsed
(the frozen part of a streamed reply), so that :func:`_footnote_doc_id` names a part's
footnotes as it would name the whole text's."""

_DOC_ID_BYTES: Final = 4


def _doc_id_hash() -> hashlib.blake2b:
    return hashlib.blake2b(digest_size=_DOC_ID_BYTES)


def _footnote_doc_id(state: StateCore) -> None:
    """Core rule: give the footnotes of a document ids of their own (the plugin's ``docId``).

    Several replies share a notebook page, and each would otherwise number its footnotes
    ``fn1``, ``fn2``…, so that a click in one reply could jump into another. The id is a
    short hash of the text before the first footnote definition: the same text always
    renders to the same HTML, and while a reply streams the id no longer changes once its
    first definition has arrived, which is also the first moment any footnote id shows.
    """
    env = state.env
    if "docId" in env:
        return
    first = next((t for t in state.tokens if t.type == "footnote_reference_open"), None)
    if first is None or first.map is None:
        return
    preceding: hashlib.blake2b | None = env.get(_PRECEDING_TEXT)
    digest = preceding.copy() if preceding is not None else _doc_id_hash()
    before = state.src[: _line_offset(state.src, first.map[0])]
    digest.update(before.encode("utf-8", "surrogatepass"))
    env["docId"] = digest.hexdigest()


def _render_footnote_anchor(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """The plugin's link back to the reference, with a plain "↩".

    The plugin follows its arrow with U+FE0E (VARIATION SELECTOR-15) to keep iOS from
    drawing an emoji; a machine without an emoji font has nothing to select from, and the
    arrow alone is text already (its default presentation).
    """
    html: str = render_footnote_anchor(self, tokens, idx, options, env)
    return html.replace("\N{VARIATION SELECTOR-15}", "")


# --------------------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------------------


def _render_fence(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """A fenced code block as a panel with its language (:func:`nbclaude.look.code_panel`),
    highlighted as markdown-it's own fence rule would highlight it."""
    token = tokens[idx]
    info = unescapeAll(token.info).strip()
    language = info.split(maxsplit=1)[0] if info else ""
    code = options.highlight(token.content, language, "") if options.highlight else ""
    return code_panel(code or escapeHtml(token.content), language)


def _render_table_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """Tables start at the left edge, as in a Markdown cell, live and static alike."""
    tokens[idx].attrSet("style", TABLE)
    return self.renderToken(tokens, idx, options, env)


def _render_cell_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """A right-aligned column's cells say so with ``align``, not a ``style`` each.

    JupyterLab right-aligns the cells of an HTML output already, and other front ends
    follow the attribute; a table of numbers then costs a sanitizer (JupyterLab's table of
    contents sanitizes every HTML output) no style to parse per cell. A left or centred
    column keeps its ``style``, which JupyterLab's rule would otherwise override.
    """
    token = tokens[idx]
    if token.attrGet("style") == "text-align:right":
        token.attrs.pop("style")
        token.attrSet("align", "right")
    return self.renderToken(tokens, idx, options, env)


def _render_heading_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """A reply's headings stay out of the notebook's table of contents (``tocSkip``)."""
    tokens[idx].attrSet("class", "tocSkip")
    return self.renderToken(tokens, idx, options, env)


def make_parser(*, remote_images: bool = False) -> MarkdownIt:
    """Build the markdown-it parser for model output.

    Args:
        remote_images: Show images as ``<img>``, fetched from wherever they point.
            By default an image is a link to its URL, labelled with its alt text.

    Returns:
        A new parser; configure a copy of your own rather than changing a shared one.
    """
    md = _UntrustedMarkdownIt("js-default", {"highlight": highlight, "linkify": True})
    md.linkify = _Linkify()
    md.enable(["table", "strikethrough"])
    md.block.ruler.after(
        "fence",
        "math_block",
        _math_block,
        {"alt": ["paragraph", "reference", "blockquote", "list"]},
    )
    md.inline.ruler.before("escape", "math_inline", _math_inline)
    md.add_render_rule("link_open", _render_link_open)
    md.add_render_rule("fence", _render_fence)
    md.add_render_rule("table_open", _render_table_open)
    md.add_render_rule("heading_open", _render_heading_open)
    md.add_render_rule("th_open", _render_cell_open)
    md.add_render_rule("td_open", _render_cell_open)
    md.add_render_rule("text", _render_text)
    md.add_render_rule("math_inline", _render_math_inline)
    md.add_render_rule("math_display", _render_math_display)
    md.add_render_rule("math_block", _render_math_block)
    # Checkboxes disabled (the default), and no <label>: nothing in a reply is clickable
    # but its links.
    md.use(tasklists_plugin)
    # Not ^[inline footnotes]: "matches ^[a-z]" is a regular expression far more often.
    md.use(footnote_plugin, inline=False)
    md.core.ruler.after("block", "footnote_doc_id", _footnote_doc_id)
    md.add_render_rule("footnote_anchor", _render_footnote_anchor)
    if not remote_images:
        md.add_render_rule("image", _render_image_as_link)
    return md


@functools.cache
def _shared_parser(remote_images: bool) -> MarkdownIt:
    return make_parser(remote_images=remote_images)


def render(text: str, *, remote_images: bool = False) -> str:
    """Render Markdown to HTML in one go: the reference for incremental rendering.

    Args:
        text: Markdown, typically a model's reply.
        remote_images: See :func:`make_parser`.

    Returns:
        HTML, safe to insert into a page.
    """
    html: str = _shared_parser(remote_images).render(text)
    return html


# --------------------------------------------------------------------------------------
# Incremental rendering
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Update:
    """What changed in the HTML since the previous :meth:`IncrementalRenderer.update`."""

    frozen: str
    """HTML of the top-level blocks frozen since the previous update (often empty).

    Append it after the frozen HTML sent so far: it never changes.
    """
    tail: str
    """HTML of everything after the last frozen block, partial last line included.

    It replaces the previous tail.
    """


_LINE_END_RE: Final = re.compile(r"\r\n?|\n")
_REFERENCE_KEYS: Final = frozenset({"references", "duplicate_refs"})
_FOOTNOTE_KEYS: Final = frozenset({"footnotes"})
_DOC_ID_KEYS: Final = frozenset({"docId", _PRECEDING_TEXT})
_FROZEN_DEFINITION: Final = "nbclaude_frozen_footnote"
"""The type of a token standing for a frozen footnote definition in a tail's parse."""


class IncrementalRenderer:
    """Render Markdown as it streams in: finished blocks once, the open tail each time.

    Call :meth:`append` with each piece of text, :meth:`update` whenever the display
    should catch up, and :meth:`finish` for the final HTML. See the module docstring
    for the invariants.

    Attributes:
        parsed_chars: How many characters this renderer has handed to the parser, in
            total: a measure of its work that tests can count instead of timing.
    """

    def __init__(self, *, remote_images: bool = False, parser: MarkdownIt | None = None) -> None:
        """Start with no text.

        Args:
            remote_images: See :func:`make_parser`.
            parser: A parser to use instead of :func:`make_parser`'s; its rules must
                be local to a block (see the module docstring).

        Raises:
            TypeError: If both ``parser`` and ``remote_images`` are given.
        """
        if parser is not None and remote_images:
            raise TypeError("pass remote_images to make_parser(), not with a parser")
        self._parser = parser if parser is not None else _shared_parser(remote_images)
        self._frozen_source: list[str] = []
        self._frozen_html: list[str] = []
        self._open: list[str] = []
        """Text after the frozen blocks, as appended; joined on demand."""
        self._scanned = 0
        """Length of the open text whose complete lines were last searched for blocks."""
        self._references: dict[str, Any] = {}
        """Link reference definitions of the frozen text, as markdown-it records them."""
        self._references_for_brackets: int | None = None
        """How many definitions the first frozen text with a "[" was rendered with."""
        core = self._parser.core.ruler.get_active_rules()
        footnotes = "footnote_tail" in core
        doc_ids = footnotes and "footnote_doc_id" in core
        self._footnotes = _StreamedFootnotes(self._parser, doc_ids=doc_ids) if footnotes else None
        """The footnotes of the frozen text, when the parser has the footnote plugin."""
        self._kept_keys = (
            _REFERENCE_KEYS
            | (_FOOTNOTE_KEYS if footnotes else frozenset())
            | (_DOC_ID_KEYS if doc_ids else frozenset())
        )
        """What a parse may leave in its env without keeping document-wide state."""
        self._whole_document_state = False
        """Whether a parse kept state in its env that the frozen blocks cannot carry."""
        self._tail: str | None = None
        """The tail of the last update, until text is appended."""
        self.parsed_chars = 0

    @property
    def text(self) -> str:
        """Everything appended so far."""
        return "".join(self._frozen_source) + self._open_text()

    def append(self, text: str) -> None:
        """Add text at the end of the reply; rendering waits for :meth:`update`."""
        if text:
            self._open.append(text)
            self._tail = None

    def update(self) -> Update:
        """Freeze the blocks that have become final, and render the open tail.

        Returns:
            The newly frozen HTML and the new tail. The cost follows the size of the
            open tail (and of the footnote list, which ends the tail), not of the text
            so far.
        """
        if self._tail is not None:
            return Update(frozen="", tail=self._tail)
        frozen = self.freeze()
        self._tail = self._render_tail(self._open_text())[0]
        return Update(frozen=frozen, tail=self._tail)

    def freeze(self) -> str:
        """Freeze the blocks that have become final, without rendering the open tail.

        Returns:
            Their HTML (often empty): what the next :meth:`update` would otherwise have
            returned as ``frozen``. Rendering the tail is the part of an update whose
            result is soon stale; a caller that shows the tail only now and then can
            freeze more often, so that little is left to do when it asks.
        """
        source = self._open_text()
        complete = source.rfind("\n") + 1
        if complete <= self._scanned:
            return ""
        scan = self._scan(source[:complete])
        self._scanned = complete - scan.offset
        if not scan.offset:
            return ""
        self._open = [source[scan.offset :]]
        return self._freeze(source[: scan.offset], scan)

    def finish(self) -> str:
        """Return the final HTML: exactly ``render(self.text)`` with this parser.

        The frozen HTML plus a last rendering of the tail, or, when a definition
        arrived after a block that may use it (or the parser keeps document-wide
        state), one rendering of the whole text. The renderer is left as it was.
        """
        tail, env = self._render_tail(self._open_text())
        definitions = len(self._references) + len(env["references"].maps[0])
        late = self._references_for_brackets is not None and (
            definitions > self._references_for_brackets
        )
        if self._footnotes is not None:
            late = late or self._footnotes.defined_late(env)
        if self._whole_document_state or late:
            self.parsed_chars += len(self.text)
            html: str = self._parser.render(self.text)
            return html
        return "".join(self._frozen_html) + tail

    def _open_text(self) -> str:
        if len(self._open) > 1:
            self._open = ["".join(self._open)]
        return self._open[0] if self._open else ""

    def _env(self) -> EnvType:
        """A parse environment that knows the frozen definitions without copying them."""
        return {"references": ChainMap({}, self._references)}

    def _keep_state_of(self, env: EnvType) -> None:
        self._whole_document_state |= not self._kept_keys.issuperset(env)

    def _render_tail(self, source: str) -> tuple[str, EnvType]:
        """Render the open text, as the end of the text so far; return the HTML and env."""
        env = self._env()
        self.parsed_chars += len(source)
        footnotes = self._footnotes
        if footnotes is None:
            html: str = self._parser.render(source, env)
        else:
            state = StateCore(source, self._parser, env)
            footnotes.prepare(env, set())
            before, after, tail_rule = _core_rules(self._parser)
            for rule in before:
                rule(state)
            footnotes.number(env)
            for rule in after:
                if rule is tail_rule:
                    footnotes.add_definitions(state)
                rule(state)
            footnotes.expand(state)
            html = self._parser.renderer.render(state.tokens, self._parser.options, env)
        self._keep_state_of(env)
        return html, env

    def _freeze(self, source: str, scan: _Scan) -> str:
        """Render finished blocks once and for all, keeping their definitions.

        The scan has already parsed their blocks: its tokens before the last block are
        exactly those of parsing ``source`` alone (blocks end where the next begins), so
        they go through the rest of the core chain (inline, text_join, …) and the
        renderer without being parsed again. They see the definitions made before the
        last block, as a rendering of ``source`` alone would. Footnote definitions are
        set aside for the footnote list of later tails, which follows the last block.
        """
        state = scan.state
        tokens = state.tokens
        end = next((i for i, token in enumerate(tokens) if _starts_at(token, scan.line)), None)
        state.tokens = tokens[:end]  # the last unit may be a definition, with no token
        defined = state.env["references"].maps[0]
        state.env = env = self._env()
        env["references"].maps[0].update(
            (label, definition)
            for label, definition in defined.items()
            if definition["map"][0] < scan.line
        )
        self.parsed_chars += len(source)
        footnotes = self._footnotes
        _, after, tail_rule = _core_rules(self._parser)
        if footnotes is not None:
            footnotes.prepare(env, _footnote_labels(state.tokens))
            footnotes.number(env)
            self.parsed_chars += footnotes.count_uses(state.tokens, env)
        for rule in after:
            if footnotes is not None and rule is tail_rule:
                footnotes.set_aside(state)
            else:
                rule(state)
        if footnotes is not None:
            footnotes.keep_definitions(state)
        html: str = self._parser.renderer.render(state.tokens, self._parser.options, env)
        if footnotes is not None:
            footnotes.frozen(env, lambda: state.src[: _line_offset(state.src, scan.line)])
        self._keep_state_of(env)
        self._references.update(env["references"].maps[0])
        if self._references_for_brackets is None and "[" in source:
            self._references_for_brackets = len(self._references)
        self._frozen_source.append(source)
        self._frozen_html.append(html)
        return html

    def _scan(self, source: str) -> _Scan:
        """Parse the blocks of ``source`` and find where the last top-level one starts.

        Args:
            source: Complete lines of Markdown, right after the frozen text.

        Returns:
            The parse, and the line and offset in ``source`` where the last top-level
            block starts (or a link definition right before it): everything before it
            can be frozen. Line and offset are ``0`` when there is a single block.
        """
        state = StateCore(source, self._parser, self._env())
        self.parsed_chars += len(source)
        for rule in _core_rules(self._parser)[0]:
            rule(state)
        self._keep_state_of(state.env)

        spans: list[tuple[int, int, bool]] = []
        for token in state.tokens:
            if token.level == 0 and token.nesting >= 0:
                if token.map is None:
                    return _Scan(state, 0, 0)  # a block we cannot place: freeze nothing
                spans.append((token.map[0], token.map[1], False))
        # Definitions emit no token: find them in env, and skip those inside a block.
        block_starts = [start for start, _, _ in spans]
        env = state.env
        definitions = [*env["references"].maps[0].values(), *env.get("duplicate_refs", ())]
        for start, end in (definition["map"] for definition in definitions):
            enclosing = bisect.bisect_right(block_starts, start) - 1
            if enclosing < 0 or spans[enclosing][1] <= start:
                spans.append((start, end, True))
        spans.sort()

        # A definition with more lines right after it may still gain a title from a
        # later line, swallowing those lines: keep them in one unit with it.
        starts: list[int] = []
        end = 0
        sticky = False
        for start, stop, is_definition in spans:
            if not (starts and sticky and start <= end):
                starts.append(start)
                sticky = False
            end = stop
            sticky = sticky or is_definition
        if len(starts) < 2:
            return _Scan(state, 0, 0)
        return _Scan(state, starts[-1], _line_offset(source, starts[-1]))


class _AnyLabel(dict[str, int]):
    """Footnote labels as the plugin looks them up, every label defined.

    Parsing with it finds each reference that would be one if its definition were known
    (the plugin's ``always_match_refs``, for a parser built without it).
    """

    def __contains__(self, key: object) -> bool:
        return True

    def __bool__(self) -> bool:
        return True


class _StreamedFootnotes:
    """What the frozen blocks of a streamed reply leave to later blocks about footnotes.

    The footnote plugin numbers footnotes in order of first reference over the whole
    document, and a reference is one only if its label is defined anywhere in the text.
    Each freeze and each tail therefore starts from: the labels defined in the frozen text,
    the references the frozen text makes to each label (defined or not yet), in order of
    first use, and the tokens of the frozen definitions, which the footnote list at the end
    of each tail shows. Numbers are given to the labels defined so far in order of first
    use, as a parse of the whole text so far would.
    """

    def __init__(self, parser: MarkdownIt, *, doc_ids: bool) -> None:
        """Start with no frozen text.

        Args:
            parser: The parser, with the footnote plugin.
            doc_ids: Whether it has the :func:`_footnote_doc_id` rule.
        """
        self._parser = parser
        self._labels: set[str] = set()
        """The labels (``":" + label``, as the plugin keys them) defined in the frozen text."""
        self._uses: dict[str, int] = {}
        """How often the frozen text refers to each label, in order of first reference."""
        self._definitions: dict[str, list[Token]] = {}
        """The tokens of each frozen definition (the last one of a label), after the core
        rules."""
        self._early: set[str] = set()
        """Labels that a frozen block used before their definition was frozen."""
        self._doc_id: str | None = None
        """The plugin's ``docId``, once a definition is frozen (see _footnote_doc_id)."""
        self._preceding = _doc_id_hash() if doc_ids else None
        """Until then, a hash of the frozen text, for _footnote_doc_id."""
        self._set_aside: list[tuple[str, list[Token]]] = []
        """The definitions of the blocks being frozen, by label, in order."""
        self._body = 0
        """How many of their tokens are not definitions."""
        self._inexact = False
        """Whether a frozen block has an inline footnote (``^[…]``), which the footnote
        list of later tails cannot show: then only the whole text renders exactly."""

    def prepare(self, env: EnvType, labels: set[str]) -> None:
        """Before the block rules (or right after them, for frozen blocks): the labels
        defined so far, ``labels`` besides, and the document id."""
        env["footnotes"] = {"refs": dict.fromkeys(self._labels | labels, -1), "list": {}}
        if self._doc_id is not None:
            env["docId"] = self._doc_id
        elif self._preceding is not None:
            env[_PRECEDING_TEXT] = self._preceding

    def number(self, env: EnvType) -> None:
        """After the block rules: number the labels the frozen text used that are defined,
        in order of first use, with their counts of references so far."""
        refs, notes = env["footnotes"]["refs"], env["footnotes"]["list"]
        for label, count in self._uses.items():
            if label in refs:
                refs[label] = len(notes)
                notes[len(notes)] = {"label": label[1:], "count": count}

    def count_uses(self, tokens: list[Token], env: EnvType) -> int:
        """Record the references that blocks about to be frozen make, defined or not.

        Returns:
            How many characters were parsed to find them: the inline content holding a
            ``[^``, once more.
        """
        probe: EnvType = {
            "references": env["references"],
            "footnotes": {"refs": _AnyLabel(), "list": {}},
        }
        parsed = 0
        for token in tokens:
            if token.type == "inline" and "[^" in token.content:
                parsed += len(token.content)
                self._parser.inline.parse(token.content, self._parser, probe, [])
        defined = env["footnotes"]["refs"]
        for entry in probe["footnotes"]["list"].values():
            if "label" in entry:
                label = ":" + entry["label"]
                self._uses[label] = self._uses.get(label, 0) + entry["count"]
                if label not in defined:
                    self._early.add(label)
        return parsed

    def set_aside(self, state: StateCore) -> None:
        """In place of the plugin's ``footnote_tail`` for frozen blocks: take the
        definitions out of the blocks, as it does, and put them after the blocks, where
        the core rules after it still see them (as they do in the list it makes), until
        :meth:`keep_definitions`."""
        body: list[Token] = []
        current: list[Token] = []
        label = ""
        inside = False
        for token in state.tokens:
            if token.type == "footnote_reference_open":
                inside, current, label = True, [], ":" + token.meta["label"]
            elif token.type == "footnote_reference_close":
                inside = False
                self._set_aside.append((label, current))
            elif inside:
                current.append(token)
            else:
                body.append(token)
        state.tokens = body + [token for _, tokens in self._set_aside for token in tokens]
        self._body = len(body)

    def keep_definitions(self, state: StateCore) -> None:
        """After the core rules: take the definitions set aside off the frozen blocks, and
        keep them (the last one of a label) for the footnote lists of later tails."""
        start = self._body
        for label, tokens in self._set_aside:
            self._definitions[label] = state.tokens[start : start + len(tokens)]
            start += len(tokens)
        del state.tokens[self._body :]
        self._set_aside.clear()

    def frozen(self, env: EnvType, source: Callable[[], str]) -> None:
        """After freezing blocks: keep the labels they defined, and their document id
        or, until there is one, their text (``source()``, as normalized by the parser)."""
        notes = env["footnotes"]
        self._labels.update(notes["refs"])
        self._inexact |= any("label" not in note for note in notes["list"].values())
        if self._doc_id is None and "docId" in env:
            self._doc_id, self._preceding = env["docId"], None
        elif self._preceding is not None:
            self._preceding.update(source().encode("utf-8", "surrogatepass"))

    def add_definitions(self, state: StateCore) -> None:
        """Right before ``footnote_tail`` makes the list of a tail: put the frozen
        definitions it uses where it looks for them.

        Their tokens went through the core rules when they were frozen, and some rules
        change tokens in place, or would not leave them as they are if run again
        (linkify, after text_join has joined an escaped ``http\\://``). So each
        definition goes in as one :data:`_FROZEN_DEFINITION` token that no rule
        touches, which :meth:`expand` replaces with its tokens once the rules have run.
        ``footnote_tail`` puts the back-links before a definition's last paragraph
        close: that token goes in as it is, for it to do so.
        """
        notes = state.env["footnotes"]["list"].values()
        used = {":" + note["label"] for note in notes if "label" in note}
        frozen: list[Token] = []
        for label, tokens in self._definitions.items():
            if label in used:
                last = len(tokens) - (bool(tokens) and tokens[-1].type == "paragraph_close")
                frozen += [
                    Token("footnote_reference_open", "", 1, meta={"label": label[1:]}),
                    Token(_FROZEN_DEFINITION, "", 0, meta={"tokens": tokens[:last]}),
                    *tokens[last:],
                    Token("footnote_reference_close", "", -1),
                ]
        state.tokens[:0] = frozen  # before the tail's own: a later definition wins

    @staticmethod
    def expand(state: StateCore) -> None:
        """After the core rules: each frozen definition in place of its stand-in."""
        if any(token.type == _FROZEN_DEFINITION for token in state.tokens):
            state.tokens = [
                expanded
                for token in state.tokens
                for expanded in (
                    token.meta["tokens"] if token.type == _FROZEN_DEFINITION else (token,)
                )
            ]

    def defined_late(self, env: EnvType) -> bool:
        """Whether a frozen block used a footnote defined only after it was frozen
        (``env``: the last tail's)."""
        return self._inexact or not self._early.isdisjoint(env["footnotes"]["refs"])


@dataclass(slots=True)
class _Scan:
    """The blocks of the open text's complete lines, and where the last one starts."""

    state: StateCore
    """The parse, after the core rules up to ``block``."""
    line: int
    """The line where the last top-level block (or definition unit) starts."""
    offset: int
    """Where that line starts in the source; ``0`` when nothing can be frozen."""


def _starts_at(token: Token, line: int) -> bool:
    """Whether ``token`` opens a top-level block at ``line`` or after it."""
    return (
        token.level == 0 and token.nesting >= 0 and token.map is not None and token.map[0] >= line
    )


def _footnote_labels(tokens: Sequence[Token]) -> set[str]:
    """The labels of the footnote definitions among ``tokens``, as the plugin keys them."""
    return {":" + t.meta["label"] for t in tokens if t.type == "footnote_reference_open"}


def _core_rules(parser: MarkdownIt) -> tuple[list[Any], list[Any], Any]:
    """The parser's core chain, split after the ``block`` rule: (up to it, after it), and
    the footnote plugin's ``footnote_tail`` rule among the latter, if any."""
    names = parser.core.ruler.get_active_rules()
    rules = parser.core.ruler.getRules("")
    after = names.index("block") + 1
    tail_rule = rules[names.index("footnote_tail")] if "footnote_tail" in names else None
    return rules[:after], rules[after:], tail_rule


def _line_offset(source: str, line: int) -> int:
    """The offset in ``source`` where ``line`` starts, counting lines as markdown-it does."""
    if line == 0:
        return 0
    for number, match in enumerate(_LINE_END_RE.finditer(source), start=1):
        if number == line:
            return match.end()
    raise ValueError(f"line {line} is past the end of the source")
