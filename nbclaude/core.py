"""The core: one call to Claude from any Python, and the session it belongs to.

:func:`ask` sends one request with the same options as ``%%claude`` and returns the
:class:`~nbclaude.reply.Reply`; in a notebook it shows the live view, in plain Python it
shows nothing unless asked, and it never imports IPython or ipywidgets there. It runs in a
:class:`Session`, which holds what outlives a call: the settings, the HTTP clients, the run
log, the conversations and the offline demo. ``%%claude`` is a thin adapter over a session:
it turns flags and traits into :class:`~nbclaude.request.Options` and :class:`Settings`,
and binds what comes back.

A call runs under an interrupt guard (:class:`~nbclaude.interrupts.Interrupts`): the stop
button cuts the request or the rendering short, never the steps that keep the reply
(recording it, joining its conversation, handing it to ``keep``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as clock_time
from pathlib import Path
from typing import Any, Literal

import anthropic
import httpx2
from anthropic.types import ModelInfo
from pydantic import BaseModel

from . import stream
from .attachments import Attachment, Part, check_limits, content_blocks, prompt_parts, redacted
from .batches import (
    BATCH_DISCOUNT,
    MAX_REQUESTS,
    Poll,
    custom_id,
    progress_of,
    replies_from,
    split,
)
from .blocks import kind_of
from .chat import Chats, TurnKey, assistant_content
from .demo import Demo
from .errors import BASE_URL_SETTINGS, ClaudeError, RequestError, describe_error, unexpected_answer
from .interrupts import Interrupts
from .keys import api_secrets, check_no_secrets
from .log import Run, RunLog
from .many import DEFAULT_CONCURRENCY, Gate, Job, Layout, Replies, retry_after
from .models import resolve_model
from .prices import DryRun, Price, price_for
from .reply import Reply, Round, ToolCall
from .request import Options, build_body, sdk_arguments
from .store import Store, default_path, request_key
from .stream import BlockProgress, Progress
from .structured import schema_of
from .tools import Tool, call_tool, tools_of
from .view import BatchView, ManyView, TerminalManyView, TerminalView, View
from .worker import shared_worker

__all__ = [
    "DEFAULT_MODEL",
    "Display",
    "NoKeyError",
    "Session",
    "Settings",
    "ask",
    "default_session",
    "runs",
    "use_session",
]

DEFAULT_MODEL = "claude-sonnet-4-6"
"""The model a call uses when neither it nor the settings name one."""

Display = Literal["auto", "widget", "text", "none"]
"""Where a call shows its reply: the live widget, plain text on stdout, nowhere, or
``auto``: the widget under a Jupyter kernel, text in terminal IPython, nothing in plain
Python."""

NO_KEY = (
    "No API key: set the ANTHROPIC_API_KEY environment variable before starting Jupyter, "
    "or in a cell with `os.environ['ANTHROPIC_API_KEY'] = getpass.getpass()` "
    "(never type the key into a cell you save). Nothing was sent."
)

ROUND_LIMIT = (
    "Claude asked for another tool call after {rounds} round{s}, the --max-tool-rounds "
    "limit: the exchange so far is kept. Raise --max-tool-rounds to let it go on."
)

INTERRUPTED_TOOL = (
    "Interrupted while {name} ran: the tool loop stopped; the rounds so far are kept."
)

KEY_IN_RESULT = (
    "The result contains the API key, so it was not sent or shown; return something without it."
)

INTERRUPTED_WHILE_SHOWN = (
    "Interrupted while the reply was shown: it is complete, and kept (in _claude, in a "
    "%%claude cell); display it to see it rendered."
)


class NoKeyError(RequestError):
    """There is no API key to send a request with."""


@dataclass(frozen=True, slots=True)
class Settings:
    """What a session's calls share: defaults for their options, the client, the view.

    ``%%claude`` makes one from the traits of ``ClaudeMagics`` before every cell.
    """

    model: str = DEFAULT_MODEL
    """The model of a call that names none; an alias or an id."""
    max_tokens: int = 8192
    """``max_tokens`` of a call that gives none."""
    system: str | None = None
    """The system prompt of a call that gives none."""
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Extra or overriding model aliases, merged over the built-in ones."""
    prices: Mapping[str, Price] = field(default_factory=dict)
    """Extra or overriding prices, merged over the list prices."""
    timeout: float = 600.0
    """Seconds to wait for each read: the answer to the request, then each piece of the
    stream. A timed-out request is retried, so a silent API holds a call up to
    (1 + ``max_retries``) x ``timeout``."""
    connect_timeout: float = 10.0
    """Seconds to wait for a connection to the API, on each attempt."""
    max_retries: int = 2
    """How often the SDK retries a request that failed before the reply began."""
    base_url: str | None = None
    """The API's address; ``None`` uses ``ANTHROPIC_BASE_URL`` or the SDK's default."""
    cache_chats: bool = True
    """Mark the conversation so far with ``cache_control`` in calls that continue one."""
    remote_images: bool = False
    """Load images the model links to; off, they show as links and nothing is fetched."""
    render_worker: bool = True
    """Render Markdown in a helper process for the live widget."""
    cache: bool = False
    """Answer a request the store has a complete reply to from the store, without sending
    it (off: every run asks the API, as re-running to get a new sample is normal)."""


@dataclass(slots=True)
class _Origin:
    """Where a call comes from and how it may be answered: what the run log records; and,
    as the call goes, which of its requests the API answered."""

    flags: str
    chat: str | None
    notebook: str | None
    cell_id: str | None
    cache: bool
    sent: list[tuple[Run, int, int]] = field(default_factory=list)
    """Each request the API answered: its run, and where its blocks are in the view."""


