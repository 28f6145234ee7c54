"""The reply a call leaves: the message, whether it finished, and what it cost.

A :class:`Reply` is an :class:`anthropic.types.Message` (so it can go straight back to the
SDK) that also knows whether the stream finished, what went wrong if it did not, what the
user must know about it (:meth:`Reply.notices`), and its usage, priced once when the reply
is made. It is data: it holds no display setting, and shows itself through
:mod:`nbclaude.static`. Nothing here imports IPython or ipywidgets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from anthropic.types import Message
from pydantic import PrivateAttr

from .prices import Price, price_for
from .static import static_bundle

__all__ = ["STOP_NOTICES", "Reply", "Round", "Timing", "ToolCall", "UsageSummary"]


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
    """Output tokens, thinking included; an estimate when :attr:`output_estimated`."""
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
    output_estimated: bool = False
    """Whether the stream ended before the API's output count, so the count (and the
    cost) is estimated from the characters that arrived, about four a token."""
    cached: bool = False
    """Whether the reply came from the response cache: the tokens are the original
    call's, and nothing was spent."""

    @property
    def tokens_per_second(self) -> float | None:
        """Output tokens per second after the first token, when that can be told."""
        if self.time_to_first_token is None:
            return None
        generating = self.duration - self.time_to_first_token
        return self.output_tokens / generating if generating > 0 else None

    def line(self) -> str:
        """The one-line summary shown under a reply."""
        out = f"{self.output_tokens:,} out"
        if self.output_estimated:
            out = f"~{out} (estimated)"
        parts = [f"{self.input_tokens:,} in", out]
        if self.thinking_tokens:
            parts[-1] += f" ({self.thinking_tokens:,} thinking)"
        if self.cache_read_tokens or self.cache_write_tokens:
            parts.append(
                f"cache {self.cache_read_tokens:,} read / {self.cache_write_tokens:,} written"
            )
        if self.cost is not None:
            parts.append(f"{'~' if self.output_estimated else ''}${self.cost:.4f}")
        if self.time_to_first_token is not None:
            parts.append(f"first token {self.time_to_first_token:.2f}s")
        parts.append(f"{self.duration:.2f}s")
        if (rate := self.tokens_per_second) is not None and not self.cached:
            parts.append(f"{rate:,.0f} tok/s")
        if self.cached:
            parts.insert(0, "cached")
        return f"{self.model} · " + " · ".join(parts)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call of a user's tool that Claude asked for, and what came of it."""

    id: str
    """The ``tool_use`` block's id, which its result names."""
    name: str
    """The tool called."""
    input: Any
    """The input Claude gave, as it came."""
    result: Any
    """What the function returned, or the exception it raised (``None`` if it never ran)."""
    is_error: bool
    """Whether the call failed: Claude is sent the error, with ``is_error``."""
    content: str | tuple[Mapping[str, Any], ...]
    """What Claude is sent: the result as text (JSON when it can be), content blocks (an
    image), or the error in one line."""
    shown: str
    """The result as the view shows it: its ``repr`` or the error, cut to a readable length."""

    def block(self) -> dict[str, Any]:
        """The ``tool_result`` block Claude is sent."""
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": self.id,
            "content": self.content if isinstance(self.content, str) else list(self.content),
        }
        if self.is_error:
            block["is_error"] = True
        return block

    def shown_block(self) -> dict[str, Any]:
        """The result as views show it, in a block's shape: the tool's name and the
        shown result."""
        return {
            "type": "tool_result",
            "tool_use_id": self.id,
            "name": self.name,
            "content": self.shown,
            "is_error": self.is_error,
        }


