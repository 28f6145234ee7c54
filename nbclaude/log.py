"""The run log: one record per Messages API call a ``%%claude`` cell made, and their totals.

Every call is recorded, whether it finished, failed or was interrupted: when it started,
the ``%%claude`` line, the exact request body, usage, cost, time to first token, duration,
stop reason, and whether the reply was complete. Dry runs send no Messages call and are not
recorded.

The log is a sequence of frozen :class:`Run` records; :meth:`RunLog.to_dataframe` makes a
pandas DataFrame of them when pandas is installed, and displaying the log (or
``%claude usage``) shows a table of the calls and their totals. A session's log also writes
each call to the persistent :class:`~nbclaude.store.Store` as it ends; when the store cannot
be written, the call is kept in memory and the log says so once. Nothing here imports
IPython.
"""

from __future__ import annotations

import copy
import html
import importlib
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, TypeVar, overload

from .reply import Reply
from .store import Store, StoredRun, StoreError

__all__ = ["NOT_STORED", "ModelTotals", "Run", "RunLog", "Started", "Totals"]

T = TypeVar("T")

NOT_STORED = "calls are kept in memory only, until the kernel restarts."
"""What a call does when the store cannot be written."""


def _local_now() -> datetime:
    return datetime.now().astimezone()


@dataclass(frozen=True, slots=True)
class Started:
    """When a call began, taken just before the request was sent."""

    at: datetime
    """Wall-clock time, timezone-aware."""
    clock: float
    """The log's monotonic clock at that moment, for measuring calls that fail early."""


@dataclass(frozen=True, slots=True)
class Run:
    """One Messages API call made by a ``%%claude`` cell."""

    started_at: datetime
    """When the request was sent (local time, timezone-aware)."""
    model: str
    """The model that answered, or the model asked for if no answer began."""
    flags: str
    """The ``%%claude`` line's flags as typed; empty for a call made with ``nbclaude.ask``."""
    chat: str | None
    """The conversation the call continued, or ``None`` for a one-off cell."""
    request: Mapping[str, Any]
    """The exact request body sent (a private copy; treat it as read-only)."""
    input_tokens: int
    """Uncached input tokens."""
    output_tokens: int
    """Output tokens, thinking included."""
    cache_read_tokens: int
    """Input tokens read from the prompt cache."""
    cache_write_tokens: int
    """Input tokens written to the prompt cache."""
    thinking_tokens: int | None
    """Output tokens spent thinking, when the API reported them."""
    cost: float | None
    """US dollars at list price, or ``None`` when the model's price is unknown."""
    time_to_first_token: float | None
    """Seconds from the request to the first content delta, if one arrived."""
    duration: float
    """Seconds from the request to the end of the call, however it ended."""
    stop_reason: str | None
    """The API's stop reason, if the reply got that far."""
    complete: bool
    """Whether the reply streamed to the end (``message_stop``) without error."""
    error: str | None
    """``None``, or the one line that said what went wrong."""
    cached: bool = False
    """Whether the reply came from the response cache: no request was sent, nothing cost."""
    notebook: str | None = None
    """The notebook that made the call, when the front end said."""
    cell_id: str | None = None
    """The notebook cell that made the call, when the front end said."""

    @classmethod
    def from_stored(cls, stored: StoredRun) -> Run:
        """A run read back from the store."""
        values = stored.values
        return cls(**{field.name: values[field.name] for field in fields(cls)})


@dataclass(frozen=True, slots=True)
class Totals:
    """The sums over every call in a run log."""

    calls: int
    """How many calls were made."""
    failed: int
    """How many of them did not complete."""
    input_tokens: int
    """Uncached input tokens."""
    output_tokens: int
    """Output tokens, thinking included."""
    cache_read_tokens: int
    """Input tokens read from the prompt cache."""
    cache_write_tokens: int
    """Input tokens written to the prompt cache."""
    cost: float
    """US dollars at list price, over the calls whose price is known."""
    unpriced: int
    """How many calls used a model with no known price (left out of ``cost``)."""
    duration: float
    """Seconds spent in calls, added up."""
    cached: int = 0
    """How many calls were answered from the response cache."""


