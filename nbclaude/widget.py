"""The live view in notebooks: a widget that streams the reply as Markdown, then static HTML.

The live widget (:class:`LiveReply`, an anywidget with the small ES module ``live.js``)
never re-sends what the browser already has. Finished Markdown blocks are appended once;
the open block (the tail) is re-rendered on each refresh, and only the characters after
what the browser already has of it are sent (:class:`LiveDocument`). Both go in one custom
message per refresh, which also carries the status line (waiting, thinking, writing; the
elapsed time; the output tokens so far). The browser builds exactly the static view's HTML,
in the same elements, so nothing moves when the static view replaces it, and it follows the
reply's end while the reader is there. Refreshes are throttled (:class:`Throttle`); with a
render worker, new text is fed to it every :data:`FEED_INTERVAL` seconds in between, so it
renders while the reply streams. :meth:`WidgetView.finish` replaces the widget with the
static view through the same display id, reusing the HTML rendered while streaming, so the
saved notebook needs no widget support and a long reply is rendered once; a long reply's
static view comes in several outputs, each a short task for the browser.

This is the only module that touches ipywidgets; the request runs outside any
``with output:`` block, in the cell's own thread. It follows the reply through the stream's
:class:`~nbclaude.stream.Progress` record, and implements :class:`~nbclaude.view.View`.
"""

from __future__ import annotations

import html
import math
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as widgets
import traitlets
from IPython.display import DisplayHandle, display

from . import look
from .attachments import Attachment
from .many import Replies
from .markdown import IncrementalRenderer, Update
from .reply import Reply
from .static import (
    NO_SUMMARY,
    PART_SIZE,
    block_html,
    columns_bundle,
    rows_bundle,
    sent_html,
    static_parts,
    text_bundle,
    thinking_html,
    thinking_open,
)
from .stream import BlockProgress, Progress
from .worker import RemoteRenderer, RenderWorker, WorkerError

__all__ = ["LiveDocument", "LiveReply", "Throttle", "WidgetView"]

Clock = Callable[[], float]

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
    content is at least half of what the browser must render again (the open block), or
    ``longest`` seconds have passed: a huge open block (one long list) is re-rendered
    less often, and a slow reply still moves a few times a second.
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
            resend: Characters a refresh would render again (the open block).
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
            resend: What a refresh would render again, as for :meth:`due`; it changes only
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


def _common_prefix(old: str, new: str) -> int:
    """The length of the longest common prefix of two strings, found by halving (each
    comparison runs in C), in about ``log2(len)`` slice comparisons."""
    low, high = 0, min(len(old), len(new))
    if old[:high] == new[:high]:
        return high
    while low < high:  # old[:low] == new[:low], and old[:high + 1] != new[:high + 1]
        middle = (low + high + 1) // 2
        if old[low:middle] == new[low:middle]:
            low = middle
        else:
            high = middle - 1
    return low


class LiveDocument:
    """What the browser holds of the reply, and the operations that bring it up to date.

    The operations (see ``live.js``) are collected until :meth:`take`. The tail (the open
    block) is sent as the characters after the part of it the browser already has; HTML
    that is finished is appended once, taken from the start of the tail where it was shown
    already; a section (thinking) is opened and closed.
    """

    def __init__(self) -> None:
        self._ops: list[list[Any]] = []
        self._tail = ""

    @property
    def tail_size(self) -> int:
        """Characters of the tail: what the browser parses again when it changes."""
        return len(self._tail)

    def freeze(self, html: str) -> None:
        """Append HTML that will never change, before the tail.

        The blocks it holds were usually the start of the tail, as the browser has it: that
        part is taken from the tail rather than sent again.
        """
        if html:
            keep = _common_prefix(self._tail, html)
            self._ops.append(["html", keep, html[keep:]])
            self._tail = self._tail[keep:]

    def set_tail(self, html: str) -> None:
        """Make the open end ``html``, sending only what the browser does not have."""
        if html == self._tail:
            return
        keep = _common_prefix(self._tail, html)
        self._ops.append(["tail", keep, html[keep:]])
        self._tail = html

    def seal(self) -> None:
        """The tail is finished: it stays where it is, and a new, empty one begins."""
        if self._tail:
            self._ops.append(["seal"])
            self._tail = ""

    def open(self, html: str) -> None:
        """Append an empty section (its HTML, closed) and put what follows inside it."""
        self.seal()
        self._ops.append(["open", html])

    def close(self) -> None:
        """Put what follows after the section, back in the enclosing one."""
        self.seal()
        self._ops.append(["close"])

    def fold(self) -> None:
        """Fold the thinking sections."""
        self._ops.append(["fold"])

    def take(self) -> list[list[Any]]:
        """The operations since the last call, in order."""
        ops, self._ops = self._ops, []
        return ops


