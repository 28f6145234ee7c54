"""nbclaude: talk to Claude from Jupyter, or from any Python.

In a notebook, ``%load_ext nbclaude`` and a ``%%claude`` cell; see ``%%claude?`` for the
flags. From any Python, :func:`ask` sends one request with the same options and returns
the :class:`Reply`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import Session, Settings, ask, batch, runs
    from .errors import ClaudeError, RequestError
    from .log import Run, RunLog
    from .magic import ClaudeMagics
    from .many import Replies
    from .reply import Reply, UsageSummary

__all__ = [
    "ClaudeError",
    "ClaudeMagics",
    "Replies",
    "Reply",
    "RequestError",
    "Run",
    "RunLog",
    "Session",
    "Settings",
    "UsageSummary",
    "__version__",
    "ask",
    "batch",
    "load_ipython_extension",
    "runs",
    "unload_ipython_extension",
]

__version__ = "0.1.0"


_LAZY = {
    "ClaudeError": "errors",
    "ClaudeMagics": "magic",
    "Replies": "many",
    "Reply": "reply",
    "RequestError": "errors",
    "Run": "log",
    "RunLog": "log",
    "Session": "core",
    "Settings": "core",
    "UsageSummary": "reply",
    "ask": "core",
    "batch": "core",
    "runs": "core",
}


def __getattr__(name: str) -> Any:
    # Importing the package stays cheap: the SDK, IPython and ipywidgets load on first use
    # (IPython and ipywidgets only by the magic and the live view). The render worker
    # (``python -m nbclaude.worker``) needs none of them.
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%claude`` (``%load_ext nbclaude``); loading twice keeps one.

    The extension's session becomes the process's, so ``nbclaude.ask`` and ``%%claude``
    share the run log and the conversations.
    """
    from .core import use_session
    from .magic import ClaudeMagics

    unload_ipython_extension(ipython)
    magics = ClaudeMagics(shell=ipython)
    if magics not in ipython.configurables:  # IPython 9 adds it itself; 8 does not
        ipython.configurables.append(magics)
    ipython.register_magics(magics)
    use_session(magics.session)
    magics.prepare()
    # The cell id of the running cell reaches extensions only through this event.
    ipython.events.register("pre_run_cell", magics.cells.pre_run_cell)
    ipython.events.register("post_execute", magics.cells.post_execute)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove ``%%claude``, its settings, its session and the render worker (``%unload_ext``)."""
    from .core import use_session
    from .magic import ClaudeMagics
    from .worker import stop_shared_worker

    for configurable in ipython.configurables:
        if isinstance(configurable, ClaudeMagics):
            configurable.close()
            for event, callback in (
                ("pre_run_cell", configurable.cells.pre_run_cell),
                ("post_execute", configurable.cells.post_execute),
            ):
                if callback in ipython.events.callbacks[event]:
                    ipython.events.unregister(event, callback)
    ipython.configurables[:] = [c for c in ipython.configurables if not isinstance(c, ClaudeMagics)]
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("claude", None)
    use_session(None)
    stop_shared_worker()
