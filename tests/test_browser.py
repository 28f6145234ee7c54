"""nbclaude as a user sees it: JupyterLab in headless Chromium, driven by Playwright.

The test starts JupyterLab on 127.0.0.1 (token auth, a temporary root dir) with a kernel
environment that points the SDK at a fake Messages API, opens a notebook, runs ``%%claude``
cells against paced fake replies, and reads the DOM while they stream: the live widget
(thinking open, then folded; Markdown that grows), the static HTML that replaces it, a
reply full of injection attempts that must run nothing, and the notebook after a save and a
reload; a prompt that sent a figure (its thumbnail, in an untrusted notebook too); a tool
loop; two models side by side. The browser may reach 127.0.0.1 only; anything else is
refused and recorded.

Set ``NBCLAUDE_SCREENSHOTS=docs`` to write ``docs/streaming.png``, ``docs/final.png``,
``docs/attachments.png``, ``docs/tools.png`` and ``docs/models.png``.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, Route, sync_playwright

from nbclaude.testing import FakeServer, text_reply, tool_call_reply

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
STREAM_SECONDS = 60  # the longest a cell may stream before the test gives up
UI_TIMEOUT_MS = 60_000
SAMPLE_MS = 50
NOT_LOCAL = re.compile(r"^(?!https?://127\.0\.0\.1[:/])")
"""Every URL the page may not load: anything but 127.0.0.1."""
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Opens 127.0.0.1 URLs directly, whatever proxy the environment names."""
# Waits between samples go through Playwright (page.wait_for_timeout), never time.sleep:
# the sync API handles events, such as the routing of the page's requests, only inside
# its own calls, so a sleeping test would hold up the page it is watching.

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("NBCLAUDE_REQUIRE_BROWSER"),
        reason=f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)",
    ),
]

THINKING = (
    "The user wants the difference between a list and a tuple, with a table. The key axis "
    "is mutability; hashability, typical use and memory follow from it. A short example "
    "with a TypeError on assignment and a tuple used as a dict key makes it concrete. "
) * 2

ANSWER = """\
## Lists vs tuples

Both are ordered sequences that can hold any objects. The difference is **mutability**,
and most of the rest follows from it.

| | `list` | `tuple` |
|---|---|---|
| Syntax | `[1, 2, 3]` | `(1, 2, 3)` or `1, 2, 3` |
| Mutable | yes: append, remove, sort in place | no: fixed once created |
| Hashable | no | yes, if its items are |
| Dict key or set member | no | yes |
| Typical use | a collection that grows and shrinks | a fixed record, such as a point |

```python
point = (3, 4)            # a tuple: a fixed record
scores = [90, 85]         # a list: grows and shrinks
scores.append(77)

distances = {point: 5.0}  # tuples can be dict keys
try:
    point[0] = 10
except TypeError as err:
    print(err)            # 'tuple' object does not support item assignment
```

### When to use which

- Use a **list** for a collection of similar things whose size changes: lines of a file,
  results as they arrive, a queue of work.
- Use a **tuple** for a fixed group of different things that belong together: a
  coordinate, a database row, several values returned from a function.
- Reach for a `namedtuple` or a frozen `dataclass` once the positions need names.

**Rule of thumb:** a list when the contents will change, a tuple when the shape is fixed.
"""

PAYLOAD = "window.__pwned=1"
CONTROL_IMAGE = "https://control.example.invalid/image.png"
INJECTION = f"""\
# Injection attempts

<script>{PAYLOAD}</script>
<img src=x onerror="{PAYLOAD}">
<svg onload="{PAYLOAD}"></svg>
<iframe srcdoc="<script>parent.__pwned=1</script>"></iframe>
<a href="javascript:{PAYLOAD}">raw HTML link</a>
<div onmouseover="{PAYLOAD}" style="position:fixed;inset:0">cover</div>

[x](javascript:{PAYLOAD})
[upper case](JAVASCRIPT:{PAYLOAD})
[data link](data:text/html,<script>{PAYLOAD}</script>)
<javascript:{PAYLOAD}>
![image](x" onerror="{PAYLOAD})
![remote image](https://images.example.invalid/pixel.png)

Inline `<script>{PAYLOAD}</script>` and a fence:

```html
<script>{PAYLOAD}</script>
```
"""

