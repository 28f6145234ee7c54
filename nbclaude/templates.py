"""Filling ``{{ name }}`` templates from the notebook's namespace, and formatting values.

Templating is deliberately narrow, so that prompts full of code survive: only
``{{ name }}`` and ``{{ name.attr.attr }}`` (optional spaces or tabs inside the braces) are
templates. Single braces, ``{}``, ``{0}``, f-strings, JSON, ``{{{x}}}``, ``{{ x + 1 }}`` and
``{{ not a name }}`` are sent exactly as typed. Values are inserted verbatim: a value that
contains ``{{ y }}`` is not filled again. In a prompt, a value that is an image or a
``Path`` to a file becomes an attachment at its place (:func:`fill_prompt`). The namespace is
just a mapping: nothing here imports IPython.
"""

from __future__ import annotations

import keyword
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from .attachments import Attachment, Part, attachment_of
from .errors import RequestError
from .keys import SecretError
from .reply import Reply

__all__ = [
    "CELL_CHARS",
    "TABLE_COLUMNS",
    "TABLE_ROWS",
    "TemplateError",
    "fill_prompt",
    "fill_templates",
    "format_value",
    "markdown_table",
    "template_names",
]

TABLE_ROWS = 20
"""Rows of a DataFrame sent in a prompt; longer frames send the first and last half."""

TABLE_COLUMNS = 20
"""Columns of a DataFrame sent in a prompt; wider frames send the first and last half."""

CELL_CHARS = 80
"""Characters of one table cell sent in a prompt; longer values are cut with ``…``."""


_NAME = r"[^\W\d]\w*"
_TEMPLATE = re.compile(
    # Not inside a longer run of braces: f"{{{x}}}" is code, not a template.
    r"(?<!\{)\{\{[ \t]*(?P<path>" + _NAME + r"(?:\." + _NAME + r")*)[ \t]*\}\}(?!\})"
)


class TemplateError(RequestError):
    """A ``{{ name }}`` in the prompt could not be filled; nothing should be sent."""


def _is_template(path: str) -> bool:
    return not any(keyword.iskeyword(part) for part in path.split("."))


def template_names(text: str) -> list[str]:
    """The dotted names templated in ``text``, in order, repeats included.

    Args:
        text: A prompt or system prompt.

    Returns:
        Each ``{{ name.attr }}`` path, without braces or spaces.
    """
    return [match["path"] for match in _TEMPLATE.finditer(text) if _is_template(match["path"])]


def fill_prompt(
    text: str, namespace: Mapping[str, Any], *, secrets: Sequence[str] = ()
) -> str | list[Part]:
    """Fill the templates of a prompt, where a value may be an image, a PDF or a file.

    A value that :func:`~nbclaude.attachments.attachment_of` makes an attachment (an image,
    a ``Path`` to a file) becomes one at its place; every other value is text, as in
    :func:`fill_templates`.

    Args:
        text: The prompt.
        namespace: Where names are looked up.
        secrets: Credentials no value may contain.

    Returns:
        The filled text when nothing is attached, else text and attachments in order.

    Raises:
        TemplateError: As :func:`fill_templates`.
        SecretError: As :func:`fill_templates`.
        AttachmentError: If a value is an image or file that cannot be sent.
    """
    parts: list[Part] = []
    pending: list[str] = []
    last = 0
    for match in _TEMPLATE.finditer(text):
        path = match["path"]
        if not _is_template(path):
            continue
        pending.append(text[last : match.start()])
        last = match.end()
        value = _lookup(path, namespace)
        attached = attachment_of(value, f"{{{{ {path} }}}}")
        if attached is None:
            pending.append(_formatted(path, value, secrets))
            continue
        parts += ["".join(pending), attached]
        pending = []
    pending.append(text[last:])
    if not parts:
        return "".join(pending)
    return [*parts, "".join(pending)]


def fill_templates(text: str, namespace: Mapping[str, Any], *, secrets: Sequence[str] = ()) -> str:
    """Replace each ``{{ name }}`` and ``{{ name.attr }}`` with its value from ``namespace``.

    Everything else, braces included, is kept exactly. Values are formatted by
    :func:`format_value` and not filled again; a ``Path`` to a text file is its text. This
    fills text that must stay text, such as the system prompt.

    Args:
        text: A prompt or system prompt.
        namespace: Where names are looked up, such as the notebook's user namespace.
        secrets: Credentials no value may contain (see :func:`api_secrets`).

    Returns:
        The filled text.

    Raises:
        TemplateError: If a name is not defined, an attribute is missing, reading or
            formatting a value failed, or a value is an image or a PDF.
        SecretError: If a value contains one of ``secrets`` (``{{ os.environ }}``).
    """
    filled = fill_prompt(text, namespace, secrets=secrets)
    if isinstance(filled, str):
        return filled
    for part in filled:
        if isinstance(part, Attachment) and part.kind != "text":
            raise TemplateError(
                f"{part.name}: {part.placeholder()} cannot go in the system prompt; put it "
                "in the prompt. Nothing was sent."
            )
    return "".join(part if isinstance(part, str) else str(part.block()["text"]) for part in filled)


