"""Send a request, fold the raw event stream into a :class:`~nbclaude.reply.Reply`, time it.

The stream is read with ``client.messages.create(stream=True)`` and folded by
:class:`ReplyBuilder`, which keeps every delta in a list and joins on demand, so reading a
reply costs time linear in its length (``messages.stream()`` copies its whole snapshot string
on every delta). Whatever arrives before a failure or an interrupt is kept: :func:`run`
returns the reply so far (empty if the failure came first) with :attr:`Reply.error` set,
instead of raising, so the caller can show it and bind it before it ends the cell in error.
Anything the endpoint sends is untrusted: a body that is not an event stream, an event that
is not JSON or lacks a field it needs, end the reply with one line, like a cut connection.

A view follows the reply through a :class:`Progress` record, which the builder updates in
place after every event (no copy per event: a reply can be twenty thousand of them) and
hands to ``on_progress``. No IPython, no widgets.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import anthropic
import httpx2
from anthropic._models import construct_type
from anthropic.types import Message, RawMessageStreamEvent

from .blocks import BlockKind, kind_of
from .errors import BASE_URL_SETTINGS, describe_error, one_line, unexpected_answer
from .interrupts import Interrupts
from .prices import Price
from .reply import Reply, Timing

__all__ = [
    "BlockProgress",
    "MalformedEventError",
    "Progress",
    "ReplyBuilder",
    "replay",
    "replayed_events",
    "run",
]

Clock = Callable[[], float]


class MalformedEventError(ValueError):
    """A stream event lacks a field it needs, or has one of the wrong type."""


@dataclass(slots=True)
class BlockProgress:
    """One content block as it streams in: updated in place by :class:`ReplyBuilder`,
    read by views."""

    index: int
    """The block's ``index`` in the stream."""
    kind: BlockKind
    """What the block is (see :mod:`nbclaude.blocks`), types this version does not know
    included."""
    start: dict[str, Any]
    """The ``content_block`` of ``content_block_start``, as sent."""
    chunks: list[str] = field(default_factory=list)
    """Text, thinking or partial-JSON deltas in arrival order; only ever appended to, so a
    reader can keep its place by count."""
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
        streamed = self.kind.delta
        if streamed == "text":
            block["text"] = (block.get("text") or "") + self.content
            if self.citations:
                block["citations"] = [*(block.get("citations") or []), *self.citations]
        elif streamed == "thinking":
            block["thinking"] = (block.get("thinking") or "") + self.content
            block["signature"] = self.signature or block.get("signature") or ""
        elif streamed == "partial_json" and self.chunks:
            try:
                block["input"] = json.loads(self.content)
            except json.JSONDecodeError:
                # A partial stream cut inside the JSON: keep what arrived, unparsed.
                block["input"] = {"_partial_json": self.content}
        return block


@dataclass(slots=True)
class Progress:
    """How far a reply has streamed: what a view reads after every event.

    The builder updates it in place; readers treat it as read-only.
    """

    blocks: list[BlockProgress] = field(default_factory=list)
    """The content blocks so far, in stream order."""
    chars: int = 0
    """Characters of text, thinking and tool input received so far."""
    rendered: dict[int, str] = field(default_factory=dict)
    """Markdown blocks already rendered, by position in :attr:`blocks`: a cached reply's,
    as the view rendered it the first time. A view may show these rather than render."""


