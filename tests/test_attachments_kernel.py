"""Figures, images, PDFs and files sent from notebook cells, in real kernels.

The fake server records each request; the tests read its body block by block, and check
what a saved notebook keeps (a thumbnail, never the image sent) and what the run log keeps
(a placeholder, never the bytes).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nbclaude.testing import FakeServer, text_reply

from .attachment_files import PDF, block_types, decoded_image, image_bytes
from .conftest import TEST_KEY
from .kernels import Cell, NotebookKernel, kernel_env, run_cell, running_kernel

PLOT = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
x = np.linspace(0, 6, 200)
fig, ax = plt.subplots()
ax.plot(x, np.tanh(x - 3))
plt.close(fig)
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotebookKernel]:
    folder = tmp_path_factory.mktemp("notebook")
    (folder / "paper.pdf").write_bytes(PDF)
    (folder / "data").mkdir()
    (folder / "data" / "scan.jpg").write_bytes(image_bytes(3000, 2000, "JPEG"))
    (folder / "blob.bin").write_bytes(bytes(range(256)) * 8)
    with FakeServer(max_response_seconds=60) as fake:
        env = kernel_env(ANTHROPIC_BASE_URL=fake.url, ANTHROPIC_API_KEY=TEST_KEY)
        with running_kernel(env) as (manager, client):
            started = NotebookKernel(manager, client, fake)
            cell = started.run(f"import os\nos.chdir({str(folder)!r})\n%load_ext nbclaude")
            assert cell.status == "ok", cell.traceback
            yield started


def test_a_figure_is_sent_at_its_place_and_the_notebook_keeps_a_thumbnail(
    k: NotebookKernel,
) -> None:
    assert k.run(PLOT).status == "ok"
    k.fake.enqueue(text_reply("The curve is a tanh: it flattens as it saturates."))

    cell = k.run(
        "%%claude -o answer\nHere is my plot: {{ fig }}\nWhy does the curve flatten after x = 3?"
    )

    assert cell.status == "ok", cell.traceback
    content = k.content()
    assert block_types(content) == ["text", "image:image/png", "text"]
    assert content[0]["text"] == "Here is my plot: "
    assert decoded_image(content[1]).size == (640, 480)
    assert content[2]["text"] == "\nWhy does the curve flatten after x = 3?\n"
    # The live view showed what was sent while the reply streamed...
    assert "nbclaude-sent" in cell.widget_state
    assert "data:image/png;base64," in cell.widget_state
    # ... and the static view keeps it: a small thumbnail and its placeholder.
    assert '<img src="data:image/png;base64,' in cell.html
    assert 'width="160" height="120"' in cell.html
    assert "[image 640&#215;480 PNG, " in cell.html
    assert "it flattens as it saturates" in cell.html
    (thumbnail,) = cell.thumbnails
    assert len(thumbnail) < 10_000 < len(content[1]["source"]["data"])
    assert cell.saved_size < 20_000, cell.saved_size
    # The run log keeps the placeholder.
    logged = k.run("import nbclaude, json; print(json.dumps(nbclaude.runs()[-1].request))")
    assert "[image 640\\u00d7480 PNG, " in logged.printed
    assert len(logged.printed) < 1000


def test_files_go_first_a_large_scan_is_downscaled_and_nothing_large_is_saved(
    k: NotebookKernel,
) -> None:
    k.fake.enqueue(text_reply("The paper is short; the scan is a gradient."))

    cell = k.run(
        "%%claude -f paper.pdf -f data/scan.jpg\n"
        "Summarise the paper and say whether the scan matches its Figure 2."
    )

    assert cell.status == "ok", cell.traceback
    content = k.content()
    assert block_types(content) == ["document:application/pdf", "image:image/jpeg", "text"]
    assert content[0]["title"] == "paper.pdf"
    assert decoded_image(content[1]).size == (1568, 1045)
    assert "[PDF paper.pdf, " in cell.html
    assert "downscaled from 3000&#215;2000" in cell.html
    # The scan sent is about 100 KB of base64: the notebook keeps a thumbnail of a few KB.
    (thumbnail,) = cell.thumbnails
    assert len(thumbnail) < 10_000
    assert len(content[1]["source"]["data"]) > 50_000
    assert cell.saved_size < 20_000, cell.saved_size


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("%%claude -f missing.png\nWhat is this?", "-f missing.png: no such file"),
        ("%%claude -f data\nWhat is this?", "-f data: is a folder, not a file"),
        ("%%claude -f blob.bin\nWhat is this?", "-f blob.bin: not an image (PNG, JPEG"),
        ("%%claude -s 'Judge {{ fig }}'\nHi", "cannot go in the system prompt"),
        (
            "from IPython.display import Image\nremote = Image(url='https://example.com/a.png')\n"
            "get_ipython().run_cell_magic('claude', '', 'Look: {{ remote }}')",
            "holds no bytes",
        ),
    ],
)
def test_what_cannot_be_sent_ends_the_cell_in_one_line_and_sends_nothing(
    k: NotebookKernel, source: str, expected: str
) -> None:
    if "fig" in source:
        assert k.run(PLOT).status == "ok"
    before = len(k.fake.requests)
    cell = k.run(source)
    assert expected in cell.usage_error()
    assert len(k.fake.requests) == before


def test_dry_run_shows_placeholders_and_counts_the_image(k: NotebookKernel) -> None:
    assert k.run(PLOT).status == "ok"
    before = len(k.fake.requests)

    cell = k.run("%%claude --dry-run -o planned\nExplain {{ fig }} in one line.")

    assert cell.status == "ok", cell.traceback
    assert "[image 640×480 PNG, " in cell.printed
    assert "iVBOR" not in cell.printed
    assert [r.path for r in k.fake.requests[before:]] == ["/v1/messages/count_tokens"]
    tokens = k.run("print(planned.input_tokens)")
    assert int(tokens.printed) > 640 * 480 // 750  # the image's tokens, and the text's


@pytest.fixture
def k(kernel: NotebookKernel) -> NotebookKernel:
    return kernel


def test_without_pillow_an_image_path_is_sent_as_it_is_and_says_so(
    tmp_path: Path, server: FakeServer
) -> None:
    (tmp_path / "wide.jpg").write_bytes(image_bytes(2000, 1000, "JPEG", noise=True))
    (tmp_path / "huge.png").write_bytes(image_bytes(9000, 10))
    server.enqueue(text_reply("Seen."))
    env = kernel_env(ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY=TEST_KEY)
    with running_kernel(env) as (_, client):
        # Pillow is not importable in this kernel, as if it were not installed.
        setup = f"import os, sys\nsys.modules['PIL'] = None\nos.chdir({str(tmp_path)!r})\n"
        content, _ = run_cell(client, setup + "%load_ext nbclaude")
        assert content["status"] == "ok", content

        cell = Cell(*run_cell(client, "%%claude -f wide.jpg\nWhat is it?"))
        assert cell.status == "ok", cell.traceback
        sent = server.requests[-1].body["messages"][-1]["content"]
        assert block_types(sent) == ["image:image/jpeg", "text"]
        assert decoded_image(sent[0]).size == (2000, 1000)  # not downscaled
        assert "sent at full size: install Pillow to downscale it" in cell.html
        # No thumbnail of a large image without Pillow to make one: the caption only.
        assert cell.thumbnails == []

        before = len(server.requests)
        cell = Cell(*run_cell(client, "%%claude -f huge.png\nWhat is it?"))
        assert "wider or taller than 8000 px, the API's limit" in cell.usage_error()
        assert len(server.requests) == before
        check = Cell(*run_cell(client, "print('PIL.Image' in sys.modules)"))
        assert check.printed.strip() == "False"
