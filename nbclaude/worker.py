"""Render Markdown in a helper process, so a long reply never holds up the kernel.

markdown-it-py is pure Python: in the kernel's thread, rendering a reply costs about as much
CPU as reading its stream through the SDK, and a thread would only share the same GIL. A
:class:`RenderWorker` is a separate process running :class:`~nbclaude.markdown.IncrementalRenderer`
objects for the live view, so the stream is read on one core while it is rendered on another.

The protocol is asynchronous and ordered. The view *feeds* new text to the worker every
few tens of milliseconds (:meth:`RemoteRenderer.send`): the worker freezes the blocks that
are final and keeps their HTML, renders no tail, and answers nothing, so it stays close
behind the stream at the cost of rendering it once. On a refresh,
:meth:`RemoteRenderer.update` asks for an answer and returns at once with whatever came
back so far (the view lags by at most one refresh); :meth:`RemoteRenderer.finish` waits
for the exact final HTML, which is then little work away, and only the part of it that
the kernel does not have yet crosses the pipe. The worker takes every queued message
before rendering, so when it falls behind it renders each block once per batch rather
than once per message, and a thread of its own drains the request pipe meanwhile, so
the kernel never waits on a full pipe.

The worker runs at a lower priority than the kernel (:data:`WORKER_NICENESS`): on a busy
machine, rendering waits for a free core rather than preempting the kernel mid-stream.
A worker that is not ready yet, has died, or stops answering is never waited on for long:
the view falls back to rendering in the kernel (see ``nbclaude.view``).
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from .markdown import IncrementalRenderer, Update

__all__ = ["RemoteRenderer", "RenderWorker", "WorkerError", "shared_worker", "stop_shared_worker"]

Key = tuple[int, int]
"""A renderer's identity: (session, block position)."""

FINISH_TIMEOUT = 30.0
"""Seconds :meth:`RemoteRenderer.finish` waits for the worker before giving up on it."""

WORKER_NICENESS = 10
"""How much lower the worker's scheduling priority is than the kernel's (``os.nice``)."""


class WorkerError(Exception):
    """The worker is gone or did not answer in time; render in the kernel instead."""


def _serve(requests: Connection, answers: Connection) -> None:  # pragma: no cover - child
    """The worker's loop: batch the queued requests, render each touched block once.

    ``feed`` freezes what it can and keeps the HTML for the next ``update``'s answer;
    ``update`` also renders the tail and answers; ``finish`` answers with the final HTML,
    less the frozen HTML the kernel already has from the updates when the final HTML
    begins with it (it does unless the whole text had to be rendered again): a long
    reply's HTML crosses the pipe once, not twice. A batch that finished or dropped a
    renderer ends with a garbage collection (the collector is off otherwise, see
    :func:`main`).
    """
    renderers: dict[Key, IncrementalRenderer] = {}
    unsent: dict[Key, list[str]] = {}  # frozen HTML of feeds, for the next answer
    answered: dict[Key, list[str]] = {}  # frozen HTML sent in answers, kept by the kernel
    inbox = _Requests(requests)
    answers.send(("ready", None))
    while (batch := inbox.take()) is not None:
        fed: set[Key] = set()
        dirty: dict[Key, int] = {}  # key -> the latest sequence number asked for
        ended = False
        for op, key, *args in batch:
            if op == "drop":
                renderers.pop(key, None)
                unsent.pop(key, None)
                answered.pop(key, None)
                fed.discard(key)
                dirty.pop(key, None)
                ended = True
                continue
            seq, text, remote_images = args
            renderer = renderers.get(key)
            if renderer is None:
                renderer = renderers[key] = IncrementalRenderer(remote_images=remote_images)
            renderer.append(text)
            if op == "finish":
                fed.discard(key)
                dirty.pop(key, None)
                unsent.pop(key, None)
                final = renderers.pop(key).finish()
                kept = "".join(answered.pop(key, ()))
                reused = len(kept) if final.startswith(kept) else 0
                answers.send(("finish", key, seq, reused, final[reused:]))
                ended = True
            elif op == "feed":
                fed.add(key)
            else:
                dirty[key] = seq
        for key in fed - dirty.keys():
            unsent.setdefault(key, []).append(renderers[key].freeze())
        for key, seq in dirty.items():
            update = renderers[key].update()
            frozen = "".join([*unsent.pop(key, ()), update.frozen])
            if frozen:
                answered.setdefault(key, []).append(frozen)
            answers.send(("update", key, seq, frozen, update.tail))
        if ended:
            gc.collect()