class LiveReply(anywidget.AnyWidget):
    """The widget in the notebook: its module (``live.js``) builds the reply in the browser
    from the custom messages :class:`WidgetView` sends."""

    _esm = (Path(__file__).parent / "live.js").read_text(encoding="utf-8")
    frame = traitlets.Unicode("").tag(sync=True)
    """The reply's element, empty but for what the prompt sent and the status line."""
    key = traitlets.Unicode("").tag(sync=True)
    """What the module knows this reply by."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(key=secrets.token_hex(8), **kwargs)


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
    """The live widget: thinking that folds, a Markdown body, a status line.

    Markdown is rendered by ``worker`` when one is given and ready, else in the kernel.
    """

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        min_interval: float = 0.08,
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
        self._document = LiveDocument()
        self.root = LiveReply(frame=_frame())
        self._progress: list[_BlockProgress] = []
        self._thinking = False
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
        self._unshown: list[dict[str, str]] = []
        """The static view's outputs, rendered, that are not shown yet."""
        self._shown_parts: list[DisplayHandle] = []
        self._sent: tuple[Attachment, ...] = ()
        self._final: dict[int, str] = {}
        self.refreshes = 0
        """How many times the widget was refreshed while streaming."""

    def start(self, sent: Sequence[Attachment] = ()) -> None:
        """Display the empty widget (with a display id, so it can be replaced).

        Args:
            sent: What the prompt attaches: shown above the reply, in the static view too.
        """
        self._sent = tuple(sent)
        if sent:
            self.root.frame = _frame(sent_html(sent))
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
        resend = self._document.tail_size
        if first_content or self._throttle.due(fresh, resend):
            self.refresh(record)
            self._painted = record.chars > 0
            self._throttle.record(started)
            self._fed_at = started  # a refresh hands the worker everything, too
            resend = self._document.tail_size
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
        """Bring the widget up to date with everything the record holds: one message."""
        self.refreshes += 1
        self._record = record
        self._shown_chars = record.chars
        for index, block in enumerate(record.blocks):
            if index == len(self._progress):
                self._progress.append(self._begin(block, index))
            progress = self._progress[index]
            if not progress.done:
                self._show(block, progress)
        elapsed = round(self._clock() - self._started, 2)
        status = [_state(record), elapsed, record.chars // 4]
        self.root.send({"ops": self._document.take(), "status": status})

    def _begin(self, block: BlockProgress, position: int) -> _BlockProgress:
        """Start showing a block; ``position`` is its place in the record, which stays
        unique across the rounds of a tool loop (a block's stream index does not)."""
        if block.kind.is_thinking:
            self._thinking = True
            if block.kind.role != "thinking":
                return _BlockProgress(None)
            # Open while it streams; folded when the answer starts, as the static view is.
            self._document.open(thinking_open(open_=True) + "</details>")
            return _BlockProgress(self._renderer(position))
        if not self._answer_started:
            self._answer_started = True
            if self._thinking:
                self._document.fold()
        if block.kind.role == "text":
            return _BlockProgress(self._renderer(position, remote_images=self._remote_images))
        return _BlockProgress(None)

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
        document = self._document
        renderer = progress.renderer
        if renderer is not None:
            self._append(block, progress, renderer)
            # Wait for a worker when it matters: the first text, and a block's last tail.
            update = self._update(progress, current=block.stopped or not self._painted)
            if update is None:
                return
            document.freeze(update.frozen)
            tail = update.tail
        elif block.kind.role == "redacted_thinking":
            tail = thinking_html("", redacted=True, open_=True)
        else:
            tail = block_html(block.to_dict(), remote_images=self._remote_images)
        document.set_tail(tail)
        if block.stopped:
            document.seal()
            progress.done = True
            if block.kind.role == "thinking":
                if not "".join(block.chunks).strip():  # as the static view says it
                    document.freeze(NO_SUMMARY)
                document.close()

    def finish(self, reply: Reply) -> None:
        """Replace the widget with the static view and close it.

        A long reply's static view is several outputs (see
        :func:`~nbclaude.static.static_parts`): the later ones are shown first, below the
        widget, then the widget becomes the first. The page then changes in one step
        where the reader is (the widget's end, when following it), and each output is a
        short task for the browser.
        """
        self._unshown = static_parts(
            reply,
            self._rendered(),
            error=False,
            remote_images=self._remote_images,
            sent=self._sent,
            part_size=PART_SIZE if self._handle is not None else sys.maxsize,
        )
        self._show_parts()
        self._close()

    def _show_parts(self) -> None:
        """Show the static view's outputs not shown yet, the widget's own last."""
        parts = self._unshown
        while len(parts) > 1:
            self._shown_parts.append(display(parts[1], raw=True, display_id=True))
            del parts[1]
        if parts:
            self._replace(parts[0])
            parts.clear()

    def abandon(self, reply: Reply) -> None:
        """Replace the widget with the reply's plain text, and close it.

        Once the static view is rendered, showing it is as quick as showing the text: an
        interrupt while its outputs go out shows the rest of them instead.
        """
        if self._unshown:
            self._show_parts()
        else:
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


def _frame(sent: str = "") -> str:
    """The live reply's element before anything arrives: what the prompt sent, and the
    status line where the usage line will be."""
    status = f'<div style="{look.USAGE}" class="nbclaude-usage">waiting</div>'
    return f'<div class="nbclaude">{sent}{status}</div>'


def _state(record: Progress) -> str:
    """What the reply is doing, for the status line."""
    if not record.blocks:
        return "waiting"
    kind = record.blocks[-1].kind
    if kind.is_thinking:
        return "thinking"
    if kind.is_tool_call:
        return "calling a tool"
    return "writing" if kind.role == "text" else "working"


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
