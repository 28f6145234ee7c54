"""What the live view sends to the front end: about the final HTML, once, on any reply shape.

Widget messages leave the kernel through a comm; the ``comm`` package lets a kernel supply
its own by replacing ``comm.create_comm``, which is what ipykernel does. Here a comm that
records each message stands in for the front end, and :class:`Browser` does with the
messages what ``live.js`` does, to HTML text instead of a DOM: the tests read what the
reader would see. The view's clock is a simulated one that advances a fixed time per stream
event: the counts are then exact and repeatable, with no sleeping and no timing in the
assertions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import comm
import pytest
from anthropic.types import (
    Message,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageStartEvent,
    SignatureDelta,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ThinkingDelta,
    Usage,
)
from comm.base_comm import BaseComm

from nbclaude.markdown import render
from nbclaude.static import static_html
from nbclaude.stream import ReplyBuilder
from nbclaude.testing import REPLY_SHAPES, long_markdown
from nbclaude.widget import WidgetView
from nbclaude.worker import RenderWorker


class RecordingComm(BaseComm):
    """A comm that keeps the size of every message instead of publishing it, and the
    content of the custom ones (the live view's updates) in :attr:`custom`."""

    sent: list[tuple[str, int]] = []  # noqa: RUF012 - shared on purpose, reset by the fixture
    custom: list[dict[str, Any]] = []  # noqa: RUF012 - the same

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        size = len(json.dumps(data, default=str)) + sum(len(b) for b in buffers or [])
        RecordingComm.sent.append((msg_type, size))
        if isinstance(data, dict) and data.get("method") == "custom":
            RecordingComm.custom.append(data["content"])


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    RecordingComm.sent = []
    RecordingComm.custom = []
    monkeypatch.setattr(comm, "create_comm", RecordingComm)
    return RecordingComm.sent


class Section:
    """A part of the reply the browser builds into: the reply, or a thinking section."""

    def __init__(self, opening: str = "", closing: str = "") -> None:
        self.opening, self.closing = opening, closing
        self.items: list[str | Section] = []
        self.tail = ""

    def html(self) -> str:
        inner = "".join(item if isinstance(item, str) else item.html() for item in self.items)
        return self.opening + inner + self.tail + self.closing


class Browser:
    """What ``live.js`` builds from the live view's messages, as HTML text."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.reply = Section()
        self.status: list[Any] = []
        stack = [self.reply]
        for message in messages:
            for op in message["ops"]:
                self._apply(stack, op)
            self.status = message["status"]

    @staticmethod
    def _apply(stack: list[Section], op: list[Any]) -> None:
        section = stack[-1]
        match op:
            case ["html", keep, more]:
                section.items.append(section.tail[:keep] + more)
                section.tail = section.tail[keep:]
            case ["tail", keep, more]:
                section.tail = section.tail[:keep] + more
            case ["seal"]:
                section.items.append(section.tail)
                section.tail = ""
            case ["open", html]:
                opening, closing = html[: -len("</details>")], "</details>"
                inner = Section(opening, closing)
                section.items.append(inner)
                stack.append(inner)
            case ["close"]:
                stack.pop()
            case ["fold"]:
                for item in section.items:
                    if isinstance(item, Section):
                        item.opening = item.opening.replace(" open>", ">", 1)
            case _:
                raise AssertionError(f"an operation live.js does not know: {op}")

    def html(self) -> str:
        return self.reply.html()


def browser() -> Browser:
    """What the front end shows after the messages recorded so far."""
    return Browser(RecordingComm.custom)


class SimulatedClock:
    """A clock that moves only when told: one tick per stream event."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def message_start(message_id: str) -> RawMessageStartEvent:
    """The first event of every reply: the message, still empty."""
    message = Message(
        id=message_id,
        type="message",
        role="assistant",
        model="claude-sonnet-4-6",
        content=[],
        usage=Usage(input_tokens=1, output_tokens=1),
    )
    return RawMessageStartEvent(type="message_start", message=message)


def stream_into_view(
    text: str,
    seconds_per_delta: float,
    chunk: int = 20,
    worker: RenderWorker | None = None,
    after_event: Callable[[WidgetView, ReplyBuilder], None] = lambda view, builder: None,
) -> WidgetView:
    """Feed ``text`` as text deltas through a builder into a live view, then finish it.

    ``after_event`` is called after the view handled each event.
    """
    clock = SimulatedClock()
    view = WidgetView(clock=clock, worker=worker)
    builder = ReplyBuilder(clock=clock)
    events: list[Any] = [
        message_start("msg_traffic"),
        RawContentBlockStartEvent(
            type="content_block_start", index=0, content_block=TextBlock(type="text", text="")
        ),
    ]
    events += [
        RawContentBlockDeltaEvent(
            type="content_block_delta",
            index=0,
            delta=TextDelta(type="text_delta", text=text[start : start + chunk]),
        )
        for start in range(0, len(text), chunk)
    ]
    events.append(RawContentBlockStopEvent(type="content_block_stop", index=0))
    for event in events:
        clock.now += seconds_per_delta
        builder.add(event)
        view.progress(builder.progress)
        after_event(view, builder)
    view.refresh(builder.progress)
    return view


def traffic(sent: list[tuple[str, int]]) -> tuple[int, int]:
    return len(sent), sum(size for _, size in sent)


@pytest.mark.parametrize("seconds_per_delta", [0.001, 0.01], ids=["fast", "reading-pace"])
def test_messages_and_bytes_grow_linearly_with_the_reply(
    recorded: list[tuple[str, int]], seconds_per_delta: float
) -> None:
    short, long = long_markdown(50_000), long_markdown(200_000)
    stream_into_view(short, seconds_per_delta)
    short_messages, short_bytes = traffic(recorded)
    recorded.clear()
    stream_into_view(long, seconds_per_delta)
    long_messages, long_bytes = traffic(recorded)

    growth = len(long) / len(short)
    # Linear: four times the reply, about four times the traffic (quadratic would be 16).
    assert long_messages <= 1.5 * growth * short_messages
    assert long_bytes <= 1.5 * growth * short_bytes


@pytest.mark.parametrize("shape", sorted(REPLY_SHAPES))
@pytest.mark.parametrize("seconds_per_delta", [0.001, 0.01], ids=["fast", "reading-pace"])
def test_the_html_crosses_the_wire_about_once_on_any_reply_shape(
    recorded: list[tuple[str, int]], shape: str, seconds_per_delta: float
) -> None:
    text = REPLY_SHAPES[shape](200_000)
    stream_into_view(text, seconds_per_delta)
    _, sent = traffic(recorded)
    final = len(render(text))
    assert sent <= 1.5 * final, f"{sent / final:.2f} times the final HTML"


def test_the_browser_ends_with_the_static_view(recorded: list[tuple[str, int]]) -> None:
    # What the reader sees when the reply ends is what the static view shows: the swap
    # changes nothing but the status line, which becomes the usage line.
    text = long_markdown(30_000) + REPLY_SHAPES["one huge list"](3_000)
    view = stream_into_view(text, 0.001)
    assert browser().html() == render(text)
    assert browser().status[0] == "writing"
    assert browser().status[2] == len(text) // 4
    view.abandon(ReplyBuilder().reply())


def test_a_slow_reply_still_refreshes_several_times_a_second(
    recorded: list[tuple[str, int]],
) -> None:
    text = long_markdown(5_000)
    view = stream_into_view(text, 0.02, chunk=5)  # 1,000 deltas over 20 simulated seconds
    assert view.refreshes >= 4 * 20


@pytest.mark.parametrize(
    ("seconds_per_delta", "chunk"),
    [(0.001, 20), (0.001, 7), (0.0002, 1), (0.02, 5)],
    ids=["fast", "fast-odd-chunks", "one-char-deltas", "reading-pace"],
)
def test_no_refresh_comes_later_than_its_throttle_allows(
    recorded: list[tuple[str, int]], seconds_per_delta: float, chunk: int
) -> None:
    # Between refreshes the view skips most events without asking its throttle: text
    # that arrives before the interval is up, or too little of it to be worth re-sending
    # what a refresh re-sends. No event it skips may be one the throttle would refresh at,
    # or the text on screen lags behind what has arrived.
    refreshes = 0
    late: list[int] = []

    def check(view: WidgetView, builder: ReplyBuilder) -> None:
        nonlocal refreshes
        if view.refreshes > refreshes:
            refreshes = view.refreshes
            return
        resend = view._document.tail_size
        if view._throttle.due(builder.progress.chars - view._shown_chars, resend):
            late.append(builder.progress.chars)

    stream_into_view(long_markdown(30_000), seconds_per_delta, chunk, after_event=check)
    assert refreshes >= 5
    assert not late, f"refreshes came late, at {len(late)} events from character {late[0]}"


def thinking_then_answer() -> list[Any]:
    """The events of a reply that thinks in one block, then answers in another."""
    return [
        message_start("msg_thinking"),
        RawContentBlockStartEvent(
            type="content_block_start",
            index=0,
            content_block=ThinkingBlock(type="thinking", thinking="", signature=""),
        ),
        RawContentBlockDeltaEvent(
            type="content_block_delta",
            index=0,
            delta=ThinkingDelta(type="thinking_delta", thinking="Compare the two."),
        ),
        RawContentBlockDeltaEvent(
            type="content_block_delta",
            index=0,
            delta=SignatureDelta(type="signature_delta", signature="c2ln"),
        ),
        RawContentBlockStopEvent(type="content_block_stop", index=0),
        RawContentBlockStartEvent(
            type="content_block_start", index=1, content_block=TextBlock(type="text", text="")
        ),
        RawContentBlockDeltaEvent(
            type="content_block_delta",
            index=1,
            delta=TextDelta(type="text_delta", text="A list *changes*."),
        ),
        RawContentBlockStopEvent(type="content_block_stop", index=1),
    ]


def opened_and_closed(sent: list[tuple[str, int]]) -> tuple[int, int]:
    kinds = [kind for kind, _ in sent]
    return kinds.count("comm_open"), kinds.count("comm_close")


def test_a_reply_without_thinking_has_no_thinking_section_and_closes_what_it_opened(
    recorded: list[tuple[str, int]],
) -> None:
    # Every widget model is a message to open it and one to close it: the empty view is
    # the live reply and its layout, and nothing is sent before the reply's first text.
    WidgetView()
    assert [kind for kind, _ in recorded] == ["comm_open"] * 2
    recorded.clear()
    view = stream_into_view(long_markdown(20_000), 0.001)
    assert "<details" not in browser().html()
    view.abandon(ReplyBuilder().reply())
    opened, closed = opened_and_closed(recorded)
    assert closed == opened, "widget models left open in the front end"


def test_thinking_gets_a_section_of_its_own_that_folds_when_the_answer_starts(
    recorded: list[tuple[str, int]],
) -> None:
    clock = SimulatedClock()
    view = WidgetView(clock=clock, min_interval=0.0)
    builder = ReplyBuilder(clock=clock)
    shown = []
    for event in thinking_then_answer():
        clock.now += 0.1
        builder.add(event)
        view.progress(builder.progress)
        shown.append((browser().html(), browser().status[0] if RecordingComm.custom else None))
    thinking = [html for html, state in shown if state == "thinking"]
    assert thinking, "the status line never said thinking"
    assert re.search(r"<details [^>]*class=\"nbclaude-thinking\" open>", thinking[0]), (
        "thinking is not unfolded while it streams"
    )
    final, state = shown[-1]
    assert state == "writing"
    assert re.search(r"<details [^>]*class=\"nbclaude-thinking\">", final), (
        "thinking does not fold when the answer starts"
    )
    assert final.index("Compare the two.") < final.index("</details>") < final.index("changes")
    view.finish(builder.reply())
    opened, closed = opened_and_closed(recorded)
    assert closed == opened, "widget models left open in the front end"
    # What the browser shows is what the static view shows: the same HTML.
    static = builder.reply()
    from nbclaude.static import reply_html

    assert reply_html(static, error=False).startswith(final)


def test_the_static_view_reads_without_its_styles() -> None:
    # Sanitizers drop <style> elements (printing their rules as text) and class and style
    # attributes: the static view has no <style>, and reads as a reply without them.
    builder = ReplyBuilder()
    for event in thinking_then_answer():
        builder.add(event)
    html = static_html(builder.reply())
    assert "<style" not in html
    bare = re.sub(r' (?:class|style)="[^"]*"', "", html)
    assert "{" not in re.sub(r"<[^>]+>", "", bare)  # no CSS shows as text
    assert "<details><summary>Thinking</summary><p>Compare the two.</p>\n</details>" in bare
    code = static_html(builder.reply(), {1: render("## A list\n\n```python\nx = [1]\n```")})
    bare = re.sub(r' (?:class|style)="[^"]*"', "", code)
    assert "<h2>A list</h2>" in bare
    assert "<div>python</div><pre><code>x" in bare