class _Requests:
    """The worker's side of the request pipe, read by a thread of its own.

    The kernel writes to the pipe from the thread that reads the stream. If the worker
    read it only between renderings, a slow rendering would let the pipe fill, and the
    kernel's next write would wait for the worker: the stream would slow down to the
    pace of the rendering. Draining it at once keeps the kernel from ever waiting.
    """

    def __init__(self, requests: Connection) -> None:
        self._requests = requests
        self._queue: list[Any] = []
        self._closed = False
        self._changed = threading.Condition()
        reader = threading.Thread(target=self._read, name="nbclaude-request-reader")
        reader.daemon = True
        reader.start()

    def _read(self) -> None:
        while True:
            try:
                message = self._requests.recv()
            except (EOFError, OSError):
                with self._changed:
                    self._closed = True
                    self._changed.notify()
                return
            with self._changed:
                self._queue.append(message)
                self._changed.notify()

    def take(self) -> list[Any] | None:
        """Every request received and not taken yet, in order.

        Returns:
            The requests, or ``None`` once the kernel closed the pipe and none are left.
        """
        with self._changed:
            self._changed.wait_for(lambda: self._queue or self._closed)
            batch, self._queue = self._queue, []
        return batch or None


@dataclass(slots=True)
class _Inbox:
    """Rendering that came back for one renderer and was not handed out yet."""

    frozen: list[str] = field(default_factory=list)
    """Frozen HTML in arrival order, not handed out yet."""
    received: list[str] = field(default_factory=list)
    """All frozen HTML that came back, handed out or not: the final HTML reuses it."""
    tail: str = ""
    """The latest tail."""
    final: tuple[int, str] | None = None
    """Once :meth:`RemoteRenderer.finish` asked for it, the final HTML as the worker
    sends it: how many characters of ``received`` it begins with, and the rest."""
    answered: int = 0
    """The sequence number of the latest request answered."""