@dataclass(frozen=True, slots=True)
class Round:
    """One request of a tool loop: Claude's reply, and the calls of your tools it asked for."""

    reply: Reply
    """The reply of this round (its own content and usage)."""
    calls: tuple[ToolCall, ...] = ()
    """The tools called after it, whose results went to the next round; none for the last."""


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
    _summary: UsageSummary | None = PrivateAttr(default=None)
    _skipped: tuple[str, ...] = PrivateAttr(default=())
    _sdk_warnings: tuple[str, ...] = PrivateAttr(default=())
    _earlier: tuple[Round, ...] = PrivateAttr(default=())
    _own: Reply | None = PrivateAttr(default=None)
    _parsed: Any = PrivateAttr(default=None)

    @classmethod
    def from_parts(
        cls,
        message: Message,
        *,
        complete: bool,
        error: str | None,
        timing: Timing,
        prices: Mapping[str, Price] | None = None,
        skipped: tuple[str, ...] = (),
        sdk_warnings: tuple[str, ...] = (),
        output_estimate: int | None = None,
        cached: bool = False,
    ) -> Reply:
        """Wrap a (possibly partial) ``Message`` with what happened to its stream.

        Args:
            message: The message as far as it arrived.
            complete: Whether the stream reached ``message_stop`` without error.
            error: One line saying what went wrong, or ``None``.
            timing: Time to first token and duration.
            prices: Extra or overriding prices, merged over :data:`~nbclaude.prices.PRICES`.
            skipped: Stream event and delta types that were not understood.
            sdk_warnings: What the SDK warned about the request, one line each.
            output_estimate: Output tokens estimated from the text that arrived, when
                the stream ended before the API counted them.
            cached: Whether the reply came from the response cache (it then cost nothing).
        """
        reply = cls.model_construct(**dict(message))
        reply._complete = complete
        reply._error = error
        reply._timing = timing
        reply._skipped = skipped
        reply._sdk_warnings = sdk_warnings
        reply._earlier, reply._own, reply._parsed = (), None, None
        summary = _summarize(reply, timing, prices, output_estimate)
        reply._summary = replace(summary, cost=0.0, cached=True) if cached else summary
        return reply

    def concluding(
        self,
        earlier: Sequence[Round],
        *,
        error: str | None,
        parsed: Any,
        duration: float,
    ) -> Reply:
        """This reply as the end of an exchange: the rounds before it, and what came of all.

        Args:
            earlier: The tool rounds before this reply, oldest first.
            error: Why the exchange failed (the round limit, an interrupt, a reply that
                does not match the schema), or this reply's own error.
            parsed: The reply's text parsed by the schema, if one was given.
            duration: Seconds from the first request to now.

        Returns:
            A copy; its usage summary sums every round.
        """
        concluded = self.model_copy()
        concluded._own = self
        concluded._earlier = tuple(earlier)
        concluded._error = error
        concluded._parsed = parsed
        if earlier:
            summaries = [round_.reply.usage_summary for round_ in earlier]
            concluded._summary = _total([*summaries, self.usage_summary], duration)
        return concluded

    @property
    def rounds(self) -> tuple[Round, ...]:
        """Every request of the exchange, with the tool calls between them; this reply is
        the last. A reply without tools is one round."""
        return (*self._earlier, Round(self._own or self))

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """Every call of your tools in the exchange, in order."""
        return tuple(call for round_ in self._earlier for call in round_.calls)

    @property
    def parsed(self) -> Any:
        """With ``--schema``: the text validated into the model (or loaded as JSON for a
        dict schema); ``None`` without a schema, or when the text does not match."""
        return self._parsed

    @property
    def transcript(self) -> list[Any]:
        """The content blocks to show: every round's, each tool's result after its round."""
        blocks: list[Any] = []
        for round_ in self._earlier:
            blocks += round_.reply.content
            blocks += [call.shown_block() for call in round_.calls]
        return [*blocks, *self.content]

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
    def cached(self) -> bool:
        """Whether the reply came from the response cache rather than the API."""
        return self.usage_summary.cached

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
    def timing(self) -> Timing:
        """Time to first token and duration of the stream."""
        return self._timing

    @property
    def usage_summary(self) -> UsageSummary:
        """Tokens, cache, thinking, cost and speed of this call."""
        if self._summary is None:  # a reply made some other way than from_parts
            self._summary = _summarize(self, self._timing, None, None)
        return self._summary

    @property
    def cost(self) -> float | None:
        """US dollars at list price, or ``None`` when the model's price is unknown."""
        return self.usage_summary.cost

    def notices(self, *, error: bool = True) -> list[str]:
        """What the user must know about this reply beyond its content, one line each.

        Args:
            error: Include :attr:`error`. A cell that failed says it in its error line,
                right under the view, which leaves it out rather than say it twice.
        """
        lines = []
        if self.error and error:
            lines.append(self.error)
        if self.stop_reason == "refusal":
            category = getattr(self.stop_details, "category", None)
            lines.append(
                "Claude declined to answer (refusal" + (f": {category}" if category else "") + ")."
            )
        elif (stopped := STOP_NOTICES.get(self.stop_reason or "")) is not None:
            lines.append(stopped)
        lines.extend(self.sdk_warnings)
        if self.skipped:
            names = ", ".join(sorted(set(self.skipped)))
            lines.append(f"Skipped stream events this version does not know: {names}.")
        return lines

    @property
    def status_line(self) -> str:
        """The line under the reply: its usage, marked when the reply is incomplete.

        A reply that never began (the request failed, or was interrupted, before anything
        arrived) has no usage to show: the line says so, and how long the call took.
        """
        summary = self.usage_summary
        if self.complete:
            return summary.line()
        if not self.content and not summary.input_tokens:
            return f"{summary.model} · no reply · {summary.duration:.2f}s"
        model, _, usage = summary.line().partition(" · ")
        return f"{model} · incomplete · {usage}"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return static_bundle(self)


