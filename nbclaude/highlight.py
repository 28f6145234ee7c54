"""Syntax highlighting for fenced code: Pygments tokens as spans, coloured for any theme.

:func:`highlight` is markdown-it's ``highlight`` option: Pygments lexes the code, and each
run of tokens of one colour becomes one span, coloured inline (:data:`TOKEN_STYLES`, by
the nearest token type that has a colour) with JupyterLab's editor colours where they
exist, and with mid tones that read on light and dark pages elsewhere. Plain text and
punctuation (operators included) stay uncoloured: fewer spans are less HTML to send, to
sanitize and to lay out.

Lexing is most of the cost of highlighting, and highlighting is a fair part of the cost
of rendering a reply. A Pygments ``RegexLexer`` tries the rules of its current state one
regex at a time until one matches: dozens of calls per token. :class:`CombinedRegexLexer`
gives exactly the same tokens with one call per token, by joining each state's rules into
one alternation. Python's ``re`` tries the branches of an alternation in order and keeps
the first that matches, as that loop does, so the rule it finds is the rule Pygments
would have found; a rule whose action needs its own groups is matched once more on its
own. A state whose rules cannot be joined without changing their meaning (numbered
back references, verbose patterns, differing character-set flags) keeps the rule-by-rule
loop.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any, Final

from pygments.lexer import Lexer, RegexLexer
from pygments.lexers import get_lexer_by_name
from pygments.token import (
    STANDARD_TYPES,
    Comment,
    Error,
    Generic,
    Keyword,
    Name,
    Number,
    Operator,
    String,
    Whitespace,
    _TokenType,
)
from pygments.util import ClassNotFound

__all__ = ["TOKEN_STYLES", "CombinedRegexLexer", "highlight", "lexer_for"]


# --------------------------------------------------------------------------------------
# Lexing: each state's rules in one regex
# --------------------------------------------------------------------------------------

Rule = tuple[Any, Any, Any]
"""One processed Pygments rule: (bound ``Pattern.match``, action, new state)."""

_SCOPED_FLAGS: Final = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}
"""Flags that a branch can set or clear for itself, ``(?i-m:…)``."""

_LEADING_FLAGS_RE: Final = re.compile(r"\(\?[aiLmsux]+\)")
"""A global inline flag group; Python allows it only at the start of a pattern."""

_NUMBERED_GROUP_USE_RE: Final = re.compile(r"\\[1-9]|\(\?\(")
"""A back reference or a conditional by group number (joined, the numbers would move).
It may also match an escaped backslash before a digit: that only costs the fallback."""


@dataclass(frozen=True, slots=True)
class _StateMatcher:
    """One state's rules as one regex."""

    pattern: re.Pattern[str]
    """The alternation of the rules, each rule a capturing group, in Pygments' order."""
    rule_of_group: dict[int, int]
    """The group number of each rule's group → the rule's position in the state."""


def _join(rules: Sequence[Rule]) -> _StateMatcher | None:
    """One regex that matches where the first matching rule of ``rules`` would.

    Returns:
        The matcher, or ``None`` if the rules cannot be joined without changing them.
    """
    patterns = []
    for rexmatch, _, _ in rules:
        pattern = getattr(rexmatch, "__self__", None)
        if not isinstance(pattern, re.Pattern) or rexmatch.__name__ != "match":
            return None  # a lexer with a matcher of its own making
        patterns.append(pattern)
    if not patterns:
        return None
    base = patterns[0].flags
    if base & re.VERBOSE:
        return None  # a comment in a branch would swallow the rest of the alternation
    branches = []
    rule_of_group = {}
    group = 1
    for position, pattern in enumerate(patterns):
        source = pattern.pattern
        if not isinstance(source, str) or _NUMBERED_GROUP_USE_RE.search(source):
            return None
        if pattern.flags & re.VERBOSE or (pattern.flags ^ base) & ~(
            re.IGNORECASE | re.MULTILINE | re.DOTALL
        ):
            return None
        if leading := _LEADING_FLAGS_RE.match(source):
            source = source[leading.end() :]  # its flags are in pattern.flags
        on = "".join(c for c, f in _SCOPED_FLAGS.items() if pattern.flags & f and not base & f)
        off = "".join(c for c, f in _SCOPED_FLAGS.items() if base & f and not pattern.flags & f)
        if on or off:
            source = f"(?{on}{'-' + off if off else ''}:{source})"
        branches.append(f"({source})")
        rule_of_group[group] = position
        group += 1 + pattern.groups
    try:
        joined = re.compile("|".join(branches), base)
    except re.error:
        return None  # e.g. the same group name in two rules
    return _StateMatcher(joined, rule_of_group)


class _Matchers(dict[str, "_StateMatcher | None"]):
    """The matchers of one lexer class, joined the first time a state is entered."""

    def __init__(self, tokendefs: dict[str, Sequence[Rule]]) -> None:
        super().__init__()
        self._tokendefs = tokendefs

    def __missing__(self, state: str) -> _StateMatcher | None:
        matcher = self[state] = _join(self._tokendefs[state])
        return matcher


