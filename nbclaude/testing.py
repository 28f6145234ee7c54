"""A fake Anthropic Messages API on 127.0.0.1, for tests, demos and benchmarks.

The server speaks real HTTP/1.1: streamed replies are Server-Sent Events in a
``Transfer-Encoding: chunked`` body, one chunk per event, written as soon as it is
due. Point the real SDK at it and every layer above the socket runs for real::

    from anthropic import Anthropic
    from nbclaude.testing import FakeServer, text_reply

    with FakeServer() as server:
        server.enqueue(text_reply("Hello **world**", delay=0.05))
        client = Anthropic(base_url=server.url, api_key="sk-ant-test-not-a-real-key")
        with client.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=100,
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
        ) as stream:
            for event in stream:
                ...

A reply is a `Script`: an HTTP status, headers and a sequence of steps (SSE
events, raw bytes, pauses and a cut of the connection). Builders such as
`text_reply`, `reply`, `error_after` and `replay` make the common ones.

Only the standard library is imported (and :mod:`nbclaude.images`, which reads image
headers with it), so the server runs in any interpreter.
Run ``python -m nbclaude.testing`` to serve the default reply by hand.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import http.server
import json
import math
import re
import secrets
import select
import signal
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import parse_qs, urlsplit

from .fakebatches import FakeBatch, FakeBatches
from .images import sniff

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "Block",
    "Cut",
    "ErrorBody",
    "FakeServer",
    "Pause",
    "RawChunk",
    "RecordedRequest",
    "SSEEvent",
    "Script",
    "Step",
    "code_execution_result",
    "cut_after",
    "error_after",
    "estimate_input_tokens",
    "http_error",
    "long_markdown",
    "main",
    "paced",
    "page",
    "redacted_thinking",
    "replay",
    "reply",
    "server_tool_use",
    "stall_after",
    "structured_reply",
    "text",
    "text_reply",
    "thinking",
    "tool_call_reply",
    "tool_results",
    "tool_use",
    "truncate_after",
    "unknown_block",
    "unknown_event",
    "web_search_result",
]

DEFAULT_MODEL = "claude-sonnet-4-6"
"""The model that scripts name unless told otherwise."""

MODELS: tuple[tuple[str, str, str], ...] = (
    ("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z"),
    ("claude-opus-4-5", "Claude Opus 4.5", "2025-11-24T00:00:00Z"),
    ("claude-haiku-4-5", "Claude Haiku 4.5", "2025-10-15T00:00:00Z"),
    ("claude-sonnet-4-5", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
)
"""``(id, display_name, created_at)`` of the models ``GET /v1/models`` lists, newest first."""

_PING_DATA: Mapping[str, Any] = {"type": "ping"}
_POLL_SECONDS = 0.05  # how often a pause looks at the stop flag and the client's socket
_STOP_SECONDS = 5.0  # the longest stop() waits for the threads it joins


# --------------------------------------------------------------------------- scripts


def _encode_event(name: str, data: Mapping[str, Any]) -> bytes:
    # The API writes compact JSON, except for pings, which it writes with spaces.
    separators = (", ", ": ") if data == _PING_DATA else (",", ":")
    payload = json.dumps(data, separators=separators, ensure_ascii=False)
    return f"event: {name}\ndata: {payload}\n\n".encode()


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """A step that sends one Server-Sent Event, ``event: NAME`` plus one JSON ``data:`` line."""

    name: str
    """The event name, such as ``content_block_delta``."""
    data: Mapping[str, Any]
    """The JSON payload. Treat it as read-only: the wire bytes are computed once."""
    wire: bytes = field(init=False, repr=False, compare=False)
    """The encoded event, blank line included, as it goes on the wire."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "wire", _encode_event(self.name, self.data))


@dataclass(frozen=True, slots=True)
class RawChunk:
    """A step that sends bytes exactly as given, counted as one event."""

    data: bytes
    """The bytes to send, usually one complete SSE event with its blank line."""


@dataclass(frozen=True, slots=True)
class Pause:
    """A step that sends nothing for a while."""

    seconds: float
    """How long to wait. The server still notices a client that hangs up meanwhile."""


@dataclass(frozen=True, slots=True)
class Cut:
    """A step that aborts the connection without finishing the response body."""


Step: TypeAlias = SSEEvent | RawChunk | Pause | Cut
"""One thing the server does while writing a response."""


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """The ``error`` object of an API error response."""

    type: str
    """The error type, such as ``rate_limit_error``."""
    message: str
    """The human-readable message."""


@dataclass(frozen=True, slots=True)
class Script:
    """What the server answers to one ``POST /v1/messages``.

    A streaming request gets the steps as they are. A non-streaming request gets
    the events folded into one JSON ``Message``, after the sum of the pauses; an
    ``error`` event becomes an HTTP error and a cut still cuts.
    """

    steps: tuple[Step, ...] = ()
    """The events, raw chunks, pauses and cuts, in order."""
    status: int = 200
    """The HTTP status."""
    headers: tuple[tuple[str, str], ...] = ()
    """Extra response headers, such as ``("retry-after", "1")``."""
    error: ErrorBody | None = None
    """If set, the response is this API error as JSON and `steps` are ignored."""
    body: bytes | None = None
    """If set, the response is these bytes as they are, after the script's pauses: a page
    that is not the API's (see `page`). `error` and the other steps are ignored."""

    @property
    def event_count(self) -> int:
        """How many events (SSE events and raw chunks) the script sends."""
        return sum(isinstance(step, SSEEvent | RawChunk) for step in self.steps)


@dataclass(frozen=True, slots=True)
class Block:
    """One content block of a reply, made by `text`, `thinking`, `tool_use` and friends."""

    content_block: Mapping[str, Any]
    """The ``content_block`` of the ``content_block_start`` event."""
    deltas: tuple[Mapping[str, Any], ...] = ()
    """The ``delta`` objects of the block's ``content_block_delta`` events."""

    @property
    def output_chars(self) -> int:
        """How many characters of output the deltas carry, for token estimates."""
        return sum(
            len(delta.get("text", "") or delta.get("thinking", "") or delta.get("partial_json", ""))
            for delta in self.deltas
        )


def _chunks(value: str, size: int) -> Iterator[str]:
    if size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {size}")
    for start in range(0, len(value), size):
        yield value[start : start + size]


def _fake_id(prefix: str, *parts: object) -> str:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()
    return f"{prefix}{digest}"


def text(
    value: str,
    *,
    chunk_size: int = 20,
    citations: Sequence[Mapping[str, Any]] | None = None,
) -> Block:
    """A text block, streamed as ``text_delta`` chunks.

    Args:
        value: The text.
        chunk_size: Characters per ``text_delta``.
        citations: Citation objects (for example of type ``web_search_result_location``),
            each sent as a ``citations_delta`` before the text, as the API does.

    Returns:
        The block, for `reply`.
    """
    content_block: dict[str, Any] = {"type": "text", "text": ""}
    if citations is not None:
        content_block["citations"] = []
    cited = tuple({"type": "citations_delta", "citation": c} for c in citations or ())
    chunks = tuple({"type": "text_delta", "text": t} for t in _chunks(value, chunk_size))
    return Block(content_block, cited + chunks)


