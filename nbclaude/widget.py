"""The live view in notebooks: a widget that streams the reply as Markdown, then static HTML.

The live widget never re-sends what the browser already has. Finished Markdown blocks go
into the current frozen segment, an HTML widget that is sealed once it holds
:data:`SEAL_AT` characters; sealed segments are never touched again, and they are grouped in
chapter boxes of :data:`CHAPTER_SIZE` so no children list grows with the reply. The open
block is re-rendered into a separate tail widget, so sealing re-sends nothing. Segments are
``HTMLMath`` widgets: the front end typesets math in a segment when it changes, never the
whole reply. Refreshes are throttled (:class:`Throttle`); with a render worker, new text
is fed to it every :data:`FEED_INTERVAL` seconds in between, so it renders while the reply
streams. :meth:`WidgetView.finish` replaces the widget with the static view through the
same display id, reusing the HTML rendered while streaming, so the saved notebook needs no
widget support and a long reply is rendered once.

This is the only module that touches ipywidgets; the request runs outside any
``with output:`` block, in the cell's own thread. It follows the reply through the stream's
:class:`~nbclaude.stream.Progress` record, and implements :class:`~nbclaude.view.View`.
"""

from __future__ import annotations

import html
import math
import sys
import time
from collections.abc import Callable, Sequence

import ipywidgets as widgets
from IPython.display import DisplayHandle, display
from ipywidgets.widgets.widget_string import HTMLMathStyle, HTMLStyle

from .attachments import Attachment
from .many import Replies
from .markdown import IncrementalRenderer, Update
from .reply import Reply
from .static import (
    CSS,
    block_html,
    columns_bundle,
    rows_bundle,
    sent_html,
    static_bundle,
    text_bundle,
    thinking_html,
)
from .stream import BlockProgress, Progress
from .worker import RemoteRenderer, RenderWorker, WorkerError

__all__ = ["CHAPTER_SIZE", "SEAL_AT", "Segments", "Throttle", "WidgetView"]

Clock = Callable[[], float]

SEAL_AT = 4096
"""Characters of frozen HTML after which a segment is sealed and a new one begins."""

CHAPTER_SIZE = 32
"""Sealed segments per chapter box: bounds the size of every children update."""

FOOTER_INTERVAL = 1.0
"""Seconds between footer updates (elapsed time, token count); text updates come faster."""

FEED_INTERVAL = 0.02
"""Seconds between hand-offs of new text to the render worker, refresh or not: it renders
while the reply streams, so little is left to render when the reply ends."""

CATCH_UP_TIMEOUT = 5.0
"""Seconds the view waits for the render worker when it must be current (a block ended)."""

Renderer = IncrementalRenderer | RemoteRenderer


class Throttle:
    """Decides when a live view refreshes.

    Never more often than every ``interval`` seconds (stretched to four times the cost of
    the last refresh, so slow rendering cannot eat the stream), and only once the new
    content is at least half of what a refresh re-sends, or ``longest`` seconds have
    passed: that keeps the bytes sent within about twice the reply when it comes fast, and
    a slow reply still moves a few times a second.
    """

    def __init__(
        self, interval: float = 0.08, *, longest: float = 0.25, clock: Clock = time.monotonic
    ) -> None:
        self.interval = interval
        self._base = interval
        self._longest = longest
        self._clock = clock
        self._last: float | None = None

    @property
    def ready_at(self) -> float:
        """The earliest time of the next refresh: ``interval`` seconds after the last."""
        return -math.inf if self._last is None else self._last + self.interval

    def due(self, fresh: int = 1, resend: int = 0) -> bool:
        """Whether to refresh now.

        Args:
            fresh: Characters that arrived since the last refresh.
            resend: Characters a refresh would send again (the open segment and tail).
        """
        if self._last is None:
            return True
        elapsed = self._clock() - self._last
        if elapsed < self.interval:
            return False
        return 2 * fresh >= resend or elapsed >= self._longest

    def quiet_until(self, resend: int) -> tuple[float, int]:
        """How long :meth:`due` keeps saying no, whatever the stream brings meanwhile.

        Args:
            resend: What a refresh would send again, as for :meth:`due`; it changes only
                when a refresh happens.

        Returns:
            A time and a number of fresh characters: :meth:`due` says no before that time
            for fewer fresh characters than that. Past the interval, only the new content
            (or ``longest``) can make it due; before, only time can.
        """
        if self._last is None:
            return -math.inf, 0
        if self._clock() < self.ready_at:
            return self.ready_at, sys.maxsize
        return self._last + self._longest, (resend + 1) // 2

    def record(self, started: float) -> None:
        """Note that a refresh that began at ``started`` just ended."""
        ended = self._clock()
        self._last = ended
        self.interval = min(1.0, max(self._base, 4 * (ended - started)))


