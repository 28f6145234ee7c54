"""How a reply looks: the inline styles the live view and the static view share.

The HTML carries its look in ``style`` attributes, never in a ``<style>`` element: a
sanitizer that drops ``<style>`` (JupyterLab's "Export as HTML", GitHub's notebook view)
would print its rules as text at the top of every reply, and a sanitizer that drops
``style`` and ``class`` attributes leaves plain HTML that still reads (headings, code in
``pre``, thinking in ``details``). Everything else (fonts, headings, lists, tables) is
the front end's own look for rendered Markdown, so a reply reads like a Markdown cell.

Text colours are JupyterLab's theme variables, so a reply follows its theme, light or
dark; the fallbacks (for front ends without them) are mid tones, readable on both. Panels
and rules are translucent grey instead, which needs no variable (see :data:`CODE_PANEL`).
"""

from __future__ import annotations

from html import escape
from typing import Final

__all__ = [
    "CODE",
    "CODE_LABEL",
    "CODE_PANEL",
    "MUTED",
    "NOTICE",
    "PRE",
    "TABLE",
    "THINKING",
    "THINKING_SUMMARY",
    "TOOL",
    "TOOL_PRE",
    "USAGE",
    "code_panel",
]

MUTED: Final = "var(--jp-content-font-color2, #808080)"
"""The colour of secondary text: labels, the usage line, the thinking header."""

_RULE: Final = "rgba(128, 128, 128, 0.3)"
"""Borders and rules: translucent grey, which reads on light and dark pages alike."""

CODE_PANEL: Final = (
    "margin: 0.6em 0 1em; border: 1px solid " + _RULE + "; border-radius: 4px; "
    "background-color: rgba(128, 128, 128, 0.1)"
)
"""A fenced code block's panel: a grey tint and border that read on light and dark pages.

Translucent grey is, within a few levels, the colour of a code cell's editor in
JupyterLab's light and dark themes, so the panel needs no theme variable. That matters
twice: JupyterLab's sanitizer (an untrusted notebook's outputs, and its table of
contents, which sanitizes every HTML output) drops any declaration that uses ``var()``,
after testing it against its patterns for the property; for shorthands such as
``border`` and ``background`` that test is slow enough to show once per fence.
"""

CODE_LABEL: Final = "padding: 3px 10px 0; font-size: 0.8em; opacity: 0.7"
"""The language a fence names, above its code: small, and faded from the text colour."""

PRE: Final = "margin: 0; padding: 6px 10px; border: 0; background: none; overflow-x: auto"
"""The code's box in its panel: a long line scrolls (see :data:`CODE`)."""

CODE: Final = "background: none; padding: 0; white-space: pre"
"""The code takes the panel's colour, not the page's, and keeps its lines: a long one
scrolls instead of wrapping in the middle of a word. On ``code``, because the text is
there: JupyterLab gives ``pre`` and ``code`` alike ``white-space: pre-wrap``."""

TABLE: Final = "margin-left: 0; margin-right: 0"
"""Tables start at the left edge, as in a Markdown cell."""

THINKING: Final = "margin: 0.3em 0 0.8em; opacity: 0.85"
THINKING_SUMMARY: Final = "cursor: pointer; font-style: italic; color: " + MUTED
USAGE: Final = "margin-top: 0.4em; font-size: 0.85em; color: " + MUTED
NOTICE: Final = "margin: 0.4em 0; padding: 0.3em 0.6em; border-left: 3px solid #d9822b"
TOOL: Final = "margin: 0.4em 0; padding: 0.2em 0.6em; border-left: 3px solid " + _RULE
TOOL_PRE: Final = "margin: 0.2em 0; max-height: 20em; overflow: auto; white-space: pre-wrap"


def code_panel(code_html: str, language: str = "") -> str:
    """A fenced code block: its panel, the language it names (if any), its code.

    Args:
        code_html: The code, escaped or highlighted.
        language: The fence's language, shown as a label; it is escaped here.
    """
    label = f'<div style="{CODE_LABEL}">{escape(language)}</div>' if language else ""
    language_class = f' class="language-{escape(language)}"' if language else ""
    return (
        f'<div style="{CODE_PANEL}">{label}'
        f'<pre style="{PRE}"><code{language_class} style="{CODE}">{code_html}</code></pre>'
        "</div>\n"
    )
