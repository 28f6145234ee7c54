"""The ``%%claude`` magic: flags and settings in, a plain :class:`Options` out, then delegate.

This is the only module that touches the IPython shell. Everything it decides is handed to
IPython-free code: :mod:`nbclaude.prompt` builds the request, :mod:`nbclaude.stream` runs it,
:mod:`nbclaude.view` shows it.
"""

from __future__ import annotations

import builtins
import hashlib
import inspect
import keyword
import os
import re
import shlex
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display
from traitlets import Bool, Dict, Enum, Float, Integer, Unicode

from . import demo, stream
from .chat import DEFAULT_CHAT, CellTracker, Chats, Conversation, TurnKey
from .interrupts import Interrupts
from .log import RunLog
from .prompt import (
    COUNTED_PARAMS,
    MIN_THINKING_BUDGET,
    DryRun,
    Options,
    TemplateError,
    Thinking,
    api_secrets,
    build_params,
    check_no_secrets,
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
    timeout = Float(
        600.0,
        help=(
            "Seconds to wait for each read from the API: the answer to the request, then "
            "each piece of the stream. A request that times out is retried (max_retries), "
            "so a silent API holds a cell up to (1 + max_retries) x timeout."
        ),
    ).tag(config=True)
    connect_timeout = Float(
        10.0, help="Seconds to wait for a connection to the API, on each attempt."
    ).tag(config=True)
    max_retries = Integer(
        2,
        help=(
            "How often the SDK retries a request that failed before the reply began: "
            "rate limited (429), overloaded (529), a server error, a timeout or a broken "
            "connection. A reply cut off mid-stream is never retried."
        ),
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
        args = self._arguments(line)
        options = self._options(args)
        if not cell.strip():
            raise UsageError("The cell is empty: write the prompt below the %%claude line.")
        prompt = self._fill(cell, raw=args.raw)
        client = self._client()
        chat = self.chats[options.chat] if options.chat else None
        key = self.cells.next_key(chat.name) if chat is not None else None
        history = chat.history(key, cache=self.cache_chats) if chat is not None else []
        params = build_params(prompt, options, history)
        try:
            check_no_secrets(params, api_secrets(os.environ))
        except TemplateError as exc:
            raise UsageError(str(exc)) from None
        if args.dry_run:
            self._dry_run(client, params, options)
            return
        self._send(client, params, options, flags=line, turn=(chat, key, prompt))

    def _arguments(self, line: str) -> Any:
        """The flags of the ``%%claude`` line, split as a shell would: quotes may be escaped."""
        try:
            words = shlex.split(line)
        except ValueError as exc:  # shlex says "No closing quotation"
            raise UsageError(
                f"The %%claude line has an unclosed quote ({str(exc).lower()}): close it, or "
                'escape a quote inside quotes with a backslash (-s "say \\"hi\\"").'
            ) from None
        return self.claude.parser.parse_args(words)

    def _send(
        self,
        client: anthropic.Anthropic,
        params: dict[str, Any],
        options: Options,
        *,
        flags: str,
        turn: tuple[Conversation | None, TurnKey | None, str],
    ) -> Reply:
        """Stream the request into a view, keep the reply whatever happens, then report.

        The reply is recorded in the run log, joins its conversation and is bound before
        the view renders its lasting form; an interrupt is held until then (see
        :class:`~nbclaude.interrupts.Interrupts`), and one during the rendering leaves the
        reply's text on screen.

        Raises:
            ClaudeError: If the reply is incomplete, or the user interrupted the call.
        """
        chat, key, prompt = turn
        request = {**params, "stream": True}
        prices = self._prices()
        view = self._view()
        with Interrupts() as interrupts:
            view.start()
            started = self.runs.start()
            reply = stream.run(
                client,
                params,
                on_event=view.on_event,
                prices=prices,
                remote_images=self.remote_images,
                interrupts=interrupts,
            )
            self.runs.record(started, request, flags=flags, chat=options.chat, reply=reply)
            if chat is not None:
                chat.record(key, prompt, reply)
            self._bind(reply, options.out)
            try:
                with interrupts.allowed():
                    view.finish(reply)
            except KeyboardInterrupt:
                view.abandon(reply)
                interrupted = True
            else:
                interrupted = interrupts.held
            # Raised while interrupts are still held: nothing of nbclaude's runs after.
            if reply.error:
                raise stream.ClaudeError(reply.error)
            if interrupted:
                raise stream.ClaudeError(
                    "Interrupted while the reply was shown: it is complete, and _claude holds "
                    "it (display _claude to see it rendered)."
                )
        return reply

    def _bind(self, value: object, out: str | None) -> None:
        """Bind ``_claude``, and ``out`` if given, in the user's namespace."""
        namespace = self.shell.user_ns if self.shell is not None else {}
        namespace["_claude"] = value
        if out:
            namespace[out] = value

    def _dry_run(
        self, client: anthropic.Anthropic, params: dict[str, Any], options: Options
    ) -> None:
        """Print the request and its input token count; nothing but the count is sent."""
        counted = {name: params[name] for name in COUNTED_PARAMS if name in params}
        try:
            raw = client.messages.with_raw_response.count_tokens(**counted)
        except KeyboardInterrupt:
            raise stream.ClaudeError("Interrupted: nothing was counted or sent.") from None
        except anthropic.APIError as exc:
            raise stream.ClaudeError(stream.describe_error(exc, params)) from exc
        unexpected = stream.unexpected_answer(raw.http_response, "application/json")
        if unexpected is not None:
            raise stream.ClaudeError(unexpected)
        count = raw.parse()
        if not isinstance(getattr(count, "input_tokens", None), int):
            raise stream.ClaudeError(
                "The API endpoint's answer to count_tokens has no input_tokens: check the "
                f"base URL ({stream.BASE_URL_SETTINGS})."
            )
        dry_run = DryRun.priced({**params, "stream": True}, count.input_tokens, self._prices())
        print(dry_run.report())
        if options.out and self.shell is not None:
            self.shell.user_ns[options.out] = dry_run

    def _fill(self, text: str, *, raw: bool) -> str:
        """Fill ``{{ name }}`` templates from the namespace, unless ``--raw``."""
        if raw:
            return text
        namespace = self.shell.user_ns if self.shell is not None else {}
        try:
            return fill_templates(text, namespace, secrets=api_secrets(os.environ))
        except TemplateError as exc:
            raise UsageError(str(exc)) from None

    # IPython types the name-less form only; older releases leave it untyped.
    @line_magic("claude")  # type: ignore[arg-type, unused-ignore]
    def claude_line(self, line: str) -> None:
        """Commands: %claude COMMAND [ARGS]. To send a prompt, start a cell with %%claude.

        help                   this list
        history [NAME]         the conversation NAME (default main), turn by turn
        reset [NAME | --all]   forget the conversation NAME (default main), or every one
        usage                  every call this session: tokens, cache, cost, timing, totals
        models                 the models the API offers, with their aliases
        demo [on | off]        the offline demo: canned replies from a fake API on
                               127.0.0.1, no key needed, labelled as canned
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
        print(inspect.cleandoc(self.claude_line.__doc__ or ""))

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
            raw = client.models.with_raw_response.list()
            unexpected = stream.unexpected_answer(raw.http_response, "application/json")
            listed = unexpected is None and _lists_models(raw.http_response)
            models = list(raw.parse()) if listed else []
        except KeyboardInterrupt:
            raise stream.ClaudeError("Interrupted: no models were listed.") from None
        except anthropic.APIError as exc:
            raise stream.ClaudeError(stream.describe_error(exc)) from exc
        if unexpected is not None:
            raise stream.ClaudeError(unexpected)
        if not listed or not all(_is_model_info(model) for model in models):
            raise stream.ClaudeError(
                "The API endpoint's model list does not hold models (an id, a name and a "
                f"date each): check the base URL ({stream.BASE_URL_SETTINGS})."
            )
        print(models_table(models, self._aliases()))

    def _aliases(self) -> dict[str, str]:
        if not all(isinstance(v, str) for v in self.aliases.values()):
            raise UsageError("ClaudeMagics.aliases maps names to model ids: all strings.")
        return {str(alias): model for alias, model in self.aliases.items()}

    def _options(self, args: Any) -> Options:
        max_tokens = self.max_tokens if args.max_tokens is None else args.max_tokens
        if max_tokens < 1:
            raise UsageError(f"--max-tokens must be a positive integer, not {max_tokens}.")
        out = None if args.out is None else _out_name(args.out)
        system = args.system if args.system is not None else (self.system or None)
        return Options(
            model=resolve_model(args.model or self.model, self._aliases()),
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
        timeout = httpx2.Timeout(self.timeout, connect=min(self.connect_timeout, self.timeout))
        if self._demo is not None:
            return self._demo.client(timeout=timeout, max_retries=self.max_retries)
        key = os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")
        if not key:
            raise UsageError(NO_KEY)
        base_url = self.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        # A digest, not the key, tells whether the key changed since the client was made.
        fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
        del key
        cache_key = (base_url, self.timeout, self.connect_timeout, self.max_retries, fingerprint)
        client = self._clients.get(cache_key)
        if client is None:
            self.close()
            client = anthropic.Anthropic(
                base_url=base_url, timeout=timeout, max_retries=self.max_retries
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
        frontend = str(self.frontend)  # traitlets before 5.10 types traits as Any
        if frontend == "auto":
            return _has_kernel(self.shell)
        return frontend == "widget"

    def prepare(self) -> None:
        """Start the render worker early, so the first reply already renders off-thread."""
        if self.render_worker and self._uses_widgets():
            shared_worker()


_IPYTHON_NAMES = re.compile(r"_+|_i+|_i?\d+|_[iod]h|In|Out")
"""Names IPython binds after every cell (``_``, ``_i``, ``_3``, ``Out``...)."""


def _out_name(name: str) -> str:
    """The ``-o`` name, if binding it shadows nothing: not a keyword, builtin or IPython's."""
    if not name.isidentifier():
        raise UsageError(f"-o/--out needs a Python name, not {name!r}.")
    if keyword.iskeyword(name) or hasattr(builtins, name) or _IPYTHON_NAMES.fullmatch(name):
        raise UsageError(
            f"-o/--out {name}: that name is taken by Python or IPython; choose another."
        )
    return name


def _lists_models(response: httpx2.Response) -> bool:
    """Whether a JSON answer has the shape of a page of models: a ``data`` list."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("data"), list)


def _is_model_info(model: object) -> bool:
    """Whether ``model`` has the fields the models table shows (the SDK parses leniently)."""
    return (
        isinstance(getattr(model, "id", None), str)
        and isinstance(getattr(model, "display_name", None), str)
        and hasattr(getattr(model, "created_at", None), "date")
    )


def _chat_name(value: str) -> str:
    name = value.strip()
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
