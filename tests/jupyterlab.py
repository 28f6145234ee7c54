"""A JupyterLab in headless Chromium, for the browser tests and the browser benchmark.

JupyterLab runs on 127.0.0.1 (token auth, a temporary root dir) with a kernel environment
that points the SDK at a fake Messages API; Playwright drives Debian's Chromium, and the
page may reach 127.0.0.1 only: anything else is refused and recorded.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import nbformat
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, Route, sync_playwright

from nbclaude.testing import FakeServer, text_reply

from .conftest import ROOT, TEST_KEY

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
LAB_START_SECONDS = 90
UI_TIMEOUT_MS = 60_000
SWAP_SECONDS = 60
"""The longest a long reply may take to stream and be replaced by its static view."""
SAMPLE_MS = 50
NOT_LOCAL = re.compile(r"^(?!https?://127\.0\.0\.1[:/])")
"""Every URL the page may not load: anything but 127.0.0.1."""
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Opens 127.0.0.1 URLs directly, whatever proxy the environment names."""
# Waits between samples go through Playwright (page.wait_for_timeout), never time.sleep:
# the sync API handles events, such as the routing of the page's requests, only inside
# its own calls, so a sleeping test would hold up the page it is watching.


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Lab:
    """A running JupyterLab and the fake API its kernels talk to."""

    url: str
    """The server's base URL, ``http://127.0.0.1:PORT``."""
    token: str
    """The auth token."""
    root: Path
    """The server's root dir, where the test's notebooks live."""
    api: FakeServer
    """The fake Messages API in the kernels' environment."""
    settings: Path
    """Its user settings dir."""

    def use_theme(self, theme: str) -> None:
        """Switch to ``theme`` (``JupyterLab Dark``) for pages loaded from now on."""
        lab_settings(self.settings, theme)

    def notebook_url(self, name: str) -> str:
        """The notebook's URL in a workspace of its own, so no other tab is restored."""
        workspace = Path(name).stem
        return f"{self.url}/lab/workspaces/{workspace}/tree/{name}?token={self.token}"


def lab_settings(settings_dir: Path, theme: str = "JupyterLab Light") -> None:
    """User settings: the theme, and no news or update checks (no network, no toasts)."""
    files = {
        "@jupyterlab/apputils-extension/themes.jupyterlab-settings": {
            "theme": theme,
            "adaptive-theme": False,
        },
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }
    for name, values in files.items():
        path = settings_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")


def wait_for_lab(process: subprocess.Popen[bytes], url: str, token: str, log: Path) -> None:
    deadline = time.monotonic() + LAB_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{tail}")
        try:
            with LOCAL.open(f"{url}/api/status?token={token}", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:]
    raise TimeoutError(f"JupyterLab did not start in {LAB_START_SECONDS}s:\n{tail}")


