"""How much does showing a long reply cost? Prints the figures DESIGN.md sets targets for.

    python benchmarks/bench_stream.py [--size 400000]

Everything runs on this machine: the fake Messages API on 127.0.0.1 serves a ~400 KB
Markdown reply from a process of its own (as the real API would be elsewhere), and a real
Jupyter kernel runs ``%%claude`` against it while this process reads the kernel's iopub
messages, which is exactly what a front end would receive.

Figures, side by side in one run:

* ``%%claude`` wall time divided by a bare SDK ``create(stream=True)`` loop over the same
  stream, both run in the kernel, in turns (each run's ratio, their median with a 95%
  interval, and the ratio of the fastest run of each), after one run of each that is not
  counted (reported apart: the first reply of a session starts the render worker).
* Bytes of widget messages sent to the front end while streaming, divided by the final HTML
  bytes, for three reply shapes: many small blocks, few large ones, one huge list (paced
  stream).
* Widget messages per second while streaming (paced stream, each shape).
* p99 time of one view update with 50 KB and with 500 KB of reply already shown.
* Time from the first delta to the first paint (the first widget update that shows text).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from anthropic.types import RawContentBlockDeltaEvent, TextDelta
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from nbclaude.testing import REPLY_SHAPES, FakeServer, long_markdown, text_reply
from nbclaude.widget import WidgetView

KEY = "sk-ant-bench-not-a-real-key"
TIMEOUT = 600


@contextmanager
def server_process(size: int) -> Iterator[str]:
    """A fake Messages API in a process of its own, serving the long reply to every request.

    Yields its URL. It stops when this process closes its stdin, or ends.
    """
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        yield process.stdout.readline().strip()
    finally:
        process.stdin.close()
        process.wait(timeout=30)


def serve(size: int) -> None:
    """The server process: answer every request with the long reply, until stdin closes."""
    reply = text_reply(long_markdown(size), chunk_size=20)
    with FakeServer(max_response_seconds=TIMEOUT, default=reply) as server:
        print(server.url, flush=True)
        sys.stdin.read()


@contextmanager
def kernel(url: str) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY=KEY)
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env)
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=TIMEOUT)
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def execute(
    client: BlockingKernelClient, code: str
) -> tuple[dict[str, Any], list[tuple[float, dict[str, Any]]]]:
    """Run ``code``; return its execute_reply and its iopub messages with receipt times."""
    msg_id = client.execute(code)
    messages: list[tuple[float, dict[str, Any]]] = []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            msg = client.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append((time.monotonic(), msg))
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    reply = client.get_shell_msg(timeout=TIMEOUT)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"cell failed: {reply['content']}")
    return reply["content"], messages


def printed(messages: list[tuple[float, dict[str, Any]]]) -> str:
    return "".join(m["content"]["text"] for _, m in messages if m["msg_type"] == "stream")


BARE_LOOP = """
import time, anthropic
_client = anthropic.Anthropic()
_t, _cpu = time.perf_counter(), time.process_time()
_parts = []
with _client.messages.create(model="claude-sonnet-4-6", max_tokens=128000,
        messages=[{"role": "user", "content": "bench"}], stream=True) as _stream:
    for _event in _stream:
        if _event.type == "content_block_delta" and _event.delta.type == "text_delta":
            _parts.append(_event.delta.text)
