"""The ``%%claude`` magic: flags and traits in, a call to the core, names bound.

This is the only module that touches the IPython shell. It parses the ``%%claude`` line,
turns the traits into the session's :class:`~nbclaude.core.Settings`, fills ``{{ }}``
templates from the namespace, and hands the call to :class:`~nbclaude.core.Session`, which
sends it, shows it and records it. What comes back is bound to ``_claude`` (and ``-o``); a
request the core refuses becomes a ``UsageError``.
"""

from __future__ import annotations

import builtins
import keyword
import os
import re
import shlex
from collections import ChainMap
from collections.abc import Callable, Mapping
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display
from traitlets import Bool, Dict, Enum, Float, Integer, Unicode

from . import demo
from .attachments import Part, from_path
from .batches import batches_table
from .chat import DEFAULT_CHAT, CellTracker
from .core import DEFAULT_MODEL, Display, Session, Settings, runs
from .errors import RequestError
from .helptext import Section, first_sentence, flag_rows, help_page, setting_term
from .keys import api_secrets
from .log import RunLog
from .many import DEFAULT_CONCURRENCY, Job, Layout, rows_of
from .models import models_table
from .prices import Price
from .request import EFFORTS, Options, parse_param
from .store import StoreError
from .structured import schema_of
from .templates import fill_prompt, fill_templates
from .tools import DEFAULT_MAX_ROUNDS, Tool, tools_of
from .worker import shared_worker

__all__ = ["ClaudeMagics"]


