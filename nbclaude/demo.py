"""The offline demo: canned replies from a fake Messages API on 127.0.0.1.

``%claude demo`` starts a :class:`Demo` server in the kernel and points ``%%claude`` at it,
so someone without an API key can watch nbclaude stream, fold thinking and leave a static
reply. Replies are picked by keywords in the prompt (:func:`canned_reply`) and streamed at a
reading pace; thinking streams slower (:data:`THINKING_SECONDS`), so it is seen unfolding
before the answer folds it away. They are labelled as canned on screen: :func:`banner` when
the demo starts, and the model name :data:`MODEL`, which every reply's usage line shows.

Nothing here imports IPython; the session (``%claude demo``) decides when to start and stop
the server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from html import escape
from typing import Any

import anthropic
import httpx2

from .attachments import block_placeholder
from .testing import (
    Block,
    FakeServer,
    Script,
    estimate_input_tokens,
    reply,
    text,
    thinking,
    tool_call_reply,
    tool_results,
    tool_use,
)

__all__ = [
    "API_KEY",
    "CHUNK_DELAY",
    "MODEL",
    "THINKING_SECONDS",
    "Canned",
    "Demo",
    "banner",
    "canned_reply",
    "choose",
]

API_KEY = "sk-ant-demo-offline-not-a-real-key"
"""The key the demo's client sends: obviously fake, so a real key never reaches the server."""

MODEL = "demo: canned reply"
"""The model name of every demo reply. The usage line shows it, and no price matches it."""

CHUNK_DELAY = 0.015
"""Seconds before each streamed chunk: about a fast reader's pace."""

TEXT_CHUNK = 12
"""Characters of answer per ``text_delta``."""

THINKING_CHUNK = 8
"""Characters of thinking per ``thinking_delta``: small, so thinking streams smoothly."""

THINKING_SECONDS = 2.0
"""Seconds the thinking takes to stream, however long it is, before the answer starts.

Thinking shows unfolded while it streams and folds when the answer begins; at the answer's
pace it would be gone in a fraction of a second, before anyone saw it open.
"""


@dataclass(frozen=True, slots=True)
class Canned:
    """One prepared reply and the prompts it answers."""

    name: str
    """A short name, for tests and debugging."""
    pattern: re.Pattern[str] | None
    """Matches the (lower-cased) prompt this reply answers; ``None`` for the fallback."""
    answer: str
    """The Markdown answer."""
    thinking: str
    """The summarized thinking, sent first when the request asks for thinking."""
    tool: tuple[str, Mapping[str, Any]] | None = field(default=None)
    """A tool call ``(name, input)`` that ends the turn after the answer, if any."""


_TOOL = Canned(
    name="tool call",
    pattern=re.compile(r"\btools?\b|\bweather\b|\bfunction call"),
    answer=(
        "That needs live data, so I'll ask for it with the `get_weather` tool. "
        "Your code runs the tool and sends the result back in the next turn."
    ),
    thinking=(
        "The question needs current conditions, which I cannot know. The right move is a "
        "tool call: `get_weather` with the city and the unit, then wait for the result."
    ),
    tool=("get_weather", {"location": "Paris, France", "unit": "celsius"}),
)

