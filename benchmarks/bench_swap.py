"""Does the page freeze when a long reply ends? Prints the figure DESIGN.md sets a target for.

    python benchmarks/bench_swap.py [--size 400000] [--runs 3]

JupyterLab runs on 127.0.0.1 at its default settings (the table of contents reading
outputs included), in Debian's headless Chromium driven by Playwright; its kernel runs
``%%claude`` against the fake Messages API, which streams a reply shaped like a long
document (a heading about every 4 KB, paragraphs, lists, fences, tables). The page records
every long task (over 50 ms) on its main thread, and when the live view last changed. For
each run it prints the longest task in the 3 s after the live view's last change (the
stream's end, when the static view replaces it), every long task in that window, and how
many outputs the static view took. Needs the ``browser`` extra and /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' browser harness

from nbclaude.testing import long_document
from tests.jupyterlab import (
    chromium,
    long_reply_figures,
    running_lab,
    watched_page,
    write_notebook,
)

TARGET_MS = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=400_000, help="reply size in characters")
    parser.add_argument("--runs", type=int, default=3, help="replies to measure")
    args = parser.parse_args()
    print(f"nbclaude swap benchmark, Python {sys.version.split()[0]}, {os.cpu_count()} cores")
    text = long_document(args.size)
    longest = []
    with tempfile.TemporaryDirectory() as folder:
        root, home = Path(folder, "root"), Path(folder, "home")
        root.mkdir()
        home.mkdir()
        with running_lab(root, home) as lab, chromium() as browser:
            print(
                f"  reply: {len(text) / 1000:.0f} KB shaped like a long document, "
                f"{text.count(chr(10) + '## ') + 1} headings, JupyterLab default settings"
            )
            for run in range(args.runs):
                name = f"swap-{run}.ipynb"
                write_notebook(lab, name, "%load_ext nbclaude", "%%claude\nThe whole manual.")
                with watched_page(browser) as watched:
                    _, figures = long_reply_figures(watched.page, lab, name, text)
                longest.append(figures["longest"])
                tasks = ", ".join(f"{ms} ms" for ms in figures["tasks"]) or "none"
                print(
                    f"  run {run + 1}: longest task {figures['longest']:.0f} ms; long tasks "
                    f"{tasks}; {figures['outputs']} outputs"
                )
    print(
        f"  longest task in the 3 s after the stream ends, worst of {args.runs} runs   "
        f"{max(longest):.0f} ms   (target <= {TARGET_MS} ms); "
        f"median {statistics.median(longest):.0f} ms"
    )


if __name__ == "__main__":
    main()