_COLUMNS = (
    "#",
    "time",
    "model",
    "chat",
    "input",
    "output",
    "cache read",
    "cache write",
    "cost",
    "first token",
    "duration",
    "stop",
    "complete",
)

_NUMERIC = frozenset(range(4, 11))
"""The columns of numbers (tokens, cost, times), right-aligned in the text table."""


class RunLog(Sequence[Run]):
    """Every call of a session, oldest first. Indexing and iteration give :class:`Run`s.

    Args:
        runs: Records to start with (read back from the store).
        clock: Monotonic seconds, for durations of calls that fail before streaming.
        now: Wall-clock time, for :attr:`Run.started_at`.
        store: Where each call is also written as it ends; ``None`` keeps them in memory.
        warn: Told, once per kind of failure, when the store cannot be written; prints one
            line to stderr by default.
    """

    def __init__(
        self,
        runs: Sequence[Run] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _local_now,
        store: Store | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self._clock = clock
        self._now = now
        self._runs: list[Run] = list(runs)
        self.store = store
        """The persistent store the log writes to, if any."""
        self._warn = warn or _print_warning
        self._warned: set[str] = set()
        self._rows: dict[int, int] = {}
        """The store's row id of each run written, by the run's ``id()``."""

    @overload
    def __getitem__(self, index: int) -> Run: ...

    @overload
    def __getitem__(self, index: slice) -> list[Run]: ...

    def __getitem__(self, index: int | slice) -> Run | list[Run]:
        return self._runs[index]

    def __len__(self) -> int:
        return len(self._runs)

    def __iter__(self) -> Iterator[Run]:
        return iter(list(self._runs))

    def __repr__(self) -> str:
        return f"<RunLog: {len(self._runs)} calls>"

    def start(self) -> Started:
        """Note the moment a call begins; pass the result to :meth:`record`."""
        return Started(self._now(), self._clock())

    def record(
        self,
        started: Started,
        request: Mapping[str, Any],
        *,
        flags: str = "",
        chat: str | None = None,
        reply: Reply | None = None,
        error: str | None = None,
        cached: bool = False,
        notebook: str | None = None,
        cell_id: str | None = None,
        cache_key: str | None = None,
    ) -> Run:
        """Add one call: its reply (complete or partial), or the error that stopped it early.

        Args:
            started: What :meth:`start` returned before the request was sent.
            request: The request body sent.
            flags: The ``%%claude`` line.
            chat: The conversation, if any.
            reply: The reply, if the stream began; its usage, timing and error are used.
            error: Why the call failed before any reply, when there is no reply.
            cached: Whether the reply came from the response cache.
            notebook: The notebook that made the call, if known.
            cell_id: The cell that made the call, if known.
            cache_key: The request's cache key: a complete reply fetched from the API
                becomes the store's answer to it.

        Returns:
            The new record.
        """
        request = copy.deepcopy(dict(request))
        if reply is not None:
            usage = reply.usage_summary
            run = Run(
                started_at=started.at,
                model=reply.model or str(request.get("model", "")),
                flags=flags,
                chat=chat,
                request=request,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                thinking_tokens=usage.thinking_tokens,
                cost=usage.cost,
                time_to_first_token=usage.time_to_first_token,
                duration=usage.duration,
                stop_reason=reply.stop_reason,
                complete=reply.complete,
                error=reply.error,
                cached=cached,
                notebook=notebook,
                cell_id=cell_id,
            )
        else:
            run = Run(
                started_at=started.at,
                model=str(request.get("model", "")),
                flags=flags,
                chat=chat,
                request=request,
                input_tokens=0,
                output_tokens=0,
                cache_read_tokens=0,
                cache_write_tokens=0,
                thinking_tokens=None,
                cost=None,
                time_to_first_token=None,
                duration=max(0.0, self._clock() - started.clock),
                stop_reason=None,
                complete=False,
                error=error or "The call failed before a reply began.",
                notebook=notebook,
                cell_id=cell_id,
            )
        self._runs.append(run)
        if self.store is not None:
            keep = reply is not None and reply.complete and not reply.error and not cached
            self._write(run, reply, cache_key if keep else None)
        return run

    def _write(self, run: Run, reply: Reply | None, cache_key: str | None) -> None:
        values = {field.name: getattr(run, field.name) for field in fields(Run)}
        values["reply"] = None if reply is None else reply.model_dump(mode="json", warnings=False)
        row = self.use_store(lambda store: store.add(values, cache_key=cache_key), NOT_STORED, None)
        if row is not None:
            self._rows[id(run)] = row

    def keep_rendered(self, run: Run, rendered: Mapping[int, str]) -> None:
        """Store a run's Markdown as the view rendered it, for a cache hit to show again."""
        row = self._rows.get(id(run))
        if row is not None and rendered:
            self.use_store(lambda store: store.set_rendered(row, rendered), NOT_STORED, None)

    def use_store(self, action: Callable[[Store], T], failed: str, default: T) -> T:
        """``action`` on the store; ``default`` without one. A store that cannot be used
        never fails the call: its one-line reason and ``failed`` are said once, and
        ``default`` is returned."""
        if self.store is None:
            return default
        try:
            return action(self.store)
        except StoreError as exc:
            self.warn(f"{exc}: {failed}")
            return default

    def warn(self, line: str) -> None:
        """Say something about the store, once."""
        if line not in self._warned:
            self._warned.add(line)
            self._warn(line)

    def clear(self) -> None:
        """Forget every record."""
        self._runs.clear()

    def totals(self) -> Totals:
        """Tokens, cost and time summed over every call."""
        runs = self._runs
        return Totals(
            calls=len(runs),
            failed=sum(not run.complete for run in runs),
            input_tokens=sum(run.input_tokens for run in runs),
            output_tokens=sum(run.output_tokens for run in runs),
            cache_read_tokens=sum(run.cache_read_tokens for run in runs),
            cache_write_tokens=sum(run.cache_write_tokens for run in runs),
            cost=sum(run.cost for run in runs if run.cost is not None),
            unpriced=sum(run.cost is None for run in runs),
            duration=sum(run.duration for run in runs),
            cached=sum(run.cached for run in runs),
        )

    def by_model(self) -> ModelTotals:
        """Calls, tokens and cost added up for each model, and over all of them."""
        models: dict[str, list[Run]] = {}
        for run in self._runs:
            models.setdefault(run.model, []).append(run)
        return ModelTotals(
            {model: RunLog(runs).totals() for model, runs in sorted(models.items())},
            self.totals(),
            self._runs[0].started_at if self._runs else None,
        )

    def to_dataframe(self) -> Any:
        """The records as a ``pandas.DataFrame``, one row per call, one column per field.

        Raises:
            ModuleNotFoundError: If pandas is not installed.
        """
        try:
            pandas = importlib.import_module("pandas")
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError(
                "RunLog.to_dataframe needs pandas: pip install pandas. "
                "The records themselves are in list(log).",
                name="pandas",
            ) from exc
        columns = [field.name for field in fields(Run)]
        return pandas.DataFrame([asdict(run) for run in self._runs], columns=columns)

    # ---- the usage table

    def rows(self) -> list[tuple[str, ...]]:
        """The usage table as text cells: one row per call, then the totals row."""
        rows = [_row(number, run) for number, run in enumerate(self._runs, start=1)]
        totals = self.totals()
        cost = f"${totals.cost:.4f}" + (" *" if totals.unpriced else "")
        failed = f"{totals.calls - totals.failed}/{totals.calls}"
        rows.append(
            (
                "total",
                "",
                "",
                "",
                f"{totals.input_tokens:,}",
                f"{totals.output_tokens:,}",
                f"{totals.cache_read_tokens:,}",
                f"{totals.cache_write_tokens:,}",
                cost,
                "",
                f"{totals.duration:.2f}s",
                "",
                failed,
            )
        )
        return rows

    def text_table(self) -> str:
        """The usage table as fixed-width plain text."""
        if not self._runs:
            return "No calls yet."
        rows = [_COLUMNS, *self.rows()]
        widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
        lines = [
            "  ".join(
                cell.rjust(width) if column in _NUMERIC else cell.ljust(width)
                for column, (cell, width) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
            for row in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.insert(-1, lines[1])
        return "\n".join(lines) + self._footnote()

    def html_table(self) -> str:
        """The usage table as an HTML ``<table>``, every value escaped."""
        if not self._runs:
            return "<p>No calls yet.</p>"
        head = "".join(f"<th>{html.escape(name)}</th>" for name in _COLUMNS)
        body = []
        rows = self.rows()
        for number, row in enumerate(rows, start=1):
            cells = "".join(f"<td>{html.escape(cell)}</td>" for cell in row)
            attrs = ' class="nbclaude-total"' if number == len(rows) else ""
            body.append(f"<tr{attrs}>{cells}</tr>")
        note = self._footnote().strip()
        footnote = f"<p>{html.escape(note)}</p>" if note else ""
        return (
            '<table class="nbclaude-runs">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{footnote}"
        )

    def _footnote(self) -> str:
        unpriced = self.totals().unpriced
        if not unpriced:
            return ""
        calls = "call" if unpriced == 1 else "calls"
        return f"\n* {unpriced} {calls} with no known price left out of the cost."

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/html": self.html_table(), "text/plain": self.text_table()}


_MODEL_COLUMNS = (
    "model",
    "calls",
    "cached",
    "failed",
    "input",
    "output",
    "cache read",
    "cache write",
    "cost",
)


@dataclass(frozen=True, slots=True)
class ModelTotals:
    """Totals by model over a run log (``%claude usage --all``); displays as a table."""

    models: Mapping[str, Totals]
    """Each model's totals."""
    overall: Totals
    """The totals over every model."""
    since: datetime | None
    """When the first call began."""

    def rows(self) -> list[tuple[str, ...]]:
        """The table as text cells: a row per model, then the totals."""
        return [
            _totals_row(name, totals)
            for name, totals in [*self.models.items(), ("all models", self.overall)]
        ]

    def title(self) -> str:
        """What the table covers."""
        if self.since is None:
            return "No calls stored yet."
        return f"{self.overall.calls:,} calls since {self.since:%Y-%m-%d %H:%M}, every session:"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        rows = [_MODEL_COLUMNS, *self.rows()] if self.since is not None else []
        widths = [max(len(row[i]) for row in rows) for i in range(len(_MODEL_COLUMNS))]
        lines = [
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in rows
        ]
        head = "".join(f"<th>{html.escape(name)}</th>" for name in _MODEL_COLUMNS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
            for row in rows[1:]
        )
        table = (
            f'<table class="nbclaude-runs"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )
        return {
            "text/plain": "\n".join([self.title(), *lines]),
            "text/html": f"<p>{html.escape(self.title())}</p>" + (table if rows else ""),
        }


def _totals_row(name: str, totals: Totals) -> tuple[str, ...]:
    return (
        name,
        f"{totals.calls:,}",
        f"{totals.cached:,}",
        f"{totals.failed:,}",
        f"{totals.input_tokens:,}",
        f"{totals.output_tokens:,}",
        f"{totals.cache_read_tokens:,}",
        f"{totals.cache_write_tokens:,}",
        f"${totals.cost:.4f}" + (" *" if totals.unpriced else ""),
    )


def _row(number: int, run: Run) -> tuple[str, ...]:
    return (
        str(number),
        run.started_at.strftime("%H:%M:%S"),
        run.model,
        run.chat or "",
        f"{run.input_tokens:,}",
        f"{run.output_tokens:,}",
        f"{run.cache_read_tokens:,}",
        f"{run.cache_write_tokens:,}",
        "—" if run.cost is None else f"${run.cost:.4f}",
        "—" if run.time_to_first_token is None else f"{run.time_to_first_token:.2f}s",
        f"{run.duration:.2f}s",
        "cached" if run.cached else run.stop_reason or "",
        "yes" if run.complete else "no",
    )


def _print_warning(line: str) -> None:
    print(f"nbclaude: {line}", file=sys.stderr)
