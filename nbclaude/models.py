"""Model names: the built-in aliases, and the table ``%claude models`` prints.

Nothing here imports IPython or talks to the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from anthropic.types import ModelInfo

__all__ = ["ALIASES", "models_table", "resolve_model"]

ALIASES: Mapping[str, str] = {
    "opus": "claude-opus-4-6",
    "sonnet": "claude-sonnet-4-6",
    "haiku": "claude-haiku-4-5",
}
"""Built-in model aliases; ``%config ClaudeMagics.aliases`` adds to or overrides them."""


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