def thinking(
    value: str,
    *,
    signature: str = "sig-fake-thinking-signature",
    chunk_size: int = 40,
) -> Block:
    """A thinking block: ``thinking_delta`` chunks, then one ``signature_delta``.

    Args:
        value: The (summarized) thinking text.
        signature: The opaque signature sent last.
        chunk_size: Characters per ``thinking_delta``.

    Returns:
        The block, for `reply`.
    """
    chunks = tuple({"type": "thinking_delta", "thinking": t} for t in _chunks(value, chunk_size))
    signed = ({"type": "signature_delta", "signature": signature},)
    return Block({"type": "thinking", "thinking": "", "signature": ""}, chunks + signed)


def redacted_thinking(data: str) -> Block:
    """A ``redacted_thinking`` block, which arrives whole and has no deltas.

    Args:
        data: The opaque, encrypted payload.

    Returns:
        The block, for `reply`.
    """
    return Block({"type": "redacted_thinking", "data": data})


def _input_deltas(value: Mapping[str, Any], chunk_size: int) -> tuple[Mapping[str, Any], ...]:
    # The API opens every tool input with an empty partial_json, then streams the JSON.
    encoded = json.dumps(value, ensure_ascii=False)
    parts = ("", *_chunks(encoded, chunk_size))
    return tuple({"type": "input_json_delta", "partial_json": p} for p in parts)


def tool_use(
    name: str,
    input: Mapping[str, Any],
    id: str | None = None,
    *,
    chunk_size: int = 20,
) -> Block:
    """A client ``tool_use`` block whose input streams as ``input_json_delta`` chunks.

    Args:
        name: The tool name.
        input: The tool input, sent as JSON.
        id: The block id; by default a stable ``toolu_…`` id derived from name and input.
        chunk_size: Characters of JSON per delta.

    Returns:
        The block, for `reply`.
    """
    block_id = id or _fake_id("toolu_", name, input)
    start = {"type": "tool_use", "id": block_id, "name": name, "input": {}}
    return Block(start, _input_deltas(input, chunk_size))


def server_tool_use(
    name: str,
    input: Mapping[str, Any],
    id: str | None = None,
    *,
    chunk_size: int = 20,
) -> Block:
    """A ``server_tool_use`` block (``web_search``, ``code_execution`` …).

    Args:
        name: The server tool name.
        input: The tool input, streamed as JSON.
        id: The block id; by default a stable ``srvtoolu_…`` id. Pass it on to the
            result block's ``tool_use_id``.
        chunk_size: Characters of JSON per delta.

    Returns:
        The block, for `reply`.
    """
    block_id = id or _fake_id("srvtoolu_", name, input)
    start = {"type": "server_tool_use", "id": block_id, "name": name, "input": {}}
    return Block(start, _input_deltas(input, chunk_size))


def web_search_result(tool_use_id: str, results: Sequence[Mapping[str, Any]]) -> Block:
    """A ``web_search_tool_result`` block, which arrives whole.

    Args:
        tool_use_id: The id of the ``server_tool_use`` block it answers.
        results: One mapping per result with ``title`` and ``url``, and optionally
            ``page_age``, ``encrypted_content`` or any other field to pass through.

    Returns:
        The block, for `reply`.
    """
    content = [
        {
            "type": "web_search_result",
            "url": result["url"],
            "title": result["title"],
            "encrypted_content": _fake_id("enc_", result["url"]),
            "page_age": None,
            **result,
        }
        for result in results
    ]
    return Block({"type": "web_search_tool_result", "tool_use_id": tool_use_id, "content": content})


def code_execution_result(
    tool_use_id: str,
    stdout: str,
    stderr: str = "",
    return_code: int = 0,
) -> Block:
    """A ``code_execution_tool_result`` block, which arrives whole.

    Args:
        tool_use_id: The id of the ``server_tool_use`` block it answers.
        stdout: What the code printed.
        stderr: What it printed to stderr.
        return_code: Its exit status.

    Returns:
        The block, for `reply`.
    """
    content = {
        "type": "code_execution_result",
        "return_code": return_code,
        "stdout": stdout,
        "stderr": stderr,
        "content": [],
    }
    block = {"type": "code_execution_tool_result", "tool_use_id": tool_use_id, "content": content}
    return Block(block)


def unknown_block(type_name: str, **fields: Any) -> Block:
    """A content block of a type this SDK does not know, as a newer API might send.

    Args:
        type_name: The block's ``type``.
        **fields: Its other fields.

    Returns:
        The block, for `reply`.
    """
    return Block({"type": type_name, **fields})


def unknown_event(name: str, data: Mapping[str, Any] | None = None) -> SSEEvent:
    """An SSE event of a kind this SDK does not know; pass it to `reply` between blocks.

    Args:
        name: The event name; also the payload's ``type`` unless `data` sets one.
        data: The payload.

    Returns:
        The step.
    """
    return SSEEvent(name, {"type": name, **(data or {})})


def long_markdown(size: int) -> str:
    """A deterministic Markdown reply of about ``size`` characters, shaped like a real one.

    Each section has a heading, a paragraph with inline code, emphasis and a link, a list,
    a table, a fenced code block and a quote: the blocks a long answer is made of.

    Args:
        size: The least number of characters to produce.

    Returns:
        The Markdown text.
    """
    parts: list[str] = []
    total = 0
    section = 0
    while total < size:
        section += 1
        rows = "".join(f"| row {i} | {i * section} | fine |\n" for i in range(4))
        piece = (
            f"## Section {section}: how the pieces fit\n\n"
            f"Streaming *Markdown* is cheap when finished blocks are **frozen**: section "
            f"{section} shows `inline code`, a [link](https://example.com/{section}) and "
            "enough words to wrap across a line or two in a notebook.\n\n"
            "- a tight list item\n- another item with `code`\n- a third, longer item that "
            "keeps going for a while\n\n"
            f"| name | value | note |\n|---|---:|---|\n{rows}\n"
            f"```python\ndef section_{section}(xs):\n    return [x * {section} for x in xs]\n"
            "```\n\n"
            "> A quote, to close the section, with a final sentence.\n\n"
        )
        parts.append(piece)
        total += len(piece)
    return "".join(parts)


def _sections(size: int, section: Callable[[int], str]) -> str:
    parts: list[str] = []
    total = 0
    number = 0
    while total < size:
        number += 1
        piece = section(number)
        parts.append(piece)
        total += len(piece)
    return "".join(parts)


def many_small_blocks(size: int) -> str:
    """About ``size`` characters of small blocks: a heading, a paragraph, a short list and
    a short fence, again and again (each a few hundred characters)."""
    return _sections(
        size,
        lambda n: (
            f"### Step {n}\n\nRun the check, then read what it printed.\n\n"
            f"- before: `{n}`\n- after: `{n + 1}`\n\n```bash\necho step {n}\n```\n\n"
        ),
    )