@magics_class
class ClaudeMagics(Magics):
    """Talk to Claude from a notebook cell. Settings here are the defaults for ``%%claude``."""

    model = Unicode(DEFAULT_MODEL, help="Model id used when a cell gives no --model.").tag(
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
            "How replies are shown: widget, text or auto. A live widget, plain text on "
            "stdout, or auto: a widget under a Jupyter kernel, text in terminal IPython."
        ),
    ).tag(config=True)
    remote_images = Bool(
        False,
        help="Load images the model links to. Off: images show as links, nothing is fetched.",
    ).tag(config=True)
    prices = Dict(
        help=(
            "Extra or overriding prices, US dollars per million tokens. For example "
            "{'model-id': {'input': 3.0, 'output': 15.0}}; cache prices default to 1.25x and "
            "0.1x input."
        ),
    ).tag(config=True)
    timeout = Float(
        600.0,
        help=(
            "Seconds to wait for each read from the API. A read is the answer to the request, "
            "then each piece of the stream. A request that times out is retried "
            "(max_retries), so a silent API holds a cell up to (1 + max_retries) x timeout."
        ),
    ).tag(config=True)
    connect_timeout = Float(
        10.0, help="Seconds to wait for a connection to the API, on each attempt."
    ).tag(config=True)
    max_retries = Integer(
        2,
        help=(
            "How often a request that failed before the reply began is retried. The SDK "
            "retries rate limits (429), overloads (529), server errors, timeouts and broken "
            "connections; a reply cut off mid-stream is never retried."
        ),
    ).tag(config=True)
    render_worker = Bool(
        True,
        help=(
            "Render Markdown in a helper process, never holding up the kernel. Off: render "
            "in the kernel, which a long reply can slow down."
        ),
    ).tag(config=True)
    base_url = Unicode(
        "", help="API base URL; empty uses ANTHROPIC_BASE_URL or the SDK's default."
    ).tag(config=True)
    aliases = Dict(
        help=(
            "Extra or overriding model aliases, over opus, sonnet and haiku. For example "
            "{'fast': 'claude-haiku-4-5'}; used by --model and model."
        ),
    ).tag(config=True)
    cache = Bool(
        False,
        help=(
            "Answer a request seen before from the store, without sending it. The store "
            "must hold a complete reply to exactly that request (model, system, messages, "
            "every parameter): re-running a notebook then costs nothing. "
            "%claude cache on|off|clear."
        ),
    ).tag(config=True)
    batch_size = Integer(
        100_000,
        help=(
            "Most requests per Message Batch with --batch. The API takes up to 100,000 "
            "(and 256 MB): a cell with more rows sends several batches."
        ),
    ).tag(config=True)
    cache_chats = Bool(
        True,
        help=(
            "Mark the conversation so far with cache_control in --chat cells. Each turn then "
            "reads the earlier ones from the prompt cache."
        ),
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.session = Session()
        """The core session every cell runs in: clients, run log, conversations, demo."""
        self.cells = CellTracker()
        """Which notebook cell is running, fed by the events ``load_ipython_extension`` hooks."""

    @property
    def runs(self) -> RunLog:
        """Every Messages API call this session made (``%claude usage``, ``nbclaude.runs()``)."""
        return self.session.runs

    @no_var_expand  # {{ name }} in -s is ours to fill; IPython would eat a brace pair
    @magic_arguments()
    @argument(
        "-m",
        "--model",
        action="append",
        help="Model id, or opus, sonnet, haiku; repeat it to run the prompt on each model, "
        "side by side.",
    )
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
    @argument("--effort", choices=EFFORTS, metavar="LEVEL", help=f"Effort: {', '.join(EFFORTS)}.")
    @argument("--temperature", type=float, metavar="X", help="Sampling temperature, 0 to 1.")
    @argument("--top-p", type=float, metavar="X", help="Nucleus sampling, 0 to 1.")
    @argument("--top-k", type=int, metavar="N", help="Sample from the N likeliest tokens.")
    @argument("--stop", action="append", metavar="SEQ", help="A stop sequence (repeatable).")
    @argument(
        "--param",
        action="append",
        metavar="KEY=JSON",
        help="Any other Messages API parameter, as JSON (repeatable).",
    )
    @argument("-s", "--system", metavar="TEXT", help="System prompt for this cell.")
    @argument(
        "-f",
        "--file",
        action="append",
        metavar="PATH",
        help="Attach an image, PDF or text file before the prompt (repeatable).",
    )
    @argument(
        "--tools",
        metavar="NAMES",
        help="Let Claude call these Python functions: comma-separated names of callables "
        "(or of lists of them) in the namespace.",
    )
    @argument(
        "--max-tool-rounds",
        type=int,
        metavar="N",
        help=f"At most N tool round trips (default {DEFAULT_MAX_ROUNDS}).",
    )
    @argument(
        "--schema",
        metavar="NAME",
        help="Structured output: a pydantic model class or a JSON-schema dict; the reply's "
        ".parsed holds the validated value.",
    )
    @argument("-n", type=int, metavar="N", help="Sample the prompt N times, side by side.")
    @argument(
        "--over",
        metavar="NAME",
        help="Run the cell once per row of NAME (a DataFrame, a list of dicts or of strings); "
        "{{ column }} fills from the row ({{ item }} for strings).",
    )
    @argument(
        "--batch",
        action="store_true",
        help="With --over: send the rows through the Message Batches API (half price, "
        "asynchronous); %%claude batch ID re-attaches.",
    )
    @argument(
        "--concurrency",
        type=int,
        metavar="N",
        help=f"Requests at once for -m repeated, -n and --over (default {DEFAULT_CONCURRENCY}).",
    )
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
        help="Show the request, its input token count and cost; send nothing else.",
    )
    @argument("--raw", action="store_true", help="Send the cell as typed: no {{ }} filling.")
    @argument(
        "--fresh",
        action="store_true",
        help="Ignore the response cache: ask the API, and store the new reply.",
    )
    @cell_magic
    def claude(self, line: str, cell: str) -> None:
        """Send the cell to Claude and stream the reply as Markdown.

        The reply is bound to ``_claude`` (and to NAME with ``-o NAME``): an
        ``anthropic.types.Message`` with ``.text``, ``.thinking``, ``.complete``, ``.error``
        and ``.usage_summary``. Defaults come from ``%config ClaudeMagics``.

        ``{{ name }}`` and ``{{ name.attr }}`` in the prompt and the system prompt are filled
        from the namespace (a DataFrame as a Markdown table; an image, a matplotlib figure or
        a ``Path`` to a file as an attachment at that place); other braces are sent as typed.
        ``-f PATH`` attaches an image, a PDF or a text file before the prompt.
        ``--chat`` continues a conversation; re-running one of its cells replaces that turn
        and the turns after it. Models can be given as ``opus``, ``sonnet`` or ``haiku``.
        ``--param KEY=JSON`` sends any other parameter: ``--param metadata='{"user_id": "u"}'``.
        ``--tools f,g`` lets Claude call those functions (they run here, with your
        permissions); ``--schema Model`` asks for JSON that ``_claude.parsed`` holds validated.
        ``-m`` repeated and ``-n N`` run the prompt side by side; ``--over NAME`` runs it on
        every row of a table (``--batch``: through the Message Batches API); the result is
        an ``nbclaude.Replies``.

        Example::

            %%claude -m sonnet --thinking 2048 -o answer --chat
            Explain the difference between a list and a tuple, with a table.
        """
        args = self._arguments(line)
        out = None if args.out is None else _out_name(args.out)
        if not cell.strip():
            raise UsageError("The cell is empty: write the prompt below the %%claude line.")
        session = self._session()
        if args.batch and not args.over:
            raise UsageError("--batch sends the rows of --over NAME: give --over too.")
        if len(args.model or ()) > 1 or (args.n is not None and args.n != 1) or args.over:
            self._claude_many(session, line, cell, args, out)
            return
        try:
            options = self._options(session, args)
            prompt = self._prompt(cell, args)
            turn = self.cells.next_key(options.chat) if options.chat else None
            if args.dry_run:
                dry_run = session.dry_run(prompt, options, turn=turn)
                print(dry_run.report())
                if out is not None:
                    self._namespace[out] = dry_run
                return
            session.ask(
                prompt,
                options,
                display=self._display(),
                flags=line,
                turn=turn,
                keep=lambda reply: self._bind(reply, out),
                cache=False if args.fresh else None,
                notebook=self._notebook(),
                cell_id=self.cells.cell_id,
            )
        except RequestError as exc:
            raise UsageError(str(exc)) from None

    def _claude_many(
        self, session: Session, line: str, cell: str, args: Any, out: str | None
    ) -> None:
        """A cell that makes several requests: ``-m`` repeated, ``-n``, ``--over``."""
        for flag, given in (("--chat", args.chat), ("--tools", args.tools)):
            if given is not None:
                raise UsageError(
                    f"{flag} works on one request at a time: it cannot be combined with "
                    "several -m, -n or --over."
                )
        samples = 1 if args.n is None else args.n
        if samples < 1:
            raise UsageError(f"-n takes a positive number of samples, not {samples}.")
        concurrency = DEFAULT_CONCURRENCY if args.concurrency is None else args.concurrency
        if concurrency < 1:
            raise UsageError(f"--concurrency takes a positive number, not {concurrency}.")
        layout: Layout = "rows" if args.over is not None else "columns"
        try:
            if args.over is not None:
                if len(args.model or ()) > 1 or samples > 1:
                    raise UsageError("--over runs one model once per row: drop the extra -m or -n.")
                jobs = self._row_jobs(session, cell, args)
            else:
                jobs = self._column_jobs(session, cell, args, samples)
            if not jobs:
                raise UsageError(f"--over {args.over}: there are no rows.")
            if args.dry_run:
                print(session.dry_run_many(jobs))
                return
            if args.batch:
                session.ask_batch(
                    jobs,
                    batch_size=int(self.batch_size),
                    display=self._display(),
                    flags=line,
                    keep=lambda replies: self._bind(replies, out),
                    notebook=self._notebook(),
                )
                return
            session.ask_many(
                jobs,
                layout=layout,
                concurrency=concurrency,
                display=self._display(),
                flags=line,
                keep=lambda replies: self._bind(replies, out),
                cache=False if args.fresh else None,
                notebook=self._notebook(),
                cell_id=self.cells.cell_id,
            )
        except RequestError as exc:
            raise UsageError(str(exc)) from None

    def _column_jobs(self, session: Session, cell: str, args: Any, samples: int) -> list[Job]:
        """One job per model and sample, the prompt filled once."""
        prompt = self._prompt(cell, args)
        jobs = []
        for model in args.model or [None]:
            options = self._options(session, args, model=model)
            for sample in range(1, samples + 1):
                label = options.model + (f" #{sample}" if samples > 1 else "")
                inputs = {"model": options.model, "sample": sample}
                jobs.append(Job(label, prompt, options, inputs))
        return jobs

    def _row_jobs(self, session: Session, cell: str, args: Any) -> list[Job]:
        """One job per row, the prompt and the system prompt filled from the row first."""
        try:
            labels, rows = rows_of(self._value("--over", args.over), args.over)
        except TypeError as exc:
            raise UsageError(str(exc)) from None
        jobs = []
        model = (args.model or [None])[0]
        for label, row in zip(labels, rows, strict=True):
            namespace = ChainMap(dict(row), self._namespace)
            options = self._options(session, args, model=model, namespace=namespace)
            prompt = self._prompt(cell, args, namespace=namespace)
            jobs.append(Job(f"row {label}", prompt, options, row))
        return jobs

    def _options(
        self,
        session: Session,
        args: Any,
        *,
        model: str | None = None,
        namespace: Mapping[str, Any] | None = None,
    ) -> Options:
        """The cell's options: its flags over the settings, the system prompt filled."""
        system = args.system if args.system is not None else self.system
        return session.options(
            model=model or (args.model or [None])[0],
            max_tokens=args.max_tokens,
            system=self._fill(system, raw=args.raw, namespace=namespace),
            thinking=args.thinking,
            effort=args.effort,
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k,
            stop=args.stop,
            param=dict(parse_param(text) for text in args.param or ()),
            chat=None if args.chat is None else _chat_name(args.chat),
            tools=self._tools(args.tools),
            max_tool_rounds=args.max_tool_rounds,
            schema=None
            if args.schema is None
            else schema_of(self._value("--schema", args.schema), args.schema),
        )

    def _notebook(self) -> str | None:
        """The running notebook's path, where the front end tells the kernel."""
        for name in ("__session__", "__vsc_ipynb_file__"):  # ipykernel's; VS Code's
            value = self._namespace.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    def _value(self, flag: str, name: str) -> Any:
        """The value a flag names in the namespace."""
        if name not in self._namespace:
            raise UsageError(f"{flag} {name}: name {name!r} is not defined. Define it above.")
        return self._namespace[name]

    def _tools(self, names: str | None) -> tuple[Tool, ...]:
        """The ``--tools`` callables: each name's value, a list of them expanded."""
        named: list[tuple[str, Any]] = []
        for name in (part.strip() for part in (names or "").split(",")):
            if not name:
                continue
            value = self._value("--tools", name)
            if isinstance(value, list | tuple):
                named += [(getattr(v, "__name__", f"{name}[{i}]"), v) for i, v in enumerate(value)]
            else:
                named.append((name, value))
        return tools_of(named)

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

    @property
    def _namespace(self) -> dict[str, Any]:
        """The user's namespace (a magic made without a shell has none to fill or bind)."""
        return self.shell.user_ns if self.shell is not None else {}

    def _bind(self, value: object, out: str | None) -> None:
        """Bind ``_claude``, and ``out`` if given, in the user's namespace."""
        self._namespace["_claude"] = value
        if out:
            self._namespace[out] = value

    def _prompt(
        self, cell: str, args: Any, *, namespace: Mapping[str, Any] | None = None
    ) -> str | list[Part]:
        """The prompt: the ``-f`` files, then the cell with its templates filled."""
        files: list[Part] = [from_path(path, source=f"-f {path}") for path in args.file or ()]
        if args.raw:
            filled: str | list[Part] = cell
        else:
            names = self._namespace if namespace is None else namespace
            filled = fill_prompt(cell, names, secrets=api_secrets(os.environ))
        if not files:
            return filled
        return [*files, *([filled] if isinstance(filled, str) else filled)]

    def _fill(self, text: str, *, raw: bool, namespace: Mapping[str, Any] | None = None) -> str:
        """Fill ``{{ name }}`` templates from the namespace, unless ``--raw``."""
        if raw:
            return text
        names = self._namespace if namespace is None else namespace
        return fill_templates(text, names, secrets=api_secrets(os.environ))

    # IPython types the name-less form only; older releases leave it untyped.
    @line_magic("claude")  # type: ignore[arg-type, unused-ignore]
    def claude_line(self, line: str) -> None:
        """Run a command: %claude COMMAND [ARGS]. To send a prompt, start a cell with %%claude.

        The commands are help, history, reset, usage, models, batch, cache and demo.
        ``%claude help`` describes each, with every ``%%claude`` flag and setting.
        """
        command, _, rest = line.strip().partition(" ")
        handler = self._commands().get(command or "help")
        if handler is None:
            raise UsageError(
                f"Unknown command %claude {command}; try %claude help. "
                "To send a prompt, start the cell with %%claude."
            )
        try:
            handler(rest.strip())
        except RequestError as exc:
            raise UsageError(str(exc)) from None

    def _commands(self) -> dict[str, Callable[[str], None]]:
        """The ``%claude`` line commands, by name; each takes the rest of the line."""
        return {
            "help": self._help,
            "demo": self._demo_command,
            "history": self._history,
            "reset": self._reset,
            "usage": self._usage,
            "models": self._models,
            "cache": self._cache_command,
            "batch": self._batch_command,
        }

    def _help(self, rest: str) -> None:
        print(self._help_page())

    def _help_page(self) -> str:
        """What ``%claude help`` prints: the flags, the commands, and the settings as they are."""
        sections = [
            Section(title, about, (*lead, *flag_rows(self.claude.parser, dests)))
            for title, about, lead, dests in _FLAG_SECTIONS
        ]
        sections.append(Section("Commands", _COMMANDS_ABOUT, _COMMANDS))
        settings = tuple(
            (setting_term(name, getattr(self, name)), first_sentence(trait.help))
            for name, trait in sorted(self.class_own_traits(config=True).items())
        )
        sections.append(Section("Settings", _SETTINGS_ABOUT, settings))
        return help_page(_HELP_INTRO, sections)

    def _demo_command(self, rest: str) -> None:
        if rest in ("", "on"):
            display(demo.banner(self.session.start_demo()), raw=True)
        elif rest == "off":
            if self.session.stop_demo():
                print("nbclaude offline demo is off: %%claude talks to the API again.")
            else:
                print("The nbclaude offline demo is not on.")
        else:
            raise UsageError(f"%claude demo takes on or off, not {rest!r}.")

    def _history(self, rest: str) -> None:
        chats = self.session.chats
        chat = chats[_chat_name(rest or DEFAULT_CHAT)]
        print(chat.describe())
        others = [name for name in chats.names() if name != chat.name]
        if others:
            print(f"Other conversations: {', '.join(others)}.")

    def _reset(self, rest: str) -> None:
        chats = self.session.chats
        if rest == "--all":
            count = chats.reset_all()
            print(f"Forgot {count} conversation{'' if count == 1 else 's'}.")
        elif chats.reset(name := _chat_name(rest or DEFAULT_CHAT)):
            print(f"Forgot conversation {name!r}.")
        else:
            print(f"Conversation {name!r} is empty: nothing to forget.")

    def _usage(self, rest: str) -> None:
        if rest == "--all":
            display(runs(all=True).by_model())
        elif rest:
            raise UsageError(f"%claude usage takes --all or nothing, not {rest!r}.")
        else:
            display(self.session.runs)

    def _cache_command(self, rest: str) -> None:
        store = self.session.runs.store
        where = f" the store ({store.path})" if store is not None else " memory"
        if rest in ("on", "off"):
            self.cache = rest == "on"
        elif rest == "clear":
            try:
                count = self.session.clear_cache()
            except StoreError as exc:
                raise UsageError(f"The cache was not cleared: {exc}.") from None
            print(f"Forgot {count} cached repl{'y' if count == 1 else 'ies'} in{where}.")
            return
        elif rest:
            raise UsageError(f"%claude cache takes on, off or clear, not {rest!r}.")
        if self.cache:
            print(f"The response cache is on: a request seen before is answered from{where}.")
        else:
            print(f"The response cache is off: every cell asks the API; replies go to{where}.")

    def _batch_command(self, rest: str) -> None:
        words = rest.split()
        session = self._session()
        if not words:
            print(batches_table(session.batches()))
            return
        batch_id, *flags = words
        if flags == ["--cancel"]:
            ids = session.cancel_batch(batch_id)
            print(f"Canceling {', '.join(ids)}: %claude batch {batch_id} collects what ran.")
        elif flags:
            raise UsageError(f"%claude batch takes an id and --cancel, not {' '.join(flags)!r}.")
        else:
            session.attach_batch(
                batch_id, display=self._display(), keep=lambda replies: self._bind(replies, None)
            )

    def _models(self, rest: str) -> None:
        if rest:
            raise UsageError(f"%claude models takes no arguments, not {rest!r}.")
        session = self._session()
        print(models_table(session.models(), session.settings.aliases))

    def _session(self) -> Session:
        """The session, with its settings made anew from the traits."""
        self.session.settings = Settings(
            model=str(self.model),
            max_tokens=int(self.max_tokens),
            system=str(self.system) or None,
            aliases=self._aliases(),
            prices=self._prices(),
            timeout=float(self.timeout),
            connect_timeout=float(self.connect_timeout),
            max_retries=int(self.max_retries),
            base_url=str(self.base_url) or None,
            cache_chats=bool(self.cache_chats),
            cache=bool(self.cache),
            remote_images=bool(self.remote_images),
            render_worker=bool(self.render_worker),
        )
        return self.session

    def _aliases(self) -> dict[str, str]:
        if not all(isinstance(v, str) for v in self.aliases.values()):
            raise UsageError("ClaudeMagics.aliases maps names to model ids: all strings.")
        return {str(alias): model for alias, model in self.aliases.items()}

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

    def _display(self) -> Display:
        """Where replies show, from the ``frontend`` trait."""
        frontend = str(self.frontend)  # traitlets before 5.10 types traits as Any
        return "widget" if frontend == "widget" else "text" if frontend == "text" else "auto"

    def close(self) -> None:
        """Close the session's HTTP clients and stop its demo (on unload)."""
        self.session.close()

    def prepare(self) -> None:
        """Start the render worker early, so the first reply already renders off-thread."""
        display = self._display()
        kernel = getattr(self.shell, "kernel", None) is not None
        if self.render_worker and (display == "widget" or (display == "auto" and kernel)):
            shared_worker()


