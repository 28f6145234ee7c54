"""Send a request, fold the raw event stream into a :class:`~nbclaude.reply.Reply`, time it.

The stream is read with ``client.messages.create(stream=True)`` and folded by
:class:`ReplyBuilder`, which keeps every delta in a list and joins on demand, so reading a
reply costs time linear in its length (``messages.stream()`` copies its whole snapshot string
on every delta). Whatever arrives before a failure or an interrupt is kept: :func:`run`
returns the reply so far (empty if the failure came first) with :attr:`Reply.error` set,
instead of raising, so the caller can show it and bind it before it ends the cell in error.
Anything the endpoint sends is untrusted: a body that is not an event stream, an event that
is not JSON or lacks a field it needs, end the reply with one line, like a cut connection.

No IPython, no widgets: the view learns of progress through the ``on_event`` callback.
"""

from __future__ import annotations

import html
import json
import math
import re
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import anthropic
import httpx2
from anthropic._models import construct_type
from anthropic.types import Message

from .interrupts import Interrupts
from .reply import Price, Reply, Timing

__all__ = [
    "BlockState",
    "ClaudeError",
    "MalformedEventError",
    "ReplyBuilder",
    "describe_error",
    "one_line",
    "run",
    "unexpected_answer",
]

Clock = Callable[[], float]


class ClaudeError(Exception):
    """An expected failure: the message says what happened and what to do, in one line.

    IPython shows exceptions with ``_render_traceback_`` by calling it instead of printing
    a traceback, so a failed cell ends in error (and "Run All" stops) with just this line.
    Line breaks and runs of spaces in the message are folded, so it stays one line.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))

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


class MalformedEventError(ValueError):
    """A stream event lacks a field it needs, or has one of the wrong type."""


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
        self._final_usage = False
        self._by_index: dict[int, BlockState] = {}
        self.chars = 0
        """Characters of text, thinking and tool input received so far."""

    @property
    def started(self) -> bool:
        """Whether the message began (``message_start`` arrived)."""
        return bool(self._start)

    def add(self, event: Any) -> None:
        """Fold one event from ``client.messages.create(stream=True)``.

        Raises:
            MalformedEventError: If the event lacks a field it needs (the SDK builds events
                leniently, so a missing field only shows when it is read).
        """
        try:
            kind = event.type
            if kind == "content_block_delta":  # nearly every event: test it first
                self._add_delta(event.index, event.delta)
            elif kind == "message_start":
                self._start = event.message.model_dump(warnings=False)
                self._usage = dict(self._start.get("usage") or {})
            elif kind == "content_block_start":
                block = event.content_block
                state = BlockState(
                    event.index,
                    str(block.type),
                    block.model_dump(exclude_none=True, warnings=False),
                )
                self.blocks.append(state)
                self._by_index[event.index] = state
            elif kind == "content_block_stop":
                if (stopped := self._by_index.get(event.index)) is not None:
                    stopped.stopped = True
            elif kind == "message_delta":
                self._delta.update(event.delta.model_dump(exclude_none=True, warnings=False))
                if event.usage:
                    self._usage.update(event.usage.model_dump(exclude_none=True, warnings=False))
                    self._final_usage = True
            elif kind == "message_stop":
                self.complete = True
            else:
                self.unknown.append(str(kind))
        except (AttributeError, TypeError) as exc:
            name = getattr(event, "type", type(event).__name__)
            raise MalformedEventError(f"{name}: {exc}") from exc

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
            if type(piece) is not str:
                raise TypeError(f"{kind} carries {type(piece).__name__}, not text")
            if self.first_delta_at is None:
                self.first_delta_at = self._clock()
            state.chunks.append(piece)
            self.chars += len(piece)

    @property
    def stop_reason(self) -> str | None:
        """The stop reason from ``message_delta``, once it arrived."""
        reason = self._delta.get("stop_reason")
        return str(reason) if reason is not None else None

    def message(self, *, model: str = "") -> Message:
        """The message as far as it arrived (built on demand, not on every delta).

        Args:
            model: The model to name if ``message_start`` never arrived: the one asked for.
        """
        data = dict(self._start) or {
            "id": "",
            "type": "message",
            "role": "assistant",
            "model": model,
        }
        data.update(self._delta)
        data["content"] = [block.to_dict() for block in self.blocks]
        data["usage"] = self._usage or {"input_tokens": 0, "output_tokens": 0}
        # The SDK's own lenient constructor: block types newer than this SDK survive as-is.
        return cast(Message, construct_type(type_=Message, value=data))

    def output_estimate(self) -> int | None:
        """Output tokens guessed from the characters received, when the API sent no count.

        The final count comes with ``message_delta``; a reply cut short before it has only
        the placeholder of ``message_start``. ``None`` when the count arrived or nothing did.
        """
        if self._final_usage or not self.chars:
            return None
        reported = self._usage.get("output_tokens")
        estimate = math.ceil(self.chars / CHARS_PER_TOKEN)
        return max(estimate, reported) if isinstance(reported, int) else estimate

    def reply(
        self,
        *,
        error: str | None = None,
        model: str = "",
        prices: Mapping[str, Price] | None = None,
        remote_images: bool = False,
        sdk_warnings: tuple[str, ...] = (),
    ) -> Reply:
        """The reply so far; complete only if ``message_stop`` arrived and nothing failed.

        Args:
            error: Why the reply ended early, if it did.
            model: The model asked for, named if the message never began.
            prices: Extra or overriding prices for the usage summary.
            remote_images: Whether the reply's view loads remote images.
            sdk_warnings: What the SDK warned about the request.
        """
        message = self.message(model=model)
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
            output_estimate=self.output_estimate(),
        )


CHARS_PER_TOKEN = 4
"""Characters per output token, for estimates when the API's count never arrived."""