_PRIME = Canned(
    name="mersenne prime",
    pattern=re.compile(r"\bprimes?\b|2\s*\*\*\s*61|\bmersenne\b"),
    answer="""\
## Yes: `2**61 - 1` is prime

`2**61 - 1 = 2,305,843,009,213,693,951` is a **Mersenne prime**, usually written M61.
Ivan Pervushin proved it prime by hand in 1883, and it stayed the largest known prime
for almost thirty years.

Why that can be checked quickly:

1. `2**p - 1` can only be prime when `p` is prime, and 61 is.
2. Every factor of `2**p - 1` has the form `2kp + 1`, which rules out most small divisors.
3. The **Lucas–Lehmer test** settles it: start from `s = 4` and repeat
   `s = (s*s - 2) % M` `p - 2` times; `M` is prime exactly when `s` ends at 0.

```python
def lucas_lehmer(p: int) -> bool:
    m = 2**p - 1
    s = 4
    for _ in range(p - 2):
        s = (s * s - 2) % m
    return s == 0

print(lucas_lehmer(61))  # True
```

A prime exponent is necessary, not sufficient; the neighbours show it:

| p | `2**p - 1` | prime? |
|---|---:|---|
| 59 | 576,460,752,303,423,487 | no: 179,951 × 3,203,431,780,337 |
| 61 | 2,305,843,009,213,693,951 | **yes** |
| 67 | 147,573,952,589,676,412,927 | no: 193,707,721 × 761,838,257,287 |
""",
    thinking=(
        "`2**61 - 1` is a Mersenne number with a prime exponent, so it *can* be prime. "
        "I recall M61 is the ninth Mersenne prime, found by Pervushin in 1883. To be sure, "
        "the Lucas–Lehmer test for p = 61 ends at s = 0, so it is prime. Contrasting it "
        "with `2**59 - 1` and `2**67 - 1`, both composite, shows that a prime exponent is not "
        "enough on its own. A short code sample of the test will make it concrete."
    ),
)

_GENERATOR = Canned(
    name="generator",
    pattern=re.compile(r"\bgenerators?\b|\byield\b"),
    answer=(
        "A Python generator is a function that uses `yield` to produce values lazily, one "
        "at a time, pausing with its state intact between them, so you can loop over long "
        "or endless sequences without building them in memory."
    ),
    thinking=(
        "One sentence only. Define it by `yield`, laziness and the paused state, and end "
        "with the practical benefit: memory."
    ),
)

_LIST_TUPLE = Canned(
    name="list vs tuple",
    pattern=re.compile(r"\btuples?\b"),
    answer="""\
## Lists vs tuples

Both are ordered sequences that can hold any objects. The difference is **mutability**,
and most of the rest follows from it.

| | `list` | `tuple` |
|---|---|---|
| Syntax | `[1, 2, 3]` | `(1, 2, 3)` or `1, 2, 3` |
| Mutable | yes: append, remove, sort in place | no: fixed once created |
| Hashable | no | yes, if its items are |
| Dict key or set member | no | yes |
| Typical use | a collection that grows and shrinks | a fixed record, such as a point |
| Memory | a little more (room to grow) | a little less |

```python
point = (3, 4)            # a tuple: a fixed record
scores = [90, 85]         # a list: grows and shrinks
scores.append(77)

distances = {point: 5.0}  # tuples can be dict keys
try:
    point[0] = 10
except TypeError as err:
    print(err)            # 'tuple' object does not support item assignment
```

**Rule of thumb:** use a list when the contents will change, and a tuple when the shape
is fixed and should stay that way.
""",
    thinking=(
        "They want the difference between list and tuple, with a table. The key axis is "
        "mutability; from it follow hashability (dict keys, set members), typical use "
        "(a changing collection vs a fixed record) and a small memory difference. A short "
        "example with a TypeError on assignment and a tuple as a dict key makes it concrete."
    ),
)

_FALLBACK = Canned(
    name="about the demo",
    pattern=None,
    answer="""\
## nbclaude's offline demo

This is a **canned reply**: no model ran, and nothing left this machine. The demo has
a few prepared replies, streamed at a reading pace, to show how nbclaude displays them:

| Ask about | You see |
|---|---|
| the difference between a list and a tuple | a heading, a table and highlighted code |
| whether `2**61 - 1` is prime, with `-t` | thinking that streams, then folds away |
| the weather, or a tool call | a tool call block |
| what a Python generator is | a one-sentence answer |

To talk to Claude, set your key without saving it in the notebook:

```python
import getpass, os
os.environ["ANTHROPIC_API_KEY"] = getpass.getpass("Anthropic API key: ")
```

then run `%claude demo off`.
""",
    thinking=(
        "No prepared reply matches this prompt, so the demo explains itself: what it can "
        "show, and how to switch to the real API."
    ),
)

