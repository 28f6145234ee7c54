"""The store and the cache from notebook kernels: restarts, several kernels, the view.

Each test gives its kernels a store folder of its own and reads back what they wrote.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from nbclaude.store import FILE_NAME, Store
from nbclaude.testing import FakeServer, long_markdown, text_reply

from .conftest import TEST_KEY
from .kernels import (
    NotebookKernel,
    execute,
    iopub_until_idle,
    kernel_env,
    printed,
    running_kernel,
)

USAGE_LINE = re.compile(r'<div [^>]*class="nbclaude-usage">[^<]*</div>')


def kernel_for(fake: FakeServer, home: Path, **env: str) -> Any:
    """A kernel with nbclaude loaded, talking to ``fake``, keeping runs in ``home``."""
    settings = kernel_env(
        ANTHROPIC_BASE_URL=fake.url, ANTHROPIC_API_KEY=TEST_KEY, NBCLAUDE_HOME=str(home), **env
    )
    return running_kernel(settings)


def loaded(manager: Any, client: Any, fake: FakeServer) -> NotebookKernel:
    kernel = NotebookKernel(manager, client, fake)
    cell = kernel.run("%load_ext nbclaude\nimport nbclaude, json")
    assert cell.status == "ok", cell.traceback
    return kernel


def without_usage(html: str) -> str:
    return USAGE_LINE.sub("", html)


def test_runs_survive_a_kernel_restart(server: FakeServer, tmp_path: Path) -> None:
    server.enqueue(text_reply("Kept after the restart."))
    with kernel_for(server, tmp_path, JPY_SESSION_NAME="analysis/prices.ipynb") as (m, c):
        first = loaded(m, c, server)
        cell = first.run("%%claude -o kept\nRemember this.", cell_id="cell-7")
        assert cell.status == "ok", cell.traceback
    with kernel_for(server, tmp_path) as (m, c):
        second = loaded(m, c, server)
        this_session = second.run("print(len(nbclaude.runs()))")
        assert this_session.printed.strip() == "0"
        cell = second.run(
            "r = nbclaude.runs(all=True)[-1]\n"
            "print(json.dumps([len(nbclaude.runs(all=True)), r.flags, r.notebook, r.cell_id,"
            " r.complete, r.request['messages'][0]['content'], r.output_tokens > 0]))"
        )
        assert json.loads(cell.printed) == [
            1,
            "-o kept",
            "analysis/prices.ipynb",
            "cell-7",
            True,
            "Remember this.\n",
            True,
        ]
        by_notebook = second.run("print(len(nbclaude.runs(notebook='prices.ipynb')))")
        assert by_notebook.printed.strip() == "1"
    assert TEST_KEY.encode() not in b"".join(p.read_bytes() for p in tmp_path.glob("*"))


def test_a_cache_hit_sends_no_request_and_shows_the_same_reply(
    server: FakeServer, tmp_path: Path
) -> None:
    answer = long_markdown(30_000)
    server.enqueue(text_reply(answer, chunk_size=200))
    with kernel_for(server, tmp_path) as (m, c):
        kernel = loaded(m, c, server)
        original = kernel.run("%%claude\nWrite the long one.")
        assert original.status == "ok", original.traceback
        assert kernel.run("%claude cache on").status == "ok"

        cached = kernel.run("%%claude\nWrite the long one.")

        assert cached.status == "ok", cached.traceback
        assert len(server.requests) == 1
        # The live view played the stored reply before the static view replaced it.
        assert answer.split("\n", 1)[0].lstrip("# ") in cached.widget_state
        assert without_usage(cached.html) == without_usage(original.html)
        assert "· cached ·" in USAGE_LINE.findall(cached.html)[0].replace("&#183;", "·")
        flags = kernel.run("print(json.dumps([r.cached for r in nbclaude.runs()]))")
        assert json.loads(flags.printed) == [False, True]

        server.enqueue(text_reply("A fresh one."))
        fresh = kernel.run("%%claude --fresh\nWrite the long one.")
        assert "A fresh one." in fresh.html
        assert len(server.requests) == 2
        again = kernel.run("%%claude\nWrite the long one.")
        assert "A fresh one." in again.html
        assert len(server.requests) == 2


def test_two_kernels_write_at_once_and_lose_nothing(server: FakeServer, tmp_path: Path) -> None:
    calls = 15
    loop = (
        f"for i in range({calls}):\n"
        "    nbclaude.ask(f'{NAME} {i}', display='none', max_tokens=50)\n"
        "print('done')"
    )
    with kernel_for(server, tmp_path) as (m1, c1), kernel_for(server, tmp_path) as (m2, c2):
        first, second = loaded(m1, c1, server), loaded(m2, c2, server)
        assert first.run("NAME = 'first'").status == "ok"
        assert second.run("NAME = 'second'").status == "ok"
        ids = [execute(c1, loop), execute(c2, loop)]  # both kernels at once
        outputs = [iopub_until_idle(c1, ids[0]), iopub_until_idle(c2, ids[1])]
    assert [printed(output) for output in outputs] == ["done\n", "done\n"]  # no store warning
    rows = Store(tmp_path / FILE_NAME).runs()
    prompts = sorted(row.values["request"]["messages"][0]["content"] for row in rows)
    assert prompts == sorted(f"{name} {i}" for name in ("first", "second") for i in range(calls))
    assert len({row.values["session"] for row in rows}) == 2


def test_a_cell_never_fails_for_the_store(server: FakeServer, tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"garbage " * 512)
    server.enqueue(text_reply("Answered anyway."), text_reply("And again."))
    with kernel_for(server, tmp_path) as (m, c):
        kernel = loaded(m, c, server)
        first = kernel.run("%%claude\nOne.")
        second = kernel.run("%%claude\nTwo.")
    assert first.status == second.status == "ok"
    assert "Answered anyway." in first.html
    warning = [line for line in first.printed.splitlines() if line.startswith("nbclaude:")]
    assert len(warning) == 1
    assert "not an nbclaude store" in warning[0]
    assert "calls are kept in memory only" in warning[0]
    assert second.printed == ""  # said once