class RenderWorker:
    """One helper process, a pipe for requests and one for answers.

    A daemon thread reads the answers as they come, so neither side can block the other
    on a full pipe. Requests are sent from the kernel's thread only.
    """

    def __init__(self) -> None:
        # A fresh interpreter, not a fork of a kernel full of threads, and not
        # multiprocessing's spawn, which re-imports the kernel's ``__main__``.
        request_reader, request_writer = os.pipe()
        answer_reader, answer_writer = os.pipe()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "nbclaude.worker", str(request_reader), str(answer_writer)],
                pass_fds=(request_reader, answer_writer),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        finally:
            os.close(request_reader)
            os.close(answer_writer)
        self._requests = Connection(request_writer, readable=False)
        self._answers = Connection(answer_reader, writable=False)
        self._changed = threading.Condition()
        self._inboxes: dict[Key, _Inbox] = {}
        self._ready = False
        self._gone = False
        self._sessions = 0
        self.html_received = 0
        """Characters of HTML that came back from the worker: what the pipe carried."""
        self._reader = threading.Thread(target=self._read, name="nbclaude-render-reader")
        self._reader.daemon = True
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                kind, key, *payload = self._answers.recv()
            except (EOFError, OSError):
                with self._changed:
                    self._gone = True
                    self._changed.notify_all()
                return
            with self._changed:
                if kind == "ready":
                    self._ready = True
                else:
                    inbox = self._inboxes.setdefault(key, _Inbox())
                    inbox.answered = payload[0]
                    if kind == "update":
                        frozen, tail = payload[1:]
                        if frozen:
                            inbox.frozen.append(frozen)
                            inbox.received.append(frozen)
                        inbox.tail = tail
                        self.html_received += len(frozen) + len(tail)
                    else:
                        reused, rest = payload[1:]
                        inbox.final = reused, rest
                        self.html_received += len(rest)
                self._changed.notify_all()

    @property
    def ready(self) -> bool:
        """Whether the worker has started and is still there (checked without waiting)."""
        return self._ready and not self._gone

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the worker to start."""
        with self._changed:
            self._changed.wait_for(lambda: self._ready or self._gone, timeout)
        return self.ready

    def session(self) -> int:
        """A new session number: the renderers of one reply share it."""
        self._sessions += 1
        return self._sessions

    def send(self, *message: Any) -> None:
        """Send one request."""
        if self._gone:
            raise WorkerError("the render worker is gone")
        try:
            self._requests.send(message)
        except (OSError, ValueError) as exc:
            raise WorkerError("the render worker is gone") from exc

    def take(self, key: Key, *, seq: int = 0, timeout: float = 0.0) -> tuple[str, str]:
        """The frozen HTML that came back for ``key`` since the last call, and the tail.

        Args:
            key: The renderer.
            seq: Wait until the request with this sequence number was answered...
            timeout: ... for at most this many seconds.

        Raises:
            WorkerError: If the worker did not answer ``seq`` in time.
        """
        with self._changed:
            inbox = self._inboxes.setdefault(key, _Inbox())
            if (
                seq
                and not self._changed.wait_for(lambda: inbox.answered >= seq or self._gone, timeout)
            ) or inbox.answered < seq:
                raise WorkerError("the render worker did not answer in time")
            frozen = "".join(inbox.frozen)
            inbox.frozen.clear()
            return frozen, inbox.tail

    def wait_final(self, key: Key, timeout: float) -> str:
        """Wait for the final HTML of ``key``, then forget the key.

        Raises:
            WorkerError: If the worker did not answer in time.
        """
        with self._changed:
            inbox = self._inboxes.setdefault(key, _Inbox())
            self._changed.wait_for(lambda: inbox.final is not None or self._gone, timeout)
            final = inbox.final
            self._inboxes.pop(key, None)
        if final is None:
            raise WorkerError("the render worker did not answer in time")
        reused, rest = final
        if not reused:
            return rest
        received = "".join(inbox.received)
        if reused != len(received):  # cannot happen with an ordered pipe; never guess
            raise WorkerError("the render worker's answers are out of step")
        return received + rest

    def forget(self, key: Key) -> None:
        """Drop what is kept for ``key``, here and in the worker."""
        with self._changed:
            self._inboxes.pop(key, None)
        with contextlib.suppress(WorkerError):
            self.send("drop", key)

    def close(self) -> None:
        """Stop the process and the reader."""
        self._requests.close()  # the worker sees end of file and exits
        try:
            self._process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=2)
        self._reader.join(timeout=2)
        self._answers.close()

    def is_alive(self) -> bool:
        """Whether the process still runs."""
        return self._process.poll() is None and not self._gone


class RemoteRenderer:
    """An :class:`~nbclaude.markdown.IncrementalRenderer` whose work runs in a worker."""

    def __init__(self, worker: RenderWorker, key: Key, *, remote_images: bool = False) -> None:
        self._worker = worker
        self._key = key
        self._remote_images = remote_images
        self._pending: list[str] = []
        self._seq = 0
        self._fed = False
        """Whether text went out in a feed since the last update request."""

    def append(self, text: str) -> None:
        """Queue text; it is sent with the next :meth:`send` or :meth:`update`."""
        if text:
            self._pending.append(text)

    def update(self, *, wait: bool = False, timeout: float = FINISH_TIMEOUT) -> Update:
        """Send the queued text, and return what rendering came back so far.

        Args:
            wait: Wait until everything sent so far is rendered, so the update is current.
            timeout: The longest wait, in seconds.

        Raises:
            WorkerError: If the worker is gone, or did not catch up in time.
        """
        if self._pending or self._fed or (wait and self._seq == 0):
            self._send("update")
        frozen, tail = self._worker.take(self._key, seq=self._seq if wait else 0, timeout=timeout)
        return Update(frozen=frozen, tail=tail)

    def send(self) -> None:
        """Send the queued text, for the worker to freeze what it can before it is asked.

        Nothing comes back until the next :meth:`update`, whose answer carries the
        blocks frozen meanwhile: the worker keeps up with the stream without rendering
        a tail that nobody would see.

        Raises:
            WorkerError: If the worker is gone.
        """
        if self._pending:
            self._send("feed")
            self._fed = True

    def finish(self, timeout: float = FINISH_TIMEOUT) -> str:
        """The exact final HTML; waits for the worker to catch up."""
        self._send("finish")
        return self._worker.wait_final(self._key, timeout)

    def _send(self, op: str) -> None:
        self._seq += 1
        self._fed = False
        self._worker.send(op, self._key, self._seq, "".join(self._pending), self._remote_images)
        self._pending.clear()

    def close(self) -> None:
        """Tell the worker this renderer is no longer needed."""
        self._worker.forget(self._key)


_shared: RenderWorker | None = None
_lock = threading.Lock()


def shared_worker(*, start: bool = True) -> RenderWorker | None:
    """The process-wide worker, started on first use; ``None`` where it cannot run.

    ``NBCLAUDE_RENDER_WORKER=0`` turns it off (rendering then happens in the kernel), as
    does a platform without inheritable pipe descriptors (Windows).
    """
    global _shared
    if os.environ.get("NBCLAUDE_RENDER_WORKER", "1") == "0" or os.name != "posix":
        return None
    with _lock:
        if _shared is not None and not _shared.is_alive():
            _shared = None
        if _shared is None and start:
            try:
                _shared = RenderWorker()
            except OSError:
                return None
        return _shared


def stop_shared_worker() -> None:
    """Stop the process-wide worker, if one runs (on ``%unload_ext``)."""
    global _shared
    with _lock:
        if _shared is not None:
            _shared.close()
            _shared = None


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - runs in the child
    """Entry point of the worker process: ``python -m nbclaude.worker REQUESTS ANSWERS``."""
    # The stop button signals the kernel's whole process group: that interrupt is not for
    # us. The worker ends when the kernel closes the request pipe, however it exits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Rendering is for the eye; reading the stream is the kernel's job. At a lower
    # priority the worker uses idle CPU and does not preempt the kernel (its threads,
    # started below, inherit it); on an idle core it renders as fast as before.
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)
    # The request drain thread needs the GIL for each request, and the rendering holds it:
    # at the default 5 ms switch interval a burst of requests could fill the pipe meanwhile.
    sys.setswitchinterval(0.0005)
    # Everything imported so far lives as long as the process: keep the collector from
    # walking it again. Rendering makes no reference cycles (markdown-it's tokens form a
    # tree), so collecting while it runs is a sixth of its CPU spent for nothing: the
    # collector runs once a reply is done with instead (see _serve).
    gc.freeze()
    gc.disable()
    requests_fd, answers_fd = (int(arg) for arg in (argv or sys.argv[1:]))
    # A kernel that exits while an answer is on its way closes the answer pipe: nothing
    # is waiting for it, so end quietly rather than print a traceback into its log.
    with contextlib.suppress(BrokenPipeError):
        _serve(Connection(requests_fd, writable=False), Connection(answers_fd, readable=False))


if __name__ == "__main__":  # pragma: no cover
    main()
