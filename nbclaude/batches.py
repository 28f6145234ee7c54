"""Scale out with the Message Batches API: thousands of rows at half price.

A cell run ``--over`` rows with ``--batch`` sends every row's request in Message Batches
(split where the API's limits require: :data:`MAX_REQUESTS` requests or :data:`MAX_BYTES`
per batch, or a smaller ``batch_size``), each request named by a custom id that maps its
result back to its row whatever order results come in. The batches are remembered in the
store as soon as they are created; polling waits with a growing interval; when every batch
has ended, :func:`replies_from` turns the results into replies at batch prices. Nothing here
imports IPython.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from anthropic.types.messages import MessageBatch

from .prices import Price, price_for
from .reply import Reply, Timing
from .stream import ReplyBuilder

__all__ = [
    "BATCH_DISCOUNT",
    "MAX_BYTES",
    "MAX_REQUESTS",
    "Poll",
    "Progress",
    "batch_prices",
    "batches_table",
    "custom_id",
    "progress_of",
    "replies_from",
    "split",
]

MAX_REQUESTS = 100_000
"""The most requests one Message Batch takes."""

MAX_BYTES = 256 * 1024 * 1024
"""The largest Message Batch create request, in bytes of JSON."""

BATCH_DISCOUNT = 0.5
"""What the Message Batches API charges, as a share of the list price."""

ENDED = "ended"
"""The ``processing_status`` of a batch whose results are ready."""


def custom_id(index: int) -> str:
    """The custom id of the request of row ``index``: how its result finds its row."""
    return f"row-{index}"


def split(
    requests: Sequence[Mapping[str, Any]],
    *,
    max_requests: int = MAX_REQUESTS,
    max_bytes: int = MAX_BYTES,
) -> list[list[Mapping[str, Any]]]:
    """The requests in batches the API takes: at most ``max_requests`` each, and at most
    ``max_bytes`` of JSON (a request alone over it still gets a batch, for the API to refuse).
    """
    batches: list[list[Mapping[str, Any]]] = []
    size = 0
    for request in requests:
        length = len(json.dumps(request, ensure_ascii=False, default=str).encode()) + 1
        full = batches and (len(batches[-1]) >= max_requests or size + length > max_bytes)
        if not batches or full:
            batches.append([])
            size = 0
        batches[-1].append(request)
        size += length
    return batches


def batch_prices(models: Iterable[str], prices: Mapping[str, Price] | None) -> dict[str, Price]:
    """Each model's price at the Message Batches API's discount (when its price is known)."""
    scaled = {}
    for model in models:
        price = price_for(model, prices)
        if price is not None:
            scaled[model] = price.scaled(BATCH_DISCOUNT)
    return scaled


@dataclass(frozen=True, slots=True)
class Progress:
    """How far the batches of a cell got, from their ``request_counts``."""

    total: int
    succeeded: int
    errored: int
    canceled: int
    expired: int
    ended: bool

    @property
    def done(self) -> int:
        """Requests with a result, whatever it is."""
        return self.succeeded + self.errored + self.canceled + self.expired

    def line(self, ids: Sequence[str], elapsed: float, estimate: str) -> str:
        """One line: a bar, the counts, the batch ids, the time waited, the estimate."""
        width = 30
        filled = round(width * self.done / self.total) if self.total else width
        state = "ended" if self.ended else "processing"
        failed = self.errored + self.canceled + self.expired
        return (
            f"[{'#' * filled}{'-' * (width - filled)}] {self.done} / {self.total} done · "
            f"{failed} failed · {state} · {elapsed:.0f} s · "
            f"{len(ids)} batch{'es' if len(ids) != 1 else ''}: {', '.join(ids)}{estimate}"
        )


def progress_of(batches: Sequence[MessageBatch]) -> Progress:
    """The progress of several batches, added up."""
    counts = [batch.request_counts for batch in batches]
    return Progress(
        total=sum(c.processing + c.succeeded + c.errored + c.canceled + c.expired for c in counts),
        succeeded=sum(c.succeeded for c in counts),
        errored=sum(c.errored for c in counts),
        canceled=sum(c.canceled for c in counts),
        expired=sum(c.expired for c in counts),
        ended=all(batch.processing_status == ENDED for batch in batches),
    )


@dataclass
class Poll:
    """When to ask again how the batches stand: soon at first, then less and less often."""

    interval: float = 1.0
    """Seconds until the next poll."""
    longest: float = 60.0
    """The longest wait between polls."""
    growth: float = 1.5
    """How much longer each wait is than the last."""

    def next(self) -> float:
        """The wait before the next poll; the one after will be longer."""
        wait = self.interval
        self.interval = min(self.longest, self.interval * self.growth)
        return wait


REFUSED = {
    "canceled": "Canceled: the batch was canceled before this request ran.",
    "expired": "Expired: the batch ended (after 24 hours) before this request ran.",
}


def replies_from(
    results: Iterable[Any],
    models: Mapping[str, str],
    prices: Mapping[str, Price] | None = None,
) -> dict[str, Reply]:
    """Each request's reply, by custom id, from a batch's results (in any order).

    Args:
        results: The SDK's ``MessageBatchIndividualResponse`` objects.
        models: Each custom id's model, for the replies of requests that got no message.
        prices: Extra or overriding list prices; the replies are priced at batch prices.

    Returns:
        A complete reply for each ``succeeded`` result; for ``errored``, ``canceled`` and
        ``expired`` ones, an empty reply with the error in one line.
    """
    replies: dict[str, Reply] = {}
    for result in results:
        outcome = result.result
        model = models.get(result.custom_id, "")
        if outcome.type == "succeeded":
            message = outcome.message
            replies[result.custom_id] = Reply.from_parts(
                message,
                complete=True,
                error=None,
                timing=Timing(None, 0.0),
                prices={**(prices or {}), **batch_prices([message.model], prices)},
            )
            continue
        if outcome.type == "errored":
            inner = getattr(outcome.error, "error", None)
            kind = getattr(inner, "type", "error")
            detail = " ".join(str(getattr(inner, "message", "")).split())
            error = f"The batch request failed ({kind}): {detail}"
        else:
            error = REFUSED.get(outcome.type, f"No result ({outcome.type}).")
        replies[result.custom_id] = ReplyBuilder().reply(error=error, model=model)
    return replies


def batches_table(batches: Sequence[Mapping[str, Any]]) -> str:
    """The batches the store remembers, as ``%claude batch`` prints them."""
    if not batches:
        return "No batches yet: %%claude --over NAME --batch sends one."
    lines = ["created           batch id                          rows  state        notebook"]
    for batch in batches:
        created = batch["created_at"].strftime("%Y-%m-%d %H:%M")
        lines.append(
            f"{created:<17} {batch['id']:<33} {batch['requests']:>5}  {batch['state']:<12} "
            f"{batch['notebook'] or ''}"
        )
    return "\n".join(lines)
