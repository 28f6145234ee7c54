"""nbclaude: talk to Claude from Jupyter with the ``%%claude`` cell magic.

Load it with ``%load_ext nbclaude``; see ``%%claude?`` for the flags.
"""

from __future__ import annotations

from typing import Any

from .reply import Reply, UsageSummary
from .stream import ClaudeError

__all__ = [
    "ClaudeError",
    "ClaudeMagics",
    "Reply",
    "UsageSummary",
    "__version__",
    "load_ipython_extension",
    "unload_ipython_extension",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The magic pulls in IPython and ipywidgets; importing the package should not.
    if name == "ClaudeMagics":
        from .magic import ClaudeMagics

        return ClaudeMagics
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%claude`` (``%load_ext nbclaude``); loading twice keeps one."""
    from .magic import ClaudeMagics

    unload_ipython_extension(ipython)
    magics = ClaudeMagics(shell=ipython)
    if magics not in ipython.configurables:  # IPython 9 adds it itself; 8 does not
        ipython.configurables.append(magics)
    ipython.register_magics(magics)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove ``%%claude`` and its settings object (``%unload_ext nbclaude``)."""
    from .magic import ClaudeMagics

    for configurable in ipython.configurables:
        if isinstance(configurable, ClaudeMagics):
            configurable.close()
    ipython.configurables[:] = [
        c for c in ipython.configurables if not isinstance(c, ClaudeMagics)
    ]
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("claude", None)
