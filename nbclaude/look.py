"""How a reply looks: the inline styles the live view and the static view share.

The HTML carries its look in ``style`` attributes, never in a ``<style>`` element: a
sanitizer that drops ``<style>`` (JupyterLab's "Export as HTML", GitHub's notebook view)
would print its rules as text at the top of every reply, and a sanitizer that drops
``style`` and ``class`` attributes leaves plain HTML that still reads (headings, code in
``pre``, thinking in ``details``). Everything else (fonts, headings, lists, tables) is
the front end's own look for rendered Markdown, so a reply reads like a Markdown cell.

Colours are JupyterLab's theme variables, so a reply follows its theme, light or dark;
the fallbacks (for front ends without them) are mid tones, readable on both.
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

_BORDER: Final = "var(--jp-border-color2, rgba(128, 128, 128, 0.3))"

CODE_PANEL: Final = (
    "margin: 0.6em 0 1em; border: 1px solid " + _BORDER + "; border-radius: 4px; "
    "background: var(--jp-cell-editor-background, rgba(128, 128, 128, 0.08))"
)
"""A fenced code block's panel: the colours of a code cell's editor, in every theme."""

CODE_LABEL: Final = (
    "padding: 3px 10px 0; font-size: 0.8em; line-height: 1.4; color: " + MUTED + "; "
    "font-family: var(--jp-ui-font-family, sans-serif)"
)
"""The language a fence names, above its code."""

PRE: Final = (
    "margin: 0; padding: 6px 10px; border: 0; background: none; white-space: pre; "
    "word-break: normal; overflow-wrap: normal; overflow-x: auto"
)
"""Code keeps its lines: a long one scrolls instead of wrapping in the middle of a word."""

CODE: Final = (
    "background: none; padding: 0; white-space: pre; word-break: normal; overflow-wrap: normal"
)
"""The ``code`` inside a panel takes the panel's colour, not the page's."""

TABLE: Final = "margin-left: 0; margin-right: 0"
"""Tables start at the left edge, as in a Markdown cell."""

THINKING: Final = "margin: 0.3em 0 0.8em; opacity: 0.85"
THINKING_SUMMARY: Final = "cursor: pointer; font-style: italic; color: " + MUTED
USAGE: Final = "margin-top: 0.4em; font-size: 0.85em; color: " + MUTED
NOTICE: Final = "margin: 0.4em 0; padding: 0.3em 0.6em; border-left: 3px solid #d9822b"
TOOL: Final = "margin: 0.4em 0; padding: 0.2em 0.6em; border-left: 3px solid " + _BORDER
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
