"""Every way a call can fail, in one real kernel: one line, nothing lost, ``_claude`` bound.

Each test runs cells in a shared Jupyter kernel against a shared fake server, and checks
what the user sees: the cell's error (one line), the output the notebook would save (what
arrived, never an empty output), and what ``_claude`` and the run log hold afterwards.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from nbclaude.testing import (
    FakeServer,
    RawChunk,
    Script,
    SSEEvent,
    http_error,
    page,
    stall_after,
    text_reply,
)

from .conftest import TEST_KEY
from .kernels import (
    kernel_env,
    printed,
    run_cell,
    run_cell_interrupted,
    running_kernel,
    saved_outputs,
)

PROXY_PAGE = """<!DOCTYPE html>
<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx/1.25.3</center>
</body>
</html>
"""

KEPT = "Everything before the bad event is kept, word for word. " * 3


@dataclass
class Cell:
    """What one cell did, as the notebook would keep it."""

    status: str
    """``ok`` or ``error``."""
    traceback: list[str]
    """The error's lines, empty if the cell succeeded."""
    outputs: list[dict[str, Any]]
    """The outputs a notebook would save."""
    printed: str
    """What went to stdout and stderr."""

    @property
    def displays(self) -> list[dict[str, str]]:
        """The data of each display output, as last updated."""
        return [o["data"] for o in self.outputs if o["output_type"] == "display_data"]


class Kernel:
    """One kernel with nbclaude loaded, and the fake server it talks to."""

    def __init__(self, manager: KernelManager, client: BlockingKernelClient, fake: FakeServer):
        self.manager = manager
        self.client = client
        self.fake = fake

    def run(self, source: str) -> Cell:
        content, messages = run_cell(self.client, source)
        return self._cell(content, messages)

    def run_interrupted(self, source: str, when: Callable[[], bool]) -> Cell:
        """Run ``source`` and press stop once ``when()`` is true, unless it ended first."""
        content, messages, _ = run_cell_interrupted(
            self.manager, self.client, source, lambda messages: when()
        )
        return self._cell(content, messages)

    @staticmethod
    def _cell(content: dict[str, Any], messages: list[dict[str, Any]]) -> Cell:
        traceback = content.get("traceback", []) if content["status"] == "error" else []
        return Cell(content["status"], traceback, saved_outputs(messages), printed(messages))

    def state(self) -> dict[str, Any]:
        """What ``_claude`` and the last run-log record hold."""
        cell = self.run(
            "import json as _json, nbclaude as _nbclaude\n"
            "_last = _nbclaude.runs()[-1] if _nbclaude.runs() else None\n"
            "print(_json.dumps({\n"
            "    'type': type(_claude).__name__, 'complete': _claude.complete,\n"
            "    'error': _claude.error, 'text': _claude.text, 'model': _claude.model,\n"
            "    'runs': len(_nbclaude.runs()),\n"
            "    'run': None if _last is None else [_last.complete, _last.error],\n"
            "}))"
        )
        assert cell.status == "ok", cell.traceback
        state: dict[str, Any] = json.loads(cell.printed)
        return state


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    with FakeServer(max_response_seconds=60) as fake:
        env = kernel_env(ANTHROPIC_BASE_URL=fake.url, ANTHROPIC_API_KEY=TEST_KEY)
        with running_kernel(env) as (manager, client):
            started = Kernel(manager, client, fake)
            cell = started.run("%load_ext nbclaude\n%config ClaudeMagics.max_retries = 0")
            assert cell.status == "ok", cell.traceback
            yield started


@pytest.fixture
def k(kernel: Kernel) -> Iterator[Kernel]:
    """The shared kernel, with the server answering as the API again afterwards."""
    yield kernel
    kernel.fake.intercept = None


def one_line(cell: Cell) -> str:
    """The cell's error, which must be a single line."""
    assert cell.status == "error"
    assert len(cell.traceback) == 1, cell.traceback
    assert "\n" not in cell.traceback[0]
    return cell.traceback[0]


def assert_shown_without_empty_outputs(cell: Cell) -> None:
    """Every output the notebook keeps says something (a long reply's later outputs, in
    HTML only)."""
    for data in cell.displays:
        assert data.get("text/plain", "").strip() or data.get("text/html", "").strip(), data
        assert "application/vnd.jupyter.widget-view+json" not in data


# --------------------------------------------------------------------------- interrupts


BIG = "".join(
    f"## Part {i}\n\nA paragraph of the long reply, number {i}, with `code` and *emphasis*.\n\n"
    for i in range(25_000)
)  # about 2 MB

PRESS_STOP_AS_THE_STATIC_VIEW_GOES_OUT = """
import os, signal
_publisher = get_ipython().display_pub
_publish = _publisher.publish
_pressed = []

def _publish_pressing_stop(*args, **kwargs):
    data = kwargs.get("data", args[0] if args else {})
    # The static view's first output (the live widget's own display carries no HTML).
    if 'class="nbclaude"' in data.get("text/html", "") and not _pressed:
        _pressed.append(True)
        os.kill(os.getpid(), signal.SIGINT)  # what the stop button sends the kernel
    return _publish(*args, **kwargs)

_publisher.publish = _publish_pressing_stop
"""