# Reads one cell's output area: the live widget while it exists, the static HTML after.
CELL_STATE_JS = """
(cell) => {
  const area = cell.querySelector('.jp-OutputArea');
  // checkVisibility also sees the content of a closed <details>, which is rendered hidden.
  const shown = (el) => !!el && el.checkVisibility({visibilityProperty: true});
  const text = (el) => (el ? el.textContent : '');
  const state = {
    prompt: text(cell.querySelector('.jp-InputPrompt')).trim(),
    widgets: area.querySelectorAll('.jupyter-widgets').length,
    widgetMime: area.querySelectorAll(
      '[data-mime-type="application/vnd.jupyter.widget-view+json"]').length,
    live: null,
    static: null,
  };
  const live = area.querySelector('.nbclaude.widget-vbox');
  if (live) {
    const accordion = live.querySelector(':scope > .jupyter-widget-Accordion');
    const contents = accordion && accordion.querySelector('.jupyter-widget-Collapse-contents');
    const body = live.querySelector(':scope > .widget-vbox');
    state.live = {
      thinkingShown: shown(accordion),
      thinkingOpen: shown(contents),
      thinkingTitle: text(accordion && accordion.querySelector(
        '.jupyter-widget-Collapse-header')).trim(),
      thinkingChars: text(contents).length,
      answerChars: text(body).length,
      headings: body ? body.querySelectorAll('h2, h3').length : 0,
      tables: body ? body.querySelectorAll('table').length : 0,
      code: body ? body.querySelectorAll('pre').length : 0,
      rawMarkdown: /(^|\\n)#{2,3} |\\|---/.test(text(body)),
    };
  }
  const html = area.querySelector('[data-mime-type="text/html"] .nbclaude');
  if (html) {
    const details = html.querySelector('details.nbclaude-thinking');
    const usage = html.querySelector('.nbclaude-usage');
    state.static = {
      thinking: !!details,
      thinkingOpen: !!details && details.open,
      thinkingTextShown: !!details && shown(details.querySelector(':scope > :not(summary)')),
      usage: shown(usage) ? text(usage) : '',
      headings: html.querySelectorAll('h2, h3').length,
      tables: html.querySelectorAll('table').length,
      code: html.querySelectorAll('pre code, pre').length,
      text: text(html),
    };
  }
  return state;
}
"""

# Everything in an output (JupyterLab's own chrome aside) that could run script or load
# something.
ACTIVE_CONTENT_JS = """
(cell) => Array.from(cell.querySelectorAll('.jp-OutputArea-output')).flatMap((output) =>
  Array.from(output.querySelectorAll(
    'script, iframe, object, embed, img, svg, [onerror], [onload], [onmouseover], ' +
    'a[href]:not([href^="http:"]):not([href^="https:"])'
  ))
).map((el) => el.outerHTML.slice(0, 200))
"""


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

    def notebook_url(self, name: str) -> str:
        """The notebook's URL in a workspace of its own, so no other tab is restored."""
        workspace = Path(name).stem
        return f"{self.url}/lab/workspaces/{workspace}/tree/{name}?token={self.token}"


def lab_settings(settings_dir: Path) -> None:
    """User settings: the light theme, and no news or update checks (no network, no toasts)."""
    files = {
        "@jupyterlab/apputils-extension/themes.jupyterlab-settings": {
            "theme": "JupyterLab Light",
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


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab on a free port of 127.0.0.1, its kernels pointed at a fake API."""
    root = tmp_path_factory.mktemp("lab-root")
    home = tmp_path_factory.mktemp("lab-home")  # config, data, runtime: nothing in ~
    lab_settings(home / "settings")
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
                yield Lab(url, token, root, api)
            finally:
                stop_lab(process, url, token)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():  # only when NBCLAUDE_REQUIRE_BROWSER is set (CI)
        pytest.fail(f"{CHROMIUM} is missing and NBCLAUDE_REQUIRE_BROWSER is set")
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


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    """A fresh light-theme page that may reach 127.0.0.1 only; console errors recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 960}, color_scheme="light")
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


def cell_state(cells: Locator, index: int) -> dict[str, Any]:
    state: dict[str, Any] = cells.nth(index).evaluate(CELL_STATE_JS)
    return state


def wait_for_prompt(cells: Locator, index: int, prompt: str) -> None:
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while cell_state(cells, index)["prompt"] != prompt:
        if time.monotonic() > deadline:
            raise TimeoutError(f"cell {index} never showed {prompt}")
        cells.page.wait_for_timeout(SAMPLE_MS)