class Session:
    """What outlives one call: settings, clients, the run log, conversations, the demo.

    Args:
        settings: The settings; replace :attr:`settings` to change them.
        store_path: The persistent store's file; by default ``$NBCLAUDE_HOME`` or the
            user data folder (see :func:`~nbclaude.store.default_path`).
    """

    def __init__(self, settings: Settings | None = None, *, store_path: Path | None = None) -> None:
        self.settings = settings or Settings()
        """The settings every call reads."""
        self.runs = RunLog(store=Store(store_path or default_path()))
        """Every Messages API call of the session (``%claude usage``, ``nbclaude.runs()``)."""
        self.chats = Chats()
        """The conversations, by name."""
        self._clients: dict[tuple[object, ...], anthropic.Anthropic] = {}
        self._demo: Demo | None = None

    # ---- the calls

    def options(
        self,
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        system: str | None = None,
        **given: Any,
    ) -> Options:
        """The options of a call: the ones given, checked, and the settings for the rest.

        Args:
            model: A model id or alias; the settings' by default.
            max_tokens: The settings' by default.
            system: The system prompt; the settings' by default.
            **given: The other fields of :class:`~nbclaude.request.Options`.

        Raises:
            OptionError: If a value is one the API would refuse.
        """
        settings = self.settings
        return Options.checked(
            model=resolve_model(model or settings.model, settings.aliases),
            max_tokens=settings.max_tokens if max_tokens is None else max_tokens,
            system=settings.system if system is None else system,
            **given,
        )

    def ask(
        self,
        prompt: str | Sequence[Part],
        options: Options,
        *,
        display: Display | View = "auto",
        flags: str = "",
        turn: TurnKey | None = None,
        keep: Callable[[Reply], None] | None = None,
        cache: bool | None = None,
        notebook: str | None = None,
        cell_id: str | None = None,
    ) -> Reply:
        """Send one request, stream the reply into a view, and record it.

        Args:
            prompt: The user's message: text, or text and attachments sent in order as
                one message.
            options: The checked options.
            display: Where to show the reply (see :data:`Display`), or a view of its own.
            flags: How the call was asked for, for the run log (the ``%%claude`` line).
            turn: The notebook cell making this turn of the conversation, if known.
            keep: Called with the reply as soon as the stream ends, before the view
                renders it, to put it where an interrupt cannot lose it.
            cache: Answer from the response cache when the store holds a complete reply
                to this exact request; ``False`` asks the API whatever the store holds
                (``--fresh``); ``None`` follows the settings.
            notebook: The notebook the call comes from, for the run log; by default the
                one the Jupyter server names (``JPY_SESSION_NAME``).
            cell_id: The notebook cell the call comes from, for the run log.

        Returns:
            The complete reply.

        Raises:
            ClaudeError: If the reply is incomplete (its ``reply`` holds what arrived) or
                the call was interrupted while the reply was shown.
            RequestError: If the request was not sent (see :meth:`request`).
        """
        origin = _Origin(
            flags=flags,
            chat=options.chat,
            notebook=notebook or os.environ.get("JPY_SESSION_NAME") or None,
            cell_id=cell_id,
            cache=self.settings.cache if cache is None else cache,
        )
        body = self.request(prompt, options, turn=turn)
        content = body["messages"][-1]["content"]
        client = self.client()
        view = self._view(display) if isinstance(display, str) else display
        chat = self.chats[options.chat] if options.chat else None
        with Interrupts() as interrupts:
            if view is not None:
                view.start(_attached(prompt))
            reply = self._exchange(client, body, options, view, interrupts, origin)
            if chat is not None:
                chat.record(turn, content, reply)
            if keep is not None:
                keep(reply)
            interrupted = False
            if view is not None:
                try:
                    with interrupts.allowed():
                        view.finish(reply)
                except KeyboardInterrupt:
                    view.abandon(reply)
                    interrupted = True
                else:
                    self._keep_rendered(origin, view.rendered)
            # Raised while interrupts are still held: nothing of nbclaude's runs after.
            if reply.error:
                raise ClaudeError(reply.error, reply=reply)
            if interrupted or interrupts.held:
                raise ClaudeError(INTERRUPTED_WHILE_SHOWN, reply=reply)
        return reply

    def _exchange(
        self,
        client: anthropic.Anthropic,
        body: dict[str, Any],
        options: Options,
        view: View | None,
        interrupts: Interrupts,
        origin: _Origin,
    ) -> Reply:
        """Send the request; while Claude asks for the user's tools, call them and send the
        results back, each round streaming into the same view below the last.

        A request the response cache holds a complete reply to is replayed from it instead
        of sent (when ``origin.cache``). Every request is recorded in the run log. The reply
        returned is the last one, with the rounds before it, the usage of all, and its text
        parsed by the schema if any.
        """
        began = time.monotonic()
        progress = Progress()
        on_progress = None if view is None else view.progress
        earlier: list[Round] = []
        while True:
            started = self.runs.start()
            key = request_key(body, str(client.base_url))
            stored = self._stored(key) if origin.cache else None
            offset = len(progress.blocks)
            if stored is not None:
                message, rendered = stored
                reply = stream.replay(
                    message,
                    on_progress=on_progress,
                    prices=self.settings.prices,
                    interrupts=interrupts,
                    progress=progress,
                    rendered=rendered,
                )
            else:
                reply = stream.run(
                    client,
                    sdk_arguments(client.messages.create, body),
                    on_progress=on_progress,
                    prices=self.settings.prices,
                    interrupts=interrupts,
                    progress=progress,
                )
            run = self.runs.record(
                started,
                redacted({**body, "stream": True}),
                flags=origin.flags,
                chat=origin.chat,
                reply=reply,
                cached=stored is not None,
                notebook=origin.notebook,
                cell_id=origin.cell_id,
                cache_key=key,
            )
            if stored is None:
                origin.sent.append((run, offset, len(reply.content)))
            error = reply.error
            if error or reply.stop_reason != "tool_use" or not options.tools:
                break
            if len(earlier) == options.max_tool_rounds:
                rounds = options.max_tool_rounds
                error = ROUND_LIMIT.format(rounds=rounds, s="" if rounds == 1 else "s")
                break
            calls, interrupted = _call_tools(options.tools, reply, interrupts, progress)
            if on_progress is not None:
                on_progress(progress)
            if interrupted is not None:
                error = INTERRUPTED_TOOL.format(name=interrupted)
                break
            earlier.append(Round(reply, tuple(calls)))
            exchange = [
                {"role": "assistant", "content": list(assistant_content(reply))},
                {"role": "user", "content": [call.block() for call in calls]},
            ]
            body = {**body, "messages": [*body["messages"], *exchange]}
        parsed = None
        if options.schema is not None and error is None:
            parsed, error = options.schema.parse(reply.text)
        duration = time.monotonic() - began
        return reply.concluding(earlier, error=error, parsed=parsed, duration=duration)

    def ask_many(
        self,
        jobs: Sequence[Job],
        *,
        layout: Layout,
        concurrency: int = DEFAULT_CONCURRENCY,
        display: Display | ManyView = "auto",
        flags: str = "",
        keep: Callable[[Replies], None] | None = None,
        cache: bool | None = None,
        notebook: str | None = None,
        cell_id: str | None = None,
    ) -> Replies:
        """Send several requests, ``concurrency`` at a time, and show them as they stream.

        Each request fails on its own: the others go on. A rate limit (429) or an
        overloaded API (529) holds every request back for the ``retry-after`` it asks for,
        then the refused request is tried again, instead of failing. An interrupt stops
        the requests still running and leaves the ones not started unsent; what finished
        is kept. Every request is recorded in the run log.

        Args:
            jobs: The requests, in input order.
            layout: Side by side (``columns``) or one row each (``rows``).
            concurrency: Requests at once, at least 1.
            display: Where to show them (see :data:`Display`), or a view of their own.
            flags: The ``%%claude`` line, for the run log.
            keep: Called with the replies before the view renders them.
            cache: As for :meth:`ask`.
            notebook: As for :meth:`ask`.
            cell_id: As for :meth:`ask`.

        Returns:
            The replies, in input order.

        Raises:
            ClaudeError: If any request failed (one line: how many, and the first error),
                or the call was interrupted; the replies are kept first.
            RequestError: If a request would not be sent: nothing was sent.
        """
        bodies = [self.request(job.prompt, job.options) for job in jobs]
        client = self.client()
        view = self._many_view(display, layout) if isinstance(display, str) else display
        origin = _Origin(
            flags=flags,
            chat=None,
            notebook=notebook or os.environ.get("JPY_SESSION_NAME") or None,
            cell_id=cell_id,
            cache=self.settings.cache if cache is None else cache,
        )
        many = _Many(self, client, bodies, origin)
        with Interrupts() as interrupts:
            if view is not None:
                view.start([job.label for job in jobs])
            interrupted = many.run(max(1, concurrency), view, interrupts)
            replies = Replies.of(jobs, many.replies(jobs), layout)
            if keep is not None:
                keep(replies)
            if view is not None:
                try:
                    with interrupts.allowed():
                        view.finish(replies)
                except KeyboardInterrupt:
                    view.abandon(replies)
                    interrupted = True
            if interrupted or interrupts.held:
                raise ClaudeError(
                    f"Interrupted: {replies.summary()}; the replies that finished are kept.",
                    replies=replies,
                )
            if (line := replies.error_line()) is not None:
                raise ClaudeError(line, replies=replies)
        return replies

    def dry_run_many(self, jobs: Sequence[Job]) -> str:
        """What ``--dry-run`` prints for several requests: the first in full, then how
        many there are and their input tokens and cost, counted with the count-tokens
        endpoint. Nothing is logged; no message is sent.

        Raises:
            ClaudeError: If counting failed or was interrupted.
            RequestError: If a request would not be sent.
        """
        runs = [self.dry_run(job.prompt, job.options) for job in jobs]
        tokens = sum(run.input_tokens for run in runs)
        costs = [run.input_cost for run in runs]
        cost = (
            f" · input ${sum(c or 0.0 for c in costs):.4f} uncached at list price"
            if all(c is not None for c in costs)
            else " · some models have no known price"
        )
        first = runs[0].report().removeprefix("Dry run: nothing was sent to the Messages API.\n")
        return (
            f"Dry run: nothing was sent to the Messages API. {len(jobs)} requests; the first "
            f"({jobs[0].label}):\n{first}\nAll {len(jobs)}: {tokens:,} input tokens{cost}"
        )

    def ask_batch(
        self,
        jobs: Sequence[Job],
        *,
        batch_size: int = MAX_REQUESTS,
        display: Display | BatchView = "auto",
        flags: str = "",
        keep: Callable[[Replies], None] | None = None,
        notebook: str | None = None,
        confirm: Callable[[str], bool] | None = None,
        poll: Poll | None = None,
    ) -> Replies:
        """Send every job through the Message Batches API, wait for the results, bind them.

        The requests go in as few batches as the API's limits (and ``batch_size``) allow,
        each remembered in the store as soon as it is created. Waiting polls the batches,
        less and less often. An interrupt while waiting asks whether to cancel (``confirm``;
        no by default): the batches keep running, and :meth:`attach_batch` collects them
        later, from this kernel or another.

        Args:
            jobs: The rows' requests, in input order.
            batch_size: Most requests per batch (the API takes up to 100,000).
            display: Where to show the wait and the rows, or a view of its own.
            flags: The ``%%claude`` line, for the run log and the store.
            keep: Called with the replies before the view renders them.
            notebook: The notebook the batch comes from.
            confirm: Asks the user a yes-or-no question; ``input()`` by default.
            poll: When to poll; from one second, growing to a minute, by default.

        Returns:
            The replies, in input order, priced at batch prices.

        Raises:
            ClaudeError: If any request failed, or the wait was interrupted (the batches
                keep running unless the user chose to cancel them).
            RequestError: If a request would not be sent: nothing was sent.
        """
        bodies = [self.request(job.prompt, job.options) for job in jobs]
        client = self.client()
        view = self._batch_view(display) if isinstance(display, str) else display
        where = notebook or os.environ.get("JPY_SESSION_NAME") or None
        rows = [
            {
                "custom_id": custom_id(i),
                "label": job.label,
                "inputs": dict(job.inputs),
                "model": body["model"],
            }
            for i, (job, body) in enumerate(zip(jobs, bodies, strict=True))
        ]
        groups = split(
            [
                {"custom_id": row["custom_id"], "params": body}
                for row, body in zip(rows, bodies, strict=True)
            ],
            max_requests=max(1, batch_size),
        )
        ids: list[str] = []
        with Interrupts() as interrupts:
            if view is not None:
                view.start([job.label for job in jobs])
            # Not interruptible: a batch created on the API's side and never known here
            # would run unseen. An interrupt meanwhile is held for the wait, which asks.
            try:
                for group in groups:
                    batch = client.messages.batches.create(requests=group)  # type: ignore[arg-type]
                    ids.append(batch.id)
                    mine = {request["custom_id"] for request in group}
                    its_rows = [row for row in rows if row["custom_id"] in mine]
                    self._remember_batch(batch.id, ids[0], its_rows, flags, where)
            except anthropic.APIError as exc:
                made = f" Batches created before: {', '.join(ids)}." if ids else ""
                raise ClaudeError(describe_error(exc) + made) from exc
            estimate = self._batch_estimate(client, bodies)
            return self._collect_batches(
                client,
                ids,
                rows,
                view,
                interrupts,
                keep=keep,
                confirm=confirm,
                poll=poll,
                estimate=estimate,
            )

    def _batch_estimate(self, client: anthropic.Anthropic, bodies: Sequence[dict[str, Any]]) -> str:
        """The input's cost at batch prices, from the first request's count times the rows;
        empty when it cannot be told (no price, or counting failed)."""
        price = price_for(str(bodies[0].get("model", "")), self.settings.prices)
        if price is None:
            return ""
        count = client.messages.count_tokens
        try:
            tokens = count(**sdk_arguments(count, bodies[0], extra=False)).input_tokens
        except (anthropic.APIError, AttributeError, TypeError):
            return ""
        cost = tokens * len(bodies) * price.scaled(BATCH_DISCOUNT).input / 1_000_000
        return f" · input about ${cost:.4f} at batch prices"

    def attach_batch(
        self,
        batch_id: str,
        *,
        display: Display | BatchView = "auto",
        keep: Callable[[Replies], None] | None = None,
        confirm: Callable[[str], bool] | None = None,
        poll: Poll | None = None,
    ) -> Replies:
        """Wait for a batch made earlier (in this kernel or another) and return its replies.

        Every batch the same cell made is collected with it, each result on its row, when
        the store remembers them; a batch the store does not know is collected alone, its
        rows named by their custom ids.

        Raises:
            ClaudeError: As :meth:`ask_batch`, and if the API does not know the batch.
        """
        group = self._batch_group(batch_id)
        ids = [str(row["id"]) for row in group] or [batch_id]
        rows = [job for row in group for job in row["jobs"]]
        client = self.client()
        view = self._batch_view(display) if isinstance(display, str) else display
        with Interrupts() as interrupts:
            if view is not None:
                view.start([str(row["label"]) for row in rows])
            return self._collect_batches(
                client, ids, rows, view, interrupts, keep=keep, confirm=confirm, poll=poll
            )

    def cancel_batch(self, batch_id: str) -> list[str]:
        """Cancel a batch and the others its cell made; return their ids.

        Raises:
            ClaudeError: If the API refused.
        """
        ids = [str(row["id"]) for row in self._batch_group(batch_id)] or [batch_id]
        client = self.client()
        try:
            for each in ids:
                client.messages.batches.cancel(each)
        except anthropic.APIError as exc:
            raise ClaudeError(describe_error(exc)) from exc
        return ids

    def batches(self) -> list[Mapping[str, Any]]:
        """The most recent batches the store remembers, newest first (empty if it cannot
        be read)."""
        failed = "the batches it remembers cannot be listed."
        return self.runs.use_store(lambda store: store.batches(), failed, [])

    def _batch_group(self, batch_id: str) -> list[Mapping[str, Any]]:
        failed = "the batch's rows are not known; collecting it alone."
        return self.runs.use_store(lambda store: store.batch_group(batch_id), failed, [])

    def _remember_batch(
        self,
        batch_id: str,
        group: str,
        rows: Sequence[Mapping[str, Any]],
        flags: str,
        notebook: str | None,
    ) -> None:
        self.runs.use_store(
            lambda store: store.add_batch(
                batch_id,
                group=group,
                created_at=datetime.now().astimezone(),
                notebook=notebook,
                flags=flags,
                jobs=list(rows),
            ),
            f"batch {batch_id} is not remembered; note its id to re-attach.",
            None,
        )

    def _set_batch_state(self, ids: Sequence[str], state: str) -> None:
        def note(store: Store) -> None:
            for each in ids:
                store.set_batch_state(each, state)

        self.runs.use_store(note, "the batch's state is not remembered.", None)

    def _collect_batches(
        self,
        client: anthropic.Anthropic,
        ids: list[str],
        rows: Sequence[Mapping[str, Any]],
        view: BatchView | None,
        interrupts: Interrupts,
        *,
        keep: Callable[[Replies], None] | None,
        confirm: Callable[[str], bool] | None,
        poll: Poll | None,
        estimate: str = "",
    ) -> Replies:
        """Wait for the batches to end, then bind and show their results."""
        waiting = poll or Poll()
        began = time.monotonic()
        reattach = f"%claude batch {ids[0]} re-attaches and binds the results."
        try:
            while True:
                try:
                    with interrupts.allowed():
                        batches = [client.messages.batches.retrieve(each) for each in ids]
                        progress = progress_of(batches)
                        if view is not None:
                            view.status(progress.line(ids, time.monotonic() - began, estimate))
                        if progress.ended:
                            break
                        time.sleep(waiting.next())
                except KeyboardInterrupt:
                    named = ", ".join(ids)
                    question = f"Cancel the batch ({named})? Rows not yet run are dropped. [y/N] "
                    if not (confirm or _yes)(question):
                        line = (
                            f"Interrupted: the batch keeps running ({', '.join(ids)}); {reattach}"
                        )
                        if view is not None:
                            view.stop(line)
                        raise ClaudeError(line) from None
                    for each in ids:
                        client.messages.batches.cancel(each)
                    self._set_batch_state(ids, "canceling")
            results: dict[str, Reply] = {}
            models = {str(row["custom_id"]): str(row.get("model", "")) for row in rows}
            for each in ids:
                results.update(
                    replies_from(
                        client.messages.batches.results(each), models, self.settings.prices
                    )
                )
        except anthropic.APIError as exc:
            line = f"{describe_error(exc)} {reattach}"
            if view is not None:
                view.stop(line)
            raise ClaudeError(line) from exc
        self._set_batch_state(ids, "collected")
        if not rows:  # a batch the store did not know: its rows by custom id
            rows = [
                {"custom_id": key, "label": key, "inputs": {}}
                for key in sorted(results, key=_row_number)
            ]
        missing = "No result for this row in the batch."
        replies = [
            results.get(str(row["custom_id"]))
            or stream.ReplyBuilder().reply(error=missing, model=str(row.get("model", "")))
            for row in rows
        ]
        for row, reply in zip(rows, replies, strict=True):
            self.runs.record(
                self.runs.start(),
                {"model": reply.model, "batch": ids, "custom_id": row["custom_id"]},
                flags="--batch",
                reply=reply,
            )
        result = Replies(
            [str(row["label"]) for row in rows],
            [row.get("inputs", {}) for row in rows],
            replies,
            "rows",
        )
        if keep is not None:
            keep(result)
        if view is not None:
            with interrupts.allowed():
                view.finish(result)
        if (failure := result.error_line()) is not None:
            raise ClaudeError(failure, replies=result)
        return result

    def _batch_view(self, display: Display) -> BatchView | None:
        shown = _where(display)
        if shown != "widget":
            return None if shown is None else TerminalManyView()
        from .widget import RowsView  # ipywidgets only where a widget is shown

        return RowsView()

    def _many_view(self, display: Display, layout: Layout) -> ManyView | None:
        shown = _where(display)
        if shown != "widget":
            return None if shown is None else TerminalManyView()
        from .widget import ColumnsView, RowsView  # ipywidgets only where a widget is shown

        if layout == "rows":
            return RowsView()
        worker = shared_worker() if self.settings.render_worker else None
        return ColumnsView(remote_images=self.settings.remote_images, worker=worker)

    def _keep_rendered(self, origin: _Origin, rendered: Mapping[int, str]) -> None:
        """Store each answered request's Markdown as the view rendered it, for the cache."""
        for run, offset, count in origin.sent:
            mine = {
                p - offset: html for p, html in rendered.items() if offset <= p < offset + count
            }
            self.runs.keep_rendered(run, mine)

    def _stored(self, key: str) -> tuple[Mapping[str, Any], dict[int, str]] | None:
        """The reply the response cache holds for a request key (and its Markdown as
        first rendered), if it can be read."""
        failed = "the response cache cannot be read; asking the API."
        return self.runs.use_store(lambda store: store.cached(key), failed, None)

    def clear_cache(self) -> int:
        """Forget every cached reply (the run history stays); return how many there were.

        Raises:
            StoreError: If the store cannot be written.
        """
        store = self.runs.store
        return 0 if store is None else store.clear_cache()

    def request(
        self, prompt: str | Sequence[Part], options: Options, *, turn: TurnKey | None = None
    ) -> dict[str, Any]:
        """The body a call with these options would send, ``stream`` aside.

        Args:
            prompt: The user's message.
            options: The checked options; with ``chat``, the conversation so far goes
                first, rewound to ``turn`` when that cell made a turn before.
            turn: The notebook cell making this turn, if known.

        Raises:
            AttachmentError: If its images or size break one of the API's limits.
            SecretError: If the body would carry the API key.
        """
        chat = self.chats[options.chat] if options.chat else None
        history = chat.history(turn, cache=self.settings.cache_chats) if chat else []
        body = build_body(_content(prompt), options, history)
        check_limits(body)
        check_no_secrets(body, api_secrets(os.environ))
        return body

    def dry_run(
        self, prompt: str | Sequence[Part], options: Options, *, turn: TurnKey | None = None
    ) -> DryRun:
        """The request a call would send, with its input tokens counted and priced.

        Only the count-tokens endpoint is asked; no message is sent, nothing is logged.
        Images and documents show as placeholders, never as their base64 data.

        Raises:
            ClaudeError: If counting failed or was interrupted.
            RequestError: If the request would not be sent (see :meth:`request`).
        """
        body = self.request(prompt, options, turn=turn)
        client = self.client()
        count = client.messages.with_raw_response.count_tokens
        try:
            raw = count(**sdk_arguments(count, body, extra=False))
        except KeyboardInterrupt:
            raise ClaudeError("Interrupted: nothing was counted or sent.") from None
        except anthropic.APIError as exc:
            raise ClaudeError(describe_error(exc, body)) from exc
        if (unexpected := unexpected_answer(raw.http_response, "application/json")) is not None:
            raise ClaudeError(unexpected)
        tokens = getattr(raw.parse(), "input_tokens", None)
        if not isinstance(tokens, int):
            raise ClaudeError(
                "The API endpoint's answer to count_tokens has no input_tokens: check the "
                f"base URL ({BASE_URL_SETTINGS})."
            )
        request = redacted({**body, "stream": True})
        return DryRun(request, tokens, price_for(options.model, self.settings.prices))

    def models(self) -> list[ModelInfo]:
        """The models the API offers, newest first.

        Raises:
            ClaudeError: If listing failed, was interrupted, or did not come from the API.
        """
        client = self.client()
        try:
            raw = client.models.with_raw_response.list()
            unexpected = unexpected_answer(raw.http_response, "application/json")
            listed = unexpected is None and _lists_models(raw.http_response)
            models = list(raw.parse()) if listed else []
        except KeyboardInterrupt:
            raise ClaudeError("Interrupted: no models were listed.") from None
        except anthropic.APIError as exc:
            raise ClaudeError(describe_error(exc)) from exc
        if unexpected is not None:
            raise ClaudeError(unexpected)
        if not listed or not all(_is_model_info(model) for model in models):
            raise ClaudeError(
                "The API endpoint's model list does not hold models (an id, a name and a "
                f"date each): check the base URL ({BASE_URL_SETTINGS})."
            )
        return models

    # ---- what the calls go through

    def client(self) -> anthropic.Anthropic:
        """The SDK client for the current settings: the demo's while the demo is on.

        Raises:
            NoKeyError: If there is no API key (and no demo).
        """
        settings = self.settings
        timeout = httpx2.Timeout(
            settings.timeout, connect=min(settings.connect_timeout, settings.timeout)
        )
        if self._demo is not None:
            return self._demo.client(timeout=timeout, max_retries=settings.max_retries)
        key = os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")
        if not key:
            raise NoKeyError(NO_KEY)
        base_url = settings.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        # A digest, not the key, tells whether the key changed since the client was made.
        fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
        del key
        made_for = (
            base_url,
            settings.timeout,
            settings.connect_timeout,
            settings.max_retries,
            fingerprint,
        )
        client = self._clients.get(made_for)
        if client is None:
            self._close_clients()
            client = anthropic.Anthropic(
                base_url=base_url, timeout=timeout, max_retries=settings.max_retries
            )
            self._clients[made_for] = client
        return client

    def _view(self, display: Display) -> View | None:
        shown = _where(display)
        if shown != "widget":
            return None if shown is None else TerminalView()
        from .widget import WidgetView  # ipywidgets only where a widget is shown

        worker = shared_worker() if self.settings.render_worker else None
        return WidgetView(remote_images=self.settings.remote_images, worker=worker)

    # ---- the offline demo

    @property
    def demo(self) -> Demo | None:
        """The offline demo while it is on, else ``None``."""
        return self._demo

    def start_demo(self) -> str:
        """Answer every call from canned replies on 127.0.0.1, until :meth:`stop_demo`.

        Returns:
            The demo API's address. Starting it again keeps the one running.
        """
        if self._demo is None:
            self._demo = Demo()
        return self._demo.url

    def stop_demo(self) -> bool:
        """Go back to the API; return whether the demo was on."""
        if self._demo is None:
            return False
        self._demo.stop()
        self._demo = None
        return True

    def close(self) -> None:
        """Close the HTTP clients and the store's file, and stop the demo."""
        self._close_clients()
        self.stop_demo()
        if self.runs.store is not None:
            self.runs.store.close()

    def _close_clients(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


def _content(prompt: str | Sequence[Part]) -> str | list[dict[str, Any]]:
    """A user message's content: a string as it is, parts as content blocks in order."""
    if isinstance(prompt, str):
        return prompt
    parts = list(prompt)
    if not all(isinstance(part, str | Attachment) for part in parts):
        raise RequestError(
            "A prompt is a string, or a list of strings and attachments; nothing was sent."
        )
    blocks = content_blocks(parts)
    if not blocks:
        raise RequestError("The prompt is empty; nothing was sent.")
    return blocks


def _yes(question: str) -> bool:
    """Ask the user; ``False`` unless they answer yes, or when there is no one to ask."""
    try:
        answer = input(question)
    except Exception:  # no stdin here (a kernel whose front end allows none, a pipeline)
        return False
    return answer.strip().lower() in ("y", "yes")


def _row_number(key: str) -> tuple[int, str]:
    """Sorts custom ids such as ``row-10`` after ``row-9``."""
    number = key.rpartition("-")[2]
    return (int(number), key) if number.isdigit() else (sys.maxsize, key)


def _amended(reply: Reply, error: str | None, parsed: Any = None) -> Reply:
    """The reply with another error (or none), and its text parsed."""
    return reply.concluding([], error=error, parsed=parsed, duration=reply.timing.duration)


RETRIED_TOGETHER = frozenset({429, 529})
"""Statuses that hold every request of a cell back (rate limited, overloaded)."""

RETRIED_ALONE = frozenset({500, 502, 503, 504})
"""Statuses a request of several is tried again for on its own, after a backoff."""

MAX_ATTEMPTS = 8
"""Tries of one request of several before its refusal becomes its error."""

NOT_SENT = "Not sent: the cell was interrupted before this request began."

REFRESH_SECONDS = 0.1
"""How often the main thread brings the view of several requests up to date."""


class _Many:
    """The requests of one :meth:`Session.ask_many` call, run on worker threads.

    Workers only stream into their progress records and the run log; the main thread reads
    the records for the view. An HTTP client of their own lets an interrupt close every
    connection at once.
    """

    def __init__(
        self,
        session: Session,
        client: anthropic.Anthropic,
        bodies: Sequence[dict[str, Any]],
        origin: _Origin,
    ) -> None:
        self.session = session
        self.bodies = bodies
        self.origin = origin
        self.endpoint = str(client.base_url)
        self.client = client.copy(
            http_client=anthropic.DefaultHttpxClient(timeout=client.timeout), max_retries=0
        )
        self.records = [Progress() for _ in bodies]
        self.done: list[Reply | None] = [None] * len(bodies)
        self.cancelled = threading.Event()
        self.gate = Gate()

    def run(self, concurrency: int, view: ManyView | None, interrupts: Interrupts) -> bool:
        """Run every request; return whether the user interrupted."""
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="nbclaude")
        futures = [pool.submit(self._one, index) for index in range(len(self.bodies))]
        interrupted = False
        try:
            with interrupts.allowed():
                while not all(future.done() for future in futures):
                    wait(futures, timeout=REFRESH_SECONDS)
                    if view is not None:
                        view.progress(self.records, self.done)
        except KeyboardInterrupt:
            interrupted = True
            self.cancelled.set()
            self.client.close()  # every connection at once
        pool.shutdown(wait=True, cancel_futures=True)
        self.client.close()
        return interrupted

    def replies(self, jobs: Sequence[Job]) -> list[Reply]:
        """Each request's reply; an empty one for a request never sent; parsed by schema."""
        replies = []
        for job, body, reply in zip(jobs, self.bodies, self.done, strict=True):
            if reply is None:
                reply = stream.ReplyBuilder().reply(error=NOT_SENT, model=str(body["model"]))
            elif job.options.schema is not None and not reply.error:
                parsed, error = job.options.schema.parse(reply.text)
                reply = reply.concluding(
                    [], error=error, parsed=parsed, duration=reply.timing.duration
                )
            replies.append(reply)
        return replies

    def _one(self, index: int) -> None:
        body, record = self.bodies[index], self.records[index]
        key = request_key(body, self.endpoint)
        stored = self.session._stored(key) if self.origin.cache else None
        attempt = 0
        while True:
            if not self.gate.wait(self.cancelled):
                return
            started = self.session.runs.start()
            if stored is not None:
                message, rendered = stored
                reply = stream.replay(message, progress=record, rendered=rendered)
            else:
                try:
                    reply = stream.run(
                        self.client,
                        sdk_arguments(self.client.messages.create, body),
                        on_progress=self._stop_if_cancelled,
                        prices=self.session.settings.prices,
                        progress=record,
                        raise_statuses=RETRIED_TOGETHER | RETRIED_ALONE
                        if attempt + 1 < MAX_ATTEMPTS
                        else (),
                    )
                except anthropic.APIStatusError as exc:
                    attempt += 1
                    seconds = retry_after(exc.response.headers, attempt)
                    if exc.status_code in RETRIED_TOGETHER:
                        self.gate.pause(seconds)
                    elif self.cancelled.wait(seconds):
                        return
                    continue
            if self.cancelled.is_set() and reply.error and stored is None:
                started_streaming = bool(reply.content)
                error = stream.INTERRUPTED if started_streaming else stream.INTERRUPTED_BEFORE
                reply = reply.concluding(
                    [], error=error, parsed=None, duration=reply.timing.duration
                )
            self.session.runs.record(
                started,
                redacted({**body, "stream": True}),
                flags=self.origin.flags,
                reply=reply,
                cached=stored is not None,
                notebook=self.origin.notebook,
                cell_id=self.origin.cell_id,
                cache_key=key,
            )
            self.done[index] = reply
            return

    def _stop_if_cancelled(self, progress: Progress) -> None:
        if self.cancelled.is_set():
            raise KeyboardInterrupt  # stream.run closes the response and keeps what arrived


