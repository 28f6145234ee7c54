"""The notebooks in ``notebooks/`` and the live widget, run in a real Jupyter kernel.

Every notebook runs top to bottom with nbclient twice: in the offline demo (no key in the
kernel's environment) and against a fake server the test runs (``ANTHROPIC_BASE_URL`` and a
test key). A kernel-level test then watches the iopub channel while a paced reply streams,
to see the widget update before the static view replaces it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from nbclient import NotebookClient

from nbclaude.testing import (
    FakeServer,
    Script,
    structured_reply,
    text_reply,
    tool_call_reply,
    tool_results,
)

from .conftest import ROOT, TEST_KEY
from .kernels import (
    CELL_TIMEOUT,
    STARTUP_TIMEOUT,
    iopub_until_idle,
    kernel_env,
    running_kernel,
)

NOTEBOOKS = sorted(
    path
    for path in (ROOT / "notebooks").glob("*.ipynb")
    if not path.name.endswith(".out.ipynb")  # what scripts/quickstart.sh --execute writes
)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

FAKE_ANSWER = """\
## A fake answer

| kind | mutable |
|---|---|
| list | yes |
| tuple | no |

```python
point = (3, 4)
```
"""


def execute(path: Path, env: dict[str, str], cwd: Path) -> nbformat.NotebookNode:
    """Run a notebook top to bottom in a fresh kernel; nbclient shuts the kernel down."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        startup_timeout=STARTUP_TIMEOUT,
        kernel_name="python3",
        # nbclient keeps the state of every widget ever opened, closed ones included; what
        # JupyterLab saves by default (and what nbclaude leaves) is the outputs alone.
        store_widget_state=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute(env=env)
    return notebook


def claude_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [
        cell
        for cell in notebook.cells
        if cell.cell_type == "code" and cell.source.startswith("%%claude")
    ]


ATTACHED = "[attached]"
"""Where a prompt had an image: its ``{{ name }}`` in a cell, its block in a request."""


def prompts_in_order(notebook: nbformat.NotebookNode) -> list[str]:
    """What the notebook's cells ask, in order: ``%%claude`` cells and ``nbclaude.ask``.

    The notebooks template nothing but images: each ``{{ name }}`` is :data:`ATTACHED`.
    """
    prompts = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if cell.source.startswith("%%claude"):
            prompt = cell.source.partition("\n")[2]
            prompts.append(re.sub(r"\{\{ *[\w.]+ *\}\}", ATTACHED, prompt))
        prompts += re.findall(r'nbclaude\.ask\(\s*"([^"]*)"', cell.source)
    return prompts


def fans_out(cell: nbformat.NotebookNode) -> bool:
    """Whether a ``%%claude`` cell makes several requests (``--over``, ``-m`` repeated)."""
    line = cell.source.partition("\n")[0]
    return "--over" in line or line.count(" -m ") > 1


def requests_made(cell: nbformat.NotebookNode, notebook: nbformat.NotebookNode) -> int:
    """How many requests a ``%%claude`` cell made: one per row or model, or one."""
    line = cell.source.partition("\n")[0]
    if "--over" in line:
        (shown,) = [o for o in cell.outputs if o.output_type == "display_data"]
        return int(re.search(r"(\d+) of \d+ done", shown.data["text/plain"])[1])  # type: ignore[index]
    return max(1, line.count(" -m "))


def sent_prompt(content: str | list[dict[str, Any]]) -> str:
    """A request's prompt as text, each image in it :data:`ATTACHED`."""
    if isinstance(content, str):
        return content.rstrip("\n")
    parts = [block["text"] if block["type"] == "text" else ATTACHED for block in content]
    return "".join(parts).rstrip("\n")


