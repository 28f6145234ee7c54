"""What a cell sends: resolved options, filled templates and the Messages API parameters.

Nothing here talks to IPython or the network; the magic hands this module plain values
(the namespace is just a mapping).

Templating is deliberately narrow, so that prompts full of code survive: only
``{{ name }}`` and ``{{ name.attr.attr }}`` (optional spaces or tabs inside the braces) are
templates. Single braces, ``{}``, ``{0}``, f-strings, JSON, ``{{{x}}}``, ``{{ x + 1 }}`` and
``{{ not a name }}`` are sent exactly as typed. Values are inserted verbatim: a value that
contains ``{{ y }}`` is not filled again.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from anthropic.types import ModelInfo

from .reply import Price, Reply, price_for

__all__ = [
    "ALIASES",
    "COUNTED_PARAMS",
    "MIN_THINKING_BUDGET",
    "SECRET_VARIABLES",
    "DryRun",
    "Options",
    "SecretError",
    "TemplateError",
    "Thinking",
    "api_secrets",
    "build_params",
    "check_no_secrets",
    "fill_templates",
    "format_value",
    "markdown_table",
    "models_table",
    "resolve_model",
    "template_names",
]

Thinking = int | Literal["adaptive"] | None
"""A thinking budget in tokens, ``"adaptive"``, or ``None`` for no extended thinking."""

MIN_THINKING_BUDGET = 1024
"""The smallest ``budget_tokens`` the API accepts."""

ALIASES: Mapping[str, str] = {
    "opus": "claude-opus-4-6",
    "sonnet": "claude-sonnet-4-6",
    "haiku": "claude-haiku-4-5",
}
"""Built-in model aliases; ``%config ClaudeMagics.aliases`` adds to or overrides them."""

COUNTED_PARAMS = ("model", "messages", "system", "thinking", "tools", "tool_choice")
"""The request parameters the count-tokens endpoint takes (it has no ``max_tokens``)."""

TABLE_ROWS = 20
"""Rows of a DataFrame sent in a prompt; longer frames send the first and last half."""

TABLE_COLUMNS = 20
"""Columns of a DataFrame sent in a prompt; wider frames send the first and last half."""

CELL_CHARS = 80
"""Characters of one table cell sent in a prompt; longer values are cut with ``…``."""


@dataclass(frozen=True, slots=True)
class Options:
    """Everything that decides one call, after flags have overridden the settings."""

    model: str
    """Model id, aliases already resolved."""
    max_tokens: int
    """``max_tokens`` for the request."""
    thinking: Thinking = None
    """Extended thinking: a budget, adaptive, or off."""
    system: str | None = None
    """The system prompt, templates already filled."""
    out: str | None = None
    """Another name to bind the reply to, besides ``_claude``."""
    chat: str | None = None
    """The conversation this cell continues, or ``None`` for a one-off request."""


def build_params(
    prompt: str, options: Options, history: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """The keyword arguments for ``client.messages.create``, ``stream`` aside.

    Args:
        prompt: The user's message, templates already filled. Sent exactly as given: no
            formatting, no stripping beyond what the caller did.
        options: The resolved options of the cell.
        history: Earlier messages of the conversation, oldest first, in the API's shape.

    Returns:
        The parameters, with the prompt as the last user message.
    """
    params: dict[str, Any] = {
        "model": options.model,
        "max_tokens": options.max_tokens,
        "messages": [*history, {"role": "user", "content": prompt}],
    }
    if options.system:
        params["system"] = options.system
    if options.thinking == "adaptive":
        params["thinking"] = {"type": "adaptive", "display": "summarized"}
    elif isinstance(options.thinking, int):
        params["thinking"] = {
            "type": "enabled",
            "budget_tokens": options.thinking,
            "display": "summarized",
        }
    return params


def resolve_model(name: str, aliases: Mapping[str, str] | None = None) -> str:
    """The model id for ``name``: an alias is looked up once, anything else is kept.

    Args:
        name: A model id or an alias such as ``sonnet``.
        aliases: Extra or overriding aliases, merged over :data:`ALIASES`.

    Returns:
        The model id to send.
    """
    return {**ALIASES, **(aliases or {})}.get(name, name)


def models_table(models: Iterable[ModelInfo], aliases: Mapping[str, str] | None = None) -> str:
    """The models the API offers, as ``%claude models`` prints them, with their aliases.

    Args:
        models: What ``client.models.list()`` returned.
        aliases: Extra or overriding aliases, merged over :data:`ALIASES`.

    Returns:
        A fixed-width text table, then any alias whose model the API did not list.
    """
    table = {**ALIASES, **(aliases or {})}
    rows = [("model", "name", "released", "aliases")]
    listed = set()
    for model in models:
        listed.add(model.id)
        names = ", ".join(sorted(alias for alias, target in table.items() if target == model.id))
        rows.append((model.id, model.display_name, model.created_at.date().isoformat(), names))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    missing = [f"{alias} → {target}" for alias, target in table.items() if target not in listed]
    if missing:
        lines += ["", "Aliases for models not listed: " + ", ".join(sorted(missing)) + "."]
    return "\n".join(lines)


# --------------------------------------------------------------------------- templates

_NAME = r"[^\W\d]\w*"
_TEMPLATE = re.compile(
    # Not inside a longer run of braces: f"{{{x}}}" is code, not a template.
    r"(?<!\{)\{\{[ \t]*(?P<path>" + _NAME + r"(?:\." + _NAME + r")*)[ \t]*\}\}(?!\})"
)


class TemplateError(ValueError):
    """A ``{{ name }}`` in the prompt could not be filled; nothing should be sent."""


class SecretError(TemplateError):
    """The request would carry the API key; nothing should be sent or shown."""


SECRET_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
"""The environment variables the SDK reads credentials from."""

_MIN_SECRET_CHARS = 8
"""Shorter values are not looked for: a real key is about a hundred characters, and a
short placeholder would match ordinary text."""


def api_secrets(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The credentials in ``environ`` that a request must never carry.

    Args:
        environ: The environment, such as ``os.environ``.

    Returns:
        The values of :data:`SECRET_VARIABLES` that are set and long enough to look for.
    """
    values = (environ.get(name, "").strip() for name in SECRET_VARIABLES)
    return tuple(value for value in values if len(value) >= _MIN_SECRET_CHARS)


