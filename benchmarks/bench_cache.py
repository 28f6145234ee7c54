"""How fast is a cached re-run? Prints the figure DESIGN.md sets a target for.

    python benchmarks/bench_cache.py [--size 400000] [--runs 15]

A ~400 KB Markdown reply is served by the fake Messages API from a process of its own, and
a real Jupyter kernel runs, in turns: a bare SDK ``create(stream=True)`` loop over that
stream, and ``%%claude`` with the response cache on, which answers the same cell from the
store (the live view replayed, then the static view) without sending a request. The figure
is the cached re-run's wall time divided by the bare loop's (target <= 0.5), with a 95%
interval for its median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

from bench_stream import (
    BARE_LOOP,
    MAGIC,
    Timing,
    execute,
    kernel,
    median_interval,
    printed,
    server_process,
    timed,
)

from nbclaude.testing import long_markdown

CACHED = MAGIC.replace(
    "len(_claude.text))", "len(_claude.text))\nassert _claude.cached, 'the reply was not cached'"
)
"""``%%claude`` timed, failing unless the reply came from the cache."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=400_000, help="reply size in characters")
    parser.add_argument("--runs", type=int, default=15, help="runs of each")
    args = parser.parse_args()
    text = long_markdown(args.size)
    print(f"nbclaude cache benchmark, Python {sys.version.split()[0]}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as home:
        os.environ["NBCLAUDE_HOME"] = home  # a store of its own, inherited by the kernel
        with server_process(args.size) as url, kernel(url) as (_, client):
            execute(client, "%load_ext nbclaude\n%config ClaudeMagics.frontend = 'widget'")
            first = timed(client, MAGIC, text)  # asks the API, and stores the reply
            execute(client, "%claude cache on")
            timed(client, BARE_LOOP, text)  # warm up the bare loop too
            bare: list[Timing] = []
            cached: list[Timing] = []
            for round_ in range(args.runs):
                pair = [(BARE_LOOP, bare), (CACHED, cached)]
                for code, times in pair if round_ % 2 == 0 else pair[::-1]:
                    times.append(timed(client, code, text))
            _, messages = execute(client, "import nbclaude\nprint(len(nbclaude.runs()))")
            calls = int(printed(messages))
    ratios = [c.wall / b.wall for b, c in zip(bare, cached, strict=True)]
    low, high = median_interval(ratios)
    bare_wall = statistics.median(b.wall for b in bare)
    cached_wall = statistics.median(c.wall for c in cached)
    print(f"  reply: {len(text) / 1000:.0f} KB; first %%claude (asks the API) {first.wall:.3f} s")
    print(f"  bare SDK create(stream=True) loop    median {bare_wall:.3f} s")
    print(f"  %%claude, answered from the cache   median {cached_wall:.3f} s")
    print(f"  each run, cached / the bare loop     {' '.join(f'{r:.2f}' for r in ratios)}")
    ratio = statistics.median(ratios)
    print(f"  cached re-run ratio, median          {ratio:.2f}   (target <= 0.5)")
    print(f"  95% interval for that median         {low:.2f} to {high:.2f}")
    print(f"  calls in the run log: {calls} ({calls - 1} from the cache)")


if __name__ == "__main__":
    main()
