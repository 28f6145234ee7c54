"""Send a request, fold the raw event stream into a :class:`~nbclaude.reply.Reply`, time it.

The stream is read with ``client.messages.create(stream=True)`` and folded by
:class:`ReplyBuilder`, which keeps every delta in a list and joins on demand, so reading a
reply costs time linear in its length (``messages.stream()`` copies its whole snapshot string
on every delta). Whatever arrives before a failure or an interrupt is kept: :func:`run`
returns the partial reply with :attr:`Reply.error` set instead of raising, so the caller can
show it and bind it before it ends the cell in error.

No IPython, no widgets: the view learns of progress through the ``on_event`` callback.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import anthropic
import httpx2
from anthropic._models import construct_type
from anthropic.types import Message

from .reply import Price, Reply, Timing

__all__ = [
    "BlockState",
    "ClaudeError",
    "ReplyBuilder",
    "describe_error",
    "run",
]

Clock = Callable[[], float]


class ClaudeError(Exception):
    """An expected failure: the message says what happened and what to do, in one line.

    IPython shows exceptions with ``_render_traceback_`` by calling it instead of printing
    a traceback, so a failed cell ends in error (and "Run All" stops) with just this line.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mClaudeError\x1b[0m: {self}"]


@dataclass(slots=True)
class BlockState:
    """One content block as it streams in. Owned and mutated by :class:`ReplyBuilder`."""

    index: int
    """The block's ``index`` in the stream."""
    type: str
    """The block's ``type`` as the API sent it, including types this SDK does not know."""
    start: dict[str, Any]
    """The ``content_block`` of ``content_block_start``, as sent."""
    chunks: list[str] = field(default_factory=list)
    """Text, thinking or partial-JSON deltas in arrival order; only ever appended to."""
    signature: str = ""
    """The thinking block's signature, needed to send the block back to the API."""
    citations: list[dict[str, Any]] = field(default_factory=list)
    """Citations attached to a text block by ``citations_delta`` events."""
    stopped: bool = False
    """Whether ``content_block_stop`` arrived for this block."""

    @property
    def content(self) -> str:
        """All deltas of the block, joined."""
        return "".join(self.chunks)

    def to_dict(self) -> dict[str, Any]:
        """The finished (or partial) block in the API's shape."""
        block = dict(self.start)
        if self.type == "text":
            block["text"] = (block.get("text") or "") + self.content
            if self.citations:
                block["citations"] = [*(block.get("citations") or []), *self.citations]
        elif self.type == "thinking":
            block["thinking"] = (block.get("thinking") or "") + self.content
            block["signature"] = self.signature or block.get("signature") or ""
        elif self.type in {"tool_use", "server_tool_use", "mcp_tool_use"} and self.chunks:
            try:
                block["input"] = json.loads(self.content)
            except json.JSONDecodeError:
                # A partial stream cut inside the JSON: keep what arrived, unparsed.
                block["input"] = {"_partial_json": self.content}
        return block


KNOWN_EVENTS = frozenset(
    {
        "message_start",
        "message_delta",
        "message_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
    }
)


class ReplyBuilder:
    """Folds raw Messages API stream events into a message, in time linear in its length."""

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.started_at = clock()
        self.first_delta_at: float | None = None
        self.blocks: list[BlockState] = []
        self.complete = False
        self.unknown: list[str] = []
        """Event and delta types this version does not understand, in arrival order."""
        self._start: dict[str, Any] = {}
        self._usage: dict[str, Any] = {}
        self._delta: dict[str, Any] = {}
        self._by_index: dict[int, BlockState] = {}
        self.chars = 0
        """Characters of text, thinking and tool input received so far."""

    def add(self, event: Any) -> None:
        """Fold one event from ``client.messages.create(stream=True)``."""
        kind = event.type
        if kind == "content_block_delta":  # nearly every event: test it first
            self._add_delta(event.index, event.delta)
        elif kind == "message_start":
            self._start = event.message.model_dump(warnings=False)
            self._usage = dict(self._start.get("usage") or {})
        elif kind == "content_block_start":
            block = event.content_block
            state = BlockState(
                event.index, block.type, block.model_dump(exclude_none=True, warnings=False)
            )
            self.blocks.append(state)
            self._by_index[event.index] = state
        elif kind == "content_block_stop":
            if (stopped := self._by_index.get(event.index)) is not None:
                stopped.stopped = True
        elif kind == "message_delta":
            self._delta.update(event.delta.model_dump(exclude_none=True, warnings=False))
            usage = event.usage.model_dump(exclude_none=True, warnings=False) if event.usage else {}
            self._usage.update(usage)
        elif kind == "message_stop":
            self.complete = True
        else:
            self.unknown.append(str(kind))

    def _add_delta(self, index: int, delta: Any) -> None:
        state = self._by_index.get(index)
        if state is None:
            self.unknown.append(f"delta for unknown block {index}")
            return
        kind = delta.type
        if kind == "text_delta":
            piece = delta.text
        elif kind == "thinking_delta":
            piece = delta.thinking
        elif kind == "input_json_delta":
            piece = delta.partial_json
        elif kind == "signature_delta":
            state.signature += delta.signature
            return
        elif kind == "citations_delta":
            state.citations.append(delta.citation.model_dump(exclude_none=True, warnings=False))
            return
        else:
            self.unknown.append(str(kind))
            return
        if piece:
            if self.first_delta_at is None:
                self.first_delta_at = self._clock()
            state.chunks.append(piece)
            self.chars += len(piece)

    @property
    def stop_reason(self) -> str | None:
        """The stop reason from ``message_delta``, once it arrived."""
        reason = self._delta.get("stop_reason")
        return str(reason) if reason is not None else None

    def message(self) -> Message:
        """The message as far as it arrived (built on demand, not on every delta)."""
        data = dict(self._start) or {
            "id": "",
            "type": "message",
            "role": "assistant",
            "model": "",
        }
        data.update(self._delta)
        data["content"] = [block.to_dict() for block in self.blocks]
        data["usage"] = self._usage or {"input_tokens": 0, "output_tokens": 0}
        # The SDK's own lenient constructor: block types newer than this SDK survive as-is.
        return cast(Message, construct_type(type_=Message, value=data))

    def reply(
        self,
        *,
        error: str | None = None,
        prices: Mapping[str, Price] | None = None,
        remote_images: bool = False,
        sdk_warnings: tuple[str, ...] = (),
    ) -> Reply:
        """The reply so far; complete only if ``message_stop`` arrived and nothing failed."""
        message = self.message()
        ttft = None if self.first_delta_at is None else self.first_delta_at - self.started_at
        return Reply.from_parts(
            message,
            complete=self.complete and error is None,
            error=error,
            timing=Timing(ttft, self._clock() - self.started_at),
            prices=prices,
            remote_images=remote_images,
            skipped=tuple(self.unknown),
            sdk_warnings=sdk_warnings,
        )


def run(
    client: anthropic.Anthropic,
    params: Mapping[str, Any],
    *,
    on_event: Callable[[ReplyBuilder], None] = lambda builder: None,
    clock: Clock = time.monotonic,
    prices: Mapping[str, Price] | None = None,
    remote_images: bool = False,
) -> Reply:
    """Send ``params`` to the Messages API and stream the answer.

    ``on_event`` is called with the builder after every event; it must be cheap (the view
    throttles itself). Failures before anything arrived raise :class:`ClaudeError`; failures
    after (an ``error`` event, a cut connection, a stream that ends without
    ``message_stop``, a kernel interrupt) return the partial :class:`Reply` with ``error``
    set, after closing the HTTP response.
    """
    builder = ReplyBuilder(clock=clock)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stream = client.messages.create(**params, stream=True)
    except KeyboardInterrupt:
        raise ClaudeError("Interrupted before the reply started; nothing was kept.") from None
    except (anthropic.APIError, httpx2.HTTPError) as exc:
        raise ClaudeError(describe_error(exc, params)) from exc

    error: str | None = None
    try:
        with stream:
            for event in stream:
                builder.add(event)
                on_event(builder)
    except KeyboardInterrupt:
        # Leaving the ``with`` closed the response already: generation (and billing) stops.
        error = "Interrupted: the reply was cut short; what arrived is kept."
    except (anthropic.APIError, httpx2.HTTPError, OSError) as exc:
        error = describe_error(exc, params, mid_stream=True)
    if error is None and not builder.complete:
        error = (
            "The stream ended before the reply was finished (no message_stop): "
            "it is incomplete. Run the cell again."
        )
    return builder.reply(
        error=error,
        prices=prices,
        remote_images=remote_images,
        sdk_warnings=_warnings_about_the_request(caught),
    )


def _warnings_about_the_request(caught: list[warnings.WarningMessage]) -> tuple[str, ...]:
    """What the SDK warned about this request (a deprecated model, a deprecated setting).

    The SDK attributes them to its caller, this module, where Python's default filters
    hide a ``DeprecationWarning`` and show a ``UserWarning`` as a raw source line: they
    are kept as one line each, for the view to show as notices. Any other warning raised
    meanwhile is issued again as it was.
    """
    lines = []
    for warning in caught:
        if warning.filename == __file__:
            lines.append(" ".join(str(warning.message).split()))
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return tuple(dict.fromkeys(lines))


def describe_error(
    exc: BaseException, params: Mapping[str, Any] | None = None, *, mid_stream: bool = False
) -> str:
    """One line saying what went wrong and what to do about it. Never includes a key.

    Args:
        exc: What the SDK or the transport raised.
        params: The request, to name the model in a 404.
        mid_stream: Whether part of the reply had already arrived.
    """
    if isinstance(exc, anthropic.APIStatusError):
        return _describe_status(exc, params or {})
    if mid_stream:
        if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
            return (
                "The stream stalled: no data arrived within the timeout, so the reply is "
                "incomplete. Run the cell again, or raise %config ClaudeMagics.timeout."
            )
        return (
            f"The connection broke mid-reply ({type(exc).__name__}): the reply is incomplete. "
            "Run the cell again."
        )
    if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
        return (
            "The request timed out: the API did not answer in time. "
            "Run the cell again, or raise %config ClaudeMagics.timeout."
        )
    if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
        return (
            "Could not connect to the API: check your network connection "
            "(and ANTHROPIC_BASE_URL, if you set it)."
        )
    return f"{type(exc).__name__}: {exc}"


def _describe_status(exc: anthropic.APIStatusError, params: Mapping[str, Any]) -> str:
    detail = _api_message(exc.body) or str(exc.message)
    kind = _api_error_type(exc.body) or "an error"
    status = exc.status_code
    if status < 400:
        # An ``error`` event after the API had answered 200.
        return (
            f"The API stopped the reply with {kind} ({detail}): it is incomplete. "
            "Run the cell again."
        )
    if status == 400:
        return f"The request was invalid (400 {kind}): {detail}"
    if status == 401:
        return "Authentication failed (401): check that ANTHROPIC_API_KEY holds a valid key."
    if status == 403:
        return f"Permission denied (403): this key may not do that: {detail}"
    if status == 404:
        model = params.get("model", "")
        return (
            f"Not found (404): {detail}. Check the model name {model!r}; "
            "%claude models lists the models you can use."
        )
    if status == 413:
        return "The request is too large (413): shorten the prompt or the conversation."
    if status == 429:
        wait = exc.response.headers.get("retry-after")
        hint = f"retry after {wait}s" if wait else "wait a little and run the cell again"
        return f"Rate limited (429), still after the SDK's retries: {hint}. {detail}"
    if status == 529:
        return "The API is overloaded (529): run the cell again in a moment."
    if status >= 500:
        return f"The API failed ({status} {kind}): {detail}. Run the cell again in a moment."
    return f"The API answered {status} ({kind}): {detail}"


def _api_error_type(body: object) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("type"), str):
            return str(error["type"])
    return None


def _api_message(body: object) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return None
