"""Shared fixtures: the fake Messages API on 127.0.0.1 and a real IPython shell using it."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output

from nbclaude.testing import FakeServer

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
SSE_DIR = SHARED_DATA / "sse"
MARKDOWN_DIR = SHARED_DATA / "markdown"

# The browser tests need the [browser] extra, which `scripts/test.sh --lowest` leaves out;
# where the browser is required (CI's newest run), a missing extra fails at import.
if importlib.util.find_spec("playwright") is None and not os.environ.get(
    "NBCLAUDE_REQUIRE_BROWSER"
):
    collect_ignore = ["test_browser.py"]

TEST_KEY = "sk-ant-test-0123456789-not-a-real-key"
"""A key-shaped secret: tests check that it never shows up anywhere."""


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to run without the reference data: parametrized tests would quietly vanish."""
    if not (SSE_DIR.is_dir() and MARKDOWN_DIR.is_dir()):
        raise pytest.UsageError(
            f"Reference data missing: expected {SHARED_DATA} (the team's shared/data, "
            "checked out beside this repository)."
        )


@pytest.fixture
def server() -> Iterator[FakeServer]:
    """A fake Messages API on 127.0.0.1, stopped after the test."""
    with FakeServer(max_response_seconds=60) as fake:
        yield fake


@pytest.fixture
def api_env(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    """Point the SDK at the fake server with a test key."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_KEY)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    return server


@pytest.fixture(scope="session")
def shell() -> InteractiveShell:
    """One real IPython shell for the session (IPython allows one instance per process)."""
    return InteractiveShell.instance()


@pytest.fixture
def ip(shell: InteractiveShell, api_env: FakeServer) -> Iterator[InteractiveShell]:
    """The shell with nbclaude freshly loaded, talking to the fake server."""
    # %config writes into the shell's config, which outlives %reload_ext: start clean.
    shell.config.pop("ClaudeMagics", None)
    shell.run_cell("%reload_ext nbclaude", store_history=False)
    yield shell
    shell.run_cell("%unload_ext nbclaude", store_history=False)
    for name in ("_claude",):
        shell.user_ns.pop(name, None)


def run(ip: InteractiveShell, source: str) -> tuple[Any, CapturedIO]:
    """Run a cell, capturing its stdout, stderr and display outputs."""
    with capture_output() as captured:
        result = ip.run_cell(source, store_history=False)
    return result, captured


@pytest.fixture(autouse=True, scope="session")
def _own_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every session and kernel of the suite keeps its runs in a folder of its own, never in
    the user's data folder; a test that needs an empty store sets ``NBCLAUDE_HOME`` itself."""
    previous = os.environ.get("NBCLAUDE_HOME")
    os.environ["NBCLAUDE_HOME"] = str(tmp_path_factory.mktemp("nbclaude-home"))
    yield
    if previous is None:
        os.environ.pop("NBCLAUDE_HOME", None)
    else:
        os.environ["NBCLAUDE_HOME"] = previous


@pytest.fixture(autouse=True)
def _no_real_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing in the suite may reach the real API, whatever the caller's environment."""
    if "ANTHROPIC_BASE_URL" not in os.environ:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")


@pytest.fixture(autouse=True, scope="session")
def _stop_render_worker() -> Iterator[None]:
    """The magic starts a shared render worker process; stop it when the suite ends."""
    yield
    from nbclaude.worker import stop_shared_worker

    stop_shared_worker()