def _formatted(path: str, value: Any, secrets: Sequence[str]) -> str:
    formatted = format_value(value)
    if any(secret in formatted for secret in secrets):
        raise SecretError(
            f"{{{{ {path} }}}}: its value contains your API key, which is never sent or "
            "shown. Fill in something without it. Nothing was sent."
        )
    return formatted


def _lookup(path: str, namespace: Mapping[str, Any]) -> Any:
    name, *attributes = path.split(".")
    if name not in namespace:
        raise TemplateError(
            f"{{{{ {path} }}}}: name {name!r} is not defined. Define it in a cell above, or "
            "pass --raw to send the cell without filling {{ }}. Nothing was sent."
        )
    value = namespace[name]
    reached = name
    for attribute in attributes:
        try:
            value = getattr(value, attribute)
        except AttributeError:
            raise TemplateError(
                f"{{{{ {path} }}}}: {reached} ({type(value).__name__}) has no attribute "
                f"{attribute!r}. Nothing was sent."
            ) from None
        except Exception as exc:
            raise TemplateError(
                f"{{{{ {path} }}}}: reading {reached}.{attribute} raised "
                f"{type(exc).__name__}: {exc}. Nothing was sent."
            ) from exc
        reached = f"{reached}.{attribute}"
    return value


def format_value(value: Any) -> str:
    """How a templated value appears in the prompt.

    A string is itself; a :class:`~nbclaude.reply.Reply` is its text; a pandas DataFrame or
    Series is a compact Markdown table with its shape (see :func:`markdown_table`);
    anything else is ``str(value)``.

    Args:
        value: The value a template names.

    Returns:
        The text to insert.

    Raises:
        TemplateError: If formatting the value raised.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, Reply):
        return value.text
    try:
        if _is_pandas(value):
            return markdown_table(value)
        return str(value)
    except Exception as exc:
        raise TemplateError(
            f"Formatting a {type(value).__name__} for the prompt raised "
            f"{type(exc).__name__}: {exc}. Nothing was sent."
        ) from exc


def _is_pandas(value: Any) -> bool:
    # Never import pandas here: if the value is a DataFrame, pandas is already loaded.
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame | pandas.Series)


def markdown_table(
    data: Any,
    *,
    max_rows: int = TABLE_ROWS,
    max_columns: int = TABLE_COLUMNS,
    max_chars: int = CELL_CHARS,
) -> str:
    """A pandas DataFrame or Series as a shape line and a compact Markdown table.

    The index is the first column. Long frames keep their first and last ``max_rows // 2``
    rows and wide ones their first and last ``max_columns // 2`` columns, with a ``…`` row
    or column between; cells longer than ``max_chars`` are cut; ``|`` and line breaks in
    cells are escaped so the table stays one row per line.

    Args:
        data: A ``pandas.DataFrame`` or ``pandas.Series``.
        max_rows: Most rows shown.
        max_columns: Most columns shown.
        max_chars: Most characters per cell.

    Returns:
        The Markdown text.
    """
    pandas = sys.modules["pandas"]
    if isinstance(data, pandas.Series):
        label = "value" if data.name is None else str(data.name)
        frame = data.to_frame(label)
        kind = f"Series {data.name!r}" if data.name is not None else "Series"
        shape = f"{kind}: {len(data):,} rows"
    else:
        frame = data
        rows, columns = frame.shape
        shape = f"DataFrame: {rows:,} rows × {columns:,} columns"
    row_positions, rows_cut = _keep_ends(frame.shape[0], max_rows)
    column_positions, columns_cut = _keep_ends(frame.shape[1], max_columns)
    if rows_cut or columns_cut:
        shown = []
        if rows_cut:
            shown.append(f"first and last {max_rows // 2} rows")
        if columns_cut:
            shown.append(f"first and last {max_columns // 2} columns")
        shape += f" (showing {' and '.join(shown)})"

    def cell(value: Any) -> str:
        text = " ".join(str(value).splitlines()).replace("|", "\\|")
        return text if len(text) <= max_chars else text[: max_chars - 1] + "…"

    def label_of(value: Any) -> str:
        return cell(" / ".join(map(str, value)) if isinstance(value, tuple) else value)

    index_name = frame.index.name if isinstance(frame.index.name, str) else ""
    header = [cell(index_name)] + [
        "…" if j is None else label_of(frame.columns[j]) for j in column_positions
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i in row_positions:
        if i is None:
            row = ["…"] * len(header)
        else:
            row = [label_of(frame.index[i])] + [
                "…" if j is None else cell(frame.iat[i, j]) for j in column_positions
            ]
        lines.append("| " + " | ".join(row) + " |")
    return shape + "\n\n" + "\n".join(lines)


def _keep_ends(count: int, limit: int) -> tuple[list[int | None], bool]:
    """Positions to show out of ``count``: all, or both ends with ``None`` for the gap."""
    if count <= limit:
        return list(range(count)), False
    half = max(1, limit // 2)
    return [*range(half), None, *range(count - half, count)], True