_MATCHERS: Final[dict[int, tuple[object, _Matchers]]] = {}
"""The matchers of each rule table, by the table's id; the table is kept with them, so the
id cannot be reused. Tables are class attributes (one per lexer class, or a few)."""


class CombinedRegexLexer(Lexer):  # type: ignore[misc]  # Pygments has no type hints
    """A ``RegexLexer`` whose states try all their rules in one regex: the same tokens.

    Args:
        lexer: The lexer to run. Its class must use ``RegexLexer``'s own
            ``get_tokens_unprocessed`` (see :func:`lexer_for`).
    """

    def __init__(self, lexer: RegexLexer) -> None:
        super().__init__(**lexer.options)
        self.filters = lexer.filters  # the same options made the same filters; keep them
        self.lexer = lexer
        tokendefs = lexer._tokens  # usually the class's; some lexers pick one per instance
        if id(tokendefs) not in _MATCHERS:
            _MATCHERS[id(tokendefs)] = (tokendefs, _Matchers(tokendefs))
        self._matchers = _MATCHERS[id(tokendefs)][1]

    def get_tokens_unprocessed(
        self, text: str, stack: Sequence[str] = ("root",)
    ) -> Iterator[tuple[int, Any, str]]:
        """``RegexLexer.get_tokens_unprocessed``, but one regex call finds the rule.

        The loop and its state transitions are Pygments' own, line for line.
        """
        lexer = self.lexer
        tokendefs = lexer._tokens
        matchers = self._matchers
        pos = 0
        statestack = list(stack)
        statetokens = tokendefs[statestack[-1]]
        matcher = matchers[statestack[-1]]
        while True:
            m: re.Match[str] | None = None
            if matcher is not None:
                m = matcher.pattern.match(text, pos)
                if m is not None:
                    rule = statetokens[matcher.rule_of_group[m.lastindex or 0]]
                    if rule[1] is not None and type(rule[1]) is not _TokenType:
                        m = rule[0](text, pos)  # its callback reads the rule's own groups
            else:
                for rule in statetokens:
                    if m := rule[0](text, pos):
                        break
            if m:
                _, action, new_state = rule
                if action is not None:
                    if type(action) is _TokenType:
                        yield pos, action, m.group()
                    else:
                        yield from action(lexer, m)
                pos = m.end()
                if new_state is not None:
                    # state transition
                    if isinstance(new_state, tuple):
                        for state in new_state:
                            if state == "#pop":
                                if len(statestack) > 1:
                                    statestack.pop()
                            elif state == "#push":
                                statestack.append(statestack[-1])
                            else:
                                statestack.append(state)
                    elif isinstance(new_state, int):
                        # pop, but keep at least one state on the stack
                        if abs(new_state) >= len(statestack):
                            del statestack[1:]
                        else:
                            del statestack[new_state:]
                    elif new_state == "#push":
                        statestack.append(statestack[-1])
                    else:
                        raise AssertionError(f"wrong state def: {new_state!r}")
                    statetokens = tokendefs[statestack[-1]]
                    matcher = matchers[statestack[-1]]
                continue
            # No rule matched.
            try:
                if text[pos] == "\n":
                    # at EOL, reset state to "root"
                    statestack = ["root"]
                    statetokens = tokendefs["root"]
                    matcher = matchers["root"]
                    yield pos, Whitespace, "\n"
                    pos += 1
                    continue
                yield pos, Error, text[pos]
                pos += 1
            except IndexError:
                break


