"""nbclaude as a user sees it: JupyterLab in headless Chromium, driven by Playwright.

The test starts JupyterLab on 127.0.0.1 (token auth, a temporary root dir) with a kernel
environment that points the SDK at a fake Messages API, opens a notebook, runs ``%%claude``
cells against paced fake replies, and reads the DOM while they stream: the live widget
(thinking open, then folded; Markdown that grows), the static HTML that replaces it, a
reply full of injection attempts that must run nothing, and the notebook after a save and a
reload; a prompt that sent a figure (its thumbnail, in an untrusted notebook too); a tool
loop; two models side by side; code panels in the light and the dark theme; a 400 KB reply
that turns static in several outputs and keeps its headings out of the table of contents.
The browser may reach 127.0.0.1 only; anything else is refused and recorded.

Set ``NBCLAUDE_SCREENSHOTS=docs`` to write ``docs/streaming.png``, ``docs/final.png``,
``docs/streaming-dark.png``, ``docs/final-dark.png``, ``docs/attachments.png``,
``docs/tools.png`` and ``docs/models.png``.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page

from nbclaude.testing import long_document, stall_after, text_reply, tool_call_reply

from .conftest import TEST_KEY
from .jupyterlab import (
    CHROMIUM,
    SAMPLE_MS,
    UI_TIMEOUT_MS,
    Lab,
    Watched,
    chromium,
    long_reply_figures,
    open_notebook,
    run_cell,
    run_to_the_last_cell,
    running_lab,
    screenshot_path,
    unexpected_errors,
    wait_for_kernel,
    wait_for_prompt,
    watched_page,
    write_notebook,
)

STREAM_SECONDS = 60  # the longest a cell may stream before the test gives up

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
  const live = area.querySelector('.nbclaude-live > .nbclaude');
  if (live) {
    const details = live.querySelector('details.nbclaude-thinking');
    const summary = details && details.querySelector('summary');
    // The answer: what the reply holds besides thinking, what was sent and the status line.
    const answer = Array.from(live.children).filter((el) =>
      !el.matches('details.nbclaude-thinking, .nbclaude-sent, .nbclaude-usage'));
    const count = (selector) =>
      answer.reduce((n, el) => n + el.matches(selector) + el.querySelectorAll(selector).length, 0);
    const answerText = answer.map(text).join('');
    state.live = {
      thinkingShown: shown(details),
      thinkingOpen: !!details && details.open,
      thinkingTitle: text(summary).trim(),
      thinkingChars: details ? text(details).length - text(summary).length : 0,
      answerChars: answerText.length,
      headings: count('h2, h3'),
      tables: count('table'),
      code: count('pre'),
      rawMarkdown: /(^|\\n)#{2,3} |\\|---/.test(answerText),
      status: text(live.querySelector(':scope > .nbclaude-usage')),
    };
  }
  // A long reply's static view is several outputs: read them as one.
  const parts = Array.from(area.querySelectorAll('[data-mime-type="text/html"] .nbclaude'));
  const html = parts.length ? parts[0].cloneNode(true) : null;
  for (const part of parts.slice(1)) html.append(...part.cloneNode(true).childNodes);
  if (html) {
    const details = parts[0].querySelector('details.nbclaude-thinking');
    const usages = parts[parts.length - 1].querySelectorAll('.nbclaude-usage');
    const usage = usages[usages.length - 1];
    state.static = {
      outputs: parts.length,
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


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab on a free port of 127.0.0.1, its kernels pointed at a fake API."""
    with running_lab(
        tmp_path_factory.mktemp("lab-root"), tmp_path_factory.mktemp("lab-home")
    ) as lab:
        yield lab


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():  # only when NBCLAUDE_REQUIRE_BROWSER is set (CI)
        pytest.fail(f"{CHROMIUM} is missing and NBCLAUDE_REQUIRE_BROWSER is set")
    with chromium() as browser:
        yield browser


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    """A fresh light-theme page that may reach 127.0.0.1 only; console errors recorded."""
    with watched_page(browser) as watched:
        yield watched


def cell_state(cells: Locator, index: int) -> dict[str, Any]:
    state: dict[str, Any] = cells.nth(index).evaluate(CELL_STATE_JS)
    return state


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


# --------------------------------------------------------------------------------------
# How a reply looks, and what the page does when it ends
# --------------------------------------------------------------------------------------

MARKER = "MARKER paragraph: the reader's place, near the end of the reply."

LOOK_ANSWER = ANSWER.replace("### When to use which", f"{MARKER}\n\n### When to use which")