def watch_stream(
    cells: Locator, index: int, screenshot: Path | None = None
) -> list[dict[str, Any]]:
    """Sample a cell's output until the static view replaces the widget.

    Args:
        cells: The notebook's cells.
        index: The streaming cell.
        screenshot: Where to save a screenshot once the answer shows code, if anywhere.

    Returns:
        The samples, in order; the last one shows the static view.
    """
    samples = []
    deadline = time.monotonic() + STREAM_SECONDS
    page = cells.page
    while time.monotonic() < deadline:
        state = cell_state(cells, index)
        state["pwned"] = page.evaluate("() => window.__pwned")
        state["active"] = cells.nth(index).evaluate(ACTIVE_CONTENT_JS)
        samples.append(state)
        live = state["live"]
        # Mid-stream: heading and table done, the code block arriving.
        if screenshot is not None and live and live["code"] and not live["thinkingOpen"]:
            page.screenshot(path=str(screenshot))
            screenshot = None
        if state["static"] is not None and state["live"] is None:
            return samples
        page.wait_for_timeout(SAMPLE_MS)
    raise TimeoutError(f"no static view after {STREAM_SECONDS}s; last sample: {samples[-1:]}")


def save(page: Page, path: Path, expect: str) -> dict[str, Any]:
    """Save with Ctrl+S and return the notebook as written, once it holds ``expect``."""
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").press("Escape")
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        text = path.read_text(encoding="utf-8")
        if expect in text:
            saved: dict[str, Any] = json.loads(text)
            return saved
        page.wait_for_timeout(SAMPLE_MS)
    raise TimeoutError(f"{path.name} was not saved with {expect!r}")


def saved_outputs(saved: dict[str, Any], index: int) -> list[dict[str, Any]]:
    outputs: list[dict[str, Any]] = saved["cells"][index]["outputs"]
    return outputs


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


def test_reply_streams_folds_thinking_and_survives_save_and_reload(
    lab: Lab, watched: Watched
) -> None:
    name = "lists-and-tuples.ipynb"
    prompt = "Explain the difference between a list and a tuple in Python, with a table."
    path = write_notebook(lab, name, "%load_ext nbclaude", f"%%claude -t 1024\n{prompt}")
    lab.api.enqueue(
        text_reply(
            ANSWER,
            thinking=THINKING,
            thinking_chunk_size=12,
            chunk_size=12,
            delay=0.03,
            input_tokens=31,
        )
    )
    page = watched.page
    cells = open_notebook(page, lab, name)
    wait_for_kernel(page)
    run_cell(cells, 0)
    wait_for_prompt(cells, 0, "[1]:")
    run_cell(cells, 1)
    samples = watch_stream(cells, 1, screenshot_path("streaming.png"))

    live = [s["live"] for s in samples if s["live"] is not None and s["static"] is None]
    assert live, "the live widget never showed"
    # Thinking is visible, and open, while Claude thinks (before any answer).
    assert any(
        s["thinkingShown"] and s["thinkingOpen"] and s["thinkingChars"] and not s["answerChars"]
        for s in live
    ), live
    # Rendered Markdown appears and grows before the reply ends; thinking has folded.
    answering = [s for s in live if s["answerChars"]]
    sizes = [s["answerChars"] for s in answering]
    assert len(set(sizes)) >= 3, sizes
    assert sizes[0] < sizes[-1] < len(ANSWER)  # grew, and was caught before the end
    assert any(s["headings"] for s in answering)
    assert any(s["tables"] for s in answering)
    assert not any(s["rawMarkdown"] for s in answering)
    assert all(s["thinkingShown"] and not s["thinkingOpen"] for s in answering)

    # At the end: static HTML, no widget, thinking folded, the usage line shown.
    final = samples[-1]
    assert final["widgets"] == 0
    assert final["widgetMime"] == 0
    static = final["static"]
    assert static["thinking"]
    assert not static["thinkingOpen"]
    assert not static["thinkingTextShown"]
    assert static["usage"].startswith("claude-sonnet-4-6 · 31 in · ")
    assert static["headings"] == 2
    assert static["tables"] == 1
    assert static["code"]
    assert "Rule of thumb" in static["text"]
    if (final_png := screenshot_path("final.png")) is not None:
        page.screenshot(path=str(final_png))

    saved = save(page, path, "Rule of thumb")
    outputs = saved_outputs(saved, 1)
    assert [set(o["data"]) for o in outputs] == [{"text/html", "text/plain"}]
    assert TEST_KEY not in path.read_text(encoding="utf-8")

    page.reload()
    cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
    cells.nth(1).locator("[data-mime-type='text/html'] .nbclaude h2").first.wait_for()
    reloaded = cell_state(cells, 1)
    assert reloaded["widgets"] == 0
    assert reloaded["static"]["tables"] == 1
    assert reloaded["static"]["usage"] == static["usage"]
    assert not reloaded["static"]["thinkingOpen"]

    assert unexpected_errors(watched) == []
    assert watched.refused == []


