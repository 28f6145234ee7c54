"""The README's benchmark commands run and print every figure DESIGN.md sets a target for.

Nothing here judges a figure: speed is the benchmark's to report, never a test's to time.
A short reply and few runs keep it to seconds; the benchmark itself checks that every
reply arrives whole, in the bare loop and through ``%%claude``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nbclaude.testing import REPLY_SHAPES

from .conftest import ROOT

BENCHMARK = ROOT / "benchmarks" / "bench_stream.py"
CACHE_BENCHMARK = ROOT / "benchmarks" / "bench_cache.py"
TIMEOUT = 300

NUMBER = r"[-+]?\d[\d,]*(?:\.\d+)?"
FIGURES = {
    "update cost at 50 KB": rf"one update with +50 KB shown +p99 {NUMBER} ms",
    "update cost at 500 KB": rf"one update with 500 KB shown +p99 {NUMBER} ms",
    "first paint": rf"first delta to first paint +{NUMBER} ms",
    "bare loop": rf"bare SDK create\(stream=True\) loop +median {NUMBER} s, kernel CPU {NUMBER} s",
    "%%claude": rf"%%claude \(widget view\) +median {NUMBER} s, kernel CPU {NUMBER} s",
    "each run's ratio": rf"each run, %%claude / the bare loop +{NUMBER} {NUMBER}",
    "wall time ratio": rf"wall time ratio, median of the runs +{NUMBER} +\(target <= 1\.2\)",
    "its interval": rf"95% interval for that median +{NUMBER} to {NUMBER}",
    "where the difference lies": rf"{NUMBER} ms wall time, {NUMBER} ms kernel CPU",
    **{
        f"bytes ratio, {shape}": rf"{shape}: {NUMBER} KB(?:.*\n)+? +bytes sent / final HTML +"
        rf"{NUMBER} +\(target <= 1\.5\)"
        for shape in REPLY_SHAPES
    },
    "message rate": rf"widget messages per second +{NUMBER} +\(target <= 30\)",
}


@pytest.fixture(scope="module")
def printed() -> str:
    """What one short run of the benchmark printed (it fails the tests if it failed)."""
    return run_benchmark(BENCHMARK)


def run_benchmark(path: Path, *arguments: str) -> str:
    """Run a benchmark on a short reply, twice each (or with ``arguments``); what it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    # A session of its own: on a timeout, its kernel and server go down with it.
    process = subprocess.Popen(
        [sys.executable, str(path), *(arguments or ("--size", "20000", "--runs", "2"))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"the benchmark did not finish in {TIMEOUT} s")
    assert process.returncode == 0, err[-2000:]
    return out


@pytest.mark.parametrize("figure", FIGURES)
def test_the_benchmark_prints_the_figure(printed: str, figure: str) -> None:
    assert re.search(FIGURES[figure], printed), f"no {figure} in:\n{printed}"


def test_the_benchmark_reports_the_reply_it_streamed(printed: str) -> None:
    assert "reply: 20 KB in 1,012 text deltas, unpaced, 2 runs each" in printed
    ratios = re.search(rf"each run, %%claude / the bare loop +((?:{NUMBER} ?)+)", printed)
    assert ratios is not None
    assert len(ratios.group(1).split()) == 2


CACHE_FIGURES = {
    "bare loop": rf"bare SDK create\(stream=True\) loop +median {NUMBER} s",
    "cached re-run": rf"%%claude, answered from the cache +median {NUMBER} s",
    "ratio": rf"cached re-run ratio, median +{NUMBER} +\(target <= 0\.5\)",
    "its interval": rf"95% interval for that median +{NUMBER} to {NUMBER}",
    "cache hits": r"calls in the run log: 3 \(2 from the cache\)",
}


@pytest.fixture(scope="module")
def cache_printed() -> str:
    return run_benchmark(CACHE_BENCHMARK)


@pytest.mark.parametrize("figure", CACHE_FIGURES)
def test_the_cache_benchmark_prints_the_figure(cache_printed: str, figure: str) -> None:
    assert re.search(CACHE_FIGURES[figure], cache_printed), f"no {figure} in:\n{cache_printed}"


MANY_BENCHMARK = ROOT / "benchmarks" / "bench_many.py"
MANY_FIGURES = {
    "rows": r"6 rows, 0\.05 s each, concurrency 3: 6 complete",
    "wall time": rf"wall time +{NUMBER} s \(ideal 0\.10 s\)",
    "ratio": rf"wall time / ideal +{NUMBER} +\(target <= 1\.3\)",
    "kernel CPU": rf"kernel CPU per row +{NUMBER} ms",
    "messages": rf"widget messages per second +{NUMBER} +\(target <= 30\)",
}


@pytest.fixture(scope="module")
def many_printed() -> str:
    return run_benchmark(MANY_BENCHMARK, "--rows", "6", "--latency", "0.05", "--concurrency", "3")


@pytest.mark.parametrize("figure", MANY_FIGURES)
def test_the_rows_benchmark_prints_the_figure(many_printed: str, figure: str) -> None:
    assert re.search(MANY_FIGURES[figure], many_printed), f"no {figure} in:\n{many_printed}"
