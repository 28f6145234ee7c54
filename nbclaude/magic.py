"""The ``%%claude`` magic: flags and settings in, a plain :class:`Options` out, then delegate.

This is the only module that touches the IPython shell. Everything it decides is handed to
IPython-free code: :mod:`nbclaude.prompt` builds the request, :mod:`nbclaude.stream` runs it,
:mod:`nbclaude.view` shows it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from typing import Any

import anthropic
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Bool, Dict, Enum, Float, Integer, Unicode

from . import demo, stream
from .chat import DEFAULT_CHAT, CellTracker, Chats
from .log import RunLog
from .prompt import (
    COUNTED_PARAMS,
    MIN_THINKING_BUDGET,
    DryRun,
    Options,
    TemplateError,
    Thinking,
    build_params,
    fill_templates,
    models_table,
    resolve_model,
)
from .reply import Price, Reply
from .view import TerminalView, View, WidgetView
from .worker import shared_worker

__all__ = ["ClaudeMagics"]

NO_KEY = (
    "No API key: set the ANTHROPIC_API_KEY environment variable before starting Jupyter, "
    "or in a cell with `os.environ['ANTHROPIC_API_KEY'] = getpass.getpass()` "
    "(never type the key into a cell you save). Nothing was sent."
)


@magics_class
class ClaudeMagics(Magics):
    """Talk to Claude from a notebook cell. Settings here are the defaults for ``%%claude``."""

    model = Unicode("claude-sonnet-4-6", help="Model id used when a cell gives no --model.").tag(
        config=True
    )
    max_tokens = Integer(8192, help="max_tokens used when a cell gives no --max-tokens.").tag(
        config=True
    )
    system = Unicode("", help="System prompt used when a cell gives no --system.").tag(config=True)
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
    timeout = Float(600.0, help="Seconds to wait for the API before giving up.").tag(config=True)
    max_retries = Integer(
        2, help="How often the SDK retries a rate-limited or overloaded request."
    ).tag(config=True)
    render_worker = Bool(
        True,
        help=(
            "Render Markdown in a helper process, so long replies never hold up the kernel. "
            "Off: render in the kernel."
        ),
    ).tag(config=True)
    base_url = Unicode(
        "", help="API base URL; empty uses ANTHROPIC_BASE_URL or the SDK's default."
    ).tag(config=True)
    aliases = Dict(
        help=(
            "Extra or overriding model aliases, merged over the built-in ones "
            "(opus, sonnet, haiku): {'fast': 'claude-haiku-4-5'}. Used by --model and model."
        ),
    ).tag(config=True)
    cache_chats = Bool(
        True,
        help=(
            "Mark the conversation so far with cache_control in --chat cells, so each turn "
            "reads the earlier ones from the prompt cache."
        ),
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._clients: dict[tuple[object, ...], anthropic.Anthropic] = {}
        self._demo: demo.Demo | None = None
        self.runs = RunLog()
        """Every Messages API call this session made (``%claude usage``, ``nbclaude.runs()``)."""
        self.chats = Chats()
        """The ``--chat`` conversations, by name."""
        self.cells = CellTracker()
        """Which notebook cell is running, fed by the events ``load_ipython_extension`` hooks."""

    @no_var_expand  # {{ name }} in -s is ours to fill; IPython would eat a brace pair
    @magic_arguments()
    @argument("-m", "--model", help="Model id, or opus, sonnet, haiku, for this cell.")
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
    @argument(
        "--chat",
        nargs="?",
        const=DEFAULT_CHAT,
        metavar="NAME",
        help=f"Continue the conversation NAME (default {DEFAULT_CHAT!r}) across cells.",
    )
    @argument(
        "--dry-run",
        action="store_true",
        help="Show the request and its input token count and cost; send nothing else.",
    )
    @argument("--raw", action="store_true", help="Send the cell as typed: no {{ }} filling.")
    @cell_magic
    def claude(self, line: str, cell: str) -> None:
        """Send the cell to Claude and stream the reply as Markdown.

        The reply is bound to ``_claude`` (and to NAME with ``-o NAME``): an
        ``anthropic.types.Message`` with ``.text``, ``.thinking``, ``.complete``, ``.error``
        and ``.usage_summary``. Defaults come from ``%config ClaudeMagics``.

        ``{{ name }}`` and ``{{ name.attr }}`` in the prompt and the system prompt are filled
        from the namespace (a DataFrame as a Markdown table); other braces are sent as typed.
        ``--chat`` continues a conversation; re-running one of its cells replaces that turn
        and the turns after it. Models can be given as ``opus``, ``sonnet`` or ``haiku``.

        Example::

            %%claude -m sonnet --thinking 2048 -o answer --chat
            Explain the difference between a list and a tuple, with a table.
        """
        args = parse_argstring(self.claude, line)
        options = self._options(args)
        if not cell.strip():
            raise UsageError("The cell is empty: write the prompt below the %%claude line.")
        prompt = self._fill(cell, raw=args.raw)
        client = self._client()
        chat = self.chats[options.chat] if options.chat else None
        key = self.cells.next_key(chat.name) if chat is not None else None
        history = chat.history(key, cache=self.cache_chats) if chat is not None else []
        params = build_params(prompt, options, history)
        if args.dry_run:
            self._dry_run(client, params, options)
            return
        reply = self._send(client, params, flags=line, chat=options.chat)
        if chat is not None:
            chat.record(key, prompt, reply)
        namespace = self.shell.user_ns if self.shell is not None else {}
        namespace["_claude"] = reply
        if options.out:
            namespace[options.out] = reply
        if reply.error:
            raise stream.ClaudeError(reply.error)

    def _send(
        self, client: anthropic.Anthropic, params: dict[str, Any], *, flags: str, chat: str | None
    ) -> Reply:
        """Stream the request into a view and record the call in the run log."""
        prices = self._prices()
        request = {**params, "stream": True}
        view = self._view()
        view.start()
        started = self.runs.start()
        finished = False
        try:
            reply = stream.run(
                client,
                params,
                on_event=view.on_event,
                prices=prices,
                remote_images=self.remote_images,
            )
            self.runs.record(started, request, flags=flags, chat=chat, reply=reply)
            view.finish(reply)
            finished = True
        except stream.ClaudeError as exc:
            self.runs.record(started, request, flags=flags, chat=chat, error=str(exc))
            raise
        finally:
            if not finished and isinstance(view, WidgetView):
                view.abandon()
        return reply

    def _dry_run(
        self, client: anthropic.Anthropic, params: dict[str, Any], options: Options
    ) -> None:
        """Print the request and its input token count; nothing but the count is sent."""
        counted = {name: params[name] for name in COUNTED_PARAMS if name in params}
        try:
            count = client.messages.count_tokens(**counted)
        except anthropic.APIError as exc:
            raise stream.ClaudeError(stream.describe_error(exc, params)) from exc
        dry_run = DryRun.priced({**params, "stream": True}, count.input_tokens, self._prices())
        print(dry_run.report())
        if options.out and self.shell is not None:
            self.shell.user_ns[options.out] = dry_run

    def _fill(self, text: str, *, raw: bool) -> str:
        """Fill ``{{ name }}`` templates from the namespace, unless ``--raw``."""
        if raw:
            return text
        try:
            return fill_templates(text, self.shell.user_ns if self.shell is not None else {})
        except TemplateError as exc:
            raise UsageError(str(exc)) from exc

    @line_magic("claude")  # type: ignore[arg-type]  # IPython types the name-less form only
    def claude_line(self, line: str) -> None:
        """Commands: ``%claude COMMAND [ARGS]``. To send a prompt, use ``%%claude``.

        Commands:
            help    this list.
            history [NAME]: show the conversation NAME (default main).
            reset   [NAME | --all]: forget the conversation NAME (default main), or all.
            usage   every call this session: tokens, cache, cost, timing, and totals.
            models  the models the API offers, with their aliases.
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
        return {
            "help": self._help,
            "demo": self._demo_command,
            "history": self._history,
            "reset": self._reset,
            "usage": self._usage,
            "models": self._models,
        }

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

    def _history(self, rest: str) -> None:
        chat = self.chats[_chat_name(rest or DEFAULT_CHAT)]
        print(chat.describe())
        others = [name for name in self.chats.names() if name != chat.name]
        if others:
            print(f"Other conversations: {', '.join(others)}.")

    def _reset(self, rest: str) -> None:
        if rest == "--all":
            count = self.chats.reset_all()
            print(f"Forgot {count} conversation{'' if count == 1 else 's'}.")
        elif self.chats.reset(name := _chat_name(rest or DEFAULT_CHAT)):
            print(f"Forgot conversation {name!r}.")
        else:
            print(f"Conversation {name!r} is empty: nothing to forget.")

    def _usage(self, rest: str) -> None:
        if rest:
            raise UsageError(f"%claude usage takes no arguments, not {rest!r}.")
        display(self.runs)

    def _models(self, rest: str) -> None:
        if rest:
            raise UsageError(f"%claude models takes no arguments, not {rest!r}.")
        client = self._client()
        try:
            models = list(client.models.list())
        except anthropic.APIError as exc:
            raise stream.ClaudeError(stream.describe_error(exc)) from exc
        print(models_table(models, self._aliases()))

    def _aliases(self) -> dict[str, str]:
        if not all(isinstance(v, str) for v in self.aliases.values()):
            raise UsageError("ClaudeMagics.aliases maps names to model ids: all strings.")
        return {str(alias): model for alias, model in self.aliases.items()}

    def _options(self, args: Any) -> Options:
        max_tokens = self.max_tokens if args.max_tokens is None else args.max_tokens
        if max_tokens < 1:
            raise UsageError(f"--max-tokens must be a positive integer, not {max_tokens}.")
        out = None if args.out is None else _unquote(args.out)
        if out is not None and not out.isidentifier():
            raise UsageError(f"-o/--out needs a Python name, not {out!r}.")
        system = _unquote(args.system) if args.system is not None else (self.system or None)
        return Options(
            model=resolve_model(
                _unquote(args.model) if args.model else self.model, self._aliases()
            ),
            max_tokens=max_tokens,
            thinking=_thinking(args.thinking, max_tokens),
            system=self._fill(system, raw=args.raw) if system else None,
            out=out,
            chat=None if args.chat is None else _chat_name(args.chat),
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
        """Close the HTTP clients this instance keeps (on unload, or when settings change).

        On unload this also stops the offline demo (while it is on, ``_client`` never gets
        here, so a settings change does not stop it).
        """
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        if self._demo is not None:
            self._demo.stop()
            self._demo = None

    def _view(self) -> View:
        if self._uses_widgets():
            worker = shared_worker() if self.render_worker else None
            return WidgetView(remote_images=self.remote_images, worker=worker)
        return TerminalView()

    def _uses_widgets(self) -> bool:
        if self.frontend == "auto":
            return _has_kernel(self.shell)
        return self.frontend == "widget"

    def prepare(self) -> None:
        """Start the render worker early, so the first reply already renders off-thread."""
        if self.render_worker and self._uses_widgets():
            shared_worker()


def _unquote(value: str) -> str:
    """Drop one pair of surrounding quotes: IPython splits flags keeping them."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _chat_name(value: str) -> str:
    name = _unquote(value.strip())
    if not re.fullmatch(r"[\w.-]+", name):
        raise UsageError(f"A conversation name is letters, digits, '_', '-' or '.', not {name!r}.")
    return name


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