# Samples the output area on every frame: which view shows, where the marker paragraph is
# (from the top of the output area), how tall it is, and what fonts and places things have.
LOOK_SAMPLER_JS = """
(cell) => {
  window.__look = [];
  window.__lookStop = false;
  const area = cell.querySelector('.jp-OutputArea');
  const sample = () => {
    const live = area.querySelector('.nbclaude-live > .nbclaude');
    const part = area.querySelector('[data-mime-type="text/html"] .nbclaude');
    const root = live || part;
    if (root) {
      const top = area.getBoundingClientRect().top;
      const marker = Array.from(area.querySelectorAll('p'))
        .find((p) => p.textContent.startsWith('MARKER'));
      const paragraph = root.querySelector(':scope > p');
      const heading = root.querySelector(':scope > h2');
      const table = root.querySelector('table');
      const summary = root.querySelector('details.nbclaude-thinking > summary');
      const style = (el, name) => (el ? getComputedStyle(el)[name] : null);
      window.__look.push({
        view: live ? 'live' : 'static',
        marker: marker ? marker.getBoundingClientRect().top - top : null,
        height: area.getBoundingClientRect().height,
        paragraphFont: style(paragraph, 'fontSize'),
        paragraphLine: style(paragraph, 'lineHeight'),
        headingFont: style(heading, 'fontSize'),
        tableLeft: table
          ? table.getBoundingClientRect().left - root.getBoundingClientRect().left : null,
        summaryFont: style(summary, 'fontSize'),
        summaryStyle: style(summary, 'fontStyle'),
        summaryHeight: summary ? summary.getBoundingClientRect().height : null,
        status: live ? live.querySelector(':scope > .nbclaude-usage').textContent : null,
        end: root.textContent.slice(-120),
      });
    }
    if (!window.__lookStop) requestAnimationFrame(sample);
  };
  requestAnimationFrame(sample);
}
"""


def test_nothing_moves_when_the_live_view_becomes_static(lab: Lab, watched: Watched) -> None:
    name = "one-look.ipynb"
    write_notebook(lab, name, "%load_ext nbclaude", "%%claude -t 1024\nLists or tuples?")
    reply = text_reply(
        LOOK_ANSWER, thinking=THINKING, thinking_chunk_size=24, chunk_size=12, delay=0.02
    )
    # Silent for a moment before the first event, as the API is: the status line says
    # "waiting" for long enough to be seen, however quickly the widget appears.
    lab.api.enqueue(stall_after(reply, 0, 0.5))
    page = watched.page
    cells = open_notebook(page, lab, name)
    wait_for_kernel(page)
    run_cell(cells, 0)
    wait_for_prompt(cells, 0, "[1]:")
    cells.nth(1).evaluate(LOOK_SAMPLER_JS)
    run_cell(cells, 1)
    watch_stream(cells, 1)
    page.wait_for_timeout(500)  # frames of the static view
    page.evaluate("() => { window.__lookStop = true; }")
    samples: list[dict[str, Any]] = page.evaluate("() => window.__look")

    live = [s for s in samples if s["view"] == "live"]
    static = [s for s in samples if s["view"] == "static"]
    assert live, "the live view was never seen"
    assert static, "the static view was never seen"
    marked = [s for s in live if s["marker"] is not None]
    assert marked, [s["end"] for s in live[-3:]]
    before = marked[-1]
    after = static[-1]
    moved = abs(after["marker"] - before["marker"])
    assert moved <= 0.02 * after["height"], (before, after)
    for key in ("paragraphFont", "paragraphLine", "headingFont", "tableLeft", "summaryFont"):
        assert before[key] == after[key], (key, before[key], after[key])
    assert before["summaryStyle"] == after["summaryStyle"] == "italic"
    assert abs(before["summaryHeight"] - after["summaryHeight"]) < 1

    # The status line said what was happening, with the time and the tokens so far.
    statuses = [s["status"] for s in live]
    assert re.fullmatch(r"waiting · \d+\.\d s", statuses[0]), statuses[0]
    assert any(re.fullmatch(r"thinking · \d+\.\d s · ~\d+ tokens", s) for s in statuses)
    writing = [s for s in statuses if s.startswith("writing")]
    assert writing, statuses[-5:]
    assert all(re.fullmatch(r"writing · \d+\.\d s · ~[\d,]+ tokens", s) for s in writing)
    assert all(ord(char) < 0x2000 for status in statuses for char in status)  # no emoji
    print(f"\nmarker moved {moved:.1f} px of {after['height']:.0f} px at the swap")
    assert unexpected_errors(watched) == []


def test_a_long_reply_turns_static_in_parts_and_keeps_out_of_the_contents(
    lab: Lab, watched: Watched
) -> None:
    """A 400 KB reply shaped like a long document, at JupyterLab's default settings.

    It measures the main thread's long tasks in the 3 s after the stream ends (printed;
    ``benchmarks/bench_swap.py`` prints the same figures over several runs), and checks
    what a reader sees: every section of the reply in the static view, which came in
    several outputs, and the notebook's table of contents, which lists the notebook's own
    headings (an output's among them) but none of the reply's.
    """
    name = "long-reply.ipynb"
    text = long_document(400_000)
    write_notebook(
        lab,
        name,
        "%load_ext nbclaude\nfrom IPython.display import Markdown\nMarkdown('# Our own findings')",
        "%%claude\nThe whole manual.",
    )
    page = watched.page
    cells, figures = long_reply_figures(page, lab, name, text)
    print(
        f"\nlongest task in the 3 s after the stream ended: {figures['longest']:.0f} ms "
        f"(long tasks {figures['tasks']}); static view in {figures['outputs']} outputs"
    )
    assert figures["outputs"] > 1
    static = cells.nth(1).locator('.jp-OutputArea [data-mime-type="text/html"] .nbclaude')
    sections = static.locator("h2")
    assert sections.count() == text.count("\n## ") + 1
    assert sections.last.inner_text() == f"{sections.count()}. A chapter of the document"

    page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="table-of-contents"]').click()
    contents = page.locator(".jp-TableOfContents-content .jp-tocItem-heading")
    contents.first.wait_for()
    page.wait_for_timeout(1000)  # the contents follow the outputs on a timer
    entries = contents.all_inner_texts()
    assert any("Our own findings" in entry for entry in entries), entries
    assert not any("chapter of the document" in entry for entry in entries), entries
    assert unexpected_errors(watched) == []