INTERRUPTED_BEFORE = "Interrupted before the reply began: nothing arrived."
INTERRUPTED = "Interrupted: the reply was cut short; what arrived is kept."


def run(
    client: anthropic.Anthropic,
    params: Mapping[str, Any],
    *,
    on_event: Callable[[ReplyBuilder], None] = lambda builder: None,
    clock: Clock = time.monotonic,
    prices: Mapping[str, Price] | None = None,
    remote_images: bool = False,
    interrupts: Interrupts | None = None,
) -> Reply:
    """Send ``params`` to the Messages API and stream the answer.

    Never raises for an expected failure: a failure before anything arrived (an HTTP
    error, no connection, an interrupt) returns an empty reply with ``error`` set, and one
    after (an ``error`` event, a cut connection, a malformed event, a stream that ends
    without ``message_stop``, an interrupt) returns the partial reply with ``error`` set,
    after closing the HTTP response.

    Args:
        client: The SDK client.
        params: The request, ``stream`` aside.
        on_event: Called with the builder after every event; it must be cheap (the view
            throttles itself).
        clock: Monotonic seconds, for the timing.
        prices: Extra or overriding prices for the usage summary.
        remote_images: Whether the reply's view loads remote images.
        interrupts: The call's interrupt guard: only sending and reading may be
            interrupted. Without one, interrupts are caught wherever they land.

    Returns:
        The reply, complete or not.
    """
    builder = ReplyBuilder(clock=clock)
    guard = interrupts or Interrupts()
    error: str | None = None
    caught: list[warnings.WarningMessage] = []
    try:
        with guard.allowed(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stream = client.messages.create(**params, stream=True)
    except KeyboardInterrupt:
        error = INTERRUPTED_BEFORE
    except (anthropic.APIError, httpx2.HTTPError, OSError) as exc:
        error = describe_error(exc, params)
    else:
        error = _read(stream, builder, on_event, params, guard)
    return builder.reply(
        error=error,
        model=str(params.get("model", "")),
        prices=prices,
        remote_images=remote_images,
        sdk_warnings=_warnings_about_the_request(caught),
    )


def _read(
    stream: anthropic.Stream[Any],
    builder: ReplyBuilder,
    on_event: Callable[[ReplyBuilder], None],
    params: Mapping[str, Any],
    guard: Interrupts,
) -> str | None:
    """Fold the stream into ``builder``; return why it ended early, or ``None``."""
    try:
        with guard.allowed(), stream:
            if (refused := unexpected_answer(stream.response, "text/event-stream")) is not None:
                return refused
            for event in stream:
                builder.add(event)
                on_event(builder)
    except KeyboardInterrupt:
        # Leaving the ``with`` closed the response already: generation (and billing) stops.
        # An interrupt after message_stop, while the response closed, cut nothing short.
        return None if builder.complete else INTERRUPTED if builder.started else INTERRUPTED_BEFORE
    except json.JSONDecodeError as exc:
        return (
            f"The API sent a stream event that is not JSON ({exc.msg}): the reply is "
            "incomplete. Run the cell again."
        )
    except MalformedEventError as exc:
        return (
            f"The API sent a malformed stream event ({one_line(str(exc), 120)}): the reply "
            "is incomplete. Run the cell again."
        )
    except (anthropic.APIError, httpx2.HTTPError, OSError) as exc:
        return describe_error(exc, params, mid_stream=True)
    if builder.complete:
        return None
    if not builder.started:
        return (
            "The API endpoint answered with an event stream that holds no message: check "
            f"the base URL ({BASE_URL_SETTINGS}) and run the cell again."
        )
    return (
        "The stream ended before the reply was finished (no message_stop): "
        "it is incomplete. Run the cell again."
    )


BASE_URL_SETTINGS = "ANTHROPIC_BASE_URL, or %config ClaudeMagics.base_url"
"""Where the API's address is set, for messages about an endpoint that is not the API."""


def unexpected_answer(response: httpx2.Response, media_type: str) -> str | None:
    """Why a successful response is not what the API sends, or ``None`` if it is.

    A proxy, a captive portal or a wrong base URL answers 200 with a page of its own.
    The SDK reads no event from it (the reply would just look cut short), and parses it
    into objects without the fields they need.

    Args:
        response: The response, its body read or not: only its first bytes are read.
        media_type: What the API answers with: ``text/event-stream`` for a stream,
            ``application/json`` otherwise.

    Returns:
        One line that says what came instead and where the API's address is set.
    """
    content_type = response.headers.get("content-type", "")
    if content_type.partition(";")[0].strip().lower() == media_type:
        return None
    first = next(response.iter_bytes(), b"")
    shown = one_line(first[:PREVIEW_BYTES].decode("utf-8", "replace"), 80) or "an empty body"
    kind = "an event stream" if media_type == "text/event-stream" else "JSON"
    return (
        f"The API endpoint did not answer with {kind}: it sent "
        f"{content_type or 'no content type'} ({shown}). Check the base URL "
        f"({BASE_URL_SETTINGS})."
    )


PREVIEW_BYTES = 2048
"""Bytes of an unexpected body read to say what it is."""

_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG_RE = re.compile(r"<[^>]*>|<[^>]*$")


def one_line(text: str, limit: int = 160) -> str:
    """``text`` as one short line: an HTML page as its title or its text, cut at ``limit``.

    Error bodies and unexpected answers come from proxies as often as from the API: a
    502 page is many lines of HTML, and an error line must stay one line.

    Args:
        text: The body, or the message carrying it.
        limit: The most characters kept; a cut line ends with ``…``.

    Returns:
        The line, without markup or line breaks.
    """
    if "<" in text and ">" in text:
        title = _TITLE_RE.search(text)
        text = html.unescape(title[1] if title else _TAG_RE.sub(" ", text))
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


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

    The SDK wraps transport failures in its own classes, more of them in newer releases:
    the message goes by what failed (the transport error at the root), not by the wrapper.

    Args:
        exc: What the SDK or the transport raised.
        params: The request, to name the model in a 404.
        mid_stream: Whether part of the reply had already arrived.
    """
    if isinstance(exc, anthropic.APIStatusError):
        return _describe_status(exc, params or {})
    chain = _causes(exc)
    timed_out = any(
        isinstance(e, anthropic.APITimeoutError | httpx2.TimeoutException) for e in chain
    )
    if mid_stream:
        if timed_out:
            return (
                "The stream stalled: no data arrived within the timeout, so the reply is "
                "incomplete. Run the cell again, or raise %config ClaudeMagics.timeout."
            )
        root = chain[-1]
        return (
            f"The connection broke mid-reply ({type(root).__name__}: "
            f"{one_line(str(root), 100)}): the reply is incomplete. Run the cell again."
        )
    if any(isinstance(cause, httpx2.ConnectTimeout) for cause in chain):
        return (
            "Could not connect to the API in time (%config ClaudeMagics.connect_timeout): "
            f"check your network connection and the base URL ({BASE_URL_SETTINGS})."
        )
    if timed_out:
        return (
            "The request timed out: the API did not answer within %config "
            "ClaudeMagics.timeout, on any attempt. Run the cell again, or raise the timeout."
        )
    if any(
        isinstance(cause, anthropic.APIConnectionError | httpx2.TransportError) for cause in chain
    ):
        return (
            "Could not connect to the API: check your network connection "
            f"(and the base URL: {BASE_URL_SETTINGS})."
        )
    return f"{type(exc).__name__}: {one_line(str(exc))}"


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, following ``__cause__`` to what failed first."""
    chain = [exc]
    while (cause := chain[-1].__cause__) is not None and cause not in chain:
        chain.append(cause)
    return chain


def _describe_status(exc: anthropic.APIStatusError, params: Mapping[str, Any]) -> str:
    detail = one_line(_api_message(exc.body) or str(exc.message))
    kind = _api_error_type(exc.body)
    status = exc.status_code
    if status < 400:
        # An ``error`` event after the API had answered 200.
        return (
            f"The API stopped the reply with {kind or 'an error'} ({detail}): it is "
            "incomplete. Run the cell again."
        )
    code = f"{status} {kind}" if kind else str(status)
    if status == 400:
        return f"The request was invalid ({code}): {detail}"
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
        return f"The API failed ({code}): {detail}. Run the cell again in a moment."
    return f"The API answered {code}: {detail}"


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