class Segments:
    """Frozen HTML in segment widgets grouped in chapters, then one tail widget.

    Args:
        box: The box to fill; its children become the chapters and the tail.
        layout: The layout of every chapter and segment.
        style: The style of every segment.
        seal_at: Characters after which the open segment is sealed.
        chapter_size: Segments per chapter.
    """

    def __init__(
        self,
        box: widgets.Box,
        *,
        layout: widgets.Layout,
        style: HTMLMathStyle,
        seal_at: int = SEAL_AT,
        chapter_size: int = CHAPTER_SIZE,
    ) -> None:
        self.box = box
        self._layout = layout
        self._style = style
        self._seal_at = seal_at
        self._chapter_size = chapter_size
        self._chapters: list[widgets.VBox] = []
        self._segment: widgets.HTMLMath | None = None
        self._segment_html = ""
        self._pending: list[str] = []
        self._tail = ""
        self._tail_widget: widgets.HTMLMath | None = None

    @property
    def resend_size(self) -> int:
        """Characters a flush sends again: the open segment and the tail."""
        return len(self._segment_html) + len(self._tail)

    def freeze(self, html: str) -> None:
        """Append HTML that will never change."""
        if html:
            self._pending.append(html)

    def set_tail(self, html: str) -> None:
        """Replace the HTML of the open part after everything frozen."""
        self._tail = html

    def flush(self) -> None:
        """Send what changed: new frozen HTML once, and the tail if it changed."""
        if self._pending:
            fresh = "".join(self._pending)
            self._pending.clear()
            if self._segment is not None and len(self._segment_html) < self._seal_at:
                self._segment_html += fresh
                self._segment.value = self._segment_html
            else:
                self._segment_html = fresh
                self._segment = self._new_html(fresh)
                self._add_segment(self._segment)
        tail_widget = self._tail_widget
        if tail_widget is None:
            if not self._tail:
                return
            tail_widget = self._tail_widget = self._new_html(self._tail)
            self._layout_children()
        elif tail_widget.value != self._tail:
            tail_widget.value = self._tail

    def _new_html(self, value: str) -> widgets.HTMLMath:
        # HTMLMath typesets its own content when it changes: math in a segment is typeset
        # once, and only the tail's is typeset again on each update.
        return widgets.HTMLMath(value=value, layout=self._layout, style=self._style)

    def _add_segment(self, segment: widgets.HTMLMath) -> None:
        if not self._chapters or len(self._chapters[-1].children) >= self._chapter_size:
            chapter = widgets.VBox(children=(segment,), layout=self._layout)
            self._chapters.append(chapter)
            self._layout_children()
        else:
            chapter = self._chapters[-1]
            chapter.children = (*chapter.children, segment)

    def _layout_children(self) -> None:
        tail = () if self._tail_widget is None else (self._tail_widget,)
        self.box.children = (*self._chapters, *tail)


class _BlockProgress:
    """How far the live view has shown one content block."""

    __slots__ = ("chunks", "done", "renderer")

    def __init__(self, renderer: Renderer | None) -> None:
        self.renderer = renderer
        self.chunks = 0
        self.done = False

    def lose_renderer(self) -> None:
        """Its render worker failed: show the block no further; the end renders it anew."""
        self.renderer = None
        self.done = True


