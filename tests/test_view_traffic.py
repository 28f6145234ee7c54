"""What the live view sends to the front end grows linearly with the reply.

Widget messages leave the kernel through a comm; the ``comm`` package lets a kernel supply
its own by replacing ``comm.create_comm``, which is what ipykernel does. Here a comm that
records each message's size stands in for the front end, and the view's clock is a
simulated one that advances a fixed time per stream event: the counts are then exact and
repeatable, with no sleeping and no timing in the assertions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import comm
import ipywidgets as widgets
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
from nbclaude.stream import ReplyBuilder
from nbclaude.testing import long_markdown
from nbclaude.widget import WidgetView
from nbclaude.worker import RenderWorker


class RecordingComm(BaseComm):
    """A comm that keeps the size of every message instead of publishing it."""

    sent: list[tuple[str, int]] = []  # noqa: RUF012 - shared on purpose, reset by the fixture

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


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    RecordingComm.sent = []
    monkeypatch.setattr(comm, "create_comm", RecordingComm)
    return RecordingComm.sent


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


def shown_html(view: WidgetView) -> str:
    """The HTML the live answer shows: every segment of every chapter, then the tail."""
    return box_html(view.body)


def box_html(box: widgets.Box) -> str:
    """The HTML a box of segments shows."""
    parts = []
    for child in box.children:
        segments = child.children if isinstance(child, widgets.Box) else (child,)
        parts += [segment.value for segment in segments]
    return "".join(parts)


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


def test_bytes_sent_stay_within_twice_the_html_when_fast(
    recorded: list[tuple[str, int]],
) -> None:
    text = long_markdown(200_000)
    stream_into_view(text, 0.001)
    _, sent = traffic(recorded)
    assert sent <= 2 * len(render(text))


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
        resend = view._resend_size()
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
    # the root, its CSS, the body and the footer, with one layout and two styles shared.
    view = WidgetView()
    assert opened_and_closed(recorded) == (8, 0)
    assert [kind for kind, _ in recorded] == ["comm_open"] * 8, "models updated before any text"
    assert view.root._dom_classes == ("nbclaude", "jp-RenderedHTMLCommon")
    recorded.clear()
    view = stream_into_view(long_markdown(20_000), 0.001)
    assert view.thinking is None
    assert view.root.children == (view.root.children[0], view.body, view.footer)
    view.abandon(ReplyBuilder().reply())
    opened, closed = opened_and_closed(recorded)
    assert closed == opened, "widget models left open in the front end"


def test_thinking_gets_a_section_of_its_own_that_folds_when_the_answer_starts(
    recorded: list[tuple[str, int]],
) -> None:
    clock = SimulatedClock()
    view = WidgetView(clock=clock, min_interval=0.0)
    builder = ReplyBuilder(clock=clock)
    states = []
    for event in thinking_then_answer():
        clock.now += 0.1
        builder.add(event)
        view.progress(builder.progress)
        if view.thinking is not None:
            states.append((view.thinking.selected_index, view.thinking.titles))
    assert states[0] == (0, ("Thinking…",)), "thinking is not unfolded while it streams"
    assert states[-1] == (None, ("Thinking",)), "thinking does not fold when the answer starts"
    assert view.root.children.index(view.thinking) < view.root.children.index(view.body)
    assert "Compare the two." in box_html(view.thinking.children[0])
    assert "<em>changes</em>" in shown_html(view)
    view.finish(builder.reply())
    opened, closed = opened_and_closed(recorded)
    assert closed == opened, "widget models left open in the front end"
