"""How fast does a cell run over many rows? Prints the figures DESIGN.md sets targets for.

    python benchmarks/bench_many.py [--rows 100] [--latency 0.5] [--concurrency 8]

The fake Messages API (in this process) answers every request after ``--latency`` seconds
with a short reply; a real Jupyter kernel runs ``%%claude --over`` on a DataFrame of
``--rows`` rows with the widget view, while this process reads the kernel's iopub messages,
as a front end would. Figures:

* wall time divided by the ideal, rows x latency / concurrency (target <= 1.3);
* the kernel's CPU time per row;
* widget messages per second sent to the front end while the cell ran (target <= 30).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace

from bench_stream import execute, kernel, printed

from nbclaude.testing import FakeServer, Pause, text_reply

CELL = """
import time
_t, _cpu = time.perf_counter(), time.process_time()
_line = "--over rows --concurrency {concurrency}"
get_ipython().run_cell_magic("claude", _line, "Rate: {{{{ text }}}}")
print(time.perf_counter() - _t, time.process_time() - _cpu, sum(r.complete for r in _claude))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per request")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    print(f"nbclaude rows benchmark, Python {sys.version.split()[0]}, {os.cpu_count()} cores")
    answer = text_reply("**4 / 5.** Solid, with one flaw worth naming. " * 4, chunk_size=40)
    slow = replace(answer, steps=(Pause(args.latency), *answer.steps))
    with tempfile.TemporaryDirectory() as home, FakeServer(default=slow) as server:
        os.environ["NBCLAUDE_HOME"] = home
        with kernel(server.url) as (_, client):
            execute(client, "%load_ext nbclaude\n%config ClaudeMagics.frontend = 'widget'")
            rows = [f"review number {i}" for i in range(args.rows)]
            execute(client, f"import pandas as pd\nrows = pd.DataFrame({{'text': {rows!r}}})")
            started = time.monotonic()
            _, messages = execute(client, CELL.format(concurrency=args.concurrency))
            elapsed = time.monotonic() - started
    wall, cpu, complete = printed(messages).split()
    widget = [m for _, m in messages if m["msg_type"] in ("comm_open", "comm_msg", "comm_close")]
    ideal = args.rows * args.latency / args.concurrency
    print(
        f"  {args.rows} rows, {args.latency:.2f} s each, concurrency {args.concurrency}: "
        f"{int(complete)} complete"
    )
    print(f"  wall time                            {float(wall):.2f} s (ideal {ideal:.2f} s)")
    print(f"  wall time / ideal                    {float(wall) / ideal:.2f}   (target <= 1.3)")
    print(f"  kernel CPU per row                   {float(cpu) / args.rows * 1000:.1f} ms")
    print(
        f"  widget messages per second           {len(widget) / elapsed:.1f}   (target <= 30)"
        f"   ({len(widget)} in {elapsed:.2f} s)"
    )


if __name__ == "__main__":
    main()