class ReplyBuilder:
    """Folds raw Messages API stream events into a message, in time linear in its length."""

    def __init__(self, *, clock: Clock = time.monotonic, progress: Progress | None = None) -> None:
        self._clock = clock
        self.started_at = clock()
        self.first_delta_at: float | None = None
        self.progress = progress if progress is not None else Progress()
        """What views read: the blocks so far and how many characters arrived. A record
        given to the builder may hold earlier rounds' blocks: this reply's are added after."""
        self._blocks: list[BlockProgress] = []
        self._chars = 0
        self.complete = False
        self.unknown: list[str] = []
        """Event and delta types this version does not understand, in arrival order."""
        self._start: dict[str, Any] = {}
        self._usage: dict[str, Any] = {}
        self._delta: dict[str, Any] = {}
        self._final_usage = False
        self._by_index: dict[int, BlockProgress] = {}

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
                state = BlockProgress(
                    event.index,
                    kind_of(str(block.type)),
                    block.model_dump(exclude_none=True, warnings=False),
                )
                self.progress.blocks.append(state)
                self._blocks.append(state)
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
            self.progress.chars += len(piece)
            self._chars += len(piece)

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
        data["content"] = [block.to_dict() for block in self._blocks]
        data["usage"] = self._usage or {"input_tokens": 0, "output_tokens": 0}
        # The SDK's own lenient constructor: block types newer than this SDK survive as-is.
        return cast(Message, construct_type(type_=Message, value=data))

    def output_estimate(self) -> int | None:
        """Output tokens guessed from the characters received, when the API sent no count.

        The final count comes with ``message_delta``; a reply cut short before it has only
        the placeholder of ``message_start``. ``None`` when the count arrived or nothing did.
        """
        chars = self._chars
        if self._final_usage or not chars:
            return None
        reported = self._usage.get("output_tokens")
        estimate = math.ceil(chars / CHARS_PER_TOKEN)
        return max(estimate, reported) if isinstance(reported, int) else estimate

    def reply(
        self,
        *,
        error: str | None = None,
        model: str = "",
        prices: Mapping[str, Price] | None = None,
        sdk_warnings: tuple[str, ...] = (),
        cached: bool = False,
    ) -> Reply:
        """The reply so far; complete only if ``message_stop`` arrived and nothing failed.

        Args:
            error: Why the reply ended early, if it did.
            model: The model asked for, named if the message never began.
            prices: Extra or overriding prices for the usage summary.
            sdk_warnings: What the SDK warned about the request.
            cached: Whether the events were replayed from the response cache.
        """
        message = self.message(model=model)
        ttft = None if self.first_delta_at is None else self.first_delta_at - self.started_at
        return Reply.from_parts(
            message,
            complete=self.complete and error is None,
            error=error,
            timing=Timing(ttft, self._clock() - self.started_at),
            prices=prices,
            skipped=tuple(self.unknown),
            sdk_warnings=sdk_warnings,
            output_estimate=self.output_estimate(),
            cached=cached,
        )


CHARS_PER_TOKEN = 4
"""Characters per output token, for estimates when the API's count never arrived."""

INTERRUPTED_BEFORE = "Interrupted before the reply began: nothing arrived."
INTERRUPTED = "Interrupted: the reply was cut short; what arrived is kept."


