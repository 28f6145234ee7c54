"""Iterate over many: one prompt on several models, several samples, or every row of a table.

A :class:`Job` is one request of a cell that makes several: its label, its prompt (filled
from its row), its options, and the inputs that made it (the model, the sample, the row).
The session runs them (:meth:`~nbclaude.core.Session.ask_many`) a few at a time and returns
:class:`Replies`, an immutable sequence of :class:`~nbclaude.reply.Reply` in input order,
with ``to_dataframe()`` and a static view: columns side by side for models and samples, a
table for rows. :class:`Gate` slows every request down together when the API says it is
rate limited, instead of failing rows. Nothing here imports IPython.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal, overload

from .attachments import Part
from .reply import Reply
from .request import Options
from .static import columns_bundle, rows_bundle

__all__ = [
    "DEFAULT_CONCURRENCY",
    "Gate",
    "Job",
    "Layout",
    "Replies",
    "retry_after",
    "rows_of",
]

DEFAULT_CONCURRENCY = 4
"""Requests at once for ``-m`` repeated, ``-n`` and ``--over``, unless told otherwise."""

Layout = Literal["columns", "rows"]
"""How several replies show: side by side (models, samples), or one row each (``--over``)."""


@dataclass(frozen=True, slots=True)
class Job:
    """One request of a cell that makes several."""

    label: str
    """What the view calls it: the model, ``sample 2``, ``row 17``."""
    prompt: str | Sequence[Part]
    """The prompt, its templates filled from the job's row."""
    options: Options
    """The request's options."""
    inputs: Mapping[str, Any]
    """What made this job different from the others: the row's values, or the model and
    the sample's number; the first columns of ``to_dataframe()``."""


def rows_of(data: Any, name: str) -> tuple[list[str], list[Mapping[str, Any]]]:
    """The rows ``--over`` runs a cell on: their labels and their values by column.

    Args:
        data: A pandas DataFrame (one row each, columns by name), a list of dicts, or a
            list of strings (each one ``item``).
        name: What the user called it, for messages.

    Raises:
        TypeError: If ``data`` is none of those, or a list mixes dicts and strings.
    """
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, pandas.DataFrame):
        labels = [str(index) for index in data.index]
        records = data.to_dict(orient="records")
        return labels, [{str(key): value for key, value in row.items()} for row in records]
    if isinstance(data, list | tuple):
        if all(isinstance(item, str) for item in data):
            return [str(i) for i in range(len(data))], [{"item": item} for item in data]
        if all(isinstance(item, Mapping) for item in data):
            return [str(i) for i in range(len(data))], [
                {str(key): value for key, value in item.items()} for item in data
            ]
    raise TypeError(
        f"--over {name}: a {type(data).__name__} is not a DataFrame, a list of dicts or a "
        "list of strings."
    )


OUTPUT_COLUMNS = frozenset(
    {"label", "model", "text", "input_tokens", "output_tokens", "cost", "complete", "error"}
)
"""The columns ``Replies.to_dataframe`` adds after the inputs."""