def _call_tools(
    tools: Sequence[Tool], reply: Reply, interrupts: Interrupts, progress: Progress
) -> tuple[list[ToolCall], str | None]:
    """Call each of the user's tools the reply asks for, in order, each result shown as it
    comes (added to ``progress``).

    Returns:
        The calls, and the name of the tool an interrupt stopped, if one did: the calls
        after it are not made.
    """
    calls: list[ToolCall] = []
    secrets = api_secrets(os.environ)
    for block in assistant_content(reply):
        if block.get("type") != "tool_use":
            continue  # server tools ran on the API's side
        try:
            with interrupts.allowed():
                call = call_tool(tools, block)
        except KeyboardInterrupt:
            return calls, str(block.get("name"))
        sent = json.dumps(call.block(), ensure_ascii=False) + call.shown
        if any(secret in sent for secret in secrets):
            call = ToolCall(
                call.id, call.name, call.input, None, True, KEY_IN_RESULT, KEY_IN_RESULT
            )
        calls.append(call)
        shown = call.shown_block()
        progress.blocks.append(BlockProgress(-1, kind_of("tool_result"), shown, stopped=True))
        progress.chars += len(call.shown)
    return calls, None


def _attached(prompt: str | Sequence[Part]) -> list[Attachment]:
    """What a prompt attaches, in order."""
    return [] if isinstance(prompt, str) else [p for p in prompt if isinstance(p, Attachment)]


