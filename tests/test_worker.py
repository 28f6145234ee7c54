"""The render worker: the same HTML as rendering in the kernel, and a fallback when it dies."""

from __future__ import annotations

import gc
import os
import random
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from nbclaude.markdown import IncrementalRenderer, render
from nbclaude.testing import FakeServer, long_markdown, text_reply
from nbclaude.worker import (
    WORKER_NICENESS,
    RemoteRenderer,
    RenderWorker,
    WorkerError,
    _Requests,
)

from .conftest import run
from .test_view_traffic import browser, recorded, stream_into_view

__all__ = ["recorded"]  # a fixture, imported to be used here

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


def stream_live(
    renderer: RemoteRenderer, text: str, seed: int, *, longest: int, send_share: float = 0.0
) -> str:
    """Stream ``text`` in random pieces, each sent (``send_share`` of them) or updated.

    Returns:
        What a live view shows at the end: the frozen HTML handed out, then the tail.
    """
    rng = random.Random(seed)
    shown: list[str] = []
    position = 0
    while position < len(text):
        step = rng.randint(1, longest)
        renderer.append(text[position : position + step])
        position += step
        if send_share and rng.random() < send_share:
            renderer.send()  # frozen by the worker, handed out with the next update
        else:
            shown.append(renderer.update().frozen)
    last = renderer.update(wait=True)
    return "".join(shown) + last.frozen + last.tail


@pytest.mark.parametrize("text", [REPLY, NO_FORWARD_REFERENCES], ids=["refs", "no-refs"])
@pytest.mark.parametrize("seed", range(4))
def test_remote_rendering_matches_rendering_in_the_kernel(
    worker: RenderWorker, seed: int, text: str
) -> None:
    renderer = RemoteRenderer(worker, (1, seed))
    live = stream_live(renderer, text, seed, longest=12)
    if text is NO_FORWARD_REFERENCES:
        # Live: frozen HTML once, in order, then the current tail. (With a definition
        # after its use, the live view may lag: the renderer's documented exception.)
        assert live == render(text)
    assert renderer.finish() == render(text)


@pytest.mark.parametrize("seed", range(4))
def test_text_sent_between_updates_is_frozen_and_handed_out_in_order(
    worker: RenderWorker, seed: int
) -> None:
    renderer = RemoteRenderer(worker, (4, seed))
    text = NO_FORWARD_REFERENCES * 3
    assert stream_live(renderer, text, seed, longest=40, send_share=0.7) == render(text)
    assert renderer.finish() == render(text)


def test_an_update_after_a_send_hands_out_what_the_send_froze(worker: RenderWorker) -> None:
    renderer = RemoteRenderer(worker, (5, 0))
    renderer.append("# One\n\ntwo\n\nthree\n\nfour")
    renderer.send()
    # Nothing new to send: the update still asks, and gets the blocks the send froze
    # (all but the last block of the complete lines, which may still grow).
    update = renderer.update(wait=True)
    assert update.frozen == render("# One\n\ntwo\n\n")
    assert update.frozen + update.tail == render("# One\n\ntwo\n\nthree\n\nfour")


def test_the_final_html_crosses_the_pipe_once(worker: RenderWorker) -> None:
    # The kernel has the frozen HTML from the updates: the final answer brings the rest.
    text = long_markdown(50_000)
    renderer = RemoteRenderer(worker, (6, 0))
    stream_live(renderer, text, 0, longest=400)
    before = worker.html_received
    assert renderer.finish() == render(text)
    assert worker.html_received - before < len(render(text)) // 10


def test_a_final_rendered_anew_comes_whole(worker: RenderWorker) -> None:
    # The paragraph using [ref] is frozen before the definition arrives: the final HTML
    # renders the whole text again, differs from what was frozen, and none is reused.
    use, definition = REPLY.split("[ref]: ")
    renderer = RemoteRenderer(worker, (6, 1))
    renderer.append(use)
    shown = renderer.update(wait=True)
    assert "[link][ref]" in shown.frozen
    renderer.append("[ref]: " + definition)
    before = worker.html_received
    assert renderer.finish() == render(REPLY)
    assert worker.html_received - before == len(render(REPLY))


def test_the_worker_drains_its_pipe_while_it_renders() -> None:
    # The kernel writes requests from the thread that reads the stream: a write must never
    # wait for the worker to finish a rendering. Here nobody takes the requests, yet
    # more than a pipe's buffer of them goes through.
    read_fd, write_fd = os.pipe()
    requests = _Requests(Connection(read_fd, writable=False))
    writer_end = Connection(write_fd, readable=False)
    piece = "x" * 4096
    writer = threading.Thread(target=lambda: [writer_end.send(piece) for _ in range(256)])
    writer.start()
    writer.join(timeout=60)
    assert not writer.is_alive(), "a write waited for the reader"
    received: list[str] = []
    while len(received) < 256:
        batch = requests.take()
        assert batch is not None
        received += batch
    assert received == [piece] * 256
    writer_end.close()
    assert requests.take() is None  # the writer closed the pipe, and nothing is left


def test_a_live_view_fed_between_refreshes_ends_exactly_on_the_reply(
    worker: RenderWorker, recorded: list[tuple[str, int]]
) -> None:
    text = long_markdown(60_000)
    # A delta every 2 ms (simulated): many feeds, a refresh every 80 ms or more.
    view = stream_into_view(text, 0.002, worker=worker)
    assert view.refreshes >= 10
    assert browser().html() == render(text)
    assert sum(size for _, size in recorded) <= 1.5 * len(render(text))


def test_two_renderers_share_one_worker(worker: RenderWorker) -> None:
    first, second = RemoteRenderer(worker, (2, 0)), RemoteRenderer(worker, (2, 1))
    first.append("# One\n")
    second.append("*two*\n")
    assert first.finish() == render("# One\n")
    assert second.finish() == render("*two*\n")


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads /proc (Linux)")
def test_the_worker_and_all_its_threads_yield_the_cpu_to_the_kernel(
    worker: RenderWorker,
) -> None:
    # Rendering must not preempt the kernel reading the stream: the renderer and the
    # thread that drains its requests both run at a lower priority than ours.
    expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + WORKER_NICENESS)
    threads = os.listdir(f"/proc/{worker._process.pid}/task")
    assert len(threads) >= 2, "the request drain thread is not running"
    assert {os.getpriority(os.PRIO_PROCESS, int(tid)) for tid in threads} == {expected}


def test_rendering_leaves_no_reference_cycles_for_a_collector_to_find() -> None:
    # The worker runs with the cyclic garbage collector off, and collects once per
    # finished reply: that is only free of leaks while rendering makes no cycles.
    fixtures = Path(__file__).parent / "fixtures" / "markdown"
    texts = [path.read_text() for path in sorted(fixtures.glob("*.md"))]
    texts += [REPLY, long_markdown(30_000)]
    owners = ("markdown_it", "mdurl", "pygments", "nbclaude")
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for text in texts:
            renderer = IncrementalRenderer()
            for start in range(0, len(text), 97):
                renderer.append(text[start : start + 97])
                if start % 2:
                    renderer.freeze()
                else:
                    renderer.update()
            assert renderer.finish() == render(text)
        del renderer
        gc.collect()
        cyclic = [o for o in gc.garbage if type(o).__module__.partition(".")[0] in owners]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert not cyclic, f"rendering left cycles through {sorted({type(o).__name__ for o in cyclic})}"


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