@functools.lru_cache(maxsize=128)
def lexer_for(language: str) -> Lexer | None:
    """The lexer for a fence's language name, or ``None`` if Pygments has none.

    A plain ``RegexLexer`` (most of Pygments' lexers) comes as a
    :class:`CombinedRegexLexer`; one whose class has a lexing loop or a ``get_tokens`` of
    its own comes as it is.
    """
    try:
        # Keep the code as written: no stripped blank lines, no added final newline.
        lexer: Lexer = get_lexer_by_name(language, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None
    if (
        isinstance(lexer, RegexLexer)
        and type(lexer).get_tokens_unprocessed is RegexLexer.get_tokens_unprocessed
        and type(lexer).get_tokens is Lexer.get_tokens
    ):
        return CombinedRegexLexer(lexer)
    return lexer


# --------------------------------------------------------------------------------------
# Colours
# --------------------------------------------------------------------------------------

# Each colour role: the JupyterLab variable for it (so code in a reply looks like code in a
# cell, in any JupyterLab theme, light or dark), then a fallback for front ends without
# those variables: a mid tone, readable on a light and on a dark background alike.
_ROLES: Final = {
    "keyword": ("keyword", "#d73a49"),
    "constant": ("number", "#3b7dd8"),
    "builtin": ("builtin", "#3b7dd8"),
    "definition": ("def", "#8a63d2"),
    "type": ("def", "#c0741c"),
    "variable": ("variable-2", "#c0741c"),
    "string": ("string", "#2a9d4b"),
    "comment": ("comment", "#808080"),
    "meta": ("meta", "#808080"),
    "tag": ("tag", "#2a9d4b"),
    "attribute": ("attribute", "#8a63d2"),
    "heading": ("header", "#3b7dd8"),
    "error": ("error", "#e5534b"),
    "inserted": (None, "#2a9d4b"),
    "deleted": (None, "#e5534b"),
}

# Token type, colour role, further declarations. A token takes the entry of its most
# specific ancestor; tokens without one (plain names, punctuation, symbolic operators such
# as "=" and ".", as in VS Code's default themes) keep the text colour.
_TOKEN_STYLES: Final = (
    (Keyword, "keyword", ""),
    (Keyword.Constant, "constant", ""),
    (Keyword.Type, "type", ""),
    (Name.Builtin, "builtin", ""),
    (Name.Function, "definition", ""),
    (Name.Class, "type", ""),
    (Name.Exception, "type", ""),
    (Name.Namespace, "type", ""),
    (Name.Decorator, "definition", ""),
    (Name.Constant, "constant", ""),
    (Name.Variable, "variable", ""),
    (Name.Tag, "tag", ""),
    (Name.Attribute, "attribute", ""),
    (String, "string", ""),
    (Number, "constant", ""),
    (Operator.Word, "keyword", ""),
    (Comment, "comment", "font-style: italic"),
    (Comment.Preproc, "meta", ""),
    (Comment.PreprocFile, "string", ""),
    (Generic.Deleted, "deleted", ""),
    (Generic.Inserted, "inserted", ""),
    (Generic.Heading, "heading", "font-weight: bold"),
    (Generic.Subheading, "heading", "font-weight: bold"),
    (Generic.Emph, None, "font-style: italic"),
    (Generic.Strong, None, "font-weight: bold"),
    (Generic.Error, "error", ""),
    (Generic.Traceback, "error", ""),
    (Generic.Prompt, "meta", "font-weight: bold"),
    (Generic.Output, "comment", ""),
    (Error, "error", ""),
)


def _token_styles() -> dict[str, str]:
    """The inline style of each Pygments short class that has one."""
    styles = {}
    for token_type, short_class in STANDARD_TYPES.items():
        ancestors = [entry for entry in _TOKEN_STYLES if token_type in entry[0]]
        if not (short_class and ancestors):
            continue
        _, role, extra = max(ancestors, key=lambda entry: len(entry[0]))
        declarations = []
        if role is not None:
            variable, fallback = _ROLES[role]
            colour = (
                f"var(--jp-mirror-editor-{variable}-color, {fallback})" if variable else fallback
            )
            declarations.append(f"color: {colour}")
        if extra:
            declarations.append(extra)
        styles[short_class] = "; ".join(declarations)
    return styles


TOKEN_STYLES: Final[dict[str, str]] = _token_styles()
"""The inline style of each Pygments short class (``"k"``, ``"s2"``, ...) that is coloured.

Inline, because the reply's HTML has no ``<style>`` element (see :mod:`nbclaude.look`).
"""


# --------------------------------------------------------------------------------------
# Highlighting
# --------------------------------------------------------------------------------------


@functools.cache
def _style_of(token_type: _TokenType) -> str | None:
    """The inline style of a token type: that of its nearest standard ancestor, if any."""
    while token_type not in STANDARD_TYPES:
        token_type = token_type.parent
    return TOKEN_STYLES.get(STANDARD_TYPES[token_type])


def _spans(tokens: Iterable[tuple[_TokenType, str]]) -> Iterator[str]:
    """Escaped text, each run of one colour in one span.

    Neighbouring tokens of one colour (a string's quotes and its text, ``is not``) share
    a span, and so does the plain whitespace between them: every span is markup the
    browser parses and JupyterLab's sanitizer checks, style and all.
    """
    run_style: str | None = None
    run: list[str] = []
    gap = ""  # plain whitespace after the run, which joins it if the same colour follows
    for token_type, value in tokens:
        text = escape(value, quote=False)  # as Pygments' own HTML formatter does
        style = _style_of(token_type)
        if style is None and run_style is not None and value.isspace():
            gap += text
            continue
        if style != run_style:
            yield _span(run_style, run)
            run_style, run = style, []
            yield gap
        elif gap:
            run.append(gap)
        gap = ""
        run.append(text)
    yield _span(run_style, run)
    yield gap


def _span(style: str | None, texts: list[str]) -> str:
    """Escaped texts of one colour: in a span with that style, or bare when uncoloured."""
    text = "".join(texts)
    return text if style is None else f'<span style="{style}">{text}</span>'


def highlight(code: str, language: str, attrs: str) -> str:
    """markdown-it's ``highlight`` option: escaped, highlighted HTML, or ``""``.

    Returns:
        Pygments' tokens, coloured inline (:data:`TOKEN_STYLES`) for a known language,
        the text of uncoloured tokens bare; ``""`` otherwise, which makes markdown-it
        escape the code as plain text.
    """
    lexer = lexer_for(language) if language else None
    if lexer is None:
        return ""
    return "".join(_spans(lexer.get_tokens(code)))