class WidgetView:
    """The live widget: thinking that folds, a Markdown body, a footer with time and tokens.

    Markdown is rendered by ``worker`` when one is given and ready, else in the kernel.
    """

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        min_interval: float = 0.08,
        seal_at: int = SEAL_AT,
        remote_images: bool = False,
        worker: RenderWorker | None = None,
        standalone: bool = True,
    ) -> None:
        self._clock = clock
        self._standalone = standalone
        # A worker renders on another core; one still starting up is not waited for, and
        # a block that begins before it is ready renders in the kernel.
        self._worker = worker
        self._session = 0
        self._throttle = Throttle(min_interval, clock=clock)
        self._remote_images = remote_images
        self._started = clock()
        self._footer_at = -FOOTER_INTERVAL
        self._seal_at = seal_at
        # Each widget model costs the front end a message to open it and one to close it.
        # The widgets in the root share one layout, the HTML ones one style and the
        # segments another, and the thinking section is made only when thinking arrives.
        self._layout = widgets.Layout()
        self._html_style = HTMLStyle()
        self._segment_style = HTMLMathStyle()
        self._css = self._html(f"<style>{CSS}</style>")
        self.thinking: widgets.Accordion | None = None
        self.body = widgets.VBox(layout=self._layout)
        self.footer = self._html('<div class="nbclaude-usage">⏳ waiting for Claude…</div>')
        self.root = widgets.VBox(
            children=(self._css, self.body, self.footer),
            layout=widgets.Layout(width="100%"),
            # Given here, the classes go out with the model: add_class() would send each
            # in a message of its own. JupyterLab styles rendered HTML outputs (tables,
            # code, headings) under jp-RenderedHTMLCommon: the live view then looks like
            # the static one that replaces it.
            _dom_classes=("nbclaude", "jp-RenderedHTMLCommon"),
        )
        self._thinking_segments: Segments | None = None
        self._body_segments = self._segments(self.body)
        self._progress: list[_BlockProgress] = []
        self._answer_started = False
        self._painted = False
        self._fed_at = -FEED_INTERVAL
        self._wake_at = -math.inf
        self._wake_chars = 0
        """Before ``_wake_at``, and with fewer characters than this, an event needs
        neither a refresh nor a feed."""
        self._shown_chars = 0
        self._record: Progress | None = None
        self._handle: DisplayHandle | None = None
        self._sent: tuple[Attachment, ...] = ()
        self._final: dict[int, str] = {}
        self.refreshes = 0
        """How many times the widget was refreshed while streaming."""

    def _html(self, value: str) -> widgets.HTML:
        return widgets.HTML(value=value, layout=self._layout, style=self._html_style)

    def _segments(self, box: widgets.Box) -> Segments:
        return Segments(box, layout=self._layout, style=self._segment_style, seal_at=self._seal_at)

    def _resend_size(self) -> int:
        """Characters a refresh sends again (see :attr:`Segments.resend_size`)."""
        thinking = self._thinking_segments
        return self._body_segments.resend_size + (thinking.resend_size if thinking else 0)

    def start(self, sent: Sequence[Attachment] = ()) -> None:
        """Display the empty widget (with a display id, so it can be replaced).

        Args:
            sent: What the prompt attaches: shown above the reply, in the static view too.
        """
        self._sent = tuple(sent)
        if sent:
            self.root.children = (self._css, self._html(sent_html(sent)), self.body, self.footer)
        self._started = self._clock()
        if self._standalone:
            self._handle = display(self.root, display_id=True)

    def progress(self, record: Progress) -> None:
        """Refresh if the throttle allows it, else feed the worker; first content at once."""
        started = self._clock()
        if self._painted and started < self._wake_at and record.chars < self._wake_chars:
            return  # the common case, once per delta: one clock reading
        first_content = not self._painted and record.chars > 0
        fresh = record.chars - self._shown_chars
        resend = self._resend_size()
        if first_content or self._throttle.due(fresh, resend):
            self.refresh(record)
            self._painted = record.chars > 0
            self._throttle.record(started)
            self._fed_at = started  # a refresh hands the worker everything, too
            resend = self._resend_size()
        elif self._worker is not None and started >= self._fed_at + FEED_INTERVAL:
            self._fed_at = started
            self._feed(record)
        self._wake_at, fresh_needed = self._throttle.quiet_until(resend)
        self._wake_chars = self._shown_chars + fresh_needed
        if self._worker is not None:
            self._wake_at = min(self._wake_at, self._fed_at + FEED_INTERVAL)

    def _feed(self, record: Progress) -> None:
        """Hand new text to the render worker, which freezes what it can meanwhile."""
        for block, progress in zip(record.blocks, self._progress, strict=False):
            renderer = progress.renderer
            if isinstance(renderer, RemoteRenderer) and not progress.done:
                self._append(block, progress, renderer)
                try:
                    renderer.send()
                except WorkerError:
                    progress.lose_renderer()

    def refresh(self, record: Progress) -> None:
        """Bring the widget up to date with everything the record holds."""
        self.refreshes += 1
        self._record = record
        self._shown_chars = record.chars
        for index, block in enumerate(record.blocks):
            if index == len(self._progress):
                self._progress.append(self._begin(block, index))
            progress = self._progress[index]
            if not progress.done:
                self._show(block, progress)
        if self._thinking_segments is not None:
            self._thinking_segments.flush()
        self._body_segments.flush()
        now = self._clock()
        if now - self._footer_at >= FOOTER_INTERVAL:
            self._footer_at = now
            tokens = record.chars // 4
            self.footer.value = (
                f'<div class="nbclaude-usage">⏳ {now - self._started:.1f}s · '
                f"~{tokens:,} tokens</div>"
            )

    def _begin(self, block: BlockProgress, position: int) -> _BlockProgress:
        """Start showing a block; ``position`` is its place in the record, which stays
        unique across the rounds of a tool loop (a block's stream index does not)."""
        if block.kind.is_thinking:
            if self.thinking is None:
                self._open_thinking()
            renderer = self._renderer(position) if block.kind.role == "thinking" else None
            return _BlockProgress(renderer)
        if not self._answer_started:
            self._answer_started = True
            if self.thinking is not None:
                self.thinking.selected_index = None
                self.thinking.titles = ("Thinking",)
        if block.kind.role == "text":
            return _BlockProgress(self._renderer(position, remote_images=self._remote_images))
        return _BlockProgress(None)

    def _open_thinking(self) -> None:
        """Show the thinking section, unfolded while thinking streams, above the answer."""
        box = widgets.VBox(layout=self._layout)
        self.thinking = widgets.Accordion(
            children=(box,), titles=("Thinking…",), selected_index=0, layout=self._layout
        )
        self._thinking_segments = self._segments(box)
        self.root.children = (self._css, self.thinking, self.body, self.footer)

    def _renderer(self, index: int, *, remote_images: bool = False) -> Renderer:
        worker = self._worker
        if worker is not None and worker.ready:
            if not self._session:
                self._session = worker.session()
            return RemoteRenderer(worker, (self._session, index), remote_images=remote_images)
        return IncrementalRenderer(remote_images=remote_images)

    @staticmethod
    def _append(block: BlockProgress, progress: _BlockProgress, renderer: Renderer) -> None:
        """Give the renderer the block's text that it has not seen yet, in one piece."""
        chunks = block.chunks
        if len(chunks) > progress.chunks:
            renderer.append("".join(chunks[progress.chunks :]))
            progress.chunks = len(chunks)

    def _update(self, progress: _BlockProgress, *, current: bool) -> Update | None:
        """The renderer's update; ``None`` if its worker failed (the end renders it anew)."""
        renderer = progress.renderer
        assert renderer is not None
        if isinstance(renderer, IncrementalRenderer):
            return renderer.update()
        try:
            return renderer.update(wait=current, timeout=CATCH_UP_TIMEOUT)
        except WorkerError:
            progress.lose_renderer()
            return None

    def _show(self, block: BlockProgress, progress: _BlockProgress) -> None:
        segments = self._thinking_segments if block.kind.is_thinking else self._body_segments
        assert segments is not None  # made with the first thinking block
        renderer = progress.renderer
        if renderer is not None:
            self._append(block, progress, renderer)
            # Wait for a worker when it matters: the first text, and a block's last tail.
            update = self._update(progress, current=block.stopped or not self._painted)
            if update is None:
                return
            segments.freeze(update.frozen)
            tail = update.tail
        elif block.kind.role == "redacted_thinking":
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
        bundle = static_bundle(
            reply,
            self._rendered(),
            error=False,
            remote_images=self._remote_images,
            sent=self._sent,
        )
        self._replace(bundle)
        self._close()

    def abandon(self, reply: Reply) -> None:
        """Replace the widget with the reply's plain text, and close it."""
        self._replace(text_bundle(reply, error=False, sent=self._sent))
        self._close()

    def _replace(self, bundle: dict[str, str]) -> None:
        _replace(self._handle, bundle)

    @property
    def rendered(self) -> dict[int, str]:
        """After :meth:`finish`: the final HTML of each Markdown block, by position."""
        return dict(self._final)

    def _rendered(self) -> dict[int, str]:
        """The exact final HTML of each Markdown block, from the renderers used live, or
        as the record holds it already (a cached reply's, rendered the first time).

        A block whose worker failed is left out: the static view renders it itself.
        """
        record = self._record
        rendered = dict(record.rendered) if record is not None else {}
        blocks = record.blocks if record is not None else []
        for position, (block, progress) in enumerate(zip(blocks, self._progress, strict=False)):
            renderer = progress.renderer
            if renderer is None:
                continue
            if position in rendered:  # no need to wait for the renderer to catch up
                progress.renderer = None
                if isinstance(renderer, RemoteRenderer):
                    renderer.close()
                continue
            self._append(block, progress, renderer)
            progress.renderer = None
            try:
                rendered[position] = renderer.finish()
            except WorkerError:
                continue
        self._final = rendered
        return rendered

    def final_html(self) -> dict[int, str]:
        """The final HTML of each Markdown block, by position: what :meth:`finish` shows,
        for a view that holds this one and shows the reply itself."""
        return self._rendered()

    def close(self) -> None:
        """Close the widget and its renderers, for a view that holds this one."""
        self._close()

    def _close(self) -> None:
        for progress in self._progress:
            if isinstance(progress.renderer, RemoteRenderer):
                progress.renderer.close()
        _close_tree(self.root)
        for shared in (self._layout, self._html_style, self._segment_style):
            shared.close()  # in case nothing used them


