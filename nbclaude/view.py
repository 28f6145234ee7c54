"""Showing a reply while it streams: a live widget in notebooks, plain text in a terminal.

The live widget never re-sends what the browser already has. Its body is a box of HTML
segments: each finished Markdown block is appended to the last ("live") segment once, the open
block is re-rendered after it, and when the live segment passes :data:`SEAL_AT` characters it
is sealed and a new one starts. Updates are throttled (first at once, then at most every
``min_interval`` seconds, backing off when rendering is slow); the caller flushes at the end
by calling :meth:`WidgetView.finish`, which replaces the widget with the static view through
the same display id so the saved notebook needs no widget support.

This is the only module that touches ipywidgets; the request runs outside any
``with output:`` block, in the cell's own thread.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO

import ipywidgets as widgets
from IPython.display import DisplayHandle, display

from .markdown import IncrementalRenderer
from .reply import Reply
from .static import CSS, block_html, notices, static_bundle, thinking_html
from .stream import BlockState, ReplyBuilder

__all__ = ["SEAL_AT", "Segments", "TerminalView", "Throttle", "View", "WidgetView"]

Clock = Callable[[], float]

SEAL_AT = 2048
"""Characters of frozen HTML after which the live segment is sealed and a new one begins."""

FOOTER_INTERVAL = 0.5
"""Seconds between footer updates (elapsed time, token count); text updates come faster."""


class View(Protocol):
    """What the magic drives: start before the request, events while streaming, finish."""

    def start(self) -> None:
        """Show that something is happening, before the request is sent."""

    def on_event(self, builder: ReplyBuilder) -> None:
        """Called after every stream event; must be cheap."""

    def finish(self, reply: Reply) -> None:
        """Show the final reply (complete or not) in its lasting form."""


class Throttle:
    """Decides when a live view refreshes: at once, then at most every ``interval`` seconds.

    A slow refresh stretches the interval to four times its own cost (up to ``longest``),
    so a slow front end or a huge open block cannot make rendering eat the stream.
    """

    def __init__(
        self, interval: float = 0.05, *, longest: float = 1.0, clock: Clock = time.monotonic
    ) -> None:
        self.interval = interval
        self._base = interval
        self._longest = longest
        self._clock = clock
        self._last: float | None = None

    def due(self) -> bool:
        """Whether enough time has passed since the last refresh."""
        return self._last is None or self._clock() - self._last >= self.interval

    def record(self, started: float) -> None:
        """Note that a refresh that began at ``started`` just ended."""
        ended = self._clock()
        self._last = ended
        self.interval = min(self._longest, max(self._base, 4 * (ended - started)))


class Segments:
    """HTML segment widgets in a box: frozen HTML is sent once, only the tail is re-sent."""

    def __init__(self, box: widgets.Box, *, seal_at: int = SEAL_AT) -> None:
        self.box = box
        self._seal_at = seal_at
        self._frozen: list[str] = []
        self._frozen_size = 0
        self._tail = ""
        self._live: widgets.HTML | None = None
        self._shown = ""

    def freeze(self, html: str) -> None:
        """Append HTML that will never change."""
        if html:
            self._frozen.append(html)
            self._frozen_size += len(html)

    def set_tail(self, html: str) -> None:
        """Replace the HTML of the open part after everything frozen."""
        self._tail = html

    def flush(self) -> None:
        """Send what changed: a new live value, sealing the segment when it is full."""
        if self._live is None:
            if not self._frozen and not self._tail:
                return
            self._live = widgets.HTML()
            self.box.children = (*self.box.children, self._live)
        if self._frozen_size >= self._seal_at:
            sealed = "".join(self._frozen)
            if sealed != self._shown:
                self._live.value = sealed
            self._frozen.clear()
            self._frozen_size = 0
            self._shown = ""
            self._live = widgets.HTML()
            self.box.children = (*self.box.children, self._live)
        value = "".join(self._frozen) + self._tail
        if value != self._shown:
            self._live.value = value
            self._shown = value


class _BlockProgress:
    """How far the live view has shown one content block."""

    __slots__ = ("chunks", "done", "renderer")

    def __init__(self, renderer: IncrementalRenderer | None) -> None:
        self.renderer = renderer
        self.chunks = 0
        self.done = False


class WidgetView:
    """The live widget: thinking that folds, a Markdown body, a footer with time and tokens."""

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        min_interval: float = 0.05,
        seal_at: int = SEAL_AT,
        remote_images: bool = False,
    ) -> None:
        self._clock = clock
        self._throttle = Throttle(min_interval, clock=clock)
        self._remote_images = remote_images
        self._started = clock()
        self._footer_at = -FOOTER_INTERVAL
        self.thinking_box = widgets.VBox()
        self.thinking = widgets.Accordion(children=(self.thinking_box,), titles=("Thinking…",))
        self.thinking.layout.display = "none"
        self.body = widgets.VBox()
        self.footer = widgets.HTML(value='<div class="nbclaude-usage">⏳ waiting for Claude…</div>')
        style = widgets.HTML(value=f"<style>{CSS}</style>")
        self.root = widgets.VBox(
            children=(style, self.thinking, self.body, self.footer),
            layout=widgets.Layout(width="100%"),
        )
        self.root.add_class("nbclaude")
        self._thinking_segments = Segments(self.thinking_box, seal_at=seal_at)
        self._body_segments = Segments(self.body, seal_at=seal_at)
        self._progress: list[_BlockProgress] = []
        self._answer_started = False
        self._handle: DisplayHandle | None = None
        self.refreshes = 0
        """How many times the widget was refreshed while streaming."""

    def start(self) -> None:
        """Display the empty widget (with a display id, so it can be replaced)."""
        self._started = self._clock()
        self._handle = display(self.root, display_id=True)

    def on_event(self, builder: ReplyBuilder) -> None:
        """Refresh if the throttle allows it."""
        if self._throttle.due():
            started = self._clock()
            self.refresh(builder)
            self._throttle.record(started)

    def refresh(self, builder: ReplyBuilder) -> None:
        """Bring the widget up to date with everything the builder holds."""
        self.refreshes += 1
        for index, block in enumerate(builder.blocks):
            if index == len(self._progress):
                self._progress.append(self._begin(block))
            progress = self._progress[index]
            if not progress.done:
                self._show(block, progress)
        self._thinking_segments.flush()
        self._body_segments.flush()
        now = self._clock()
        if now - self._footer_at >= FOOTER_INTERVAL:
            self._footer_at = now
            tokens = builder.chars // 4
            self.footer.value = (
                f'<div class="nbclaude-usage">⏳ {now - self._started:.1f}s · '
                f"~{tokens:,} tokens</div>"
            )

    def _begin(self, block: BlockState) -> _BlockProgress:
        if block.type in {"thinking", "redacted_thinking"}:
            if self.thinking.layout.display == "none":
                self.thinking.layout.display = None
                self.thinking.selected_index = 0
            renderer = IncrementalRenderer() if block.type == "thinking" else None
            return _BlockProgress(renderer)
        if not self._answer_started:
            self._answer_started = True
            if self.thinking.layout.display != "none":
                self.thinking.selected_index = None
                self.thinking.titles = ("Thinking",)
        if block.type == "text":
            return _BlockProgress(IncrementalRenderer(remote_images=self._remote_images))
        return _BlockProgress(None)

    def _show(self, block: BlockState, progress: _BlockProgress) -> None:
        thinking = block.type in {"thinking", "redacted_thinking"}
        segments = self._thinking_segments if thinking else self._body_segments
        renderer = progress.renderer
        if renderer is not None:
            for chunk in block.chunks[progress.chunks :]:
                renderer.append(chunk)
            progress.chunks = len(block.chunks)
            update = renderer.update()
            segments.freeze(update.frozen)
            tail = update.tail
        elif block.type == "redacted_thinking":
            tail = thinking_html("", redacted=True, open_=True)
        else:
            tail = block_html(block.to_dict(), remote_images=self._remote_images)
        if block.stopped:
            segments.freeze(tail)
            segments.set_tail("")
            progress.done = True
        else:
            segments.set_tail(tail)

    def finish(self, reply: Reply) -> None:
        """Replace the widget with the static view and close it."""
        bundle = static_bundle(reply)
        if self._handle is not None:
            self._handle.update(bundle, raw=True)
        else:
            display(bundle, raw=True)
        self._close()

    def abandon(self) -> None:
        """Remove the widget when the call failed before there was anything to show."""
        if self._handle is not None:
            self._handle.update({"text/plain": ""}, raw=True)
        self._close()

    def _close(self) -> None:
        for segments in (self._thinking_segments, self._body_segments):
            for child in segments.box.children:
                child.close()
        for widget in self.root.children:
            widget.close()
        self.root.close()


class TerminalView:
    """Terminal IPython: stream plain text to stdout, then the usage line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._printed: list[int] = []
        self._section: str | None = None

    @property
    def _out(self) -> TextIO:
        return self._stream or sys.stdout

    def start(self) -> None:
        """Nothing to show before the first token in a terminal."""

    def on_event(self, builder: ReplyBuilder) -> None:
        """Print the deltas that arrived since the last event."""
        out = self._out
        for index, block in enumerate(builder.blocks):
            if index == len(self._printed):
                self._printed.append(0)
                self._open_section(block)
            done = self._printed[index]
            if block.type in {"text", "thinking"} and done < len(block.chunks):
                out.write("".join(block.chunks[done:]))
                self._printed[index] = len(block.chunks)
        out.flush()

    def _open_section(self, block: BlockState) -> None:
        section = "thinking" if block.type in {"thinking", "redacted_thinking"} else "answer"
        if section == self._section and block.type == "text":
            return
        if self._section is not None:
            self._out.write("\n\n")
        if section == "thinking":
            self._out.write("[thinking]\n")
        elif self._section == "thinking":
            self._out.write("[answer]\n")
        if block.type not in {"text", "thinking"}:
            name = block.start.get("name")
            self._out.write(f"[{block.type}{': ' + str(name) if name else ''}]\n")
        self._section = section

    def finish(self, reply: Reply) -> None:
        """Print any notice and the usage line."""
        out = self._out
        out.write("\n")
        for line in notices(reply):
            out.write(f"\n[{line}]\n")
        out.write(f"\n{reply.usage_summary.line()}\n")
        out.flush()