def _where(display: Display) -> Literal["widget", "text"] | None:
    """Where a call shows its reply: ``auto`` decided, ``none`` as ``None``."""
    chosen = _front_end() if display == "auto" else display
    return None if chosen == "none" else "text" if chosen == "text" else "widget"


def _front_end() -> Display:
    """Where this Python shows a reply, read without importing IPython.

    IPython is only looked for where it is loaded already: plain Python shows nothing.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return "none"
    return "widget" if getattr(shell, "kernel", None) is not None else "text"


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


# --------------------------------------------------------------------------- the default session

_session: Session | None = None


def default_session() -> Session:
    """The process's session: the one ``%load_ext nbclaude`` made, or a new one."""
    global _session
    if _session is None:
        _session = Session()
    return _session


def use_session(chosen: Session | None) -> None:
    """Make ``chosen`` the process's session (``None``: a new one on next use)."""
    global _session
    _session = chosen


def batch(batch_id: str, *, display: Display = "auto", session: Session | None = None) -> Replies:
    """Wait for a Message Batch made earlier (``%%claude --over NAME --batch``), from this
    kernel or another, and return its rows' replies: ``%claude batch ID`` from Python.

    Args:
        batch_id: The batch's id (``msgbatch_...``); every batch its cell made comes with it.
        display: Where to show the wait and the rows (see :data:`Display`).
        session: The session to use; the process's by default.

    Raises:
        ClaudeError: If any row failed, the wait was interrupted, or the API refused.
    """
    return (session or default_session()).attach_batch(batch_id, display=display)