def check_saved_outputs(notebook: nbformat.NotebookNode) -> list[str]:
    """Assert what a saved notebook must hold; return each ``%%claude`` cell's HTML."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output.output_type != "error", output
            assert WIDGET_VIEW not in output.get("data", {}), cell.source
    html = []
    for cell in claude_cells(notebook):
        shown = [o for o in cell.outputs if o.output_type in {"display_data", "execute_result"}]
        assert shown, cell.source
        assert set(shown[-1].data) == {"text/html", "text/plain"}, cell.source
        html.append(shown[-1].data["text/html"])
    assert html, "the notebook has no %%claude cell"
    return html


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_in_the_offline_demo(path: Path, tmp_path: Path) -> None:
    notebook = execute(path, kernel_env(), tmp_path)
    for html in check_saved_outputs(notebook):
        assert "demo: canned reply" in html
        assert "<h2 " in html or "<p>" in html
    banner = notebook.cells[1].outputs[0].data["text/plain"]
    assert "canned replies" in banner
    DEMO_CHECKS[path.name](notebook)


def check_quickstart(notebook: nbformat.NotebookNode) -> None:
    """The quickstart's own cells, in the demo."""
    # The cell that asks about a plot sent it, and keeps a thumbnail of it.
    (plot,) = [cell for cell in claude_cells(notebook) if "{{ fig }}" in cell.source]
    html = plot.outputs[-1].data["text/html"]
    assert '<img src="data:image/png;base64,' in html
    assert "<code>[image 500×300 PNG, " in html  # the demo lists what arrived
    # The tool cell called the notebook's function for each city; the schema cell parsed.
    (tools,) = [cell for cell in claude_cells(notebook) if "--tools" in cell.source]
    html = tools.outputs[-1].data["text/html"]
    assert html.count("result of") == 3
    assert "15400000" in html
    (born,) = [cell for cell in notebook.cells if cell.source == "ada.parsed.born"]
    assert born.outputs[0].data["text/plain"] == "1815"


def check_compare(notebook: nbformat.NotebookNode) -> None:
    """The comparison notebook, in the demo: every row answered, the results as tables."""
    over = [cell for cell in claude_cells(notebook) if "--over" in cell.source]
    assert len(over) == 2
    for cell in over:
        text = cell.outputs[-1].data["text/plain"]
        assert text.startswith("5 of 5 done")
        assert cell.outputs[-1].data["text/html"].count('class="nbclaude-row"') == 5
    (table,) = [cell for cell in notebook.cells if cell.source.startswith("pd.DataFrame(")]
    html = table.outputs[0].data["text/html"]
    assert html.count("</tr>") == 6  # the header and a row per review
    assert html.count("4 / 5.") == 10  # both prompts' canned answers, in every row
    (models,) = [cell for cell in claude_cells(notebook) if " -m " in cell.source]
    assert models.outputs[-1].data["text/html"].count('class="nbclaude-column"') == 2


DEMO_CHECKS = {"quickstart.ipynb": check_quickstart, "compare.ipynb": check_compare}
"""What each notebook must show in the offline demo, beyond what every one must."""


EXAMPLES = {"string": "Lagos", "integer": 1815, "number": 1.5, "boolean": True}
"""What the fake API puts in a tool's input or a structured reply, by JSON type."""


def example(schema: dict[str, Any]) -> dict[str, Any]:
    """An object that fits an object schema, its required properties filled by type."""
    properties = schema.get("properties", {})
    return {name: EXAMPLES[properties[name]["type"]] for name in schema.get("required", [])}