def test_injected_html_and_script_run_nothing(lab: Lab, watched: Watched) -> None:
    name = "injection.ipynb"
    path = write_notebook(
        lab,
        name,
        "%load_ext nbclaude",
        "%%claude -t 1024\nTry your worst.",
        # The control: HTML that does run here, so the flags below can tell.
        f'from IPython.display import HTML\nHTML(\'<img src="{CONTROL_IMAGE}" '
        'onerror="window.__control = 1">\')',
    )
    lab.api.enqueue(
        text_reply(
            INJECTION,
            thinking=f'<img src=x onerror="{PAYLOAD}"> [y](javascript:{PAYLOAD})',
            chunk_size=9,
            delay=0.01,
        ),
    )
    page = watched.page
    cells = open_notebook(page, lab, name)
    wait_for_kernel(page)
    run_cell(cells, 0)
    wait_for_prompt(cells, 0, "[1]:")
    run_cell(cells, 1)
    samples = watch_stream(cells, 1)
    assert [s for s in samples if s["pwned"] is not None or s["active"]] == []
    assert "<script>" in samples[-1]["static"]["text"]  # shown as text

    output = cells.nth(1).locator(".jp-OutputArea")
    cells.nth(1).locator("summary").first.click()  # open the thinking, then try everything
    for anchor in output.locator("a:not([href^='http:']):not([href^='https:'])").all():
        anchor.click()  # none should exist: the sampling above found no such link
    output.get_by_text("[x](javascript:", exact=False).first.click()
    output.get_by_text("raw HTML link", exact=False).first.click()
    output.hover()
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__pwned") is None
    assert cells.nth(1).evaluate(ACTIVE_CONTENT_JS) == []

    run_cell(cells, 2)
    page.wait_for_function("() => window.__control === 1")

    saved = save(page, path, "Injection attempts")
    assert [set(o["data"]) for o in saved_outputs(saved, 1)] == [{"text/html", "text/plain"}]
    page.reload()
    cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
    cells.nth(1).locator("[data-mime-type='text/html'] .nbclaude h1").first.wait_for()
    # The saved outputs are trusted again (the control runs), and the reply still runs nothing.
    page.wait_for_function("() => window.__control === 1")
    assert page.evaluate("() => window.__pwned") is None
    assert cells.nth(1).evaluate(ACTIVE_CONTENT_JS) == []

    assert unexpected_errors(watched) == []
    # Only the control's image was requested off 127.0.0.1; the reply's remote image
    # stayed a link and nothing fetched it.
    assert set(watched.refused) == {CONTROL_IMAGE}


SENT_IMAGES_JS = """(cell) => [...cell.querySelectorAll('.jp-OutputArea img')].map((img) => ({
  src: img.src.slice(0, 22), width: img.naturalWidth, shown: img.getBoundingClientRect().width,
}))"""
"""What each image in a cell's output is, and whether the browser could draw it."""


def test_what_a_prompt_sent_shows_as_a_thumbnail_even_in_an_untrusted_notebook(
    lab: Lab, watched: Watched
) -> None:
    name = "plot.ipynb"
    path = write_notebook(
        lab,
        name,
        "%load_ext nbclaude",
        "import matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots()\nax.plot([0, 1, 2, 3, 3.2, 3.3])\nplt.close(fig)",
        "%%claude\nHere is my plot: {{ fig }}\nWhy does the curve flatten after x = 3?",
    )
    lab.api.enqueue(text_reply("## It saturates\n\nThe growth slows down.", chunk_size=8))
    page = watched.page
    cells = run_to_the_last_cell(page, lab, name)
    watch_stream(cells, 2)
    (thumbnail,) = cells.nth(2).evaluate(SENT_IMAGES_JS)
    assert thumbnail == {"src": "data:image/png;base64,", "width": 160, "shown": 160}
    assert "[image 640×480 PNG, " in cells.nth(2).inner_text()
    if (screenshot := screenshot_path("attachments.png")) is not None:
        cells.nth(2).screenshot(path=str(screenshot))

    # A notebook someone else saved is untrusted: JupyterLab sanitizes its HTML outputs.
    saved = save(page, path, "It saturates")
    (lab.root / "shared.ipynb").write_text(json.dumps(saved), encoding="utf-8")
    cells = open_notebook(page, lab, "shared.ipynb")
    cells.nth(2).locator(".nbclaude h2").first.wait_for()
    (thumbnail,) = cells.nth(2).evaluate(SENT_IMAGES_JS)
    assert thumbnail == {"src": "data:image/png;base64,", "width": 160, "shown": 160}
    assert unexpected_errors(watched) == []