class Replies(Sequence[Reply]):
    """The replies of a cell that made several requests, in input order.

    Immutable. Index or iterate it for each :class:`~nbclaude.reply.Reply`; call
    :meth:`to_dataframe` for a table of inputs, text, usage, cost and error; display it for
    the static view the cell showed.
    """

    def __init__(
        self,
        labels: Sequence[str],
        inputs: Sequence[Mapping[str, Any]],
        replies: Sequence[Reply],
        layout: Layout,
    ) -> None:
        self._labels = tuple(labels)
        self._inputs = tuple(inputs)
        self._replies = tuple(replies)
        self.layout: Layout = layout
        """Side by side (``columns``) or one row each (``rows``)."""

    @classmethod
    def of(cls, jobs: Sequence[Job], replies: Sequence[Reply], layout: Layout) -> Replies:
        """The replies to ``jobs``, in their order."""
        return cls([j.label for j in jobs], [j.inputs for j in jobs], replies, layout)

    @overload
    def __getitem__(self, index: int) -> Reply: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Reply]: ...

    def __getitem__(self, index: int | slice) -> Reply | Sequence[Reply]:
        return self._replies[index]

    def __len__(self) -> int:
        return len(self._replies)

    def __iter__(self) -> Iterator[Reply]:
        return iter(self._replies)

    def __repr__(self) -> str:
        failed = len(self.failed)
        return f"<Replies: {len(self)} replies, {failed} failed>"

    @property
    def labels(self) -> tuple[str, ...]:
        """Each reply's label: the model, the sample, the row."""
        return self._labels

    @property
    def inputs(self) -> tuple[Mapping[str, Any], ...]:
        """What made each request: the row's values, or the model and the sample."""
        return self._inputs

    @property
    def failed(self) -> list[tuple[str, Reply]]:
        """The label and reply of each request that did not complete."""
        return [
            (label, reply)
            for label, reply in zip(self._labels, self._replies, strict=True)
            if reply.error
        ]

    @property
    def texts(self) -> list[str]:
        """Each reply's text."""
        return [reply.text for reply in self._replies]

    def summary(self) -> str:
        """One line: how many replies, failed, tokens and cost."""
        summaries = [reply.usage_summary for reply in self._replies]
        tokens_in = sum(s.input_tokens for s in summaries)
        tokens_out = sum(s.output_tokens for s in summaries)
        costs = [s.cost for s in summaries if s.cost is not None]
        cost = f" · ${sum(costs):.4f}" if costs else ""
        failed = len(self.failed)
        done = f"{len(self) - failed} of {len(self)} done" + (
            f", {failed} failed" if failed else ""
        )
        return f"{done} · {tokens_in:,} in · {tokens_out:,} out{cost}"

    def error_line(self) -> str | None:
        """The cell's one-line error when any request failed, else ``None``."""
        failed = self.failed
        if not failed:
            return None
        label, first = failed[0]
        return f"{len(failed)} of {len(self)} failed: {label}: {first.error}"

    def to_dataframe(self) -> Any:
        """One row per reply: the inputs, then label, model, text, tokens, cost, error.

        An input column named like one of those (a row's ``text``) is ``input_text``.

        Raises:
            ModuleNotFoundError: If pandas is not installed.
        """
        try:
            pandas = importlib.import_module("pandas")
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError(
                "Replies.to_dataframe needs pandas: pip install pandas.", name="pandas"
            ) from exc
        rows = []
        for label, inputs, reply in zip(self._labels, self._inputs, self._replies, strict=True):
            usage = reply.usage_summary
            rows.append(
                {
                    **{
                        f"input_{name}" if name in OUTPUT_COLUMNS else name: value
                        for name, value in inputs.items()
                    },
                    "label": label,
                    "model": reply.model,
                    "text": reply.text,
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "cost": usage.cost,
                    "complete": reply.complete,
                    "error": reply.error,
                }
            )
        return pandas.DataFrame(rows)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        if self.layout == "columns":
            return columns_bundle(self.labels, self._replies, self.summary())
        return rows_bundle(self.labels, self._replies, self.summary())


class Gate:
    """Holds every request back while the API says it is rate limited (429) or overloaded.

    A request that is refused for either waits out the ``retry-after`` the API sent (or a
    backoff), and so does every request about to start: the load drops for everyone
    instead of rows failing one by one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open_at = 0.0
        self.pauses = 0
        """How many times a request was refused and the gate closed."""

    def pause(self, seconds: float) -> None:
        """Hold every request back for ``seconds`` from now (never shortening a pause)."""
        with self._lock:
            self.pauses += 1
            self._open_at = max(self._open_at, time.monotonic() + seconds)

    def wait(self, cancelled: threading.Event) -> bool:
        """Wait until requests may go; return ``False`` if ``cancelled`` was set meanwhile."""
        while True:
            with self._lock:
                left = self._open_at - time.monotonic()
            if left <= 0:
                return not cancelled.is_set()
            if cancelled.wait(min(left, 0.25)):
                return False


MAX_WAIT = 60.0
"""The longest a refused request waits before it is tried again."""


def retry_after(headers: Mapping[str, str], attempt: int) -> float:
    """Seconds to wait before trying a refused request again: what the API asked for
    (``retry-after-ms``, ``retry-after`` in seconds or as a date), else an exponential
    backoff from half a second; at most :data:`MAX_WAIT`."""
    try:
        if (milliseconds := headers.get("retry-after-ms")) is not None:
            return min(MAX_WAIT, max(0.0, float(milliseconds) / 1000))
        if (value := headers.get("retry-after")) is not None:
            try:
                return min(MAX_WAIT, max(0.0, float(value)))
            except ValueError:
                moment = parsedate_to_datetime(value)
                return min(MAX_WAIT, max(0.0, moment.timestamp() - time.time()))
    except (TypeError, ValueError):
        pass
    backoff: float = 0.5 * 2**attempt
    return min(MAX_WAIT, backoff)
