"""Rows through the Message Batches API, in real kernels: submit and collect, results out of
order, errored rows, the split into several batches, cancel, expiry, and re-attaching from a
new kernel after a restart.

The fake server runs each batch's requests one after another, a set time apart, and returns
their results last request first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient

from nbclaude.fakebatches import errored, succeeded
from nbclaude.prices import PRICES
from nbclaude.testing import FakeServer

from .conftest import TEST_KEY
from .kernels import Cell, NotebookKernel, execute, iopub_until_idle, kernel_env, running_kernel

ROWS = "fruit = ['apple', 'pear', 'plum', 'bad fig', 'kiwi', 'lime', 'date']"


def answer(custom_id: str, params: dict[str, Any]) -> dict[str, Any]:
    prompt = params["messages"][-1]["content"].strip()
    if "bad" in prompt:
        return errored("invalid_request_error", f"{custom_id} is a bad row")
    return succeeded(f"Answer to {prompt}", params)


def kernel_for(fake: FakeServer, home: Path) -> Any:
    env = kernel_env(
        ANTHROPIC_BASE_URL=fake.url, ANTHROPIC_API_KEY=TEST_KEY, NBCLAUDE_HOME=str(home)
    )
    return running_kernel(env)


def loaded(manager: Any, client: BlockingKernelClient, fake: FakeServer) -> NotebookKernel:
    kernel = NotebookKernel(manager, client, fake)
    cell = kernel.run(f"%load_ext nbclaude\nimport json, nbclaude\n{ROWS}")
    assert cell.status == "ok", cell.traceback
    return kernel


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    with FakeServer(max_response_seconds=60) as server:
        server.batches.answer = answer  # type: ignore[assignment]
        server.batches.seconds_per_request = 0.01
        yield server


def state(k: NotebookKernel, expression: str) -> Any:
    cell = k.run(f"print(json.dumps({expression}, default=str))")
    assert cell.status == "ok", cell.traceback
    return json.loads(cell.printed)


def interrupt_and_answer(k: NotebookKernel, source: str, when: Any, reply: str) -> Cell:
    """Run ``source``, press stop once ``when()``, and answer the question that follows."""
    msg_id = execute(k.client, source)
    deadline = time.monotonic() + 60
    while not when():
        assert time.monotonic() < deadline, "the moment to interrupt never came"
        time.sleep(0.02)
    k.manager.interrupt_kernel()
    question = k.client.get_stdin_msg(timeout=30)
    assert question["msg_type"] == "input_request"
    assert "Cancel the batch" in question["content"]["prompt"]
    k.client.input(reply)
    messages = iopub_until_idle(k.client, msg_id)
    content = k.client.get_shell_msg(timeout=60)["content"]
    return Cell(content, messages)


def test_rows_go_in_batches_split_by_size_and_come_back_in_row_order(
    fake: FakeServer, tmp_path: Path
) -> None:
    with kernel_for(fake, tmp_path) as (m, c):
        k = loaded(m, c, fake)
        assert k.run("%config ClaudeMagics.batch_size = 3").status == "ok"

        cell = k.run("%%claude --over fruit --batch -o graded\nName a dish with {{ item }}.")

        line = cell.error_line()
        assert "1 of 7 failed: row 3: The batch request failed (invalid_request_error)" in line
        assert line.endswith("row-3 is a bad row")
        assert len(fake.batches) == 3
        sizes = [len(fake.batches[batch_id].requests) for batch_id in fake.batches.ids()]
        assert sizes == [3, 3, 1]
        assert not [r for r in fake.requests if r.path == "/v1/messages"]  # all by batch
        texts = state(k, "graded.texts")
        assert texts == [
            "Answer to Name a dish with apple.",
            "Answer to Name a dish with pear.",
            "Answer to Name a dish with plum.",
            "",
            "Answer to Name a dish with kiwi.",
            "Answer to Name a dish with lime.",
            "Answer to Name a dish with date.",
        ]
        # Half the list price.
        usage = state(
            k, "[graded[0].usage.input_tokens, graded[0].usage.output_tokens, graded[0].cost]"
        )
        price = PRICES["claude-sonnet-4-6"]
        list_price = (usage[0] * price.input + usage[1] * price.output) / 1_000_000
        assert usage[2] == pytest.approx(list_price / 2)
        assert "6 of 7 done, 1 failed" in cell.html
        # While it waited, the status line showed the batches and the cost at batch prices.
        assert "at batch prices" in cell.widget_state
        assert fake.batches.ids()[0] in cell.widget_state
        listing = k.run("%claude batch").printed
        assert all(batch_id in listing for batch_id in fake.batches.ids())
        assert listing.count("collected") == 3


def test_an_interrupt_leaves_the_batch_running_and_a_new_kernel_re_attaches(
    fake: FakeServer, tmp_path: Path
) -> None:
    fake.batches.seconds_per_request = 0.3
    with kernel_for(fake, tmp_path) as (m, c):
        k = loaded(m, c, fake)
        cell = interrupt_and_answer(
            k,
            "%%claude --over fruit --batch\nName a dish with {{ item }}.",
            lambda: len(fake.batches) == 1,
            "",
        )
        line = cell.error_line()
        batch_id = fake.batches.ids()[0]
        assert f"Interrupted: the batch keeps running ({batch_id}); %claude batch" in line
        assert f"%claude batch {batch_id} re-attaches" in line
        assert not fake.batches[batch_id].canceled
    # The kernel is gone; the batch goes on. A new kernel finds it in the store.
    with kernel_for(fake, tmp_path) as (m, c):
        k = loaded(m, c, fake)
        assert batch_id in k.run("%claude batch").printed
        cell = k.run(f"%claude batch {batch_id}")
        assert "1 of 7 failed: row 3" in cell.error_line()
        assert state(k, "list(_claude.labels)") == [f"row {i}" for i in range(7)]
        assert state(k, "_claude.to_dataframe()['item'].tolist()") == [
            "apple",
            "pear",
            "plum",
            "bad fig",
            "kiwi",
            "lime",
            "date",
        ]
        assert state(k, "_claude[6].text") == "Answer to Name a dish with date."
        # From Python: a batch with a failed row raises, and the error holds every reply.
        cell = k.run(
            f"try:\n    nbclaude.batch({batch_id!r}, display='none')\n"
            "except nbclaude.ClaudeError as error:\n    print(error.replies.texts[0])"
        )
        assert cell.printed.strip() == "Answer to Name a dish with apple."


def test_an_interrupt_answered_yes_cancels_and_keeps_what_ran(
    fake: FakeServer, tmp_path: Path
) -> None:
    fake.batches.seconds_per_request = 0.4
    with kernel_for(fake, tmp_path) as (m, c):
        k = loaded(m, c, fake)
        started = time.monotonic()

        cell = interrupt_and_answer(
            k,
            "%%claude --over fruit --batch\nName a dish with {{ item }}.",
            lambda: len(fake.batches) == 1 and time.monotonic() - started > 1.0,
            "y",
        )

        batch_id = fake.batches.ids()[0]
        assert fake.batches[batch_id].canceled
        states = state(k, "[[r.complete, r.error] for r in _claude]")
        assert states[0] == [True, None]
        assert states[-1] == [False, "Canceled: the batch was canceled before this request ran."]
        assert "failed" in cell.error_line()


def test_rows_a_batch_never_ran_before_it_expired_say_so(fake: FakeServer, tmp_path: Path) -> None:
    fake.batches.seconds_per_request = 0.3
    with kernel_for(fake, tmp_path) as (m, c):
        k = loaded(m, c, fake)
        msg_id = execute(c, "%%claude --over fruit --batch\nName a dish with {{ item }}.")
        deadline = time.monotonic() + 30
        while len(fake.batches) == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.5)
        fake.batches.expire(fake.batches.ids()[0])
        messages = iopub_until_idle(c, msg_id)
        cell = Cell(c.get_shell_msg(timeout=60)["content"], messages)
        assert "failed" in cell.error_line()
        errors = state(k, "[r.error for r in _claude]")
        assert errors[0] is None
        assert errors[-1] == "Expired: the batch ended (after 24 hours) before this request ran."


def test_the_cancel_command_cancels_a_batch_left_running(fake: FakeServer, tmp_path: Path) -> None:
    fake.batches.seconds_per_request = 5
    with kernel_for(fake, tmp_path) as (m, c):
        k = loaded(m, c, fake)
        source = "%%claude --over fruit --batch\nName a dish with {{ item }}."
        interrupt_and_answer(k, source, lambda: len(fake.batches) == 1, "n")
        running = fake.batches.ids()[0]
        assert not fake.batches[running].canceled

        printed = k.run(f"%claude batch {running} --cancel").printed

        assert f"Canceling {running}" in printed
        assert fake.batches[running].canceled
        cell = k.run(f"%claude batch {running}")
        assert "7 of 7 failed" in cell.error_line()


def test_batch_needs_over(fake: FakeServer, tmp_path: Path) -> None:
    with kernel_for(fake, tmp_path) as (m, c):
        k = loaded(m, c, fake)
        cell = k.run("%%claude --batch\nHello")
        assert "--batch sends the rows of --over NAME" in cell.usage_error()
        assert len(fake.batches) == 0