STOP_NOTICES: Mapping[str, str] = {
    "max_tokens": (
        "Truncated: the reply reached max_tokens. Raise --max-tokens, or continue the "
        "conversation with --chat."
    ),
    "pause_turn": "The API paused this turn (pause_turn): send the reply back to continue it.",
    "model_context_window_exceeded": (
        "The model's context window is full (model_context_window_exceeded): the reply was "
        "cut off. Shorten the prompt or the conversation."
    ),
}
"""Stop reasons that leave the reply short of what was asked, and what to do about each."""


def _total(summaries: Sequence[UsageSummary], duration: float) -> UsageSummary:
    """One summary for several requests: tokens and cost added up, the first's time to
    first token, the whole exchange's duration."""
    last = summaries[-1]
    costs = [summary.cost for summary in summaries]
    thinking = [summary.thinking_tokens for summary in summaries]
    return replace(
        last,
        input_tokens=sum(summary.input_tokens for summary in summaries),
        output_tokens=sum(summary.output_tokens for summary in summaries),
        cache_read_tokens=sum(summary.cache_read_tokens for summary in summaries),
        cache_write_tokens=sum(summary.cache_write_tokens for summary in summaries),
        thinking_tokens=None if all(t is None for t in thinking) else sum(t or 0 for t in thinking),
        cost=None if any(cost is None for cost in costs) else sum(c or 0.0 for c in costs),
        time_to_first_token=summaries[0].time_to_first_token,
        duration=duration,
        output_estimated=any(summary.output_estimated for summary in summaries),
    )


def _summarize(
    message: Message,
    timing: Timing,
    prices: Mapping[str, Price] | None,
    output_estimate: int | None,
) -> UsageSummary:
    """The usage summary of a message: its tokens priced, and its timing."""
    usage = message.usage
    details = usage.output_tokens_details
    output_tokens = usage.output_tokens if output_estimate is None else output_estimate
    price = price_for(message.model, prices)
    cache_read = usage.cache_read_input_tokens or 0
    cache_write = usage.cache_creation_input_tokens or 0
    cost = None
    if price is not None:
        cost = (
            usage.input_tokens * price.input
            + output_tokens * price.output
            + cache_read * price.cache_read
            + cache_write * price.cache_write
        ) / 1_000_000
    return UsageSummary(
        model=message.model,
        input_tokens=usage.input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        thinking_tokens=details.thinking_tokens if details is not None else None,
        cost=cost,
        time_to_first_token=timing.time_to_first_token,
        duration=timing.duration,
        output_estimated=output_estimate is not None,
    )