_HELP_INTRO = (
    "nbclaude: a cell that starts with %%claude [FLAGS] sends the rest of the cell to Claude "
    "and streams the reply. {{ name }} in the prompt is filled from the namespace; other "
    "braces are sent as typed."
)
"""The opening of ``%claude help``."""

_FLAG_SECTIONS: tuple[tuple[str, str, tuple[tuple[str, str], ...], tuple[str, ...]], ...] = (
    (
        "Sending",
        "flags on the %%claude line apply to that cell; the settings below are the defaults.",
        (),
        (
            "model",
            "max_tokens",
            "thinking",
            "effort",
            "temperature",
            "top_p",
            "top_k",
            "stop",
            "param",
            "system",
            "file",
            "tools",
            "max_tool_rounds",
            "schema",
            "raw",
            "fresh",
            "dry_run",
        ),
    ),
    (
        "Several requests",
        "sent a few at a time, shown side by side; _claude is then an nbclaude.Replies.",
        (("-m MODEL -m MODEL", "Run the prompt on each model, side by side."),),
        ("n", "over", "batch", "concurrency"),
    ),
    (
        "Output",
        "_claude holds the reply, with .text, .thinking, .parsed, .usage_summary and .error.",
        (),
        ("out",),
    ),
    (
        "Conversation",
        "re-running a --chat cell replaces its turn and the turns after it.",
        (),
        ("chat",),
    ),
)
"""The ``%claude help`` sections of ``%%claude`` flags: title, what they share, rows written
here, then the flags by destination (``dry_run`` for ``--dry-run``), in order."""