Moment = date | datetime | str
"""A point in time for :func:`runs`: a date (its local midnight), a datetime (naive is
local), or either in ISO form (``"2026-12-01"``, ``"2026-12-01T14:00"``)."""


def runs(
    all: bool = False,
    *,
    since: Moment | None = None,
    until: Moment | None = None,
    notebook: str | None = None,
) -> RunLog:
    """The calls of this session, or of every session the persistent store remembers.

    With no argument: every Messages API call of the process's session (``%%claude`` cells
    and :func:`ask`). With ``all=True`` or any filter: the calls of every session, read
    from the store, kept across restarts. Index it for :class:`~nbclaude.log.Run` records,
    call ``.to_dataframe()`` for a pandas DataFrame, or display it for the usage table.

    Args:
        all: Every session's calls, not only this one's.
        since: Only calls started at or after this moment.
        until: Only calls started before this moment.
        notebook: Only calls made in a notebook whose path ends with this.

    Raises:
        RuntimeError: For this session's calls when there is no session yet: nbclaude is
            not loaded, and :func:`ask` was not called.
    """
    if not all and since is None and until is None and notebook is None:
        if _session is None:
            raise RuntimeError(
                "No nbclaude session yet: run %load_ext nbclaude, or call nbclaude.ask(), first."
            )
        return _session.runs
    log = _session.runs if _session is not None else RunLog(store=Store(default_path()))
    stored = log.use_store(
        lambda store: store.runs(since=_moment(since), until=_moment(until), notebook=notebook),
        "only this session's calls, kept in memory, can be shown.",
        None,
    )
    return log if stored is None else RunLog([Run.from_stored(row) for row in stored])