def few_large_blocks(size: int) -> str:
    """About ``size`` characters in a few long blocks: paragraphs and fences of ~20 KB."""
    sentence = "Each long paragraph goes on and on, as a detailed explanation does. "
    line = "    total = sum(value * weight for value, weight in zip(values, weights))\n"
    return _sections(
        size,
        lambda n: (
            f"## Part {n}\n\n{sentence * 300}\n\n```python\ndef part_{n}():\n{line * 260}```\n\n"
        ),
    )


def one_huge_list(size: int) -> str:
    """About ``size`` characters in a single bulleted list: one block that never ends."""
    return _sections(size, lambda n: f"- item {n}: a point worth making, with `code` in it\n")


def long_document(size: int) -> str:
    """About ``size`` characters shaped like a long document: a heading about every 4 KB,
    then paragraphs, a list, a fence and a table under each."""
    paragraph = (
        "A long document explains one thing after another, with **emphasis** where it "
        "matters, `inline code` for names, and sentences long enough to wrap a few times "
        "across the width of a notebook. "
    ) * 3
    rows = "".join(f"| row {i} | {i * 7} | {'yes' if i % 2 else 'no'} |\n" for i in range(8))
    return _sections(
        size,
        lambda n: (
            f"## {n}. A chapter of the document\n\n{paragraph}\n\n{paragraph}\n\n"
            f"- the first point of chapter {n}\n- a second point, with `code`\n"
            "- a third point that runs on for a while to wrap\n\n"
            f"```python\ndef chapter_{n}(values):\n    return sorted(values)[:{n}]\n```\n\n"
            f"| row | value | kept |\n|---|---:|---|\n{rows}\n{paragraph}\n\n{paragraph}\n\n"
            f"{paragraph}\n\n{paragraph}\n\n"
        ),
    )


REPLY_SHAPES: dict[str, Callable[[int], str]] = {
    "many small blocks": many_small_blocks,
    "few large blocks": few_large_blocks,
    "one huge list": one_huge_list,
}
"""The reply shapes the live view's traffic is measured on, by name."""


def _estimate_tokens(chars: int) -> int:
    return max(1, math.ceil(chars / 4))