print(time.perf_counter() - _t, time.process_time() - _cpu, len("".join(_parts)))
"""

MAGIC = """
import time
_t, _cpu = time.perf_counter(), time.process_time()
get_ipython().run_cell_magic("claude", "--max-tokens 128000", "bench")
print(time.perf_counter() - _t, time.process_time() - _cpu, len(_claude.text))
"""


class Timing(NamedTuple):
    """One timed cell, as it measured itself in the kernel."""

    wall: float
    """Seconds from the start of the call to the end."""
    cpu: float
    """CPU seconds the kernel process spent meanwhile, all its threads together."""


def timed(client: BlockingKernelClient, code: str, text: str) -> Timing:
    """Run one of the two timed cells; the times it printed."""
    _, messages = execute(client, code)
    wall, cpu, length = printed(messages).split()
    assert int(length) == len(text), "the reply did not arrive whole"
    return Timing(float(wall), float(cpu))


def wall_times(
    client: BlockingKernelClient, text: str, runs: int
) -> tuple[list[Timing], list[Timing]]:
    """Times of the bare loop and of ``%%claude``, run in turns in the kernel.

    Each run of one is next to a run of the other, so the two see the same machine,
    and which goes first alternates, so a machine that speeds up or slows down over a
    round favours neither.
    """
    bare: list[Timing] = []
    magic: list[Timing] = []
    for round_ in range(runs):
        pair = [(BARE_LOOP, bare), (MAGIC, magic)]
        for code, times in pair if round_ % 2 == 0 else pair[::-1]:
            times.append(timed(client, code, text))
    return bare, magic


def warm_up(client: BlockingKernelClient, text: str) -> tuple[Timing, Timing]:
    """One run of each that :func:`wall_times` does not count.

    The first reply of a session pays once for the render worker starting, lazy imports
    and the lexers compiling their patterns.

    Returns:
        Its times (bare loop, ``%%claude``), to report apart.
    """
    return timed(client, BARE_LOOP, text), timed(client, MAGIC, text)


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """An interval that holds the true median with at least ``confidence`` (nearly).

    Distribution-free: the median lies below the j-th smallest of n values exactly when
    fewer than j values fall below it, a binomial(n, 1/2) event; the interval runs from
    the j-th smallest to the j-th largest value, with the largest j whose two tails
    together stay within ``1 - confidence``. For 25 values it is the 8th to the 18th.
    """
    ordered = sorted(values)
    n = len(ordered)
    tail = (1 - confidence) / 2
    below = 0.0  # P(fewer than j values fall below the median)
    j = 0
    while below + (chance := math.comb(n, j) / 2**n) <= tail:
        below += chance
        j += 1
    j = max(j, 1)  # too few values for the confidence asked: the whole range
    return ordered[j - 1], ordered[n - j]


def report_wall(bare: list[Timing], magic: list[Timing]) -> None:
    ratios = [m.wall / b.wall for b, m in zip(bare, magic, strict=True)]
    low, high = median_interval(ratios)
    for name, times in (
        ("bare SDK create(stream=True) loop", bare),
        ("%%claude (widget view)", magic),
    ):
        wall = statistics.median(t.wall for t in times)
        cpu = statistics.median(t.cpu for t in times)
        print(f"  {name:<36} median {wall:.3f} s, kernel CPU {cpu:.3f} s")
    print(f"  each run, %%claude / the bare loop    {' '.join(f'{r:.2f}' for r in ratios)}")
    print(
        f"  wall time ratio, median of the runs  {statistics.median(ratios):.2f}   (target <= 1.2)"
    )
    # How far the host's noise leaves the median uncertain: on a shared machine the
    # interval is often as wide as the distance to the target.
    print(f"  95% interval for that median         {low:.2f} to {high:.2f}")
    # A busy host only ever adds time, and it adds more to %%claude, which keeps both
    # cores busy, than to the bare loop: the fastest run of each is the least disturbed.
    fastest = min(t.wall for t in magic) / min(t.wall for t in bare)
    print(f"  fastest %%claude / fastest bare loop {fastest:.2f}   (least disturbed)")
    # Where the difference lies: the kernel's own work (the view, the widget messages,
    # the final HTML) is CPU it spent; the rest of the wall-time difference is waiting,
    # mostly for the render worker, which shares the other core with the fake server.
    extra_cpu = statistics.median(m.cpu - b.cpu for b, m in zip(bare, magic, strict=True))
    extra_wall = statistics.median(m.wall - b.wall for b, m in zip(bare, magic, strict=True))
    print(
        f"  %%claude over the bare loop, per run {extra_wall * 1000:+.0f} ms wall time, "
        f"{extra_cpu * 1000:+.0f} ms kernel CPU (medians)"
    )


def message_bytes(msg: dict[str, Any]) -> int:
    return len(json.dumps(msg["content"])) + sum(len(b) for b in msg.get("buffers") or [])


def traffic(
    client: BlockingKernelClient, server: FakeServer, shape: str, text: str, delay: float
) -> None:
    server.enqueue(text_reply(text, chunk_size=20, delay=delay))
    _, messages = execute(client, MAGIC)
    widget = [
        (t, m) for t, m in messages if m["msg_type"] in {"comm_open", "comm_msg", "comm_close"}
    ]
    # The static view: the widget's output updated, then any further outputs of a long reply.
    final = [m for _, m in messages if m["msg_type"] in {"update_display_data", "display_data"}]
    html = sum(len(m["content"]["data"].get("text/html", "")) for m in final)
    sent = sum(message_bytes(m) for _, m in widget)
    span = widget[-1][0] - widget[0][0]
    seconds = float(printed(messages).split()[0])
    print(f"  {shape}: {len(text) / 1000:.0f} KB, one 20-char delta every {delay * 1000:g} ms")
    print(f"    streamed in                        {seconds:.1f} s")
    print(f"    widget messages                    {len(widget):,} ({sent / 1e6:.2f} MB)")
    print(f"    final HTML                         {html / 1e6:.2f} MB in {len(final)} outputs")
    print(f"    bytes sent / final HTML            {sent / html:.2f}   (target <= 1.5)")
    print(f"    widget messages per second         {len(widget) / span:.1f}   (target <= 30)")


def update_cost(text: str, at: int, samples: int = 300) -> list[float]:
    """Seconds per refresh of a live view that already shows ``at`` characters."""
    from nbclaude.stream import ReplyBuilder

    clock = time.monotonic
    view = WidgetView(min_interval=0.0)
    builder = ReplyBuilder()
    builder.add(_start_event())
    builder.add(_block_start_event())
    for start in range(0, at, 20):
        builder.add(_delta(text[start : start + 20]))
    view.refresh(builder.progress)
    costs = []
    for i in range(samples):
        offset = at + i * 20
        builder.add(_delta(text[offset : offset + 20]))
        started = clock()
        view.refresh(builder.progress)
        costs.append(clock() - started)
    return costs


def first_paint(text: str) -> float:
    """Seconds from the first delta reaching the builder to the first refresh showing it."""
    from nbclaude.stream import ReplyBuilder

    view = WidgetView()
    builder = ReplyBuilder()
    builder.add(_start_event())
    view.progress(builder.progress)
    builder.add(_block_start_event())
    view.progress(builder.progress)
    builder.add(_delta(text[:20]))
    arrived = builder.first_delta_at
    assert arrived is not None
    view.progress(builder.progress)
    painted = time.monotonic()
    assert view.refreshes, "the first delta was not painted at once"
    return painted - arrived


def _start_event() -> Any:
    from anthropic.types import Message, RawMessageStartEvent, Usage

    message = Message(
        id="msg_bench",
        type="message",
        role="assistant",
        model="claude-sonnet-4-6",
        content=[],
        usage=Usage(input_tokens=1, output_tokens=1),
    )
    return RawMessageStartEvent(type="message_start", message=message)


def _block_start_event() -> Any:
    from anthropic.types import RawContentBlockStartEvent, TextBlock

    return RawContentBlockStartEvent(
        type="content_block_start", index=0, content_block=TextBlock(type="text", text="")
    )


def _delta(piece: str) -> RawContentBlockDeltaEvent:
    return RawContentBlockDeltaEvent(
        type="content_block_delta", index=0, delta=TextDelta(type="text_delta", text=piece)
    )


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=400_000, help="reply size in characters")
    # One run's ratio spreads over ±0.3 on a shared two-core machine: a median of 9 moved
    # by up to ±0.1 between invocations, one of 25 by about ±0.05.
    parser.add_argument("--runs", type=int, default=25, help="runs for the wall-time ratio")
    parser.add_argument("--serve", type=int, metavar="SIZE", help=argparse.SUPPRESS)
    parser.add_argument(
        "--delay", type=float, default=0.001, help="seconds between deltas when paced"
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    text = long_markdown(args.size)
    print(f"nbclaude streaming benchmark, Python {sys.version.split()[0]}, {os.cpu_count()} cores")

    print("\nView update cost (in process)")
    long_text = long_markdown(560_000)
    for at in (50_000, 500_000):
        costs = update_cost(long_text, at)
        print(
            f"  one update with {at // 1000:>3} KB shown       p99 {p99(costs) * 1000:.2f} ms, "
            f"median {statistics.median(costs) * 1000:.2f} ms   (target < 5 ms, no growth)"
        )
    print(f"  first delta to first paint           {first_paint(text) * 1000:.2f} ms")

    with server_process(args.size) as url, kernel(url) as (_, client):
        execute(client, "%load_ext nbclaude\n%config ClaudeMagics.frontend = 'widget'")
        print("\nWall time in a real kernel, the fake server in a process of its own")
        print(
            f"  reply: {len(text) / 1000:.0f} KB in {len(text) // 20:,} text deltas, unpaced, "
            f"{args.runs} runs each"
        )
        first_bare, first_magic = warm_up(client, text)
        print(
            f"  first run of the session, not counted: bare {first_bare.wall:.3f} s, "
            f"%%claude {first_magic.wall:.3f} s"
        )
        report_wall(*wall_times(client, text, args.runs))

        print("\nTraffic to the front end, paced")
        with FakeServer(max_response_seconds=TIMEOUT) as paced_server:
            execute(client, f"%config ClaudeMagics.base_url = {paced_server.url!r}")
            for shape, make in REPLY_SHAPES.items():
                traffic(client, paced_server, shape, make(args.size), args.delay)


if __name__ == "__main__":
    main()
