"""What calls cost: list prices per model, and what a request will cost before it is sent.

:data:`PRICES` holds the list prices as of :data:`PRICES_AS_OF`; :func:`price_for` finds a
model's, exactly or by its snapshot date, never by guessing from a similar id. A
:class:`DryRun` is what ``--dry-run`` reports: the request and its input tokens, priced.
Nothing here imports IPython or the SDK.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PRICES", "PRICES_AS_OF", "DryRun", "Price", "price_for"]


PRICES_AS_OF = "2026-11-24"
"""The day the list prices in :data:`PRICES` were last checked."""


@dataclass(frozen=True, slots=True)
class Price:
    """List prices of one model, in US dollars per million tokens."""

    input: float
    """Uncached input tokens."""
    output: float
    """Output tokens, thinking included."""
    cache_write: float
    """Input tokens written to the 5-minute prompt cache."""
    cache_read: float
    """Input tokens read from the prompt cache."""

    def scaled(self, factor: float) -> Price:
        """This price times ``factor``, such as the Message Batches API's half price."""
        return Price(
            self.input * factor,
            self.output * factor,
            self.cache_write * factor,
            self.cache_read * factor,
        )

    @classmethod
    def standard(cls, input: float, output: float) -> Price:
        """Prices with the usual cache multipliers: writes 1.25x input, reads 0.1x input."""
        return cls(input, output, cache_write=input * 1.25, cache_read=input * 0.1)


PRICES: Mapping[str, Price] = {
    "claude-opus-4-6": Price.standard(5.0, 25.0),
    "claude-opus-4-5": Price.standard(5.0, 25.0),
    "claude-opus-4-1": Price.standard(15.0, 75.0),
    "claude-opus-4": Price.standard(15.0, 75.0),
    "claude-sonnet-4-6": Price.standard(3.0, 15.0),
    "claude-sonnet-4-5": Price.standard(3.0, 15.0),
    "claude-sonnet-4": Price.standard(3.0, 15.0),
    "claude-haiku-4-5": Price.standard(1.0, 5.0),
    "claude-3-5-haiku": Price.standard(0.8, 4.0),
}
"""List prices as of :data:`PRICES_AS_OF`, keyed by model id without a date suffix.

Override or extend them with ``%config ClaudeMagics.prices``; a model with no price shows
tokens only.
"""


_SNAPSHOT_SUFFIX = re.compile(r"-(?:\d{8}|latest)$")
"""The date (or ``-latest``) that names one snapshot of a model: ``-20251001``."""


def price_for(model: str, overrides: Mapping[str, Price] | None = None) -> Price | None:
    """The price of ``model``: its exact id, else the id without its snapshot date.

    ``claude-haiku-4-5-20251001`` finds ``claude-haiku-4-5``. Nothing else is guessed: a
    newer model (``claude-opus-4-8``) is not priced like an older one whose id it extends,
    and an unknown model finds ``None``.
    """
    table = {**PRICES, **(overrides or {})}
    if model in table:
        return table[model]
    return table.get(_SNAPSHOT_SUFFIX.sub("", model))


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
