"""Interrupts that land where they can be handled: while waiting, never while keeping.

The stop button reaches a kernel as ``SIGINT``, which Python turns into a
``KeyboardInterrupt`` between any two bytecodes. That is what a user wants while a reply
streams or renders (stop now, keep what arrived), and what loses the reply if it lands
while the reply is being recorded and bound. :class:`Interrupts` holds an interrupt that
arrives outside an :meth:`~Interrupts.allowed` block, and raises it at the next one or
reports it at the end, so the short steps between (recording, binding, showing the text)
always run to their end.

Only the main thread can handle signals; elsewhere :class:`Interrupts` changes nothing.
Nothing here imports IPython.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any

__all__ = ["Interrupts"]


class Interrupts:
    """A ``SIGINT`` handler for one call: raise inside :meth:`allowed`, hold elsewhere.

    Use it as a context manager around the whole call; it puts the previous handler back
    on exit. Code that may be interrupted runs in ``with interrupts.allowed():`` and
    catches ``KeyboardInterrupt`` around it. An instance that was not entered changes
    nothing: interrupts are raised wherever Python raises them.
    """

    def __init__(self) -> None:
        self._allowed = False
        self._held = False
        self._installed = False
        self._previous: Any = None

    @property
    def held(self) -> bool:
        """Whether an interrupt arrived outside :meth:`allowed` and was not raised since."""
        return self._held

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_signal)
            self._installed = True
        else:  # signals reach the main thread only: interrupts behave as Python's own
            self._allowed = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._allowed:
            raise KeyboardInterrupt
        self._held = True

    @contextmanager
    def allowed(self) -> Iterator[None]:
        """A block an interrupt may cut short; one held before it is raised on entry.

        Raises:
            KeyboardInterrupt: When the user interrupts, now or before.
        """
        if not self._installed:
            yield
            return
        self._allowed = True
        try:
            if self._held:
                self._held = False
                raise KeyboardInterrupt
            yield
        finally:
            self._allowed = False
