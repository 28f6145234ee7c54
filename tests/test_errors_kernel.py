"""Failure paths in a real kernel: the stop button, and a saved notebook that keeps no key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from nbclaude.testing import (
    FakeServer,
    cut_after,
    error_after,
    http_error,
    text_reply,
    truncate_after,
)

from .conftest import TEST_KEY
from .kernels import (
    CELL_TIMEOUT,
    kernel_env,
    printed,
    run_cell,
    run_cell_interrupted,
    running_kernel,
    saved_outputs,
    shows,
)


@pytest.fixture
def kernel(api_env: FakeServer) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    env = kernel_env(ANTHROPIC_BASE_URL=api_env.url, ANTHROPIC_API_KEY=TEST_KEY)
    with running_kernel(env) as started:
        yield started


def test_stop_button_closes_the_stream_and_keeps_the_partial_reply(
    kernel: tuple[KernelManager, BlockingKernelClient], api_env: FakeServer
) -> None:
    manager, client = kernel
    run_cell(client, "%load_ext nbclaude")
    long = "".join(f"Sentence number {i} of a long reply. " for i in range(2000))
    api_env.enqueue(text_reply(long, chunk_size=20, delay=0.01))
    # Press stop once the reply is on screen.
    content, messages, interrupted = run_cell_interrupted(
        manager, client, "%%claude\nwrite a lot", shows("Sentence number 2 ")
    )
    assert interrupted
    assert content["status"] == "error"
    assert len(content["traceback"]) == 1
    # The text that arrived stays on screen; the usage line estimates the output tokens
    # (the API's count never came) and marks the reply incomplete.
    shown = [o["data"] for o in saved_outputs(messages) if o["output_type"] == "display_data"]
    usage = shown[-1]["text/html"].rsplit('class="nbclaude-usage">', 1)[-1]
    assert "incomplete" in usage
    assert "out (estimated)" in usage
    assert "Sentence number 0 of a long reply." in shown[-1]["text/html"]
    record = api_env.requests[0]
    record.wait_finished(timeout=10)
    assert record.disconnected
    assert record.events_sent < 1000

    content, messages = run_cell(
        client, "print(_claude.complete, len(_claude.text) > 0, _claude.error)"
    )
    assert content["status"] == "ok"
    assert printed(messages).startswith("False True Interrupted")

    # The interrupt went to the kernel's process group; the render worker ignored it.
    content, messages = run_cell(
        client,
        "from nbclaude.worker import shared_worker\n"
        "worker = shared_worker(start=False)\n"
        "print(worker is not None and worker.is_alive())",
    )
    assert printed(messages).strip() == "True"


def test_saved_notebook_of_every_failure_path_holds_no_key(
    api_env: FakeServer, tmp_path: Path
) -> None:
    cells = [
        "%load_ext nbclaude\n%xmode Verbose\n%config ClaudeMagics.max_retries = 0",
        "%%claude\n401 please",
        "%%claude\n400 please",
        "%%claude\nerror mid-stream please",
        "%%claude\ncut please",
        "%%claude\ntruncated please",
        "%%claude --max-tokens lots\nbad flag",
        "%%claude\nfine",
        "_claude",
        "%config ClaudeMagics",
        "import os\nos.environ['ANTHROPIC_API_KEY'] = os.environ['ANTHROPIC_API_KEY']",
    ]
    api_env.enqueue(
        http_error(401),
        http_error(400),
        error_after(text_reply("partial answer"), 5),
        cut_after(text_reply("partial answer"), 5),
        truncate_after(text_reply("partial answer"), 5),
        text_reply("All good."),
    )
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in cells]
    )
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute(env=kernel_env(ANTHROPIC_BASE_URL=api_env.url, ANTHROPIC_API_KEY=TEST_KEY))
    path = tmp_path / "errors.ipynb"
    nbformat.write(notebook, path)
    saved = path.read_text()

    assert TEST_KEY not in saved
    assert TEST_KEY[-12:] not in saved
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output["output_type"] == "error"
    ]
    assert len(errors) == 5  # 401, 400, error event, cut, truncated
    for error in errors:
        assert len(error["traceback"]) == 1, error["traceback"]
    # IPython prints a UsageError as one line on stderr rather than as an error output.
    bad_flag = notebook.cells[6].outputs
    assert [o["name"] for o in bad_flag] == ["stderr"]
    assert bad_flag[0]["text"].startswith("UsageError: argument --max-tokens")
    assert "All good." in saved