def run(
    client: anthropic.Anthropic,
    arguments: Mapping[str, Any],
    *,
    on_progress: Callable[[Progress], None] | None = None,
    clock: Clock = time.monotonic,
    prices: Mapping[str, Price] | None = None,
    interrupts: Interrupts | None = None,
    progress: Progress | None = None,
    raise_statuses: Collection[int] = (),
) -> Reply:
    """Send a request to the Messages API and stream the answer.

    Never raises for an expected failure: a failure before anything arrived (an HTTP
    error, no connection, an interrupt) returns an empty reply with ``error`` set, and one
    after (an ``error`` event, a cut connection, a malformed event, a stream that ends
    without ``message_stop``, an interrupt) returns the partial reply with ``error`` set,
    after closing the HTTP response.

    Args:
        client: The SDK client.
        arguments: The keyword arguments of ``client.messages.create``, ``stream`` aside.
        on_progress: Called with the progress record after every event; it must be cheap
            (a view throttles itself).
        clock: Monotonic seconds, for the timing.
        prices: Extra or overriding prices for the usage summary.
        interrupts: The call's interrupt guard: only sending and reading may be
            interrupted. Without one, interrupts are caught wherever they land.
        progress: The record to add this reply's blocks to, after what it holds (the
            earlier rounds of a tool loop); a new one by default.
        raise_statuses: HTTP statuses raised as ``anthropic.APIStatusError`` instead of
            becoming the reply's error, for a caller that waits and tries again itself
            (rate limits); only when the API refuses the request, before any reply.

    Returns:
        The reply, complete or not.

    Raises:
        anthropic.APIStatusError: For a status in ``raise_statuses``.
    """
    builder = ReplyBuilder(clock=clock, progress=progress)
    guard = interrupts or Interrupts()
    error: str | None = None
    caught: list[warnings.WarningMessage] = []
    try:
        with guard.allowed(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stream = client.messages.create(**arguments, stream=True)
    except KeyboardInterrupt:
        error = INTERRUPTED_BEFORE
    except anthropic.APIStatusError as exc:
        if exc.status_code in raise_statuses:
            raise
        error = describe_error(exc, arguments)
    except (anthropic.APIError, httpx2.HTTPError, OSError) as exc:
        error = describe_error(exc, arguments)
    else:
        error = _read(stream, builder, on_progress, arguments, guard)
    return builder.reply(
        error=error,
        model=str(arguments.get("model", "")),
        prices=prices,
        sdk_warnings=_warnings_about_the_request(caught),
    )


REPLAY_CHUNK = 8192
"""Characters per delta when a cached reply is replayed: few events, the same view."""


def replay(
    message: Mapping[str, Any],
    *,
    on_progress: Callable[[Progress], None] | None = None,
    clock: Clock = time.monotonic,
    prices: Mapping[str, Price] | None = None,
    interrupts: Interrupts | None = None,
    progress: Progress | None = None,
    rendered: Mapping[int, str] | None = None,
) -> Reply:
    """Stream a stored reply again, as the API's events, through the same fold and view.

    Args:
        message: The reply as the store keeps it (the API's message as JSON).
        rendered: Its Markdown blocks as first rendered, by position in the message: put
            in the progress record for the view.
        on_progress: As for :func:`run`.
        clock: Monotonic seconds, for the timing.
        prices: Extra or overriding prices (a cached reply costs nothing).
        interrupts: As for :func:`run`: an interrupt cuts the replay short.
        progress: As for :func:`run`.

    Returns:
        The reply, marked cached: complete unless the replay was interrupted.
    """
    builder = ReplyBuilder(clock=clock, progress=progress)
    offset = len(builder.progress.blocks)
    for position, html in (rendered or {}).items():
        builder.progress.rendered[offset + position] = html
    guard = interrupts or Interrupts()
    notify = on_progress or _nobody
    error: str | None = None
    try:
        with guard.allowed():
            for event in replayed_events(message):
                builder.add(event)
                notify(builder.progress)
    except KeyboardInterrupt:
        error = None if builder.complete else INTERRUPTED
    return builder.reply(
        error=error, model=str(message.get("model", "")), prices=prices, cached=True
    )


def replayed_events(message: Mapping[str, Any], chunk: int = REPLAY_CHUNK) -> Iterator[Any]:
    """The stream events that make ``message``: its blocks' text in large deltas."""
    usage = message.get("usage") or {"input_tokens": 0, "output_tokens": 0}
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    yield _event({"type": "message_start", "message": start})
    for index, block in enumerate(message.get("content") or []):
        kind = kind_of(str(block.get("type")))
        delta_kind = kind.delta
        deltas: list[dict[str, Any]] = []
        opening = dict(block)
        if delta_kind == "text":
            opening["text"] = ""
            opening.pop("citations", None)
            deltas = _pieces("text_delta", "text", str(block.get("text") or ""), chunk)
            deltas += [
                {"type": "citations_delta", "citation": citation}
                for citation in block.get("citations") or []
            ]
        elif delta_kind == "thinking":
            opening.update(thinking="", signature="")
            deltas = _pieces("thinking_delta", "thinking", str(block.get("thinking") or ""), chunk)
            deltas.append({"type": "signature_delta", "signature": block.get("signature") or ""})
        elif delta_kind == "partial_json":
            opening["input"] = {}
            text = json.dumps(block.get("input", {}), ensure_ascii=False)
            deltas = _pieces("input_json_delta", "partial_json", text, chunk)
        yield _event({"type": "content_block_start", "index": index, "content_block": opening})
        for delta in deltas:
            yield _event({"type": "content_block_delta", "index": index, "delta": delta})
        yield _event({"type": "content_block_stop", "index": index})
    stopped = {
        "stop_reason": message.get("stop_reason"),
        "stop_sequence": message.get("stop_sequence"),
    }
    yield _event({"type": "message_delta", "delta": stopped, "usage": usage})
    yield _event({"type": "message_stop"})


def _pieces(kind: str, field_name: str, text: str, chunk: int) -> list[dict[str, Any]]:
    return [
        {"type": kind, field_name: text[start : start + chunk]}
        for start in range(0, len(text), chunk)
    ]


def _event(value: Mapping[str, Any]) -> Any:
    """A stream event made by the SDK's own lenient constructor, as a stream would make it."""
    return construct_type(type_=RawMessageStreamEvent, value=dict(value))


def _read(
    stream: anthropic.Stream[Any],
    builder: ReplyBuilder,
    on_progress: Callable[[Progress], None] | None,
    arguments: Mapping[str, Any],
    guard: Interrupts,
) -> str | None:
    """Fold the stream into ``builder``; return why it ended early, or ``None``."""
    progress = builder.progress
    notify = on_progress or _nobody
    try:
        with guard.allowed(), stream:
            if (refused := unexpected_answer(stream.response, "text/event-stream")) is not None:
                return refused
            for event in stream:
                builder.add(event)
                notify(progress)
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
        return describe_error(exc, arguments, mid_stream=True)
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


def _nobody(progress: Progress) -> None:
    """Follows a reply that no view shows."""


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