def reply(
    *parts: Block | Step,
    model: str = DEFAULT_MODEL,
    stop_reason: str | None = "end_turn",
    stop_sequence: str | None = None,
    stop_details: Mapping[str, Any] | None = None,
    input_tokens: int = 25,
    output_tokens: int | None = None,
    cache_read: int = 0,
    cache_write: int = 0,
    delay: float = 0.0,
    thinking_delay: float | None = None,
    ping_every: int = 0,
    message_id: str | None = None,
) -> Script:
    """A complete streamed message made of content blocks, as the API sends it.

    ``message_start``, then for each block ``content_block_start``, its deltas and
    ``content_block_stop``, then ``message_delta`` and ``message_stop``.

    Args:
        *parts: Blocks (`text`, `thinking`, `tool_use` …) in order; steps such as
            `unknown_event` or `Pause` are sent where they stand, between blocks.
        model: The ``model`` of the message.
        stop_reason: The ``stop_reason`` of ``message_delta``.
        stop_sequence: The ``stop_sequence`` of ``message_delta``.
        stop_details: If given, the ``stop_details`` of ``message_delta``.
        input_tokens: Usage: input tokens.
        output_tokens: Usage: output tokens; by default about a quarter of the
            characters of text, thinking and tool input.
        cache_read: Usage: ``cache_read_input_tokens``.
        cache_write: Usage: ``cache_creation_input_tokens`` (all 5-minute).
        delay: Seconds to wait before each ``content_block_delta``.
        thinking_delay: Seconds to wait before each delta of a thinking block instead;
            ``None`` waits `delay`.
        ping_every: Send a ``ping`` after every this many deltas; 0 for none.
        message_id: The message ``id``; by default a stable id derived from the content.

    Returns:
        The script.
    """
    blocks = [part for part in parts if isinstance(part, Block)]
    chars = sum(block.output_chars for block in blocks)
    thinking_chars = sum(b.output_chars for b in blocks if b.content_block["type"] == "thinking")
    out_tokens = _estimate_tokens(chars) if output_tokens is None else output_tokens
    usage = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache_write,
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": 1,
        "service_tier": "standard",
    }
    message: dict[str, Any] = {
        "id": message_id or _fake_id("msg_", model, [(b.content_block, b.deltas) for b in blocks]),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    steps: list[Step] = [SSEEvent("message_start", {"type": "message_start", "message": message})]
    index = 0
    deltas_sent = 0
    for part in parts:
        if not isinstance(part, Block):
            steps.append(part)
            continue
        start = {"type": "content_block_start", "index": index, "content_block": part.content_block}
        steps.append(SSEEvent("content_block_start", start))
        pause = delay
        if thinking_delay is not None and part.content_block["type"] == "thinking":
            pause = thinking_delay
        for delta in part.deltas:
            if pause > 0:
                steps.append(Pause(pause))
            data = {"type": "content_block_delta", "index": index, "delta": delta}
            steps.append(SSEEvent("content_block_delta", data))
            deltas_sent += 1
            if ping_every and deltas_sent % ping_every == 0:
                steps.append(SSEEvent("ping", _PING_DATA))
        steps.append(SSEEvent("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1
    delta_body: dict[str, Any] = {"stop_reason": stop_reason, "stop_sequence": stop_sequence}
    if stop_details is not None:
        delta_body["stop_details"] = stop_details
    final_usage: dict[str, Any] = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": out_tokens,
    }
    if thinking_chars:
        thinking_tokens = min(out_tokens, _estimate_tokens(thinking_chars))
        final_usage["output_tokens_details"] = {"thinking_tokens": thinking_tokens}
    steps.append(
        SSEEvent(
            "message_delta", {"type": "message_delta", "delta": delta_body, "usage": final_usage}
        )
    )
    steps.append(SSEEvent("message_stop", {"type": "message_stop"}))
    return Script(tuple(steps))


def text_reply(
    value: str,
    *,
    model: str = DEFAULT_MODEL,
    chunk_size: int = 20,
    delay: float = 0.0,
    thinking: str | None = None,
    thinking_chunk_size: int = 40,
    signature: str = "sig-fake-thinking-signature",
    input_tokens: int = 25,
    output_tokens: int | None = None,
    cache_read: int = 0,
    cache_write: int = 0,
    stop_reason: str | None = "end_turn",
    ping_every: int = 0,
) -> Script:
    """A streamed text answer, optionally after a thinking block.

    Args:
        value: The answer text.
        model: The ``model`` of the message.
        chunk_size: Characters per ``text_delta``.
        delay: Seconds to wait before each delta.
        thinking: If given, a thinking block with this text comes first.
        thinking_chunk_size: Characters per ``thinking_delta``.
        signature: The thinking block's signature.
        input_tokens: Usage: input tokens.
        output_tokens: Usage: output tokens; estimated by default.
        cache_read: Usage: ``cache_read_input_tokens``.
        cache_write: Usage: ``cache_creation_input_tokens``.
        stop_reason: The final ``stop_reason``.
        ping_every: Send a ``ping`` after every this many deltas; 0 for none.

    Returns:
        The script.
    """
    blocks: list[Block] = []
    if thinking is not None:
        blocks.append(
            _thinking_block(thinking, signature=signature, chunk_size=thinking_chunk_size)
        )
    blocks.append(text(value, chunk_size=chunk_size))
    return reply(
        *blocks,
        model=model,
        stop_reason=stop_reason,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read=cache_read,
        cache_write=cache_write,
        delay=delay,
        ping_every=ping_every,
    )


_thinking_block = thinking  # text_reply's `thinking` parameter shadows the builder


def tool_call_reply(
    *calls: tuple[str, Mapping[str, Any]],
    text_before: str = "",
    model: str = DEFAULT_MODEL,
    input_tokens: int = 25,
    delay: float = 0.0,
) -> Script:
    """A reply that asks for the client's tools: one round of a tool loop.

    Args:
        *calls: ``(name, input)`` of each ``tool_use`` block, in order.
        text_before: Text Claude says before the calls, if any.
        model: The ``model`` of the message.
        input_tokens: Usage: input tokens.
        delay: Seconds to wait before each delta.

    Returns:
        The script, which ends with ``stop_reason: tool_use``.
    """
    blocks = [text(text_before)] if text_before else []
    blocks += [tool_use(name, tool_input) for name, tool_input in calls]
    return reply(
        *blocks, model=model, stop_reason="tool_use", input_tokens=input_tokens, delay=delay
    )


def structured_reply(value: Any, *, model: str = DEFAULT_MODEL, chunk_size: int = 20) -> Script:
    """A reply whose text is ``value`` as JSON, as the API answers ``output_config.format``."""
    return text_reply(json.dumps(value), model=model, chunk_size=chunk_size)


def tool_results(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``tool_result`` blocks of a request's last message: what the client's tools sent."""
    messages = body.get("messages") or []
    content = messages[-1].get("content") if messages and isinstance(messages[-1], dict) else None
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def _split_events(script: Script, n_events: int) -> tuple[tuple[Step, ...], tuple[Step, ...]]:
    """Split the steps just after the `n_events`-th event."""
    if not 0 <= n_events <= script.event_count:
        raise ValueError(f"n_events must be between 0 and {script.event_count}, not {n_events}")
    seen = 0
    for position, step in enumerate(script.steps):
        if seen == n_events:
            return script.steps[:position], script.steps[position:]
        if isinstance(step, SSEEvent | RawChunk):
            seen += 1
    return script.steps, ()


def _with_steps(script: Script, steps: Iterable[Step]) -> Script:
    return Script(tuple(steps), script.status, script.headers, script.error)


def error_after(
    script: Script,
    n_events: int,
    error_type: str = "overloaded_error",
    message: str = "Overloaded",
) -> Script:
    """Send the first `n_events` events, then an ``error`` event, then end the body cleanly.

    This is how the API reports a failure after it has answered 200.

    Args:
        script: The script to interrupt.
        n_events: How many of its events to send first.
        error_type: The error's ``type``.
        message: The error's ``message``.

    Returns:
        The new script.
    """
    head, _ = _split_events(script, n_events)
    payload = {"type": "error", "error": {"type": error_type, "message": message}}
    return _with_steps(script, (*head, SSEEvent("error", payload)))


def cut_after(script: Script, n_events: int) -> Script:
    """Send the first `n_events` events, then drop the connection mid-body.

    Args:
        script: The script to cut.
        n_events: How many of its events to send first.

    Returns:
        The new script.
    """
    head, _ = _split_events(script, n_events)
    return _with_steps(script, (*head, Cut()))


def truncate_after(script: Script, n_events: int) -> Script:
    """Send the first `n_events` events, then end the body cleanly, without ``message_stop``.

    Args:
        script: The script to truncate.
        n_events: How many of its events to send.

    Returns:
        The new script.
    """
    head, _ = _split_events(script, n_events)
    return _with_steps(script, head)


def stall_after(script: Script, n_events: int, seconds: float) -> Script:
    """Send the first `n_events` events, go silent for `seconds`, then send the rest.

    Args:
        script: The script to stall.
        n_events: How many of its events to send first.
        seconds: How long to stay silent (still bounded by ``max_response_seconds``).

    Returns:
        The new script.
    """
    head, tail = _split_events(script, n_events)
    return _with_steps(script, (*head, Pause(seconds), *tail))


def paced(script: Script, delay: float) -> Script:
    """Wait `delay` seconds before every event but the first: a human reading pace.

    Args:
        script: The script to slow down.
        delay: Seconds between events.

    Returns:
        The new script.
    """
    steps: list[Step] = []
    started = False
    for step in script.steps:
        if isinstance(step, SSEEvent | RawChunk):
            if started and delay > 0:
                steps.append(Pause(delay))
            started = True
        steps.append(step)
    return _with_steps(script, steps)


def _split_sse(data: bytes) -> Iterator[bytes]:
    """Split a recorded stream after each blank line, keeping every byte."""
    pending = b""
    for line in data.splitlines(keepends=True):
        pending += line
        if pending.endswith((b"\n\n", b"\r\r", b"\r\n\r\n")):
            yield pending
            pending = b""
    if pending:
        yield pending


def replay(path: str | Path, *, delay: float = 0.0, finish_last_event: bool = False) -> Script:
    """Serve a recorded SSE stream byte for byte, one chunk per event.

    Args:
        path: A file of raw Server-Sent Events.
        delay: Seconds to wait between events.
        finish_last_event: Append a newline if the file does not end with the blank
            line that closes its last event. Without one, an SSE client never
            dispatches that event: several recordings end this way, so their
            ``message_stop`` is lost unless this is set.

    Returns:
        The script.
    """
    data = Path(path).read_bytes()
    if finish_last_event:
        while data and not data.endswith((b"\n\n", b"\r\r", b"\r\n\r\n")):
            data += b"\n"
    chunks = tuple(RawChunk(chunk) for chunk in _split_sse(data))
    return paced(Script(chunks), delay)


_ERROR_PRESETS: Mapping[int, tuple[str, str]] = {
    400: ("invalid_request_error", "messages: at least one message is required"),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "Not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
_PRESET_HEADERS: Mapping[int, Mapping[str, str]] = {429: {"retry-after": "1"}}
_STATUS_FOR_ERROR_TYPE: Mapping[str, int] = {
    error_type: status for status, (error_type, _) in _ERROR_PRESETS.items()
}


def http_error(
    status: int,
    error_type: str | None = None,
    message: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Script:
    """An HTTP error response with the API's JSON error body.

    Args:
        status: The HTTP status. For 400, 401, 403, 404, 413, 429, 500 and 529 the
            type and message have realistic defaults (and 429 a ``retry-after: 1``).
        error_type: The error ``type``, such as ``rate_limit_error``.
        message: The error ``message``.
        headers: Response headers, replacing the preset ones.

    Returns:
        The script.

    Raises:
        ValueError: If `status` has no preset and `error_type` is not given.
    """
    preset_type, preset_message = _ERROR_PRESETS.get(status, (None, "Error"))
    resolved_type = error_type or preset_type
    if resolved_type is None:
        raise ValueError(f"no preset error type for HTTP {status}; pass error_type")
    chosen_headers = _PRESET_HEADERS.get(status, {}) if headers is None else headers
    return Script(
        status=status,
        headers=tuple(chosen_headers.items()),
        error=ErrorBody(resolved_type, message or preset_message),
    )


def page(
    body: str | bytes,
    content_type: str = "text/html; charset=utf-8",
    *,
    status: int = 200,
    delay: float = 0.0,
) -> Script:
    """A response that is not the API's: a proxy's error page, a captive portal, any JSON.

    Enqueue it for ``POST /v1/messages``, or set it as `FakeServer.intercept` to answer
    every request with it, as a wrong base URL or a proxy in the way would.

    Args:
        body: The body, sent as it is (a string as UTF-8).
        content_type: The ``content-type`` header.
        status: The HTTP status.
        delay: Seconds to wait before answering.

    Returns:
        The script.
    """
    data = body.encode() if isinstance(body, str) else body
    steps = (Pause(delay),) if delay > 0 else ()
    return Script(steps, status, (("content-type", content_type),), body=data)


# --------------------------------------------------------------------------- folding


@dataclass(frozen=True, slots=True)
class _Folded:
    """A script seen as one non-streaming response."""

    message: dict[str, Any] | None
    """The folded Message, if the script has a ``message_start``."""
    error: ErrorBody | None
    """The ``error`` event that ended the script, if any."""
    cut: bool
    """Whether a `Cut` ended the script."""
    pause_seconds: float
    """The pauses before the end, added up."""
    events: int
    """How many events were folded."""


def _parse_sse(data: bytes) -> Iterator[tuple[str | None, str]]:
    """Yield ``(event, data)`` for each event in raw SSE bytes."""
    name: str | None = None
    lines: list[str] = []
    for raw_line in data.splitlines():
        line = raw_line.decode()
        if not line:
            if name is not None or lines:
                yield name, "\n".join(lines)
            name, lines = None, []
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            name = value
        elif key == "data":
            lines.append(value)


def _step_events(step: SSEEvent | RawChunk) -> Iterator[tuple[str | None, Mapping[str, Any]]]:
    if isinstance(step, SSEEvent):
        yield step.name, step.data
        return
    for name, data in _parse_sse(step.data):
        with contextlib.suppress(ValueError):  # not JSON: nothing to fold
            yield name, json.loads(data)


class _MessageFolder:
    """Builds the JSON Message from stream events, as the API does for ``stream: false``."""

    def __init__(self) -> None:
        self.message: dict[str, Any] | None = None
        self.error: ErrorBody | None = None
        self._blocks: dict[int, dict[str, Any]] = {}
        # Text arrives in thousands of deltas: gather the pieces, join once at the end.
        self._pieces: dict[tuple[int, str], list[str]] = {}

    def add(self, name: str | None, data: Mapping[str, Any]) -> None:
        kind = data.get("type", name)
        if kind == "error":
            error = data.get("error", {})
            self.error = ErrorBody(error.get("type", "api_error"), error.get("message", ""))
        elif kind == "message_start":
            self.message = json.loads(json.dumps(data["message"]))
        elif kind == "content_block_start":
            self._blocks[data["index"]] = json.loads(json.dumps(data["content_block"]))
        elif kind == "content_block_delta" and data["index"] in self._blocks:
            self._add_delta(data["index"], data["delta"])
        elif kind == "message_delta" and self.message is not None:
            delta = data.get("delta", {})
            self.message["stop_reason"] = delta.get("stop_reason")
            self.message["stop_sequence"] = delta.get("stop_sequence")
            self.message["stop_details"] = delta.get("stop_details")
            self.message["usage"].update(data.get("usage", {}))

    def _add_delta(self, index: int, delta: Mapping[str, Any]) -> None:
        block = self._blocks[index]
        kind = delta.get("type")
        if kind in ("text_delta", "thinking_delta", "input_json_delta"):
            key = {"text_delta": "text", "thinking_delta": "thinking"}.get(kind, "partial_json")
            self._pieces.setdefault((index, key), []).append(delta[key])
        elif kind == "signature_delta":
            block["signature"] = delta["signature"]
        elif kind == "citations_delta":
            block["citations"] = [*(block.get("citations") or []), delta["citation"]]
        else:  # a delta from a newer API: its fields replace the block's
            block.update({k: v for k, v in delta.items() if k != "type"})

    def result(self) -> dict[str, Any] | None:
        if self.message is None:
            return None
        for (index, key), pieces in self._pieces.items():
            block = self._blocks[index]
            if key == "partial_json":
                # An input cut short stays as the block started it.
                with contextlib.suppress(ValueError):
                    block["input"] = json.loads("".join(pieces))
            else:
                block[key] = (block.get(key) or "") + "".join(pieces)
        self.message["content"] = [self._blocks[index] for index in sorted(self._blocks)]
        return self.message


def _fold(script: Script) -> _Folded:
    """Fold a script's events, up to an error or a cut, into one non-streaming response."""
    folder = _MessageFolder()
    pause_seconds = 0.0
    events = 0
    for step in script.steps:
        if isinstance(step, Pause):
            pause_seconds += step.seconds
            continue
        if isinstance(step, Cut):
            return _Folded(folder.result(), None, True, pause_seconds, events)
        events += 1
        for name, data in _step_events(step):
            folder.add(name, data)
        if folder.error is not None:
            break
    return _Folded(folder.result(), folder.error, False, pause_seconds, events)


# --------------------------------------------------------------------------- recording


class _Progress:
    """How far the response to one request got; written by the handler thread only."""

    __slots__ = ("disconnected", "done", "events_sent")

    def __init__(self) -> None:
        self.events_sent = 0
        self.disconnected = False
        self.done = threading.Event()


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server received, and how far its response got.

    `events_sent`, `disconnected` and `finished` are live: the server updates them
    while it writes the response. Call `wait_finished` before asserting on them.
    """

    method: str
    """The HTTP method."""
    path: str
    """The URL path, without the query string."""
    query: str
    """The raw query string, ``""`` if none."""
    headers: dict[str, str]
    """The request headers, names lower-cased."""
    body: Any
    """The body parsed as JSON, or ``None`` if it is empty or not JSON."""
    raw_body: bytes
    """The body as received."""
    request_id: str
    """The ``request-id`` the server answered with."""
    received_at: float = 0.0
    """When the request arrived, in ``time.monotonic()`` seconds."""
    _progress: _Progress = field(default_factory=_Progress, repr=False, compare=False)

    @property
    def events_sent(self) -> int:
        """How many events of the script the server has written so far."""
        return self._progress.events_sent

    @property
    def disconnected(self) -> bool:
        """Whether the client hung up before the script finished."""
        return self._progress.disconnected

    @property
    def finished(self) -> bool:
        """Whether the server is done with the response, however it ended."""
        return self._progress.done.is_set()

    def wait_finished(self, timeout: float = 10) -> None:
        """Block until the server is done with the response.

        Args:
            timeout: The longest to wait, in seconds.

        Raises:
            TimeoutError: If the response is still being written after `timeout`.
        """
        if not self._progress.done.wait(timeout):
            raise TimeoutError(f"the response to {self.method} {self.path} is still running")

    def __repr__(self) -> str:
        # Headers stay out of the repr: they hold the API key.
        return (
            f"RecordedRequest({self.method} {self.path}, request_id={self.request_id!r}, "
            f"events_sent={self.events_sent}, disconnected={self.disconnected})"
        )


# --------------------------------------------------------------------------- server


def _text_length(value: Any) -> int:
    """Characters of prompt text in a system prompt or message content."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_length(item) for item in value)
    if isinstance(value, dict):
        return sum(_text_length(value.get(key)) for key in ("text", "content", "thinking"))
    return 0


IMAGE_PIXELS_PER_TOKEN = 750
"""The fake counts an image as its pixels over this, the API's published estimate."""

PDF_PAGE_TOKENS = 1500
"""The fake counts each page of a PDF as this many tokens (its text and its image)."""

IMAGE_BYTES_LIMIT = 5 * 1024 * 1024
"""The most base64 characters the fake accepts for one image, as the API."""


def estimate_input_tokens(body: Mapping[str, Any]) -> int:
    """About four characters a token over a request's system prompt and messages, plus
    each image's pixels over 750 and 1,500 tokens a PDF page.

    This is what ``count_tokens`` answers and what scripted replies report as input.

    Args:
        body: A Messages API request body.

    Returns:
        The estimate, at least 1.
    """
    messages = body.get("messages") or []
    chars = _text_length(body.get("system")) + sum(
        _text_length(m.get("content")) for m in messages if isinstance(m, dict)
    )
    attached = sum(_attachment_tokens(block) for _, block in _content_blocks(body))
    return _estimate_tokens(chars) + attached


def _content_blocks(body: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each content block of the request's messages, with where it is (``messages.0.content.1``)."""
    for i, message in enumerate(body.get("messages") or ()):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for j, block in enumerate(content):
                if isinstance(block, dict):
                    yield f"messages.{i}.content.{j}", block


def _base64_data(block: Mapping[str, Any]) -> bytes | None:
    source = block.get("source")
    if not isinstance(source, dict) or source.get("type") != "base64":
        return None
    try:
        return base64.b64decode(str(source.get("data", "")), validate=True)
    except (binascii.Error, ValueError):
        return None


def _attachment_tokens(block: Mapping[str, Any]) -> int:
    data = _base64_data(block)
    if data is None:
        return 0
    if block.get("type") == "image":
        sniffed = sniff(data)
        if sniffed is None or sniffed.size is None:
            return 0
        width, height = sniffed.size
        return math.ceil(width * height / IMAGE_PIXELS_PER_TOKEN)
    if block.get("type") == "document":
        return PDF_PAGE_TOKENS * max(1, len(re.findall(rb"/Type\s*/Page(?!s)", data)))
    return 0


def _invalid_content(body: Mapping[str, Any]) -> str | None:
    """What the API would refuse in the request's images and documents, as it says it."""
    for where, block in _content_blocks(body):
        kind = block.get("type")
        source = block.get("source")
        if kind not in ("image", "document") or not isinstance(source, dict):
            continue
        if source.get("type") != "base64":
            continue
        place = f"{where}.{kind}.source.base64"
        data = _base64_data(block)
        if data is None:
            return f"{place}.data: invalid base64 data"
        declared = source.get("media_type")
        if kind == "document":
            if declared != "application/pdf" or not data.startswith(b"%PDF-"):
                return f"{place}.data: The PDF specified was not valid."
            continue
        if len(str(source.get("data"))) > IMAGE_BYTES_LIMIT:
            return (
                f"{place}: image exceeds 5 MB maximum: {len(str(source.get('data')))} bytes > "
                f"{IMAGE_BYTES_LIMIT} bytes"
            )
        sniffed = sniff(data)
        if sniffed is None:
            return f"{place}: Could not process image"
        if sniffed.media_type != declared:
            return (
                f"{place}: Image does not match the provided media type {declared}: "
                f"it is {sniffed.media_type}"
            )
        if sniffed.size is not None and max(sniffed.size) > 8000:
            return f"{place}: image dimensions exceed max allowed size: 8000 pixels"
    return None


def _default_reply(body: Mapping[str, Any]) -> Script:
    model = body.get("model")
    return text_reply(
        "Hello from nbclaude's fake Messages API. This reply is canned; no model ran.",
        model=model if isinstance(model, str) else DEFAULT_MODEL,
        input_tokens=estimate_input_tokens(body),
    )


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _model_info(model_id: str, display_name: str, created_at: str) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model_id,
        "display_name": display_name,
        "created_at": created_at,
        "lifecycle": "active",
    }


class _HTTPServer(http.server.ThreadingHTTPServer):
    """A threading server that can close its connections and join its threads in bounded time."""

    daemon_threads = True
    block_on_close = False  # stop() joins with a deadline instead
    request_queue_size = 64

    def __init__(self, fake: FakeServer, port: int) -> None:
        self.fake = fake
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()
        super().__init__(("127.0.0.1", port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can hang without a network.
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.socket.getsockname()[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name="nbclaude-fake-server-connection",
            daemon=True,
        )
        with self._lock:
            self._handler_threads.add(thread)
            self._connections.add(request)
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._connections.discard(request)
                self._handler_threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-request is normal here; anything else is a bug.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def close_connections(self, deadline: float) -> None:
        """Shut down every open connection, then join the threads serving them."""
        self.stopping.set()
        with self._lock:
            connections = list(self._connections)
            threads = list(self._handler_threads)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the other side
                connection.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class _ClientGoneError(Exception):
    """The client closed the connection while the server was writing."""


class _AbortError(Exception):
    """The response must end now (stop() or max_response_seconds)."""


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "nbclaude-fake-api"
    disable_nagle_algorithm = True  # every event is its own small write; don't let Nagle hold it
    _deadline = math.inf  # when the response in progress must end; set per request

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and demos read stdout

    # ---- routing

    def do_GET(self) -> None:
        record = self._record()
        route = urlsplit(self.path).path.rstrip("/")
        if (intercept := self.server.fake.intercept) is not None:
            self._answer(record, intercept, self._send_page)
        elif route.startswith("/v1/messages/batches/"):
            self._batch_get(record, route.removeprefix("/v1/messages/batches/"))
        elif route == "/v1/models":
            self._models_page(record)
        elif route.startswith("/v1/models/"):
            wanted = route.removeprefix("/v1/models/")
            for model in MODELS:
                if model[0] == wanted:
                    self._send_json(record, 200, _model_info(*model))
                    return
            self._send_error(record, 404, ErrorBody("not_found_error", f"model: {wanted}"))
        else:
            self._not_found(record)

    def do_POST(self) -> None:
        record = self._record()
        route = urlsplit(self.path).path.rstrip("/")
        if (intercept := self.server.fake.intercept) is not None:
            self._answer(record, intercept, self._send_page)
        elif route.startswith("/v1/messages/batches"):
            self._batch_post(record, route.removeprefix("/v1/messages/batches").strip("/"))
        elif route not in ("/v1/messages", "/v1/messages/count_tokens"):
            self._not_found(record)
        elif not isinstance(record.body, dict):
            error = ErrorBody("invalid_request_error", "The request body is not a JSON object.")
            self._send_error(record, 400, error)
        elif (invalid := _invalid_content(record.body)) is not None:
            self._send_error(record, 400, ErrorBody("invalid_request_error", invalid))
        elif route == "/v1/messages":
            self._messages(record, record.body)
        else:
            self._send_json(record, 200, {"input_tokens": estimate_input_tokens(record.body)})

    def do_PUT(self) -> None:
        self._not_found(self._record())

    do_DELETE = do_PATCH = do_PUT  # noqa: N815 - http.server's naming

    def _not_found(self, record: RecordedRequest) -> None:
        path = urlsplit(self.path).path
        self._send_error(record, 404, ErrorBody("not_found_error", f"Not found: {path}"))

    # ---- requests

    def _record(self) -> RecordedRequest:
        length = int(self.headers.get("content-length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = None
        parts = urlsplit(self.path)
        record = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parts.query,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            raw_body=raw_body,
            request_id=f"req_fake{secrets.token_hex(12)}",
            received_at=time.monotonic(),
        )
        self.server.fake._record(record)
        self._deadline = time.monotonic() + self.server.fake.max_response_seconds
        return record

    def _models_page(self, record: RecordedRequest) -> None:
        query = parse_qs(urlsplit(self.path).query)
        models = [_model_info(*model) for model in MODELS]
        ids = [model["id"] for model in models]
        if after := query.get("after_id", [""])[0]:
            models = models[ids.index(after) + 1 :] if after in ids else []
        try:
            limit = int(query.get("limit", ["20"])[0])
        except ValueError:
            error = ErrorBody("invalid_request_error", "limit: Input should be a valid integer")
            self._send_error(record, 400, error)
            return
        page = models[:limit]
        body = {
            "data": page,
            "has_more": len(models) > limit,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }
        self._send_json(record, 200, body)

    def _messages(self, record: RecordedRequest, body: dict[str, Any]) -> None:
        try:
            script = self.server.fake._next_script(body)
        except Exception as exc:  # a test's own `default` callable failed: say so
            error = ErrorBody("api_error", f"FakeServer default raised {type(exc).__name__}: {exc}")
            self._send_error(record, 500, error)
            return
        if script.body is not None:
            self._answer(record, script, self._send_page)
        elif script.error is not None:
            self._answer(record, script, self._send_script_error)
        elif body.get("stream") is True:
            self._answer(record, script, self._stream)
        else:
            self._answer(record, script, self._send_folded)

    def _answer(
        self,
        record: RecordedRequest,
        script: Script,
        respond: Callable[[RecordedRequest, Script], None],
    ) -> None:
        """Answer with ``script`` through ``respond``; however it ends, note how far it got."""
        try:
            respond(record, script)
        except _ClientGoneError:
            record._progress.disconnected = True
            self.close_connection = True
        except _AbortError:
            self._abort()
        finally:
            record._progress.done.set()

    # ---- responses

    def _start_response(
        self,
        record: RecordedRequest,
        status: int,
        headers: Iterable[tuple[str, str]],
    ) -> None:
        self.send_response(status)
        self.send_header("request-id", record.request_id)
        for name, value in headers:
            self.send_header(name, value)
        try:
            self.end_headers()
        except OSError as exc:
            raise _ClientGoneError from exc

    def _send_json(
        self,
        record: RecordedRequest,
        status: int,
        body: object,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self._send_bytes(record, status, "application/json", _json_bytes(body), headers)

    def _send_bytes(
        self,
        record: RecordedRequest,
        status: int,
        content_type: str,
        payload: bytes,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        base = [("content-type", content_type), ("content-length", str(len(payload)))]
        try:
            self._start_response(record, status, [*base, *headers])
            self._write(payload)
        except _ClientGoneError:
            record._progress.disconnected = True
            self.close_connection = True
        finally:
            record._progress.done.set()

    # ---- the Message Batches API

    def _batch_post(self, record: RecordedRequest, rest: str) -> None:
        batches = self.server.fake.batches
        if rest == "":
            made = batches.create(record.body if isinstance(record.body, dict) else {})
            if isinstance(made, str):
                self._send_error(record, 400, ErrorBody("invalid_request_error", made))
            else:
                self._send_json(record, 200, made.view(self.server.fake.url, time.monotonic()))
        elif rest.endswith("/cancel"):
            batch = batches.cancel(rest.removesuffix("/cancel"))
            self._batch_json(record, batch)
        else:
            self._not_found(record)

    def _batch_get(self, record: RecordedRequest, rest: str) -> None:
        batch_id, _, tail = rest.partition("/")
        batch = self.server.fake.batches.get(batch_id)
        if tail == "results" and batch is not None:
            now = time.monotonic()
            if batch.view(self.server.fake.url, now)["processing_status"] != "ended":
                error = ErrorBody("invalid_request_error", f"batch {batch_id} is still processing")
                self._send_error(record, 400, error)
                return
            self._send_bytes(record, 200, "application/binary", batch.result_lines(now))
        elif tail == "":
            self._batch_json(record, batch)
        else:
            self._not_found(record)

    def _batch_json(self, record: RecordedRequest, batch: FakeBatch | None) -> None:
        if batch is None:
            self._send_error(record, 404, ErrorBody("not_found_error", "message batch not found"))
        else:
            self._send_json(record, 200, batch.view(self.server.fake.url, time.monotonic()))

    def _send_error(
        self,
        record: RecordedRequest,
        status: int,
        error: ErrorBody,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        body = {
            "type": "error",
            "error": {"type": error.type, "message": error.message},
            "request_id": record.request_id,
        }
        self._send_json(record, status, body, headers)

    def _send_script_error(self, record: RecordedRequest, script: Script) -> None:
        assert script.error is not None
        self._send_error(record, script.status, script.error, script.headers)

    def _send_page(self, record: RecordedRequest, script: Script) -> None:
        """Answer with the script's body as it is, after its pauses."""
        body = script.body or b""
        self._wait(sum(step.seconds for step in script.steps if isinstance(step, Pause)))
        headers = [("content-length", str(len(body))), *script.headers]
        self._start_response(record, script.status, headers)
        self._write(body)

    def _send_folded(self, record: RecordedRequest, script: Script) -> None:
        folded = _fold(script)
        self._wait(folded.pause_seconds)
        if folded.cut and folded.message is None:
            raise _AbortError  # before the status line, like a connection reset
        if folded.cut:
            # Send the headers and half the body, so the client sees a short read.
            payload = _json_bytes(folded.message)
            headers = [("content-type", "application/json"), ("content-length", str(len(payload)))]
            self._start_response(record, script.status, [*headers, *script.headers])
            self._write(payload[: len(payload) // 2])
            raise _AbortError
        if folded.error is not None:
            status = _STATUS_FOR_ERROR_TYPE.get(folded.error.type, 500)
            self._send_error(record, status, folded.error, script.headers)
        elif folded.message is None:
            error = ErrorBody("api_error", "The fake script has no message_start event.")
            self._send_error(record, 500, error)
        else:
            self._send_json(record, script.status, folded.message, script.headers)
            record._progress.events_sent = folded.events

    def _stream(self, record: RecordedRequest, script: Script) -> None:
        headers = [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"),
            ("transfer-encoding", "chunked"),
            *script.headers,
        ]
        self._start_response(record, script.status, headers)
        for step in script.steps:
            if isinstance(step, Pause):
                self._wait(step.seconds)
                continue
            if isinstance(step, Cut):
                raise _AbortError
            if time.monotonic() >= self._deadline or self.server.stopping.is_set():
                raise _AbortError
            payload = step.wire if isinstance(step, SSEEvent) else step.data
            if payload:
                self._write(b"%x\r\n%s\r\n" % (len(payload), payload))
            record._progress.events_sent += 1
        self._write(b"0\r\n\r\n")

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except OSError as exc:
            raise _ClientGoneError from exc

    def _wait(self, seconds: float) -> None:
        """Stay silent for `seconds`, watching for stop(), the deadline and a hang-up."""
        end = time.monotonic() + seconds
        while (remaining := end - time.monotonic()) > 0:
            if self.server.stopping.is_set() or time.monotonic() >= self._deadline:
                raise _AbortError
            readable, _, _ = select.select([self.connection], [], [], min(remaining, _POLL_SECONDS))
            if readable and self._client_hung_up():
                raise _ClientGoneError
            if readable:  # the client sent bytes mid-response; just wait out the slice
                self.server.stopping.wait(min(remaining, _POLL_SECONDS))

    def _client_hung_up(self) -> bool:
        try:
            peeked: bytes = self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return True
        return peeked == b""

    def _abort(self) -> None:
        """End the response at once, leaving the body unfinished."""
        self.close_connection = True
        with contextlib.suppress(OSError):  # the client got there first
            self.connection.shutdown(socket.SHUT_RDWR)


class FakeServer:
    """A fake Anthropic Messages API on 127.0.0.1, serving scripted replies.

    Use it as a context manager, or call `start` and `stop`. Replies to
    ``POST /v1/messages`` come from the `enqueue` queue, first in first out;
    once it is empty, from `default`.

    Endpoints: ``POST /v1/messages`` (streamed or not), ``POST
    /v1/messages/count_tokens``, ``GET /v1/models`` and ``GET /v1/models/{id}``.
    Anything else is a 404 in the API's error shape. Every response has a
    ``request-id`` header.

    Args:
        port: The port to bind on 127.0.0.1; 0 picks a free one.
        max_response_seconds: The longest any one response may take; a response
            still running then is cut, so nothing hangs.
        default: The script for requests when the queue is empty, or a callable
            that gets the request's JSON body and returns one. By default, a short
            canned text reply.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        max_response_seconds: float = 120.0,
        default: Script | Callable[[dict[str, Any]], Script] | None = None,
    ) -> None:
        self.max_response_seconds = max_response_seconds
        self.default = default
        self.batches = FakeBatches()
        """The Message Batches the server was sent; set its ``answer`` and
        ``seconds_per_request`` to script them."""
        self.intercept: Script | None = None
        """A script (see `page`) that answers every request, on any route, while set: the
        server then stands for a proxy or a wrong base URL instead of the API."""
        self._port = port
        self._lock = threading.Condition()
        self._queue: deque[Script] = deque()
        self._requests: list[RecordedRequest] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        """The base URL, such as ``http://127.0.0.1:54321``, for ``ANTHROPIC_BASE_URL``.

        Raises:
            RuntimeError: If the server has not been started.
        """
        return f"http://127.0.0.1:{self.port}"

    @property
    def port(self) -> int:
        """The port the server listens on.

        Raises:
            RuntimeError: If the server has not been started.
        """
        if self._httpd is None:
            raise RuntimeError("the FakeServer is not started")
        return self._httpd.server_port

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in order of arrival."""
        with self._lock:
            return list(self._requests)

    def start(self) -> FakeServer:
        """Bind the port and serve in a daemon thread.

        Returns:
            The server itself.

        Raises:
            RuntimeError: If it was started before.
        """
        if self._httpd is not None or self._stopped:
            raise RuntimeError("a FakeServer can be started only once")
        self._httpd = _HTTPServer(self, self._port)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": _POLL_SECONDS},
            name="nbclaude-fake-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: cut open responses, close connections, join the threads.

        Returns within a few seconds whatever the clients do. Calling it again
        does nothing.
        """
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None or self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + _STOP_SECONDS
        httpd.shutdown()
        httpd.close_connections(deadline)
        httpd.server_close()
        thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def enqueue(self, *scripts: Script) -> None:
        """Queue replies for the next ``POST /v1/messages`` requests, in order.

        Args:
            *scripts: The scripts, first served first.
        """
        with self._lock:
            self._queue.extend(scripts)

    def wait_for_requests(self, n: int, timeout: float = 10) -> None:
        """Block until at least `n` requests have arrived.

        Args:
            n: How many requests to wait for, counting from the start.
            timeout: The longest to wait, in seconds.

        Raises:
            TimeoutError: If fewer than `n` requests arrived in time.
        """
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._requests) >= n, timeout):
                got = len(self._requests)
                raise TimeoutError(f"waited {timeout}s for {n} requests, got {got}")

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(record)
            self._lock.notify_all()

    def _next_script(self, body: dict[str, Any]) -> Script:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if isinstance(self.default, Script):
            return self.default
        if self.default is not None:
            return self.default(dict(body))
        return _default_reply(body)


# --------------------------------------------------------------------------- CLI


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the default reply until Ctrl-C or SIGTERM: ``python -m nbclaude.testing [--port N]``.

    Args:
        argv: Command-line arguments; ``sys.argv[1:]`` by default.

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m nbclaude.testing",
        description="Serve a fake Anthropic Messages API on 127.0.0.1 until Ctrl-C.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: any free)")
    parser.add_argument(
        "--delay", type=float, default=0.05, help="seconds between streamed deltas (default: 0.05)"
    )
    args = parser.parse_args(argv)
    delay: float = args.delay

    def paced_default(body: dict[str, Any]) -> Script:
        return paced(_default_reply(body), delay)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # stop cleanly on `kill` too
    with FakeServer(port=args.port, default=paced_default) as server:
        print(f"Fake Messages API at {server.url}", flush=True)
        print(f"  export ANTHROPIC_BASE_URL={server.url}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