def _close_tree(widget: widgets.Widget) -> None:
    """Close a widget, its children, and the layout and style models each one made."""
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    for part in (getattr(widget, "layout", None), getattr(widget, "style", None)):
        if isinstance(part, widgets.Widget):
            part.close()
    widget.close()


MANY_MESSAGES_PER_SECOND = 25
"""Widget messages a view of several requests sends at most, about, however many there are."""


class ColumnsView:
    """Several replies streaming side by side (``-m`` repeated, ``-n``): a live view per
    request in a grid that wraps on narrow screens, then the static columns.

    Args:
        remote_images: Whether images in the Markdown load from the network.
        worker: The render worker, shared by the columns.
    """

    def __init__(self, *, remote_images: bool = False, worker: RenderWorker | None = None) -> None:
        self._remote_images = remote_images
        self._worker = worker
        self._views: list[WidgetView] = []
        self._handle: DisplayHandle | None = None
        self.root: widgets.Box | None = None

    def start(self, labels: Sequence[str]) -> None:
        """Display a column per request, each with its label and an empty live view."""
        interval = max(0.08, len(labels) / MANY_MESSAGES_PER_SECOND)
        columns = []
        for label in labels:
            view = WidgetView(
                min_interval=interval,
                remote_images=self._remote_images,
                worker=self._worker,
                standalone=False,
            )
            view.start()
            self._views.append(view)
            title = widgets.HTML(f"<strong>{_escape(label)}</strong>")
            columns.append(
                widgets.VBox(
                    children=(title, view.root),
                    layout=widgets.Layout(flex="1 1 22em", min_width="16em"),
                )
            )
        self.root = widgets.Box(
            children=tuple(columns),
            layout=widgets.Layout(
                display="flex", flex_flow="row wrap", align_items="flex-start", width="100%"
            ),
        )
        self._handle = display(self.root, display_id=True)

    def progress(self, records: Sequence[Progress], done: Sequence[Reply | None]) -> None:
        """Bring each column up to date (each throttles itself)."""
        for view, record in zip(self._views, records, strict=True):
            view.progress(record)

    def finish(self, replies: Replies) -> None:
        """Replace the grid with the static columns, the Markdown as rendered live."""
        rendered = [view.final_html() for view in self._views]
        bundle = columns_bundle(replies.labels, list(replies), replies.summary(), rendered)
        self._replace(bundle)
        self._close()

    def abandon(self, replies: Replies) -> None:
        """Replace the grid with each reply's text, unrendered."""
        text = "\n\n".join(
            f"== {label} ==\n{reply.text}"
            for label, reply in zip(replies.labels, replies, strict=True)
        )
        self._replace({"text/plain": text, "text/html": f"<pre>{_escape(text)}</pre>"})
        self._close()

    def _replace(self, bundle: dict[str, str]) -> None:
        _replace(self._handle, bundle)

    def _close(self) -> None:
        for view in self._views:
            view.close()
        if self.root is not None:
            _close_tree(self.root)


