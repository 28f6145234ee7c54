"""Markdown for Claude's replies: one safe parser, and a renderer that streams.

:func:`make_parser` builds the one configured markdown-it parser: the ``js-default``
preset (raw HTML off, so HTML written by the model shows as text), tables and
strikethrough, an allowlist of link schemes, links that open in a new tab without a
referrer, images shown as links unless remote images are allowed, Pygments
highlighting for fenced code, and TeX math (``$…$``, ``$$…$$``, ``\\(…\\)``,
``\\[…\\]``) passed through verbatim for MathJax or KaTeX to typeset, while the
dollars and backslashes of ordinary text are kept from being typeset ("costs $5 and
$10"). :func:`render` is the one-shot reference rendering.

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
until a blank line.

Invariants, for any way of cutting the text into chunks:

1. :meth:`IncrementalRenderer.finish` returns ``render(text)``, byte for byte.
2. After every :meth:`IncrementalRenderer.update`, the frozen HTML so far plus the
   latest tail equals ``render(text so far)``, with one documented exception:
   a frozen block that uses a link reference (``[label]``, ``[text][label]``,
   ``![alt][label]``) defined *later* in the reply keeps the rendering it had when it
   was frozen (plain text, where the label was not yet defined) until
   :meth:`~IncrementalRenderer.finish`, which then renders the whole text once more,
   so that the final HTML is exact. The tail itself is always exact: it is rendered
   with every definition seen so far.

The renderer works with any markdown-it parser whose rules are local to a block,
which the parser here is. Rules that keep state across the whole document (footnotes
numbered in order of use, heading anchors made unique) cannot be exact while
streaming; when a parse leaves anything in ``env`` besides link references,
:meth:`~IncrementalRenderer.finish` renders the whole text once, so invariant 1 still
holds. Block rules that consume lines without emitting a top-level token, other than
link reference definitions, are not supported.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections import ChainMap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from weakref import WeakKeyDictionary

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.rules_block import StateBlock
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from .highlight import highlight

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
# The parser
# --------------------------------------------------------------------------------------


def make_parser(*, remote_images: bool = False) -> MarkdownIt:
    """Build the markdown-it parser for model output.

    Args:
        remote_images: Show images as ``<img>``, fetched from wherever they point.
            By default an image is a link to its URL, labelled with its alt text.

    Returns:
        A new parser; configure a copy of your own rather than changing a shared one.
    """
    md = _UntrustedMarkdownIt("js-default", {"highlight": highlight})
    md.enable(["table", "strikethrough"])
    md.block.ruler.after(
        "fence",
        "math_block",
        _math_block,
        {"alt": ["paragraph", "reference", "blockquote", "list"]},
    )
    md.inline.ruler.before("escape", "math_inline", _math_inline)
    md.add_render_rule("link_open", _render_link_open)
    md.add_render_rule("text", _render_text)
    md.add_render_rule("math_inline", _render_math_inline)
    md.add_render_rule("math_display", _render_math_display)
    md.add_render_rule("math_block", _render_math_block)
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
        self._whole_document_state = False
        """Whether a parse kept state other than link references in its env."""
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
            open tail, not of the text so far.
        """
        if self._tail is not None:
            return Update(frozen="", tail=self._tail)
        frozen = self.freeze()
        self._tail = self._render(self._open_text(), self._env())
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
        env = self._env()
        tail = self._render(self._open_text(), env)
        definitions = len(self._references) + len(env["references"].maps[0])
        if self._whole_document_state or (
            self._references_for_brackets is not None
            and definitions > self._references_for_brackets
        ):
            return self._render(self.text, {})
        return "".join(self._frozen_html) + tail

    def _open_text(self) -> str:
        if len(self._open) > 1:
            self._open = ["".join(self._open)]
        return self._open[0] if self._open else ""

    def _env(self) -> EnvType:
        """A parse environment that knows the frozen definitions without copying them."""
        return {"references": ChainMap({}, self._references)}

    def _render(self, source: str, env: EnvType) -> str:
        self.parsed_chars += len(source)
        html: str = self._parser.render(source, env)
        self._whole_document_state |= not _REFERENCE_KEYS.issuperset(env)
        return html

    def _freeze(self, source: str, scan: _Scan) -> str:
        """Render finished blocks once and for all, keeping their link definitions.

        The scan has already parsed their blocks: its tokens before the last block are
        exactly those of parsing ``source`` alone (blocks end where the next begins), so
        they go through the rest of the core chain (inline, text_join, …) and the
        renderer without being parsed again. They see the definitions made before the
        last block, as a rendering of ``source`` alone would.
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
        for rule in _core_rules(self._parser)[1]:
            rule(state)
        html: str = self._parser.renderer.render(state.tokens, self._parser.options, env)
        self._whole_document_state |= not _REFERENCE_KEYS.issuperset(env)
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
        self._whole_document_state |= not _REFERENCE_KEYS.issuperset(state.env)

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


def _core_rules(parser: MarkdownIt) -> tuple[list[Any], list[Any]]:
    """The parser's core chain, split after the ``block`` rule: (up to it, after it)."""
    names = parser.core.ruler.get_active_rules()
    rules = parser.core.ruler.getRules("")
    after = names.index("block") + 1
    return rules[:after], rules[after:]


def _line_offset(source: str, line: int) -> int:
    """The offset in ``source`` where ``line`` starts, counting lines as markdown-it does."""
    if line == 0:
        return 0
    for number, match in enumerate(_LINE_END_RE.finditer(source), start=1):
        if number == line:
            return match.end()
    raise ValueError(f"line {line} is past the end of the source")