FENCES = f"""\
Five blocks of code in a row:

```python
print("one")
```

```bash
echo two
```

```json
{{"three": 3}}
```

```
four, in no language
```

```python
very_long_line = ["a_name_that_goes_on_and_on_without_a_break"] * 40  # {"and a comment " * 12}
```

A paragraph after the code.
"""

CODE_LOOK_JS = """
(cell) => {
  const parts = Array.from(cell.querySelectorAll(
    '.jp-OutputArea [data-mime-type="text/html"] .nbclaude, ' +
    '.jp-OutputArea .nbclaude-live > .nbclaude'));
  const root = parts[0];
  const pres = Array.from(root.querySelectorAll('pre'));
  const panels = pres.map((pre) => pre.parentElement);
  const colour = (el) => getComputedStyle(el).backgroundColor;
  let page = cell;
  const clear = ['rgba(0, 0, 0, 0)', 'transparent'];
  while (page && clear.includes(colour(page))) page = page.parentElement;
  const gaps = panels.slice(1).map((panel, i) =>
    panel.getBoundingClientRect().top - panels[i].getBoundingClientRect().bottom);
  const after = root.querySelector(':scope > p:last-of-type');
  const last = panels[panels.length - 1];
  const longPre = pres[pres.length - 1];
  return {
    page: colour(page),
    panels: panels.map(colour),
    labels: panels.map((panel) => panel.firstElementChild === panel.querySelector('pre')
      ? '' : panel.firstElementChild.textContent),
    gaps,
    gapAfter: after.getBoundingClientRect().top - last.getBoundingClientRect().bottom,
    // The long line takes as many lines as a short one: it scrolls instead of wrapping.
    longLines: Math.round(longPre.querySelector('code').getBoundingClientRect().height /
      parseFloat(getComputedStyle(longPre).lineHeight)),
    shortLines: Math.round(pres[pres.length - 5].querySelector('code').getBoundingClientRect()
      .height / parseFloat(getComputedStyle(longPre).lineHeight)),
    whiteSpace: getComputedStyle(longPre.querySelector('code')).whiteSpace,
  };
}
"""


def channels(colour: str, over: str = "rgb(255, 255, 255)") -> tuple[float, ...]:
    """The red, green and blue a CSS colour shows as, laid over the colour ``over``."""
    red, green, blue, *alpha = (float(x) for x in re.findall(r"[\d.]+", colour))
    if not alpha:
        return red, green, blue
    return tuple(
        alpha[0] * own + (1 - alpha[0]) * below
        for own, below in zip((red, green, blue), channels(over), strict=True)
    )


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_code_blocks_are_panels_with_their_language(lab: Lab, browser: Browser, theme: str) -> None:
    dark = theme.endswith("Dark")
    lab.use_theme(theme)
    name = f"code-{'dark' if dark else 'light'}.ipynb"
    write_notebook(lab, name, "%load_ext nbclaude", "%%claude -t 1024\nShow me code.")
    lab.api.enqueue(
        text_reply(
            FENCES if not dark else LOOK_ANSWER + "\n" + FENCES,
            thinking=THINKING,
            thinking_chunk_size=24,
            chunk_size=12,
            delay=0.02,
        )
    )
    try:
        with watched_page(browser, "dark" if dark else "light") as watched:
            page = watched.page
            cells = run_to_the_last_cell(page, lab, name)
            streaming = screenshot_path("streaming-dark.png") if dark else None
            watch_stream(cells, 1, streaming)
            look = cells.nth(1).evaluate(CODE_LOOK_JS)
            if dark and (final_png := screenshot_path("final-dark.png")) is not None:
                page.screenshot(path=str(final_png))
            assert unexpected_errors(watched) == []
    finally:
        lab.use_theme("JupyterLab Light")
    page_colour = channels(look["page"])
    for panel in look["panels"]:
        # A panel of its own: clearly lighter or darker than the page it is laid over.
        shown = channels(panel, over=look["page"])
        assert max(abs(a - b) for a, b in zip(shown, page_colour, strict=True)) >= 8, look
    assert look["labels"][-5:] == ["python", "bash", "json", "", "python"], look
    assert min(look["gaps"]) >= 8, look
    assert look["gapAfter"] >= 8, look
    assert look["whiteSpace"] == "pre"
    assert look["longLines"] == look["shortLines"], "a long line of code wraps"