def check_no_secrets(params: Mapping[str, Any], secrets: Sequence[str]) -> None:
    """Refuse a request that carries a credential anywhere (prompt, system, history...).

    Args:
        params: The request.
        secrets: What :func:`api_secrets` found.

    Raises:
        SecretError: If any of ``secrets`` appears in the request.
    """
    if not secrets:
        return
    body = json.dumps(params, ensure_ascii=False, default=str)
    if any(secret in body for secret in secrets):
        raise SecretError(
            "The request contains your API key: it is never sent or shown. Take it out of "
            "the prompt, the system prompt or the values they fill. Nothing was sent."
        )


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


def fill_templates(text: str, namespace: Mapping[str, Any], *, secrets: Sequence[str] = ()) -> str:
    """Replace each ``{{ name }}`` and ``{{ name.attr }}`` with its value from ``namespace``.

    Everything else, braces included, is kept exactly. Values are formatted by
    :func:`format_value` and not filled again.

    Args:
        text: A prompt or system prompt.
        namespace: Where names are looked up, such as the notebook's user namespace.
        secrets: Credentials no value may contain (see :func:`api_secrets`).

    Returns:
        The filled text.

    Raises:
        TemplateError: If a name is not defined, an attribute is missing, or reading or
            formatting a value failed.
        SecretError: If a value contains one of ``secrets`` (``{{ os.environ }}``).
    """

    def fill(match: re.Match[str]) -> str:
        path = match["path"]
        if not _is_template(path):
            return match[0]
        value = format_value(_lookup(path, namespace))
        if any(secret in value for secret in secrets):
            raise SecretError(
                f"{{{{ {path} }}}}: its value contains your API key, which is never sent or "
                "shown. Fill in something without it. Nothing was sent."
            )
        return value

    return _TEMPLATE.sub(fill, text)


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


# --------------------------------------------------------------------------- dry runs


@dataclass(frozen=True, slots=True)
class DryRun:
    """What ``--dry-run`` found: the request that would be sent and what its input costs."""

    request: Mapping[str, Any]
    """The exact body ``POST /v1/messages`` would carry, ``stream`` included."""
    input_tokens: int
    """Input tokens of the request, as the count-tokens endpoint counted them."""
    price: Price | None
    """The model's list price, or ``None`` when it is unknown."""

    @classmethod
    def priced(
        cls,
        request: Mapping[str, Any],
        input_tokens: int,
        prices: Mapping[str, Price] | None = None,
    ) -> DryRun:
        """A dry run priced at the list price of the request's model.

        Args:
            request: The request body.
            input_tokens: The count from the count-tokens endpoint.
            prices: Extra or overriding prices.

        Returns:
            The dry run.
        """
        return cls(request, input_tokens, price_for(str(request.get("model", "")), prices))

    @property
    def input_cost(self) -> float | None:
        """US dollars for the input, uncached, at list price; ``None`` if unpriced."""
        if self.price is None:
            return None
        return self.input_tokens * self.price.input / 1_000_000

    @property
    def max_output_cost(self) -> float | None:
        """US dollars if the reply used all of ``max_tokens``; ``None`` if unpriced."""
        if self.price is None:
            return None
        return int(self.request.get("max_tokens", 0)) * self.price.output / 1_000_000

    def report(self) -> str:
        """The text ``--dry-run`` prints: the request as JSON, then tokens and cost."""
        body = json.dumps(self.request, indent=2, ensure_ascii=False)
        model = self.request.get("model", "")
        line = f"{self.input_tokens:,} input tokens (count_tokens)"
        if self.input_cost is not None and self.max_output_cost is not None:
            line += (
                f" · input ${self.input_cost:.4f} uncached at {model} list price"
                f" · up to ${self.max_output_cost:.4f} more for "
                f"{int(self.request.get('max_tokens', 0)):,} output tokens"
            )
        else:
            line += f" · no known price for {model}"
        return f"Dry run: nothing was sent to the Messages API.\nPOST /v1/messages\n{body}\n{line}"
