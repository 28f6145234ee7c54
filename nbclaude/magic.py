"""The ``%%claude`` magic: flags and settings in, a plain :class:`Options` out, then delegate.

This is the only module that touches the IPython shell. Everything it decides is handed to
IPython-free code: :mod:`nbclaude.prompt` builds the request, :mod:`nbclaude.stream` runs it,
:mod:`nbclaude.view` shows it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import anthropic
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Bool, Dict, Enum, Float, Integer, Unicode

from . import demo, stream
from .prompt import MIN_THINKING_BUDGET, Options, Thinking, build_params
from .reply import Price
from .view import TerminalView, View, WidgetView

__all__ = ["ClaudeMagics"]

NO_KEY = (
    "No API key: set the ANTHROPIC_API_KEY environment variable before starting Jupyter, "
    "or in a cell with `os.environ['ANTHROPIC_API_KEY'] = getpass.getpass()` "
    "(never type the key into a cell you save). Nothing was sent."
)


@magics_class
class ClaudeMagics(Magics):
    """Talk to Claude from a notebook cell. Settings here are the defaults for ``%%claude``."""

    model = Unicode(
        "claude-sonnet-4-6", help="Model id used when a cell gives no --model."
    ).tag(config=True)
    max_tokens = Integer(
        8192, help="max_tokens used when a cell gives no --max-tokens."
    ).tag(config=True)
    system = Unicode("", help="System prompt used when a cell gives no --system.").tag(
        config=True
    )
    frontend = Enum(
        ["auto", "widget", "text"],
        default_value="auto",
        help=(
            "How replies are shown: a live widget, plain text on stdout, or auto (a widget "
            "under a Jupyter kernel, text in terminal IPython)."
        ),
    ).tag(config=True)
    remote_images = Bool(
        False,
        help="Load images the model links to. Off: images show as links, nothing is fetched.",
    ).tag(config=True)
    prices = Dict(
        help=(
            "Extra or overriding prices, US dollars per million tokens: "
            "{'model-id': {'input': 3.0, 'output': 15.0}} (cache prices default to 1.25x and "
            "0.1x input)."
        ),
    ).tag(config=True)
    timeout = Float(600.0, help="Seconds to wait for the API before giving up.").tag(
        config=True
    )
    max_retries = Integer(
        2, help="How often the SDK retries a rate-limited or overloaded request."
    ).tag(config=True)
    base_url = Unicode(
        "", help="API base URL; empty uses ANTHROPIC_BASE_URL or the SDK's default."
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._clients: dict[tuple[object, ...], anthropic.Anthropic] = {}
        self._demo: demo.Demo | None = None

    @magic_arguments()
    @argument("-m", "--model", help="Model id for this cell.")
    @argument("--max-tokens", type=int, metavar="N", help="max_tokens for this cell.")
    @argument(
        "-t",
        "--thinking",
        nargs="?",
        const="adaptive",
        metavar="BUDGET",
        help=(
            "Extended thinking: a token budget (>= 1024, below max tokens), "
            "or no value for adaptive thinking."
        ),
    )
    @argument("-s", "--system", metavar="TEXT", help="System prompt for this cell.")
    @argument("-o", "--out", metavar="NAME", help="Also bind the reply to NAME.")
    @cell_magic
    def claude(self, line: str, cell: str) -> None:
        """Send the cell to Claude and stream the reply as Markdown.

        The reply is bound to ``_claude`` (and to NAME with ``-o NAME``): an
        ``anthropic.types.Message`` with ``.text``, ``.thinking``, ``.complete``, ``.error``
        and ``.usage_summary``. Defaults come from ``%config ClaudeMagics``.

        Example::

            %%claude -m claude-sonnet-4-6 --thinking 2048 -o answer
            Explain the difference between a list and a tuple, with a table.
        """
        args = parse_argstring(self.claude, line)
        options = self._options(args)
        if not cell.strip():
            raise UsageError("The cell is empty: write the prompt below the %%claude line.")
        client = self._client()
        params = build_params(cell, options)
        view = self._view()
        view.start()
        finished = False
        try:
            reply = stream.run(
                client,
                params,
                on_event=view.on_event,
                prices=self._prices(),
                remote_images=self.remote_images,
            )
            view.finish(reply)
            finished = True
        finally:
            if not finished and isinstance(view, WidgetView):
                view.abandon()
        namespace = self.shell.user_ns if self.shell is not None else {}
        namespace["_claude"] = reply
        if options.out:
            namespace[options.out] = reply
        if reply.error:
            raise stream.ClaudeError(reply.error)

    @line_magic("claude")  # type: ignore[arg-type]  # IPython types the name-less form only
    def claude_line(self, line: str) -> None:
        """Commands: ``%claude COMMAND [ARGS]``. To send a prompt, use ``%%claude``.

        Commands:
            help    this list.
            demo    offline demo: canned replies from a fake API on 127.0.0.1, no key
                    needed, labelled as canned. ``%claude demo off`` ends it.
        """
        command, _, rest = line.strip().partition(" ")
        handler = self._commands().get(command or "help")
        if handler is None:
            raise UsageError(
                f"Unknown command %claude {command}; try %claude help. "
                "To send a prompt, start the cell with %%claude."
            )
        handler(rest.strip())

    def _commands(self) -> dict[str, Callable[[str], None]]:
        """The ``%claude`` line commands, by name; each takes the rest of the line."""
        return {"help": self._help, "demo": self._demo_command}

    def _help(self, rest: str) -> None:
        print(self.claude_line.__doc__)

    def _demo_command(self, rest: str) -> None:
        if rest in ("", "on"):
            if self._demo is None:
                self._demo = demo.Demo()
            display(demo.banner(self._demo.url), raw=True)
        elif rest == "off":
            if self._demo is None:
                print("The nbclaude offline demo is not on.")
                return
            self._demo.stop()
            self._demo = None
            print("nbclaude offline demo is off: %%claude talks to the API again.")
        else:
            raise UsageError(f"%claude demo takes on or off, not {rest!r}.")

    def _options(self, args: Any) -> Options:
        max_tokens = self.max_tokens if args.max_tokens is None else args.max_tokens
        if max_tokens < 1:
            raise UsageError(f"--max-tokens must be a positive integer, not {max_tokens}.")
        out = None if args.out is None else _unquote(args.out)
        if out is not None and not out.isidentifier():
            raise UsageError(f"-o/--out needs a Python name, not {out!r}.")
        return Options(
            model=_unquote(args.model) if args.model else self.model,
            max_tokens=max_tokens,
            thinking=_thinking(args.thinking, max_tokens),
            system=_unquote(args.system) if args.system is not None else (self.system or None),
            out=out,
        )

    def _prices(self) -> dict[str, Price]:
        table = {}
        for model, price in self.prices.items():
            if isinstance(price, Price):
                table[model] = price
                continue
            try:
                base = Price.standard(float(price["input"]), float(price["output"]))
                table[model] = Price(
                    base.input,
                    base.output,
                    float(price.get("cache_write", base.cache_write)),
                    float(price.get("cache_read", base.cache_read)),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise UsageError(
                    f"ClaudeMagics.prices[{model!r}] needs 'input' and 'output' numbers."
                ) from exc
        return table

    def _client(self) -> anthropic.Anthropic:
        if self._demo is not None:
            return self._demo.client(timeout=self.timeout, max_retries=self.max_retries)
        key = os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")
        if not key:
            raise UsageError(NO_KEY)
        base_url = self.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        # A digest, not the key, tells whether the key changed since the client was made.
        fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
        del key
        cache_key = (base_url, self.timeout, self.max_retries, fingerprint)
        client = self._clients.get(cache_key)
        if client is None:
            self.close()
            client = anthropic.Anthropic(
                base_url=base_url, timeout=self.timeout, max_retries=self.max_retries
            )
            self._clients[cache_key] = client
        return client

    def close(self) -> None:
        """Close the HTTP clients this instance keeps (on unload, or when settings change)."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _view(self) -> View:
        frontend = self.frontend
        if frontend == "auto":
            frontend = "widget" if _has_kernel(self.shell) else "text"
        if frontend == "widget":
            return WidgetView(remote_images=self.remote_images)
        return TerminalView()


def _unquote(value: str) -> str:
    """Drop one pair of surrounding quotes: IPython splits flags keeping them."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _thinking(value: str | None, max_tokens: int) -> Thinking:
    if value is None:
        return None
    if value == "adaptive":
        return "adaptive"
    try:
        budget = int(value)
    except ValueError:
        raise UsageError(
            f"--thinking takes a token budget (an integer >= {MIN_THINKING_BUDGET}) or no "
            f"value, not {value!r}."
        ) from None
    if budget < MIN_THINKING_BUDGET:
        raise UsageError(
            f"--thinking budget must be at least {MIN_THINKING_BUDGET} tokens, not {budget}."
        )
    if budget >= max_tokens:
        raise UsageError(
            f"--thinking budget ({budget}) must be below max tokens ({max_tokens}); "
            "raise --max-tokens."
        )
    return budget


def _has_kernel(shell: Any) -> bool:
    """Whether the shell runs under a Jupyter kernel, where widgets can be shown."""
    return getattr(shell, "kernel", None) is not None
