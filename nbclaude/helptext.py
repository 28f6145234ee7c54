"""The ``%claude help`` page: titled sections of two aligned columns, in plain text.

The page is printed, so it reads the same in a terminal and in a notebook's output: plain
characters only, every line at most :data:`WIDTH` columns, and a description that wraps
continues under itself, never back at the left margin. The rows for ``%%claude`` flags are
made from the argument parser (:func:`flag_rows`), so a new flag shows up with its own
``help=``. Nothing here imports IPython.
"""

from __future__ import annotations

import argparse
import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["WIDTH", "Section", "first_sentence", "flag_rows", "help_page", "setting_term"]

WIDTH = 100
"""Longest line of the page, in characters."""

TERM_WIDTH = 28
"""Widest left column: a longer term has its description start on the next line."""

VALUE_WIDTH = 40
"""Longest setting value shown; a longer one (a system prompt, a table of prices) is cut."""

INDENT = "  "
"""Indent of each row under its section's title."""

GAP = "  "
"""Space between a term and its description."""


@dataclass(frozen=True, slots=True)
class Section:
    """One section of the help page: a heading, then its rows."""

    title: str
    """The heading's first word or words, such as ``Sending``."""
    about: str
    """What the rows share or how to use them: the rest of the heading, after a colon."""
    rows: tuple[tuple[str, str], ...]
    """``(term, description)`` pairs: a flag with its argument, a command, a setting."""


def help_page(intro: str, sections: Iterable[Section], *, width: int = WIDTH) -> str:
    """The help page: the intro, then each section, its descriptions in one aligned column.

    Args:
        intro: The opening paragraph, wrapped to `width`.
        sections: The sections, in order.
        width: The longest line.

    Returns:
        The page, lines joined by newlines.
    """
    sections = list(sections)
    terms = [term for section in sections for term, _ in section.rows]
    term_width = max((len(term) for term in terms if len(term) <= TERM_WIDTH), default=0)
    column = len(INDENT) + term_width + len(GAP)
    lines = textwrap.wrap(intro, width)
    for section in sections:
        lines.append("")
        lines += textwrap.wrap(
            f"{section.title}: {section.about}" if section.about else section.title, width
        )
        for term, description in section.rows:
            wrapped = textwrap.wrap(
                description, width - column, break_long_words=False, break_on_hyphens=False
            ) or [""]
            if len(term) > term_width:
                lines.append(INDENT + term)
            else:
                lines.append((INDENT + term.ljust(term_width) + GAP + wrapped.pop(0)).rstrip())
            lines += [" " * column + line for line in wrapped]
    return "\n".join(lines)


def flag_rows(parser: argparse.ArgumentParser, dests: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """Rows for the parser's flags that store into `dests`, in that order.

    Args:
        parser: The ``%%claude`` argument parser.
        dests: The flags' destinations (``dry_run`` for ``--dry-run``).

    Returns:
        ``(flags and argument, help)`` per flag, the help as argparse prints it.
    """
    # argparse has no public list of its actions; its own help formatter reads this one.
    actions = {action.dest: action for action in parser._actions}
    return tuple((_flag_term(actions[dest]), _flag_help(actions[dest])) for dest in dests)


def _flag_term(action: argparse.Action) -> str:
    """``-t, --thinking [BUDGET]``: the flag's spellings and what it takes."""
    flags = ", ".join(action.option_strings)
    if action.nargs == 0:
        return flags
    metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    return f"{flags} [{metavar}]" if action.nargs == "?" else f"{flags} {metavar}"


def _flag_help(action: argparse.Action) -> str:
    """The flag's ``help=``, its ``%%`` and ``%(default)s`` expanded as argparse does."""
    return (action.help or "") % dict(vars(action))


def first_sentence(text: str) -> str:
    """The first sentence of a setting's help: the summary the help page shows."""
    match = re.match(r"(.+?[.!?])(?:\s|$)", " ".join(text.split()))
    return match[1] if match else text


def setting_term(name: str, value: object) -> str:
    """``name = value`` as ``%config`` takes it, a long value cut short."""
    shown = repr(value)
    if len(shown) > VALUE_WIDTH:
        shown = shown[: VALUE_WIDTH - 3] + "..."
    return f"{name} = {shown}"