_RATING = Canned(
    name="rating",
    pattern=re.compile(r"\brate\b|\brating\b|\breviews?\b"),
    answer=(
        "**4 / 5.** A canned demo reply: every review gets this same answer, so the table "
        "shows how the cells line up, not what a model thinks. With a key, Claude reads each "
        "review and rates it."
    ),
    thinking="Ratings need the review's text; the demo cannot read it, so it says so.",
)

REPLIES: tuple[Canned, ...] = (_TOOL, _PRIME, _GENERATOR, _LIST_TUPLE, _RATING, _FALLBACK)
"""The canned replies, tried in order; the last one answers everything."""


def _text_of(content: Any) -> str:
    """The text in a message's ``content``: a string, or a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [block.get("text") for block in content if isinstance(block, dict)]
        return "\n".join(part for part in parts if isinstance(part, str))
    return ""


def _prompt(body: Mapping[str, Any]) -> str:
    """The text of the last user message: what the cell asked."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _attached(body: Mapping[str, Any]) -> list[str]:
    """Placeholders of the images and documents in the last user message."""
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    content = last.get("content") if isinstance(last, dict) else None
    if not isinstance(content, list):
        return []
    found = (block_placeholder(block) for block in content if isinstance(block, dict))
    return [placeholder for placeholder in found if placeholder is not None]


def _attachments_reply(attached: list[str], tokens: int) -> Canned:
    """What the demo says to a prompt with images or PDFs: what arrived, since it cannot look."""
    rows = "\n".join(f"| {n} | `{item}` |" for n, item in enumerate(attached, start=1))
    answer = f"""\
## What the demo received

No model looks at anything in the offline demo, but your request arrived with
{len(attached)} attachment{"s" if len(attached) != 1 else ""}, placed where you put
{"them" if len(attached) != 1 else "it"} in the prompt:

| # | sent as |
|---|---|
{rows}

The whole request counts as about **{tokens:,} input tokens** (an image costs about its
width × height / 750). With `ANTHROPIC_API_KEY` set and `%claude demo off`, Claude reads
the same blocks: for a plot it describes the axes and the trend, and answers what you
asked about them.
"""
    thinking = "The request carries attachments; the demo can only report what arrived."
    return Canned(name="attachments", pattern=None, answer=answer, thinking=thinking)


def choose(body: Mapping[str, Any]) -> Canned:
    """The canned reply for a request: the first whose keywords the prompt contains.

    A prompt that attaches images or PDFs gets a reply that lists what arrived.

    Args:
        body: The JSON body of a ``POST /v1/messages`` request.

    Returns:
        The matching reply, or the fallback that explains the demo.
    """
    attached = _attached(body)
    if attached:
        return _attachments_reply(attached, estimate_input_tokens(body))
    prompt = _prompt(body).lower()
    for canned in REPLIES:
        if canned.pattern is None or canned.pattern.search(prompt):
            return canned
    return _FALLBACK


def _wants_thinking(body: Mapping[str, Any]) -> bool:
    setting = body.get("thinking")
    return isinstance(setting, dict) and setting.get("type") != "disabled"


_NOT_NAMES = frozenset(
    {"Which", "What", "Who", "Why", "How", "When", "Where", "Use", "Is", "The", "A"}
)
"""Capitalised words that start a question rather than name a place or a person."""

_FACTS: Mapping[str, Mapping[str, Any]] = {
    "algorithm": {"name": "Ada Lovelace", "born": 1815, "died": 1852, "year": 1843},
}
"""What the demo knows for a structured reply, by a keyword of the prompt."""