def stop_lab(process: subprocess.Popen[bytes], url: str, token: str) -> None:
    """Ask the server to shut down (it stops its kernels), then make sure it is gone."""
    request = urllib.request.Request(f"{url}/api/shutdown?token={token}", method="POST")
    try:
        with LOCAL.open(request, timeout=10):
            pass
    except (urllib.error.URLError, OSError):
        pass  # already gone, or not answering: terminate below
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def running_lab(root: Path, home: Path, theme: str = "JupyterLab Light") -> Iterator[Lab]:
    """JupyterLab on a free port of 127.0.0.1, its kernels pointed at a fake API.

    Args:
        root: Its root dir, where the notebooks go.
        home: Its config, data and runtime dirs: nothing in ~.
        theme: Its theme.
    """
    settings = home / "settings"
    lab_settings(settings, theme)
    port, token = free_port(), secrets.token_hex(16)
    url = f"http://127.0.0.1:{port}"
    with FakeServer(max_response_seconds=120) as api:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
        env.update(
            ANTHROPIC_BASE_URL=api.url,
            ANTHROPIC_API_KEY=TEST_KEY,
            JUPYTER_CONFIG_DIR=str(home / "config"),
            JUPYTER_DATA_DIR=str(home / "data"),
            JUPYTER_RUNTIME_DIR=str(home / "runtime"),
            JUPYTER_PLATFORM_DIRS="1",
            NO_PROXY="127.0.0.1,localhost",  # the kernels' SDK calls the fake API directly
            no_proxy="127.0.0.1,localhost",
        )
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            f"--LabApp.user_settings_dir={home / 'settings'}",
            f"--LabApp.workspaces_dir={home / 'workspaces'}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--ServerApp.allow_root=True")  # CI containers run as root
        log = home / "lab.log"
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                command, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT
            )
            try:
                wait_for_lab(process, url, token, log)
                yield Lab(url, token, root, api, settings)
            finally:
                stop_lab(process, url, token)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's headless Chromium, driven by Playwright."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=UI_TIMEOUT_MS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Watched:
    """A page and what it did that the test must check."""

    page: Page
    errors: list[str] = field(default_factory=list)
    """Console errors and uncaught exceptions."""
    refused: list[str] = field(default_factory=list)
    """Requests to anything but 127.0.0.1, which were refused."""


@contextmanager
def watched_page(
    browser: Browser, color_scheme: Literal["light", "dark"] = "light"
) -> Iterator[Watched]:
    """A fresh page that may reach 127.0.0.1 only; console errors recorded."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 960}, color_scheme=color_scheme
    )
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    record = Watched(page)

    def refuse(route: Route) -> None:
        record.refused.append(route.request.url)
        route.abort()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            record.errors.append(message.text)

    # The pattern runs in the browser driver, so requests to 127.0.0.1 never wait for Python.
    context.route(NOT_LOCAL, refuse)
    page.on("console", on_console)
    page.on("pageerror", lambda error: record.errors.append(f"uncaught: {error}"))
    try:
        yield record
    finally:
        context.close()


def write_notebook(lab: Lab, name: str, *sources: str) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    path = lab.root / name
    nbformat.write(notebook, path)
    return path


def open_notebook(page: Page, lab: Lab, name: str) -> Locator:
    """Open a notebook, hide the file browser, and return its cells."""
    page.goto(lab.notebook_url(name))
    cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
    cells.first.wait_for()
    left_tab = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    if left_tab.count():
        left_tab.first.click()  # clicking the open tab folds the sidebar away
    return cells


def run_cell(cells: Locator, index: int) -> None:
    """Select a cell in command mode and run it in place (Ctrl+Enter adds no cell below)."""
    cell = cells.nth(index)
    cell.locator(".jp-InputPrompt").click()
    cell.page.keyboard.press("Control+Enter")


def wait_for_kernel(page: Page) -> None:
    """Wait until the notebook's kernel is connected and idle: a run before that is dropped.

    The toolbar's execution indicator says idle before there is any kernel, so read the
    status bar instead: it names the kernel and its state, ``Python 3 (ipykernel) | Idle``.
    """
    page.wait_for_function(
        """() => {
          const text = document.querySelector('.jp-StatusBar-Widget')?.textContent ?? '';
          return text.includes('| Idle') && !text.includes('No Kernel');
        }""",
        timeout=UI_TIMEOUT_MS,
    )


def wait_for_prompt(cells: Locator, index: int, prompt: str) -> None:
    """Wait until a cell's prompt reads ``prompt`` (``[2]:`` once it ran second)."""
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    input_prompt = cells.nth(index).locator(".jp-InputPrompt")
    while input_prompt.inner_text().strip() != prompt:
        if time.monotonic() > deadline:
            raise TimeoutError(f"cell {index} never showed {prompt}")
        cells.page.wait_for_timeout(SAMPLE_MS)


def unexpected_errors(watched: Watched) -> list[str]:
    """Console errors, except the failed loads of requests the test itself refused.

    JupyterLab logs no error of its own here, so any error left is one to look at.
    """
    refused = "Failed to load resource: net::ERR_FAILED"
    return [error for error in watched.errors if not (watched.refused and error == refused)]


