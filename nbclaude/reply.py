"""The reply a ``%%claude`` cell leaves in the namespace, its usage summary and prices.

A :class:`Reply` is an :class:`anthropic.types.Message` (so it can go straight back to the
SDK) that also knows whether the stream finished, what went wrong if it did not, and what the
call cost. Nothing here imports IPython or ipywidgets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from anthropic.types import Message
from pydantic import PrivateAttr

__all__ = [
    "PRICES",
    "PRICES_AS_OF",
    "Price",
    "Reply",
    "Timing",
    "UsageSummary",
    "price_for",
]

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


def price_for(model: str, overrides: Mapping[str, Price] | None = None) -> Price | None:
    """Find the price of ``model``, trying an exact id first and then shorter prefixes.

    ``claude-haiku-4-5-20251001`` finds ``claude-haiku-4-5``; an unknown model finds ``None``.
    """
    table = {**PRICES, **(overrides or {})}
    name = model
    while name:
        if name in table:
            return table[name]
        name, _, _ = name.rpartition("-")
    return None


@dataclass(frozen=True, slots=True)
class Timing:
    """When a reply's stream started, first produced output, and ended (seconds)."""

    time_to_first_token: float | None
    """From sending the request to the first content delta; ``None`` if none arrived."""
    duration: float
    """From sending the request to the end of the stream, however it ended."""


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """Tokens, cost and speed of one call, as the usage line shows them."""

    model: str
    """The model that answered."""
    input_tokens: int
    """Uncached input tokens."""
    output_tokens: int
    """Output tokens, thinking included."""
    cache_read_tokens: int
    """Input tokens read from the prompt cache."""
    cache_write_tokens: int
    """Input tokens written to the prompt cache."""
    thinking_tokens: int | None
    """Output tokens spent thinking, when the API reports them."""
    cost: float | None
    """US dollars at list price, or ``None`` when the model's price is unknown."""
    time_to_first_token: float | None
    """Seconds from the request to the first content delta."""
    duration: float
    """Seconds from the request to the end of the stream."""

    @property
    def tokens_per_second(self) -> float | None:
        """Output tokens per second after the first token, when that can be told."""
        if self.time_to_first_token is None:
            return None
        generating = self.duration - self.time_to_first_token
        return self.output_tokens / generating if generating > 0 else None

    def line(self) -> str:
        """The one-line summary shown under a reply."""
        parts = [f"{self.input_tokens:,} in", f"{self.output_tokens:,} out"]
        if self.thinking_tokens:
            parts[-1] += f" ({self.thinking_tokens:,} thinking)"
        if self.cache_read_tokens or self.cache_write_tokens:
            parts.append(
                f"cache {self.cache_read_tokens:,} read / {self.cache_write_tokens:,} written"
            )
        if self.cost is not None:
            parts.append(f"${self.cost:.4f}")
        if self.time_to_first_token is not None:
            parts.append(f"first token {self.time_to_first_token:.2f}s")
        parts.append(f"{self.duration:.2f}s")
        if (rate := self.tokens_per_second) is not None:
            parts.append(f"{rate:,.0f} tok/s")
        return f"{self.model} · " + " · ".join(parts)


Interruption = Literal["interrupted", "error", "incomplete"]


class Reply(Message):
    """A Claude reply, as ``%%claude`` leaves it in ``_claude``.

    It is an :class:`anthropic.types.Message`: ``reply.content`` and ``reply.to_param()``
    go back to the SDK unchanged. On top of that it says whether the stream finished
    (:attr:`complete`), what went wrong if not (:attr:`error`), and what the call cost
    (:attr:`usage_summary`). It displays as the same static view the cell showed.
    """

    _complete: bool = PrivateAttr(default=False)
    _error: str | None = PrivateAttr(default=None)
    _timing: Timing = PrivateAttr(default=Timing(None, 0.0))
    _prices: Mapping[str, Price] = PrivateAttr(default_factory=dict)
    _remote_images: bool = PrivateAttr(default=False)
    _skipped: tuple[str, ...] = PrivateAttr(default=())
    _sdk_warnings: tuple[str, ...] = PrivateAttr(default=())

    @classmethod
    def from_parts(
        cls,
        message: Message,
        *,
        complete: bool,
        error: str | None,
        timing: Timing,
        prices: Mapping[str, Price] | None = None,
        remote_images: bool = False,
        skipped: tuple[str, ...] = (),
        sdk_warnings: tuple[str, ...] = (),
    ) -> Reply:
        """Wrap a (possibly partial) ``Message`` with what happened to its stream."""
        reply = cls.model_construct(**dict(message))
        reply._complete = complete
        reply._error = error
        reply._timing = timing
        reply._prices = dict(prices or {})
        reply._remote_images = remote_images
        reply._skipped = skipped
        reply._sdk_warnings = sdk_warnings
        return reply

    @property
    def text(self) -> str:
        """All text blocks, joined."""
        return "".join(block.text for block in self.content if block.type == "text" and block.text)

    @property
    def thinking(self) -> str:
        """All thinking blocks, joined with a blank line."""
        return "\n\n".join(
            block.thinking for block in self.content if block.type == "thinking" and block.thinking
        )

    @property
    def complete(self) -> bool:
        """``True`` only if the stream reached ``message_stop``."""
        return self._complete

    @property
    def error(self) -> str | None:
        """``None``, or one line saying what went wrong."""
        return self._error

    @property
    def skipped(self) -> tuple[str, ...]:
        """Stream event and delta types this version did not understand, if any."""
        return self._skipped

    @property
    def sdk_warnings(self) -> tuple[str, ...]:
        """What the SDK warned about the request (a deprecated model...), one line each."""
        return self._sdk_warnings

    @property
    def remote_images(self) -> bool:
        """Whether the view loads images from the network (off unless asked for)."""
        return self._remote_images

    @property
    def timing(self) -> Timing:
        """Time to first token and duration of the stream."""
        return self._timing

    @property
    def usage_summary(self) -> UsageSummary:
        """Tokens, cache, thinking, cost and speed of this call."""
        usage = self.usage
        details = usage.output_tokens_details
        price = price_for(self.model, self._prices)
        cache_read = usage.cache_read_input_tokens or 0
        cache_write = usage.cache_creation_input_tokens or 0
        cost = None
        if price is not None:
            cost = (
                usage.input_tokens * price.input
                + usage.output_tokens * price.output
                + cache_read * price.cache_read
                + cache_write * price.cache_write
            ) / 1_000_000
        return UsageSummary(
            model=self.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            thinking_tokens=details.thinking_tokens if details is not None else None,
            cost=cost,
            time_to_first_token=self._timing.time_to_first_token,
            duration=self._timing.duration,
        )

    @property
    def cost(self) -> float | None:
        """US dollars at list price, or ``None`` when the model's price is unknown."""
        return self.usage_summary.cost

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from .static import static_bundle

        return static_bundle(self)