BAR_WIDTH = 30
"""Characters of the progress bar."""

ROWS_INTERVAL = 0.25
"""Seconds between updates of the rows' progress bar."""


class RowsView:
    """A cell run over many rows (``--over``): a progress bar and each finished answer,
    opening onto the whole reply, instead of a live view per row; then the static rows."""

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._labels: Sequence[str] = ()
        self._shown: set[int] = set()
        self._updated = -math.inf
        self._started = clock()
        self._handle: DisplayHandle | None = None
        self.bar = widgets.HTML()
        self.finished = widgets.VBox()
        self.root = widgets.VBox(children=(self.bar, self.finished))

    def start(self, labels: Sequence[str]) -> None:
        """Display the empty bar."""
        self._labels = labels
        self._started = self._clock()
        self.bar.value = self._bar([], [None] * len(labels))
        self._handle = display(self.root, display_id=True)

    def progress(self, records: Sequence[Progress], done: Sequence[Reply | None]) -> None:
        """Update the bar, and list the rows finished since, a few times a second."""
        now = self._clock()
        if now - self._updated < ROWS_INTERVAL:
            return
        self._updated = now
        self.bar.value = self._bar(records, done)
        new = [i for i, reply in enumerate(done) if reply is not None and i not in self._shown]
        if new:
            self._shown.update(new)
            rows = "".join(
                f"<details><summary><code>{_escape(self._labels[i])}</code> "
                f"{_escape(_first_line(done[i]))}</summary>"
                f'<pre style="white-space: pre-wrap">{_escape(_text(done[i]))}</pre></details>'
                for i in new
            )
            self.finished.children = (*self.finished.children, widgets.HTML(rows))

    def _bar(self, records: Sequence[Progress], done: Sequence[Reply | None]) -> str:
        total = len(done)
        finished = [reply for reply in done if reply is not None]
        failed = sum(1 for reply in finished if reply.error)
        running = sum(
            1
            for record, reply in zip(records, done, strict=False)
            if reply is None and record.blocks
        )
        filled = round(BAR_WIDTH * len(finished) / total) if total else BAR_WIDTH
        tokens = sum(r.usage_summary.input_tokens + r.usage_summary.output_tokens for r in finished)
        tokens += sum(
            record.chars // 4 for record, reply in zip(records, done, strict=False) if reply is None
        )
        costs = [r.cost for r in finished if r.cost is not None]
        cost = f" · ${sum(costs):.4f}" if costs else ""
        line = (
            f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {len(finished)} / {total} done"
            f" · {failed} failed · {running} running · {self._clock() - self._started:.1f} s"
            f" · ~{tokens:,} tokens{cost}"
        )
        return f'<div class="nbclaude-usage"><code>{_escape(line)}</code></div>'

    def status(self, line: str) -> None:
        """Show how a batch stands, in place of the bar."""
        self.bar.value = f'<div class="nbclaude-usage"><code>{_escape(line)}</code></div>'

    def stop(self, line: str) -> None:
        """Leave ``line`` in place of the view: the cell stopped waiting."""
        _replace(self._handle, {"text/plain": line, "text/html": f"<p>{_escape(line)}</p>"})
        _close_tree(self.root)

    def finish(self, replies: Replies) -> None:
        """Replace the bar with the static rows: the totals, each row opening onto its reply."""
        self._replace(rows_bundle(replies.labels, list(replies), replies.summary()))
        _close_tree(self.root)

    def abandon(self, replies: Replies) -> None:
        """Replace the bar with the totals and each row's text, unrendered."""
        text = (
            replies.summary()
            + "\n"
            + "\n".join(
                f"{label}: {reply.text}"
                for label, reply in zip(replies.labels, replies, strict=True)
            )
        )
        self._replace({"text/plain": text, "text/html": f"<pre>{_escape(text)}</pre>"})
        _close_tree(self.root)

    def _replace(self, bundle: dict[str, str]) -> None:
        _replace(self._handle, bundle)


def _replace(handle: DisplayHandle | None, bundle: dict[str, str]) -> None:
    """Show ``bundle`` in place of what ``handle`` shows, or below if nothing was shown."""
    if handle is not None:
        handle.update(bundle, raw=True)
    else:
        display(bundle, raw=True)


def _escape(text: str) -> str:
    return html.escape(text).encode("ascii", "xmlcharrefreplace").decode("ascii")


def _text(reply: Reply | None) -> str:
    return "" if reply is None else reply.text or reply.error or reply.status_line


def _first_line(reply: Reply | None) -> str:
    text = " ".join(_text(reply).split())
    prefix = "[failed] " if reply is not None and reply.error else ""
    return prefix + (text if len(text) <= 100 else text[:99] + "…")
