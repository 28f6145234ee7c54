"""nbclaude: talk to Claude from Jupyter with the ``%%claude`` cell magic.

Load it with ``%load_ext nbclaude``; see ``%%claude?`` for the flags.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .log import Run, RunLog
    from .magic import ClaudeMagics
    from .reply import Reply, UsageSummary
    from .stream import ClaudeError

__all__ = [
    "ClaudeError",
    "ClaudeMagics",
    "Reply",
    "Run",
    "RunLog",
    "UsageSummary",
    "__version__",
    "load_ipython_extension",
    "runs",
    "unload_ipython_extension",
]

__version__ = "0.1.0"


_LAZY = {
    "ClaudeError": "stream",
    "ClaudeMagics": "magic",
    "Reply": "reply",
    "Run": "log",
    "RunLog": "log",
    "UsageSummary": "reply",
}


def __getattr__(name: str) -> Any:
    # Importing the package stays cheap: the SDK, IPython and ipywidgets load on first use.
    # The render worker (``python -m nbclaude.worker``) needs none of them.
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%claude`` (``%load_ext nbclaude``); loading twice keeps one."""
    from .magic import ClaudeMagics

    unload_ipython_extension(ipython)
    magics = ClaudeMagics(shell=ipython)
    if magics not in ipython.configurables:  # IPython 9 adds it itself; 8 does not
        ipython.configurables.append(magics)
    ipython.register_magics(magics)
    magics.prepare()
    # The cell id of the running cell reaches extensions only through this event.
    ipython.events.register("pre_run_cell", magics.cells.pre_run_cell)
    ipython.events.register("post_execute", magics.cells.post_execute)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove ``%%claude``, its settings object and its render worker (``%unload_ext``)."""
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
    stop_shared_worker()


def runs() -> RunLog:
    """The run log of the loaded extension: every ``%%claude`` call this session.

    Index it for :class:`Run` records, call ``.to_dataframe()`` for a pandas DataFrame, or
    display it for the table ``%claude usage`` shows. ``%reload_ext nbclaude`` starts a new
    log.

    Raises:
        RuntimeError: If nbclaude is not loaded in the running IPython.
    """
    from IPython.core.getipython import get_ipython

    from .magic import ClaudeMagics

    shell = get_ipython()  # type: ignore[no-untyped-call, unused-ignore]  # IPython < 8.13
    for configurable in getattr(shell, "configurables", ()):
        if isinstance(configurable, ClaudeMagics):
            return configurable.runs
    raise RuntimeError("nbclaude is not loaded: run %load_ext nbclaude first.")
