"""The render worker: the same HTML as rendering in the kernel, and a fallback when it dies."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell

from nbclaude.markdown import render
from nbclaude.testing import FakeServer, text_reply
from nbclaude.worker import RemoteRenderer, RenderWorker, WorkerError

from .conftest import run

REPLY = (
    "# A heading\n\nSome *text* with `code` and a [link][ref].\n\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    "```python\ndef f(x):\n    return {x: 1}\n```\n\n"
    "- one\n- two\n\n  continued\n\n"
    "[ref]: https://example.com\n\n"
    "Inline $x_1 * y_2$ math and a final paragraph.\n"
)


@pytest.fixture
def worker() -> Iterator[RenderWorker]:
    started = RenderWorker()
    assert started.wait_ready(30), "the render worker did not start"
    yield started
    started.close()


NO_FORWARD_REFERENCES = REPLY.replace("[link][ref]", "[link](https://example.com)")


@pytest.mark.parametrize("text", [REPLY, NO_FORWARD_REFERENCES], ids=["refs", "no-refs"])
@pytest.mark.parametrize("seed", range(4))
def test_remote_rendering_matches_rendering_in_the_kernel(
    worker: RenderWorker, seed: int, text: str
) -> None:
    rng = random.Random(seed)
    renderer = RemoteRenderer(worker, (1, seed))
    shown: list[str] = []
    position = 0
    while position < len(text):
        step = rng.randint(1, 12)
        renderer.append(text[position : position + step])
        position += step
        shown.append(renderer.update().frozen)
    last = renderer.update(wait=True)
    shown.append(last.frozen)
    live = "".join(shown) + last.tail
    if text is NO_FORWARD_REFERENCES:
        # Live: frozen HTML once, in order, then the current tail. (With a definition
        # after its use, the live view may lag: the renderer's documented exception.)
        assert live == render(text)
    assert renderer.finish() == render(text)


def test_two_renderers_share_one_worker(worker: RenderWorker) -> None:
    first, second = RemoteRenderer(worker, (2, 0)), RemoteRenderer(worker, (2, 1))
    first.append("# One\n")
    second.append("*two*\n")
    assert first.finish() == render("# One\n")
    assert second.finish() == render("*two*\n")


def test_a_dead_worker_is_reported_not_waited_on(worker: RenderWorker) -> None:
    renderer = RemoteRenderer(worker, (3, 0))
    renderer.append("text\n")
    renderer.update(wait=True)
    worker._process.kill()
    worker._process.wait(timeout=10)
    renderer.append("more\n")
    with pytest.raises(WorkerError):
        renderer.finish(timeout=10)


def test_magic_output_is_exact_with_the_worker_and_after_it_dies(
    ip: InteractiveShell, api_env: FakeServer
) -> None:
    from nbclaude.worker import shared_worker

    ip.run_cell("%config ClaudeMagics.frontend = 'widget'", store_history=False)
    shared = shared_worker()
    assert shared is not None
    assert shared.wait_ready(30)
    api_env.enqueue(text_reply(REPLY, chunk_size=3))
    result, captured = run(ip, "%%claude\nwith the worker")
    assert result.success, result.error_in_exec
    assert render(REPLY) in captured.outputs[-1].data["text/html"]

    shared._process.kill()
    shared._process.wait(timeout=10)
    api_env.enqueue(text_reply(REPLY, chunk_size=3))
    result, captured = run(ip, "%%claude\nafter the worker died")
    assert result.success, result.error_in_exec
    assert render(REPLY) in captured.outputs[-1].data["text/html"]
    # A new worker is started for the next reply.
    replacement = shared_worker()
    assert replacement is not None
    assert replacement is not shared