def _custom_tools(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    tools = body.get("tools")
    listed = tools if isinstance(tools, list) else []
    return [t for t in listed if isinstance(t, dict) and "input_schema" in t and "name" in t]


def _example(schema: Any, facts: Mapping[str, Any], name: str = "") -> Any:
    """A value that fits a JSON schema: a known fact for a property of that name, else a
    plain example of the type."""
    if not isinstance(schema, dict):
        return None
    if name in facts:
        return facts[name]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return _example(schema[key][0], facts, name)
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object":
        properties = schema.get("properties") or {}
        return {key: _example(sub, facts, key) for key, sub in properties.items()}
    if kind == "array":
        return [_example(schema.get("items"), facts)]
    return {"integer": 1, "number": 1.0, "boolean": True, "null": None}.get(str(kind), "example")


def _tool_calls(body: Mapping[str, Any], tools: list[Mapping[str, Any]]) -> list[tuple[str, Any]]:
    """The calls the demo makes: for a tool with one text parameter, one per name the
    prompt mentions (capitalised words); otherwise one call with example values."""
    names = [
        word
        for word in dict.fromkeys(re.findall(r"\b[A-Z][a-z]+\b", _prompt(body)))
        if word not in _NOT_NAMES
    ][:3]
    calls = []
    for tool in tools:
        schema = tool["input_schema"] if isinstance(tool["input_schema"], dict) else {}
        required = schema.get("required") or []
        properties = schema.get("properties") or {}
        text_inputs = [p for p in required if properties.get(p, {}).get("type") == "string"]
        if len(required) == 1 and text_inputs and names:
            calls += [(str(tool["name"]), {text_inputs[0]: name}) for name in names]
        else:
            calls.append((str(tool["name"]), _example(schema, {})))
    return calls


def _tool_round(body: Mapping[str, Any], delay: float) -> Script | None:
    """The demo's side of a tool loop: call the user's tools, then show what they returned."""
    tools = _custom_tools(body)
    if not tools:
        return None
    results = tool_results(body)
    if not results:
        calls = _tool_calls(body, tools)
        plural = "s" if len(calls) != 1 else ""
        before = (
            f"The offline demo calls your tool{plural} to show the loop: "
            f"{len(calls)} call{plural}, run in your kernel."
        )
        tokens = estimate_input_tokens(body)
        return tool_call_reply(
            *calls, text_before=before, model=MODEL, input_tokens=tokens, delay=delay
        )
    rows = "\n".join(
        f"| {n} | {'error' if result.get('is_error') else 'ok'} | "
        f"`{_cell(result.get('content'))}` |"
        for n, result in enumerate(results, start=1)
    )
    answer = f"""\
## What your tools returned

| call | status | result |
|---|---|---|
{rows}

The demo does not reason over them: with `ANTHROPIC_API_KEY` set, Claude reads these results
and answers your question, calling the tools again if it needs to.
"""
    tokens = estimate_input_tokens(body)
    return reply(text(answer, chunk_size=TEXT_CHUNK), model=MODEL, input_tokens=tokens, delay=delay)


def _cell(content: Any) -> str:
    shown = content if isinstance(content, str) else "[content blocks]"
    shown = " ".join(str(shown).split()).replace("|", "\\|").replace("`", "'")
    return shown if len(shown) <= 80 else shown[:79] + "…"


def _structured(body: Mapping[str, Any], delay: float) -> Script | None:
    """A reply that fits the schema the request asks for (``output_config.format``)."""
    config = body.get("output_config")
    output_format = config.get("format") if isinstance(config, dict) else None
    if not isinstance(output_format, dict) or output_format.get("type") != "json_schema":
        return None
    prompt = _prompt(body).lower()
    facts = next((known for word, known in _FACTS.items() if word in prompt), {})
    value = _example(output_format.get("schema"), facts)
    tokens = estimate_input_tokens(body)
    answer = text(json.dumps(value), chunk_size=TEXT_CHUNK)
    return reply(answer, model=MODEL, input_tokens=tokens, delay=delay)


def canned_reply(
    body: dict[str, Any],
    *,
    delay: float = CHUNK_DELAY,
    thinking_seconds: float = THINKING_SECONDS,
) -> Script:
    """The streamed reply the demo server sends to one request.

    The answer is picked by :func:`choose`; thinking comes first when the request asks for
    it; a tool call ends the turn with ``stop_reason: tool_use``. The prompt is never
    echoed back.

    Args:
        body: The JSON body of the request.
        delay: Seconds before each streamed chunk of the answer.
        thinking_seconds: Seconds the thinking takes, spread evenly over its chunks.

    Returns:
        The script for the fake server.
    """
    special = _tool_round(body, delay) or _structured(body, delay)
    if special is not None:
        return special
    canned = choose(body)
    blocks: list[Block] = []
    thinking_delay = None
    if _wants_thinking(body):
        thought = thinking(canned.thinking, chunk_size=THINKING_CHUNK)
        blocks.append(thought)
        thinking_delay = thinking_seconds / len(thought.deltas)
    blocks.append(text(canned.answer, chunk_size=TEXT_CHUNK))
    if canned.tool is not None:
        name, tool_input = canned.tool
        blocks.append(tool_use(name, tool_input, chunk_size=TEXT_CHUNK))
    return reply(
        *blocks,
        model=MODEL,
        stop_reason="tool_use" if canned.tool is not None else "end_turn",
        input_tokens=estimate_input_tokens(body),
        delay=delay,
        thinking_delay=thinking_delay,
    )


class Demo:
    """A running offline demo: the fake server on 127.0.0.1 and a client pointed at it.

    The server's threads are daemon threads, so a running demo never keeps the interpreter
    from exiting; :meth:`stop` ends it sooner.

    Args:
        delay: Seconds before each streamed chunk of an answer.
        thinking_seconds: Seconds each reply's thinking takes to stream, when asked for.
    """

    def __init__(
        self, *, delay: float = CHUNK_DELAY, thinking_seconds: float = THINKING_SECONDS
    ) -> None:
        reply_to = partial(canned_reply, delay=delay, thinking_seconds=thinking_seconds)
        self.server = FakeServer(default=reply_to).start()
        self._client: anthropic.Anthropic | None = None
        self._client_settings: tuple[float | httpx2.Timeout, int] | None = None

    @property
    def url(self) -> str:
        """The demo API's base URL, such as ``http://127.0.0.1:54321``."""
        return self.server.url

    def client(self, *, timeout: float | httpx2.Timeout, max_retries: int) -> anthropic.Anthropic:
        """The SDK client for the demo, with the fake :data:`API_KEY`; remade if settings change.

        The key is passed explicitly, so the SDK reads no credential from the environment
        and a real key never reaches the demo server.

        Args:
            timeout: Seconds to wait for the server.
            max_retries: SDK retries.

        Returns:
            The client.
        """
        if self._client is None or self._client_settings != (timeout, max_retries):
            if self._client is not None:
                self._client.close()
            self._client = anthropic.Anthropic(
                api_key=API_KEY, base_url=self.url, timeout=timeout, max_retries=max_retries
            )
            self._client_settings = (timeout, max_retries)
        return self._client

    def stop(self) -> None:
        """Close the client and stop the server; calling it again does nothing."""
        if self._client is not None:
            self._client.close()
            self._client = None
        self.server.stop()


def banner(url: str) -> dict[str, str]:
    """What ``%claude demo`` shows when it starts: a ``text/html`` and ``text/plain`` bundle.

    Args:
        url: The demo server's base URL.

    Returns:
        The MIME bundle.
    """
    plain = (
        f"nbclaude offline demo is on: %%claude now gets canned replies from a fake API at "
        f"{url}. No model runs and nothing leaves this machine. To talk to Claude, set "
        "ANTHROPIC_API_KEY and run %claude demo off."
    )
    html = (
        '<div class="nbclaude-demo" style="padding:0.4em 0.8em;border-left:4px solid #d9822b;'
        'background:rgba(217,130,43,0.08)"><strong>nbclaude offline demo is on</strong>: '
        f"<code>%%claude</code> now gets <strong>canned replies</strong> from a fake API at "
        f"<code>{escape(url)}</code>. No model runs and nothing leaves this machine. To talk "
        "to Claude, set <code>ANTHROPIC_API_KEY</code> and run <code>%claude demo off</code>."
        "</div>"
    )
    return {"text/html": html, "text/plain": plain}