def raised_by_nbclaude(cell: Cell) -> bool:
    """Whether the cell's error came from nbclaude, rather than IPython's own code."""
    return "nbclaude" in "".join(cell.traceback) or "ClaudeError" in "".join(cell.traceback)


def test_an_interrupt_while_a_finished_reply_is_rendered_keeps_it_whole(k: Kernel) -> None:
    """Press stop just as the whole reply's static view goes out to the front end."""
    k.fake.enqueue(text_reply(BIG, chunk_size=400))
    assert k.run(PRESS_STOP_AS_THE_STATIC_VIEW_GOES_OUT).status == "ok"
    try:
        cell = k.run("%%claude -o whole\nwrite a book")
    finally:
        k.run("_publisher.publish = _publish")
    assert k.run("print(_pressed)").printed.strip() == "[True]"
    line = one_line(cell)
    assert "Interrupted while the reply was shown: it is complete" in line
    state = k.state()
    assert (state["complete"], state["error"], state["text"]) == (True, None, BIG)
    assert state["run"] == [True, None]
    assert k.run("print(whole is _claude)").printed.strip() == "True"
    # The static view was rendered when the stop came: it is on screen whole, every output
    # of it, in place of the live view.
    assert_shown_without_empty_outputs(cell)
    assert cell.displays[0]["text/plain"] == BIG
    shown = "".join(data["text/html"] for data in cell.displays)
    assert shown.count("<h2") == BIG.count("## Part")
    assert "nbclaude-usage" in cell.displays[-1]["text/html"]


def test_an_interrupt_at_any_moment_of_a_long_reply_keeps_it_bound_and_shown(
    k: Kernel,
) -> None:
    """Press stop late in a 2 MB reply, at moments spread over its last stretch.

    Wherever the interrupt lands (still streaming, or rendering the static view), the
    cell ends with one line, ``_claude`` holds everything that arrived, and the output
    shows it. (An interrupt can also land after nbclaude returned, in IPython's own code,
    which reports it as it reports any interrupt; the reply is complete and kept then.)
    """
    k.fake.enqueue(text_reply(BIG, chunk_size=400))
    started = time.monotonic()
    cell = k.run("%%claude\nwrite a book")
    whole = time.monotonic() - started
    assert cell.status == "ok", cell.traceback
    for fraction in (0.7, 0.8, 0.85, 0.9, 0.95, 0.99):
        k.fake.enqueue(text_reply(BIG, chunk_size=400))
        stop_at = time.monotonic() + fraction * whole
        cell = k.run_interrupted("%%claude\nwrite a book", lambda t=stop_at: time.monotonic() >= t)
        state = k.state()
        assert state["type"] == "Reply"
        assert BIG.startswith(state["text"])
        assert state["run"] == [state["complete"], state["error"]]
        assert_shown_without_empty_outputs(cell)
        # The widget's output holds the text (a long reply's later outputs, HTML only).
        last_words = state["text"].rstrip().rsplit("\n", 1)[-1][-30:]
        assert last_words in cell.displays[0]["text/plain"]
        if cell.status == "error" and raised_by_nbclaude(cell):
            assert "Interrupted" in one_line(cell)
        elif cell.status == "error":
            assert state["complete"], cell.traceback


def test_the_stop_button_during_dry_run_and_models_is_one_line(k: Kernel) -> None:
    k.fake.intercept = page('{"input_tokens": 3}', "application/json", delay=30)
    for source in ("%%claude --dry-run\nhi", "%claude models"):
        before = len(k.fake.requests)
        cell = k.run_interrupted(source, lambda n=before: len(k.fake.requests) > n)
        assert "Interrupted" in one_line(cell)
        k.fake.requests[-1].wait_finished()
        assert k.fake.requests[-1].disconnected


# --------------------------------------------------------------------------- malformed streams


def with_event_after(script: Script, position: int, step: SSEEvent | RawChunk) -> Script:
    """``script`` with ``step`` inserted after its first ``position`` steps."""
    steps = (*script.steps[:position], step, *script.steps[position:])
    return Script(steps, script.status, script.headers)


