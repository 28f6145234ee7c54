"""The Message Batches API of the fake server: batches that make progress over time.

:class:`FakeBatches` holds the batches one :class:`~nbclaude.testing.FakeServer` was sent.
A batch works through its requests one every :attr:`FakeBatches.seconds_per_request`
seconds, so ``request_counts`` advance between polls; it ends when every request is done,
canceled or expired. Its results are JSON lines in the reverse order of the requests (the
API promises no order). What each request gets is :attr:`FakeBatches.answer`'s to decide:
by default a short message that names the request's prompt. Standard library only.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["BatchAnswer", "FakeBatch", "FakeBatches", "errored", "succeeded"]

BatchAnswer = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]
"""What one request of a batch gets: given its ``custom_id`` and ``params``, the ``result``
object of its line in the results (see :func:`succeeded` and :func:`errored`)."""


def succeeded(text: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """A ``succeeded`` result: a message with ``text``, the model asked for, rough usage."""
    prompt_chars = len(json.dumps(params.get("messages", [])))
    return {
        "type": "succeeded",
        "message": {
            "id": f"msg_{secrets.token_hex(12)}",
            "type": "message",
            "role": "assistant",
            "model": params.get("model", "claude-sonnet-4-6"),
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": max(1, math.ceil(prompt_chars / 4)),
                "output_tokens": max(1, math.ceil(len(text) / 4)),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        },
    }


def errored(error_type: str, message: str) -> dict[str, Any]:
    """An ``errored`` result, as the API reports a request it refused."""
    return {
        "type": "errored",
        "error": {"type": "error", "error": {"type": error_type, "message": message}},
    }


def _prompt(params: Mapping[str, Any]) -> str:
    messages = params.get("messages") or [{}]
    content = messages[-1].get("content", "") if isinstance(messages[-1], dict) else ""
    if isinstance(content, list):
        return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return str(content)


def _default_answer(custom_id: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
    return succeeded(f"Batch answer to: {_prompt(params).strip()}", params)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class FakeBatch:
    """One batch: its requests, when it started, and how it ended."""

    id: str
    requests: list[dict[str, Any]]
    results: dict[str, Mapping[str, Any]]
    started: float
    created_at: datetime
    seconds_per_request: float
    stopped_at: float | None = None
    """When the batch was canceled or expired: what was not processed by then never is."""
    stopped_as: str = "canceled"
    """What the requests a stop left unprocessed end as: ``canceled`` or ``expired``."""

    @property
    def canceled(self) -> bool:
        """Whether the batch was canceled."""
        return self.stopped_at is not None and self.stopped_as == "canceled"

    def done_by(self, moment: float) -> int:
        """How many requests were processed by ``moment`` (monotonic seconds)."""
        if self.seconds_per_request <= 0:
            return len(self.requests)
        return min(len(self.requests), int((moment - self.started) / self.seconds_per_request))

    def outcomes(self, now: float) -> dict[str, str]:
        """Each request's state now: a result type, ``processing``, ``canceled``, ``expired``."""
        stop = now if self.stopped_at is None else min(now, self.stopped_at)
        processed = self.done_by(stop)
        states = {}
        for position, request in enumerate(self.requests):
            custom_id = request["custom_id"]
            if position < processed:
                states[custom_id] = str(self.results[custom_id]["type"])
            elif self.stopped_at is not None:
                states[custom_id] = self.stopped_as
            else:
                states[custom_id] = "processing"
        return states

    def view(self, base_url: str, now: float) -> dict[str, Any]:
        """The ``MessageBatch`` object the API returns for it now."""
        states = self.outcomes(now)
        counts = {
            name: sum(1 for s in states.values() if s == name)
            for name in ("processing", "succeeded", "errored", "canceled", "expired")
        }
        ended = counts["processing"] == 0
        status = "ended" if ended else "in_progress"
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.created_at + timedelta(hours=24)),
            "ended_at": _iso(datetime.now(UTC)) if ended else None,
            "cancel_initiated_at": _iso(self.created_at)
            if self.stopped_as == "canceled" and self.stopped_at is not None
            else None,
            "archived_at": None,
            "results_url": f"{base_url}/v1/messages/batches/{self.id}/results" if ended else None,
        }

    def result_lines(self, now: float) -> bytes:
        """The results file: a JSON line per request, the last request first."""
        states = self.outcomes(now)
        lines = []
        for request in reversed(self.requests):
            custom_id = request["custom_id"]
            state = states[custom_id]
            result = (
                self.results[custom_id] if state in ("succeeded", "errored") else {"type": state}
            )
            lines.append(json.dumps({"custom_id": custom_id, "result": result}))
        return ("\n".join(lines) + "\n").encode()


class FakeBatches:
    """Every batch a fake server was sent, by id."""

    def __init__(self) -> None:
        self.seconds_per_request = 0.02
        """How long each request of a batch takes, one after the other."""
        self.answer: BatchAnswer = _default_answer
        """What each request gets (see :data:`BatchAnswer`)."""
        self._lock = threading.Lock()
        self._batches: dict[str, FakeBatch] = {}

    def __getitem__(self, batch_id: str) -> FakeBatch:
        with self._lock:
            return self._batches[batch_id]

    def __len__(self) -> int:
        with self._lock:
            return len(self._batches)

    def ids(self) -> list[str]:
        """The batches' ids, oldest first."""
        with self._lock:
            return list(self._batches)

    def create(self, body: Mapping[str, Any]) -> FakeBatch | str:
        """A new batch for a create request, or why the API would refuse it."""
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return "requests: a batch needs at least one request"
        seen = set()
        for request in requests:
            custom_id = request.get("custom_id") if isinstance(request, dict) else None
            if not isinstance(custom_id, str) or custom_id in seen:
                return f"requests: custom_id {custom_id!r} is missing or not unique"
            if not isinstance(request.get("params"), dict):
                return f"requests: {custom_id}: params must be an object"
            seen.add(custom_id)
        batch = FakeBatch(
            id=f"msgbatch_{secrets.token_hex(12)}",
            requests=[dict(request) for request in requests],
            results={r["custom_id"]: self.answer(r["custom_id"], r["params"]) for r in requests},
            started=time.monotonic(),
            created_at=datetime.now(UTC),
            seconds_per_request=self.seconds_per_request,
        )
        with self._lock:
            self._batches[batch.id] = batch
        return batch

    def get(self, batch_id: str) -> FakeBatch | None:
        with self._lock:
            return self._batches.get(batch_id)

    def cancel(self, batch_id: str) -> FakeBatch | None:
        """Stop a batch: the requests not yet processed end ``canceled``."""
        batch = self.get(batch_id)
        if batch is not None and batch.stopped_at is None:
            batch.stopped_at, batch.stopped_as = time.monotonic(), "canceled"
        return batch

    def expire(self, batch_id: str) -> None:
        """End a batch now, as 24 hours passing would: what was not processed expires."""
        batch = self[batch_id]
        if batch.stopped_at is None:
            batch.stopped_at, batch.stopped_as = time.monotonic(), "expired"
