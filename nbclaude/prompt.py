"""What a cell sends: resolved options and the Messages API parameters built from them.

Nothing here talks to IPython or the network; the magic hands this module plain values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Options", "Thinking", "build_params"]

Thinking = int | Literal["adaptive"] | None
"""A thinking budget in tokens, ``"adaptive"``, or ``None`` for no extended thinking."""

MIN_THINKING_BUDGET = 1024
"""The smallest ``budget_tokens`` the API accepts."""


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


def build_params(
    prompt: str, options: Options, history: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """The keyword arguments for ``client.messages.create``, ``stream`` aside.

    The prompt is sent exactly as given: no formatting, no stripping beyond what the
    caller did.
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