@pytest.mark.parametrize(
    ("bad_event", "words"),
    [
        (RawChunk(b"event: content_block_delta\ndata: {not json at all\n\n"), "not JSON"),
        (
            SSEEvent("content_block_delta", {"type": "content_block_delta", "index": 0}),
            "malformed stream event (content_block_delta",
        ),
        (
            SSEEvent(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": 5},
                },
            ),
            "malformed stream event",
        ),
    ],
    ids=["invalid-json", "no-delta", "text-not-a-string"],
)
def test_a_malformed_event_ends_the_reply_with_one_line_and_keeps_the_text(
    k: Kernel, bad_event: SSEEvent | RawChunk, words: str
) -> None:
    script = text_reply(KEPT + "This part never arrives.", chunk_size=len(KEPT) // 3)
    k.fake.enqueue(with_event_after(script, 5, bad_event))  # start, block start, 3 deltas
    k.run("_claude = 'stale'")
    cell = k.run("%%claude -o kept\nhi")
    line = one_line(cell)
    assert words in line
    assert "Run the cell again" in line
    state = k.state()
    assert (state["type"], state["complete"], state["text"]) == ("Reply", False, KEPT)
    assert state["run"] == [False, state["error"]]
    assert k.run("print(kept is _claude)").printed.strip() == "True"
    assert_shown_without_empty_outputs(cell)
    assert KEPT.strip() in cell.displays[-1]["text/html"]
    assert "incomplete" in cell.displays[-1]["text/plain"] + cell.displays[-1]["text/html"]


# --------------------------------------------------------------------------- not the API


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (
            "<html><head><title>Sign in to the Wi-Fi</title></head><body>...</body></html>",
            "text/html",
        ),
        ('{"status": "ok", "message": "hello from the proxy"}', "application/json"),
    ],
    ids=["html", "json"],
)
def test_an_answer_that_is_not_an_event_stream_says_so(
    k: Kernel, body: str, content_type: str
) -> None:
    k.fake.enqueue(page(body, content_type))
    cell = k.run("%%claude\nhi")
    line = one_line(cell)
    assert "did not answer with an event stream" in line
    assert content_type in line
    assert "ANTHROPIC_BASE_URL" in line
    state = k.state()
    assert (state["type"], state["complete"], state["text"]) == ("Reply", False, "")
    assert_shown_without_empty_outputs(cell)

    k.fake.intercept = page(body, content_type)
    for source in ("%%claude --dry-run\nhi", "%claude models"):
        cell = k.run(source)
        line = one_line(cell)
        assert "ANTHROPIC_BASE_URL" in line, source


def test_an_html_error_page_is_cut_to_one_line(k: Kernel) -> None:
    k.fake.enqueue(page(PROXY_PAGE, status=502))
    line = one_line(k.run("%%claude\nhi"))
    assert "502 Bad Gateway" in line
    assert "<" not in line
    assert "nginx" not in line  # the page's title says it all


# --------------------------------------------------------------------------- failing early


def test_a_failure_before_anything_arrives_rebinds_claude_and_out(k: Kernel) -> None:
    k.fake.enqueue(text_reply("An earlier, complete answer."))
    assert k.run("%%claude -o answer\nfirst").status == "ok"
    k.fake.enqueue(http_error(401))
    cell = k.run("%%claude -o answer\nsecond")
    assert "Authentication failed (401)" in one_line(cell)
    state = k.state()
    assert (state["type"], state["complete"], state["text"]) == ("Reply", False, "")
    assert "401" in state["error"]
    assert state["run"] == [False, state["error"]]
    assert k.run("print(answer is _claude)").printed.strip() == "True"
    # The saved notebook keeps a line that says what happened, not an empty output.
    assert_shown_without_empty_outputs(cell)
    assert "no reply" in cell.displays[-1]["text/plain"]
    assert state["error"] not in json.dumps(cell.displays)  # said once, by the error line


def test_a_silent_api_holds_the_cell_for_the_timeout_of_each_attempt(k: Kernel) -> None:
    k.run("%config ClaudeMagics.timeout = 0.5\n%config ClaudeMagics.max_retries = 1")
    try:
        before = len(k.fake.requests)
        k.fake.enqueue(page("", delay=30), page("", delay=30))
        line = one_line(k.run("%%claude\nhi"))
        assert "timed out" in line
        assert "ClaudeMagics.timeout" in line
        assert len(k.fake.requests) - before == 2  # the first attempt and one retry

        k.fake.enqueue(stall_after(text_reply(KEPT, chunk_size=10), 4, 30))
        line = one_line(k.run("%%claude\nhi"))
        assert "stalled" in line
        assert k.state()["text"] == KEPT[:20]
    finally:
        k.run("%config ClaudeMagics.timeout = 600.0\n%config ClaudeMagics.max_retries = 0")


# --------------------------------------------------------------------------- the key


@pytest.mark.parametrize(
    "source",
    [
        "%%claude\nWhat is in here? {{ os.environ }}",
        "%%claude --dry-run\nWhat is in here? {{ os.environ }}",
        '%%claude -s "Settings: {{ settings }}"\nhi',
        "%%claude --raw\nmy key is " + TEST_KEY,
    ],
    ids=["prompt", "dry-run", "system", "typed"],
)
def test_a_prompt_that_would_carry_the_key_is_refused(k: Kernel, source: str) -> None:
    k.run("import os\nsettings = {'key': os.environ['ANTHROPIC_API_KEY'], 'n': 1}")
    before = len(k.fake.requests)
    cell = k.run(source)
    assert cell.status == "error"
    assert cell.printed.startswith("UsageError: ")
    assert cell.printed.count("\n") == 1
    assert "API key" in cell.printed
    assert "Nothing was sent" in cell.printed
    assert len(k.fake.requests) == before
    assert TEST_KEY not in json.dumps(cell.outputs)
    assert TEST_KEY[-12:] not in json.dumps(cell.outputs)
