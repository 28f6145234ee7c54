"""The Message Batches pieces on their own: splitting, polling, results, the fake's batches.

The kernel tests (``test_batch_kernel.py``) run the whole of ``--batch``; these pin the
limits and the fake's behaviour through the real SDK.
"""

from __future__ import annotations

import time

import anthropic
import pytest

from nbclaude.batches import BATCH_DISCOUNT, Poll, batch_prices, replies_from, split
from nbclaude.fakebatches import errored, succeeded
from nbclaude.prices import PRICES
from nbclaude.testing import FakeServer

from .conftest import TEST_KEY


def request(index: int, size: int = 10) -> dict[str, object]:
    params = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x" * size}],
    }
    return {"custom_id": f"row-{index}", "params": params}


def test_split_keeps_each_batch_within_the_count_and_the_bytes() -> None:
    requests = [request(i) for i in range(7)]
    assert [len(b) for b in split(requests, max_requests=3)] == [3, 3, 1]
    big = [request(i, size=400) for i in range(5)]
    one = len(str(big[0])) + 40  # a little more than one request's JSON
    assert [len(b) for b in split(big, max_bytes=2 * one)] == [2, 2, 1]
    assert [len(b) for b in split(big, max_bytes=10)] == [1, 1, 1, 1, 1]  # each alone
    assert sum(map(len, split(requests))) == 7


def test_polling_waits_longer_and_longer_up_to_a_bound() -> None:
    poll = Poll(interval=1.0, longest=4.0, growth=2.0)
    assert [poll.next() for _ in range(5)] == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_batch_prices_are_half_the_list_price() -> None:
    (price,) = batch_prices(["claude-sonnet-4-6"], None).values()
    assert price.input == PRICES["claude-sonnet-4-6"].input * BATCH_DISCOUNT
    assert batch_prices(["no-such-model"], None) == {}


def test_the_fake_batch_advances_and_its_results_map_back_whatever_their_order() -> None:
    with FakeServer() as fake:
        fake.batches.seconds_per_request = 0.05
        fake.batches.answer = lambda custom_id, params: (  # type: ignore[assignment]
            errored("invalid_request_error", "nope")
            if custom_id == "row-1"
            else succeeded(custom_id, params)
        )
        client = anthropic.Anthropic(base_url=fake.url, api_key=TEST_KEY)
        batch = client.messages.batches.create(requests=[request(i) for i in range(4)])  # type: ignore[misc]
        first = client.messages.batches.retrieve(batch.id)
        assert first.processing_status == "in_progress"
        with pytest.raises(anthropic.AnthropicError, match="Has it finished processing"):
            list(client.messages.batches.results(batch.id))  # no results_url yet
        time.sleep(0.3)
        ended = client.messages.batches.retrieve(batch.id)
        assert ended.processing_status == "ended"
        assert ended.request_counts.succeeded == 3
        assert ended.request_counts.errored == 1
        results = list(client.messages.batches.results(batch.id))
        assert [r.custom_id for r in results] == ["row-3", "row-2", "row-1", "row-0"]
        replies = replies_from(results, {f"row-{i}": "claude-sonnet-4-6" for i in range(4)})
        assert replies["row-0"].text == "row-0"
        assert replies["row-0"].complete
        assert replies["row-1"].error == "The batch request failed (invalid_request_error): nope"
        client.close()


def test_the_fake_refuses_a_batch_without_requests_or_with_a_repeated_id() -> None:
    with FakeServer() as fake:
        client = anthropic.Anthropic(base_url=fake.url, api_key=TEST_KEY)
        with pytest.raises(anthropic.BadRequestError, match="at least one request"):
            client.messages.batches.create(requests=[])
        with pytest.raises(anthropic.BadRequestError, match="not unique"):
            client.messages.batches.create(requests=[request(1), request(1)])  # type: ignore[list-item]
        with pytest.raises(anthropic.NotFoundError):
            client.messages.batches.retrieve("msgbatch_unknown")
        client.close()