def _moment(value: Moment | None) -> datetime | None:
    """A :data:`Moment` as a timezone-aware datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = (
            datetime.fromisoformat(value)
            if "T" in value or " " in value
            else date.fromisoformat(value)
        )
    if not isinstance(value, datetime):
        value = datetime.combine(value, clock_time())
    return value if value.tzinfo is not None else value.astimezone()


def ask(
    prompt: str | Sequence[Any],
    *,
    files: Sequence[Any] = (),
    model: str | None = None,
    max_tokens: int | None = None,
    thinking: int | Literal["adaptive"] | None = None,
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    stop: str | Sequence[str] | None = None,
    param: Mapping[str, Any] | None = None,
    system: str | None = None,
    chat: str | None = None,
    tools: Sequence[Callable[..., Any]] = (),
    max_tool_rounds: int | None = None,
    schema: type[BaseModel] | Mapping[str, Any] | None = None,
    cache: bool | None = None,
    display: Display = "auto",
    session: Session | None = None,
) -> Reply:
    """Send one request to Claude and return the reply: ``%%claude`` from any Python.

    The keywords are the long flags of ``%%claude``; anything not given comes from the
    session's settings. In a notebook the reply streams into the live view; in terminal
    IPython it streams as text; in plain Python nothing is shown (``display="text"``
    prints it), and neither IPython nor ipywidgets is imported.

    Example::

        import nbclaude
        reply = nbclaude.ask("Name three sorting algorithms.", model="haiku", max_tokens=200)
        print(reply.text, reply.usage_summary.line())

    Args:
        prompt: The message: a string, or a list of strings, images (PIL images,
            matplotlib figures, ``IPython.display.Image``, PNG/JPEG/GIF/WebP bytes) and
            ``pathlib.Path`` objects (images, PDFs, text files), sent in order.
        files: Paths (or images) to attach before the prompt, as ``-f`` does.
        model: A model id or alias (``opus``, ``sonnet``, ``haiku``).
        max_tokens: ``max_tokens``.
        thinking: Extended thinking: a budget (>= 1024, below ``max_tokens``) or
            ``"adaptive"``.
        effort: ``output_config.effort``.
        temperature: Sampling temperature, 0 to 1.
        top_p: Nucleus sampling, 0 to 1.
        top_k: Sample from the ``top_k`` likeliest tokens only.
        stop: A stop sequence, or several.
        param: Any other Messages API parameter, by name.
        system: The system prompt.
        chat: Continue the conversation of this name (shared with ``--chat``).
        tools: Python functions Claude may call; each is described to it by its
            signature, type hints and docstring, and runs in this process when called.
        max_tool_rounds: Tool round trips at most (8 by default).
        schema: A pydantic model class or a JSON-schema dict the reply must match; the
            reply's ``parsed`` holds the validated value.
        cache: ``True``: answer from the response cache when the store holds a complete
            reply to this exact request; ``False``: ask the API (and store the new reply);
            ``None``: the session's setting (off unless turned on).
        display: Where to show the reply (see :data:`Display`).
        session: The session to run in; the process's by default.

    Returns:
        The complete reply.

    Raises:
        ClaudeError: If the reply is incomplete; its ``reply`` holds what arrived.
        RequestError: If nothing was sent: a bad option (``OptionError``), a file or image
            that cannot be sent (``AttachmentError``), a tool or schema that cannot be
            described (``ToolDefinitionError``, ``SchemaError``), the API key in the request
            (``SecretError``), or no key at all (``NoKeyError``).
    """
    chosen = session or default_session()
    parts = prompt_parts(prompt, files)
    options = chosen.options(
        model=model,
        max_tokens=max_tokens,
        system=system,
        thinking=thinking,
        effort=effort,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        stop=stop,
        param=param,
        chat=chat,
        tools=tools_of((getattr(tool, "__name__", type(tool).__name__), tool) for tool in tools),
        max_tool_rounds=max_tool_rounds,
        schema=None if schema is None else schema_of(schema, getattr(schema, "__name__", "dict")),
    )
    return chosen.ask(parts, options, display=display, cache=cache)