_COMMANDS_ABOUT = "%claude COMMAND, on a line of its own."
"""What the Commands section of ``%claude help`` says first."""

_COMMANDS: tuple[tuple[str, str], ...] = (
    ("help", "This page: the flags, the commands and the settings."),
    ("history [NAME]", "The conversation NAME (default main), turn by turn."),
    ("reset [NAME | --all]", "Forget the conversation NAME (default main), or every one."),
    (
        "usage [--all]",
        "Every call this session: tokens, cache, cost, timing, totals. --all: totals by "
        "model over every session stored.",
    ),
    ("models", "The models the API offers, with their aliases."),
    (
        "batch [ID [--cancel]]",
        "The recent Message Batches. With ID: wait for it and bind its rows to _claude; "
        "--cancel cancels it.",
    ),
    (
        "cache [on | off | clear]",
        "The response cache: answer a request seen before from the store, without sending "
        "it (off by default). clear forgets the cached replies, not the history.",
    ),
    (
        "demo [on | off]",
        "The offline demo: canned replies from a fake API on 127.0.0.1, no key needed, "
        "labelled as canned.",
    ),
)
"""The ``%claude`` commands as ``%claude help`` lists them: usage, then what it does."""

_SETTINGS_ABOUT = "%config ClaudeMagics.NAME = VALUE sets one; %config ClaudeMagics explains them."
"""What the Settings section of ``%claude help`` says first."""

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


def _chat_name(value: str) -> str:
    name = value.strip()
    if not re.fullmatch(r"[\w.-]+", name):
        raise UsageError(f"A conversation name is letters, digits, '_', '-' or '.', not {name!r}.")
    return name