def fake_answer(body: dict[str, Any]) -> Script:
    """What the API would answer: a call of the first tool offered, a reply that fits the
    schema asked for, or a short answer (after thinking if the request asked for it)."""
    model = body.get("model") if isinstance(body.get("model"), str) else "claude-sonnet-4-6"
    if body.get("tools") and not tool_results(body):
        tool = body["tools"][0]
        return tool_call_reply((tool["name"], example(tool["input_schema"])), model=model)
    output_format = body.get("output_config", {}).get("format")
    if output_format is not None:
        return structured_reply(example(output_format["schema"]), model=model)
    wants_thinking = isinstance(body.get("thinking"), dict)
    return text_reply(
        FAKE_ANSWER,
        model=model,
        thinking="Thinking about it." if wants_thinking else None,
        chunk_size=16,
        delay=0.005,
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_against_the_api(path: Path, tmp_path: Path) -> None:
    with FakeServer(max_response_seconds=60, default=fake_answer) as server:
        env = kernel_env(ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY=TEST_KEY)
        notebook = execute(path, env, tmp_path)
        requests = server.requests
    for cell, html in zip(claude_cells(notebook), check_saved_outputs(notebook), strict=True):
        assert "demo" not in html
        if "--schema" not in cell.source:
            assert "<table " in html
    prompts = [request.body for request in requests if not tool_results(request.body)]
    if any(fans_out(cell) for cell in claude_cells(notebook)):
        # Rows and models go out several at a time, in no set order: one request each.
        expected = sum(requests_made(cell, notebook) for cell in claude_cells(notebook))
        assert len(prompts) == expected
        return
    # Each prompt in order; a tool loop's later requests send tool results, not prompts.
    sent = [sent_prompt(body["messages"][-1]["content"]) for body in prompts]
    assert sent == prompts_in_order(notebook)
    assert any(tool_results(request.body) for request in requests)
    assert all(TEST_KEY in json.dumps(request.headers) for request in requests)
    assert TEST_KEY not in nbformat.writes(notebook)


# --------------------------------------------------------------------------- the live widget


@pytest.fixture
def kernel(server: FakeServer) -> Iterator[BlockingKernelClient]:
    """A real kernel talking to the fake server, with nbclaude loaded; shut down after."""
    env = kernel_env(ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY=TEST_KEY)
    with running_kernel(env) as (_, client):
        reply = client.execute_interactive("%load_ext nbclaude", timeout=CELL_TIMEOUT)
        assert reply["content"]["status"] == "ok"
        yield client


def test_live_widget_updates_while_the_reply_streams(
    kernel: BlockingKernelClient, server: FakeServer
) -> None:
    paragraphs = [f"Paragraph {n} says something about streaming." for n in range(1, 31)]
    answer = "\n\n".join([*paragraphs, "THE END."])
    server.enqueue(text_reply(answer, chunk_size=10, delay=0.01))

    msg_id = kernel.execute("%%claude\nTell me about streaming.")
    messages = iopub_until_idle(kernel, msg_id, timeout=CELL_TIMEOUT)
    reply = kernel.get_shell_msg(timeout=CELL_TIMEOUT)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "ok"

    kinds = [message["msg_type"] for message in messages]
    first = kinds.index("display_data")
    assert WIDGET_VIEW in messages[first]["content"]["data"]
    display_id = messages[first]["content"]["transient"]["display_id"]
    final = len(kinds) - 1 - kinds[::-1].index("update_display_data")
    bundle = messages[final]["content"]
    assert bundle["transient"]["display_id"] == display_id
    assert set(bundle["data"]) == {"text/html", "text/plain"}
    assert "THE END." in bundle["data"]["text/html"]
    assert bundle["data"]["text/plain"] == answer

    partial = []
    for position, message in enumerate(messages):
        data = message["content"].get("data", {})
        if message["msg_type"] != "comm_msg" or data.get("method") != "custom":
            continue
        value = json.dumps(data["content"])
        if re.search(r"Paragraph \d+", value) and "THE END." not in value:
            assert position < final
            partial.append(value)
    assert len(set(partial)) >= 3, partial
    # The text grows: the last partial update reaches further than the first. (An update
    # carries what is new, not the whole reply, so compare how far they reach.)
    reach = [max(int(n) for n in re.findall(r"Paragraph (\d+)", value)) for value in partial]
    assert reach[-1] > reach[0], reach
    # Nothing reaches the front end after the static bundle but the widgets closing.
    assert all(m["msg_type"] in {"comm_close", "status"} for m in messages[final + 1 :])
