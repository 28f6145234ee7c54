"""Cells that make several requests, in a real kernel: models side by side, samples, rows.

The fake API answers each request from what it asked (the model, the prompt), after a delay
that differs from request to request, so replies finish out of order and the tests can see
that the results come back in input order anyway.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from nbclaude.testing import FakeServer, Script, http_error, text_reply

from .conftest import TEST_KEY
from .kernels import NotebookKernel, kernel_env, running_kernel


def prompt_of(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


class Answers:
    """What the fake API answers: each request's model and prompt back, slowly or not;
    a 400 for a prompt that says ``bad``; 429s while ``rate_limited`` is above zero."""

    def __init__(self) -> None:
        self.rate_limited = 0
        self.slow = 0.0
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Script:
        prompt = prompt_of(body).strip()
        with self._lock:
            if self.rate_limited > 0:
                self.rate_limited -= 1
                return http_error(429, headers={"retry-after": "1"})
        if "bad" in prompt:
            return http_error(400)
        # Finish out of order: a delay per delta that depends on the prompt.
        jitter = (zlib.crc32(prompt.encode()) % 5) * 0.004
        answer = f"{body['model']} answers: {prompt}" + " More." * 10
        return text_reply(answer, model=body["model"], chunk_size=6, delay=self.slow or jitter)


@pytest.fixture(scope="module")
def answers() -> Answers:
    return Answers()


@pytest.fixture(scope="module")
def kernel(answers: Answers) -> Iterator[NotebookKernel]:
    with FakeServer(max_response_seconds=60, default=answers) as fake:
        env = kernel_env(ANTHROPIC_BASE_URL=fake.url, ANTHROPIC_API_KEY=TEST_KEY)
        with running_kernel(env) as (manager, client):
            started = NotebookKernel(manager, client, fake)
            setup = (
                "%load_ext nbclaude\n%config ClaudeMagics.max_retries = 0\n"
                "import json, pandas as pd, nbclaude\n"
                "reviews = pd.DataFrame({'text': ['Great pans', 'Broke in a week', "
                "'Fine', 'Too heavy', 'Love it'], 'stars': [5, 1, 3, 2, 5]})"
            )
            cell = started.run(setup)
            assert cell.status == "ok", cell.traceback
            yield started


@pytest.fixture
def k(kernel: NotebookKernel, answers: Answers) -> Iterator[NotebookKernel]:
    yield kernel
    answers.rate_limited = 0
    answers.slow = 0.0


def state(k: NotebookKernel, expression: str) -> Any:
    cell = k.run(f"print(json.dumps({expression}, default=str))")
    assert cell.status == "ok", cell.traceback
    return json.loads(cell.printed)


def sent_since(k: NotebookKernel, before: int) -> list[dict[str, Any]]:
    return [r.body for r in k.fake.requests[before:] if r.path == "/v1/messages"]


def test_models_side_by_side_in_order_and_saved_as_columns(k: NotebookKernel) -> None:
    before = len(k.fake.requests)

    cell = k.run("%%claude -m sonnet -m haiku -m opus -o compared\nExplain a monad.")

    assert cell.status == "ok", cell.traceback
    models = ["claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6"]
    assert sorted(body["model"] for body in sent_since(k, before)) == sorted(models)
    assert state(k, "[type(compared).__name__, len(compared), compared is _claude]") == [
        "Replies",
        3,
        True,
    ]
    assert state(k, "[r.model for r in compared]") == models
    assert state(k, "list(compared.labels)") == models
    # One output, kept as static columns in input order, each with its usage line.
    (output,) = [o for o in cell.outputs if o["output_type"] == "display_data"]
    html = output["data"]["text/html"]
    assert html.count('class="nbclaude-column"') == 3
    positions = [html.index(f"{model} answers: Explain a monad.") for model in models]
    assert positions == sorted(positions)
    assert html.count('class="nbclaude-usage"') == 4  # three columns and the totals
    assert "application/vnd.jupyter.widget-view+json" not in output["data"]
    assert "Explain a monad." in cell.widget_state  # the columns streamed live first


def test_samples_each_send_the_same_request(k: NotebookKernel) -> None:
    before = len(k.fake.requests)
    cell = k.run("%%claude -n 3 --temperature 1\nName a startup that sells shovels.")
    assert cell.status == "ok", cell.traceback
    bodies = sent_since(k, before)
    assert len(bodies) == 3
    assert all(body["temperature"] == 1 for body in bodies)
    assert state(k, "list(_claude.labels)") == [
        "claude-sonnet-4-6 #1",
        "claude-sonnet-4-6 #2",
        "claude-sonnet-4-6 #3",
    ]
    frame = state(k, "_claude.to_dataframe()[['model', 'sample']].values.tolist()")
    assert frame == [["claude-sonnet-4-6", 1], ["claude-sonnet-4-6", 2], ["claude-sonnet-4-6", 3]]


def test_rows_of_a_dataframe_fill_the_prompt_and_come_back_in_order(k: NotebookKernel) -> None:
    before = len(k.fake.requests)

    cell = k.run(
        "%%claude --over reviews --concurrency 3 -o graded\n"
        "Rate this review ({{ stars }} stars) in one line: {{ text }}"
    )

    assert cell.status == "ok", cell.traceback
    prompts = sorted(prompt_of(body).strip() for body in sent_since(k, before))
    assert prompts == sorted(
        f"Rate this review ({stars} stars) in one line: {text}"
        for text, stars in [
            ("Great pans", 5),
            ("Broke in a week", 1),
            ("Fine", 3),
            ("Too heavy", 2),
            ("Love it", 5),
        ]
    )
    columns = state(k, "list(graded.to_dataframe().columns)")
    assert columns == [
        "input_text",  # the row's text, apart from the reply's
        "stars",
        "label",
        "model",
        "text",
        "input_tokens",
        "output_tokens",
        "cost",
        "complete",
        "error",
    ]
    frame = state(k, "graded.to_dataframe().iloc[:, [0, 1]].values.tolist()")
    assert frame == [
        ["Great pans", 5],
        ["Broke in a week", 1],
        ["Fine", 3],
        ["Too heavy", 2],
        ["Love it", 5],
    ]
    texts = state(k, "graded.texts")
    assert [t.split(": ", 2)[-1].split(" More.")[0] for t in texts] == [
        "Great pans",
        "Broke in a week",
        "Fine",
        "Too heavy",
        "Love it",
    ]
    html = cell.html
    assert html.count('class="nbclaude-row"') == 5
    assert "5 of 5 done" in html


def test_lists_of_dicts_and_of_strings(k: NotebookKernel) -> None:
    before = len(k.fake.requests)
    assert (
        k.run("cities = [{'city': 'Oslo'}, {'city': 'Lima'}]\nwords = ['up', 'down']").status
        == "ok"
    )
    assert k.run("%%claude --over cities\nWhere is {{ city }}?").status == "ok"
    assert k.run("%%claude --over words\nOpposite of {{ item }}?").status == "ok"
    prompts = sorted(prompt_of(body).strip() for body in sent_since(k, before))
    assert prompts == ["Opposite of down?", "Opposite of up?", "Where is Lima?", "Where is Oslo?"]
    assert state(k, "_claude.to_dataframe()['item'].tolist()") == ["up", "down"]


def test_a_failed_row_does_not_stop_the_others(k: NotebookKernel) -> None:
    assert k.run("notes = ['good one', 'bad one', 'another good one', 'fine']").status == "ok"

    cell = k.run("%%claude --over notes\nSummarise: {{ item }}")

    line = cell.error_line()
    assert "ClaudeError\x1b[0m: 1 of 4 failed: row 1: The request was invalid (400" in line
    assert state(k, "[r.complete for r in _claude]") == [True, False, True, True]
    assert "[failed]" in cell.html


def test_rate_limits_slow_everything_down_instead_of_failing_rows(
    k: NotebookKernel, answers: Answers
) -> None:
    answers.rate_limited = 2
    before = len(k.fake.requests)

    cell = k.run("%%claude --over reviews --concurrency 2\nRate: {{ text }}")

    assert cell.status == "ok", cell.traceback
    requests = [r for r in k.fake.requests[before:] if r.path == "/v1/messages"]
    assert len(requests) == 5 + 2
    assert state(k, "[r.complete for r in _claude]") == [True] * 5
    # After the first refusal, nothing was sent until its retry-after (1 s) had passed.
    first_refused = requests[0].received_at
    later = [r.received_at for r in requests[2:]]
    assert min(later) - first_refused >= 0.9


def test_an_interrupt_stops_the_rest_at_once_and_keeps_what_finished(
    k: NotebookKernel, answers: Answers
) -> None:
    assert k.run("many = [f'question {i}' for i in range(8)]").status == "ok"
    answers.slow = 0.15  # each reply takes about 10 deltas x 0.15 s
    before = len(k.fake.requests)

    cell, pressed = k.run_interrupted(
        "%%claude --over many --concurrency 2\nAnswer {{ item }}",
        lambda: len(k.fake.requests) - before >= 3,
    )

    assert pressed
    assert "Interrupted:" in cell.error_line()
    states = state(k, "[[r.complete, r.error] for r in _claude]")
    assert len(states) == 8
    assert sum(1 for complete, _ in states if complete) >= 1
    assert any(error and error.startswith("Not sent") for _, error in states)
    assert len(k.fake.requests) - before < 8
    assert state(k, "1 + 1") == 2


def test_dry_run_shows_the_first_request_the_count_and_the_total(k: NotebookKernel) -> None:
    before = len(k.fake.requests)
    cell = k.run("%%claude --over reviews --dry-run\nRate: {{ text }}")
    assert cell.status == "ok", cell.traceback
    assert "5 requests; the first (row 0)" in cell.printed
    assert '"content": "Rate: Great pans\\n"' in cell.printed
    assert "All 5: " in cell.printed
    assert {r.path for r in k.fake.requests[before:]} == {"/v1/messages/count_tokens"}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("--over reviews -m sonnet -m haiku", "--over runs one model once per row"),
        ("-n 2 --chat", "--chat works on one request at a time"),
        ("--over reviews --tools len", "--tools works on one request at a time"),
        ("--over nowhere", "--over nowhere: name 'nowhere' is not defined"),
        ("--over TEST_NUMBER", "--over TEST_NUMBER: a int is not a DataFrame"),
        ("-n 0", "-n takes a positive number of samples"),
        ("-n 2 --concurrency 0", "--concurrency takes a positive number"),
    ],
)
def test_bad_flags_are_usage_errors_and_nothing_is_sent(
    k: NotebookKernel, line: str, expected: str
) -> None:
    assert k.run("TEST_NUMBER = 3").status == "ok"
    before = len(k.fake.requests)
    cell = k.run(f"%%claude {line}\nHello")
    assert expected in cell.usage_error()
    assert len(k.fake.requests) == before


def test_the_static_columns_read_without_styles(k: NotebookKernel) -> None:
    cell = k.run("%%claude -m sonnet -m haiku\nShort.")
    html = cell.html
    # Each column carries its layout inline, so the view keeps its columns where <style>
    # is stripped; the labels are plain bold text.
    assert html.count('style="flex: 1 1 22em') == 2
    assert "<strong>claude-sonnet-4-6</strong>" in html