def test_a_tool_loop_shows_each_call_and_result_above_the_answer(
    lab: Lab, watched: Watched
) -> None:
    name = "tools.ipynb"
    write_notebook(
        lab,
        name,
        "%load_ext nbclaude",
        "def lookup(city: str) -> dict:\n"
        '    """Population and area of a city."""\n'
        '    return {"Hanoi": {"population": 8_400_000, "area_km2": 3_359}}[city]',
        "%%claude --tools lookup\nHow dense is Hanoi?",
    )
    lab.api.enqueue(
        tool_call_reply(("lookup", {"city": "Hanoi"}), text_before="I'll look it up."),
        tool_call_reply(("lookup", {"city": "Atlantis"})),
        text_reply(
            "## Hanoi\n\nAbout **2,500 people per km2** (8.4 million on 3,359 km2). "
            "Atlantis is not in the table.",
            chunk_size=6,
            delay=0.02,
        ),
    )
    page = watched.page
    cells = run_to_the_last_cell(page, lab, name)
    samples = watch_stream(cells, 2)
    assert any(s["live"] is not None for s in samples), "the live view never showed"

    shown = cells.nth(2).locator(".jp-OutputArea").inner_text()
    order = ["I'll look it up.", "lookup", "result of", "8400000", "error from", "KeyError"]
    order.append("About 2,500 people per km2")
    positions = [shown.find(piece) for piece in order]
    assert -1 not in positions, shown
    assert positions == sorted(positions), shown
    assert cells.nth(2).evaluate(ACTIVE_CONTENT_JS) == []
    if (screenshot := screenshot_path("tools.png")) is not None:
        cells.nth(2).screenshot(path=str(screenshot))
    assert unexpected_errors(watched) == []


COLUMN_BOXES_JS = """(cell) => [...cell.querySelectorAll('.jp-OutputArea .nbclaude-column')]
  .map((column) => { const box = column.getBoundingClientRect();
                     return {x: Math.round(box.x), y: Math.round(box.y), width: box.width}; })"""
"""Where each column of the static side-by-side view is on the page."""


def test_models_side_by_side_stay_columns_and_wrap_on_a_narrow_screen(
    lab: Lab, watched: Watched
) -> None:
    name = "models.ipynb"
    write_notebook(lab, name, "%load_ext nbclaude", "%%claude -m sonnet -m haiku\nCompare.")
    for model in ("sonnet", "haiku"):
        lab.api.enqueue(
            text_reply(f"## From {model}\n\n" + "A sentence of the answer. " * 30, chunk_size=8)
        )
    page = watched.page
    cells = run_to_the_last_cell(page, lab, name)
    cells.nth(1).locator(".jp-OutputArea .nbclaude-column").nth(1).wait_for()
    left, right = cells.nth(1).evaluate(COLUMN_BOXES_JS)
    assert left["y"] == right["y"]  # side by side
    assert right["x"] > left["x"] + left["width"] - 1
    if (screenshot := screenshot_path("models.png")) is not None:
        cells.nth(1).screenshot(path=str(screenshot))
    page.set_viewport_size({"width": 520, "height": 960})
    page.wait_for_timeout(300)
    top, below = cells.nth(1).evaluate(COLUMN_BOXES_JS)
    assert below["y"] > top["y"]  # wrapped, one under the other
    assert unexpected_errors(watched) == []


def test_rows_show_a_bar_then_each_answer_opens_from_its_row(lab: Lab, watched: Watched) -> None:
    name = "rows.ipynb"
    write_notebook(
        lab,
        name,
        "%load_ext nbclaude",
        "reviews = ['Great pans', 'Broke in a week', 'Too heavy']",
        "%%claude --over reviews --concurrency 1\nRate: {{ item }}",
    )
    for number in range(3):
        lab.api.enqueue(
            text_reply(f"## Rating {number}\n\n**{number + 2} / 5**, for a reason.", delay=0.05)
        )
    page = watched.page
    cells = run_to_the_last_cell(page, lab, name)
    output = cells.nth(2).locator(".jp-OutputArea")
    output.get_by_text(" / 3 done", exact=False).first.wait_for()  # the live bar
    rows = output.locator("[data-mime-type='text/html'] details.nbclaude-row")
    rows.nth(2).wait_for()
    assert rows.count() == 3
    assert "3 of 3 done" in output.inner_text()
    assert not rows.nth(1).locator("h2").is_visible()  # folded until opened
    rows.nth(1).locator("summary").click()
    assert rows.nth(1).locator("h2").is_visible()
    assert "Rating" in rows.nth(1).locator("h2").inner_text()
    assert unexpected_errors(watched) == []
