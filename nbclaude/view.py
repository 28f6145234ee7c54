"""What shows a reply while it streams, and the plain-text view for terminals.

A view is driven through four calls (:class:`View`): :meth:`~View.start` before the
request is sent, :meth:`~View.progress` after every stream event with the stream's
:class:`~nbclaude.stream.Progress` record, then :meth:`~View.finish` with the reply, or
:meth:`~View.abandon` if finishing was interrupted. A new front end is one class with these
four methods: :class:`TerminalView` here, :class:`~nbclaude.widget.WidgetView` for
notebooks. Nothing here imports IPython or ipywidgets.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Protocol, TextIO

from .attachments import Attachment
from .many import Replies
from .reply import Reply
from .stream import BlockProgress, Progress

__all__ = ["BatchView", "ManyView", "TerminalManyView", "TerminalView", "View"]


class View(Protocol):
    """What the magic drives: start before the request, events while streaming, then
    finish, or abandon if finishing was interrupted.

    The caller reports :attr:`Reply.error` itself (the cell's error line): a view shows
    the reply and marks it incomplete, but does not repeat the error.
    """

    def start(self, sent: Sequence[Attachment] = ()) -> None:
        """Show that something is happening, before the request is sent.

        Args:
            sent: What the prompt attaches (images, PDFs, files), in order, so the view can
                show what Claude was sent.
        """

    def progress(self, record: Progress) -> None:
        """Called after every stream event with how far the reply got; must be cheap."""

    def finish(self, reply: Reply) -> None:
        """Show the final reply (complete or not) in its lasting form."""

    def abandon(self, reply: Reply) -> None:
        """Show the reply's text at once, unrendered, and let go of everything.

        Called when :meth:`finish` was interrupted, so it must be quick whatever the
        reply's length: the reply must not be lost with the rendering.
        """

    @property
    def rendered(self) -> Mapping[int, str]:
        """After :meth:`finish`: the Markdown blocks it rendered, by position in the
        progress record, for the response cache to show again without rendering."""


class TerminalView:
    """Terminal IPython: stream plain text to stdout, then the usage line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._printed: list[int] = []
        self._section: str | None = None
        self._last_role: str | None = None

    @property
    def _out(self) -> TextIO:
        return self._stream or sys.stdout

    def start(self, sent: Sequence[Attachment] = ()) -> None:
        """List what the prompt attaches, one placeholder a line; nothing else to show yet."""
        for attachment in sent:
            self._out.write(f"[sent {attachment.describe()}]\n")
        if sent:
            self._out.write("\n")
            self._out.flush()

    def progress(self, record: Progress) -> None:
        """Print the deltas that arrived since the last event; a tool's input once whole."""
        out = self._out
        for index, block in enumerate(record.blocks):
            if index == len(self._printed):
                self._printed.append(0)
                self._open_section(block)
            done = self._printed[index]
            if block.kind.is_markdown:
                if done < len(block.chunks):
                    out.write("".join(block.chunks[done:]))
                    self._printed[index] = len(block.chunks)
            elif block.kind.is_tool_call and block.stopped and done == 0:
                out.write(json.dumps(block.to_dict()["input"], indent=2, ensure_ascii=False))
                self._printed[index] = 1
            elif block.kind.type == "tool_result" and done == 0:  # a user's tool, run here
                out.write(str(block.start.get("content", "")))
                self._printed[index] = 1
        out.flush()

    def _open_section(self, block: BlockProgress) -> None:
        section = "thinking" if block.kind.is_thinking else "answer"
        follows_text, self._last_role = self._last_role == "text", block.kind.role
        if section == self._section and block.kind.role == "text" and follows_text:
            return
        if self._section is not None:
            self._out.write("\n\n")
        if section == "thinking":
            self._out.write("[thinking]\n")
        elif self._section == "thinking":
            self._out.write("[answer]\n")
        if not block.kind.is_markdown:
            name = block.start.get("name")
            self._out.write(f"[{block.kind.type}{': ' + str(name) if name else ''}]\n")
        self._section = section

    def finish(self, reply: Reply) -> None:
        """Print any notice and the usage line."""
        out = self._out
        out.write("\n")
        for line in reply.notices(error=False):
            out.write(f"\n[{line}]\n")
        out.write(f"\n{reply.status_line}\n")
        out.flush()

    def abandon(self, reply: Reply) -> None:
        """The text is on screen already: end with the usage line."""
        self.finish(reply)

    @property
    def rendered(self) -> Mapping[int, str]:
        """A terminal renders no Markdown."""
        return {}


class ManyView(Protocol):
    """What shows a cell that makes several requests at once (``-m`` repeated, ``-n``,
    ``--over``): started with their labels, refreshed from the main thread with each
    request's progress and the replies done so far, then finished with all of them."""

    def start(self, labels: Sequence[str]) -> None:
        """Show that the requests are about to go, before any is sent."""

    def progress(self, records: Sequence[Progress], done: Sequence[Reply | None]) -> None:
        """Called a few times a second: each request's progress, and its reply once done."""

    def finish(self, replies: Replies) -> None:
        """Show every reply in its lasting form."""

    def abandon(self, replies: Replies) -> None:
        """Show the replies at once, unrendered: :meth:`finish` was interrupted."""


class TerminalManyView:
    """Terminal IPython: each reply printed whole as it finishes, then the totals."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._labels: Sequence[str] = ()
        self._printed: set[int] = set()
        self._status: str | None = None

    @property
    def _out(self) -> TextIO:
        return self._stream or sys.stdout

    def start(self, labels: Sequence[str]) -> None:
        """Say how many requests go."""
        self._labels = labels
        self._out.write(f"[{len(labels)} requests]\n")
        self._out.flush()

    def progress(self, records: Sequence[Progress], done: Sequence[Reply | None]) -> None:
        """Print the replies that finished since the last call."""
        for index, reply in enumerate(done):
            if reply is not None and index not in self._printed:
                self._printed.add(index)
                text = reply.text or reply.error or ""
                self._out.write(f"\n== {self._labels[index]} ==\n{text}\n[{reply.status_line}]\n")
        self._out.flush()

    def finish(self, replies: Replies) -> None:
        """Print what is left, and the totals."""
        self.progress([], list(replies))
        self._out.write(f"\n{replies.summary()}\n")
        self._out.flush()

    def abandon(self, replies: Replies) -> None:
        """The replies print as plain text anyway."""
        self.finish(replies)

    def status(self, line: str) -> None:
        """Print how a batch stands, when it changed."""
        if line != self._status:
            self._status = line
            self._out.write(line + "\n")
            self._out.flush()

    def stop(self, line: str) -> None:
        """Print why the cell stopped waiting."""
        self._out.write(line + "\n")
        self._out.flush()


class BatchView(Protocol):
    """What shows a cell waiting on Message Batches: a status line while they run, then the
    rows (see :class:`ManyView`)."""

    def start(self, labels: Sequence[str]) -> None:
        """Show that the batch is about to be sent."""

    def status(self, line: str) -> None:
        """How the batches stand: called after each poll."""

    def finish(self, replies: Replies) -> None:
        """Show every row's reply in its lasting form."""

    def stop(self, line: str) -> None:
        """The cell stops waiting without results (the batch goes on): show ``line``."""