def run_to_the_last_cell(page: Page, lab: Lab, name: str) -> Locator:
    """Open a notebook, run each cell but the last to its end, then start the last."""
    cells = open_notebook(page, lab, name)
    wait_for_kernel(page)
    last = cells.count() - 1
    for index in range(last):
        run_cell(cells, index)
        wait_for_prompt(cells, index, f"[{index + 1}]:")
    run_cell(cells, last)
    return cells


def screenshot_path(name: str) -> Path | None:
    """Where to save a screenshot, if ``NBCLAUDE_SCREENSHOTS`` asks for them."""
    folder = os.environ.get("NBCLAUDE_SCREENSHOTS")
    if not folder:
        return None
    path = Path(folder)
    path = path if path.is_absolute() else ROOT / path
    path.mkdir(parents=True, exist_ok=True)
    return path / name


# Long tasks (over 50 ms) on the main thread, and when the live view last changed and the
# static view first showed.
LONG_TASKS_JS = """
(cell) => {
  window.__tasks = [];
  window.__times = {lastLive: null, firstStatic: null, lastStatic: null, outputs: 0};
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      window.__tasks.push({start: entry.startTime, duration: entry.duration});
    }
  }).observe({type: 'longtask'});
  const area = cell.querySelector('.jp-OutputArea');
  new MutationObserver(() => {
    const now = performance.now();
    const times = window.__times;
    if (area.querySelector('.nbclaude-live')) times.lastLive = now;
    const parts = area.querySelectorAll('[data-mime-type="text/html"] .nbclaude').length;
    if (parts) {
      if (times.firstStatic === null) times.firstStatic = now;
      if (parts !== times.outputs) times.lastStatic = now;
      times.outputs = parts;
    }
  }).observe(area, {childList: true, subtree: true, characterData: true});
}
"""


def swap_figures(page: Page, cells: Locator, index: int) -> dict[str, Any]:
    """Run a cell whose reply is long, and measure the main thread around its end.

    Returns:
        ``longest``: the longest task (ms) from the live view's last change to 3 s later;
        ``tasks``: those tasks' durations; ``outputs``: the static view's outputs; and
        ``swap``: ms from the live view's last change to the static view's last output.
    """
    cells.nth(index).evaluate(LONG_TASKS_JS)
    run_cell(cells, index)
    deadline = time.monotonic() + SWAP_SECONDS
    while time.monotonic() < deadline:
        times = page.evaluate("() => window.__times")
        if (
            times["lastStatic"] is not None
            and cells.nth(index).locator(".nbclaude-live").count() == 0
        ):
            break
        page.wait_for_timeout(200)
    else:
        raise TimeoutError("the static view never replaced the live one")
    page.wait_for_timeout(3500)
    times = page.evaluate("() => window.__times")
    tasks = page.evaluate("() => window.__tasks")
    end = times["lastLive"]
    after = [
        t["duration"]
        for t in tasks
        if end <= t["start"] + t["duration"] and t["start"] <= end + 3000
    ]
    return {
        "longest": max(after, default=0.0),
        "tasks": [round(d) for d in after],
        "outputs": times["outputs"],
        "swap": times["lastStatic"] - end,
    }


def long_reply_figures(
    page: Page, lab: Lab, name: str, text: str
) -> tuple[Locator, dict[str, Any]]:
    """Open notebook ``name``, run its first cell, then its second, a ``%%claude`` cell
    answered with ``text``, measuring the end of the reply (see :func:`swap_figures`).

    Returns:
        The notebook's cells, and the figures.
    """
    lab.api.enqueue(text_reply(text, chunk_size=200))
    cells = open_notebook(page, lab, name)
    wait_for_kernel(page)
    run_cell(cells, 0)
    wait_for_prompt(cells, 0, "[1]:")
    return cells, swap_figures(page, cells, 1)
