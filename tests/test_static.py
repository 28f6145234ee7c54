"""A long reply's static view, cut into outputs the browser takes one short task each.

Where each cut falls is judged by the standard library's HTML parser, not by the code
that cuts: a piece must be whole elements, and end at the first top-level end past its size.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from anthropic.types import Message, TextBlock, Usage

from nbclaude.markdown import render
from nbclaude.reply import Reply, Timing
from nbclaude.static import PART_SIZE, split_html, static_parts
from nbclaude.testing import REPLY_SHAPES, long_document

VOID = {"area", "br", "col", "embed", "hr", "img", "input", "source", "track", "wbr"}


class TopLevelEnds(HTMLParser):
    """The offsets at which a top-level element of some HTML ends."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=False)
        self.html = html
        self.ends: list[int] = []
        self.depth = 0
        self.lines = [0]
        for line in html.splitlines(keepends=True):
            self.lines.append(self.lines[-1] + len(line))
        self.feed(html)
        self.close()

    def _here(self) -> int:
        line, column = self.getpos()
        return self.lines[line - 1] + column

    def _ended(self) -> None:
        if self.depth == 0:
            self.ends.append(self.html.index(">", self._here()) + 1)

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag not in VOID:
            self.depth += 1
        self._ended()

    def handle_startendtag(self, tag: str, attrs: object) -> None:
        self._ended()

    def handle_endtag(self, tag: str) -> None:
        self.depth -= 1
        assert self.depth >= 0, "a closing tag with nothing open"
        self._ended()


HAND_MADE = (
    '<p>one<br>two<br />three</p><hr /><ul><li><input type="checkbox" disabled> a</li>'
    '<li><p>b</p><ul><li>c<img src="x.png" alt="c" /></li></ul></li></ul>'
    "<table><colgroup><col><col /></colgroup><tr><td>d</td></tr></table>"
    "<div><pre><code><span>e</span> <span>f</span></code></pre></div><p>g</p>"
)

DOCUMENTS = {
    "hand-made, with void elements": HAND_MADE,
    "a long document": render(long_document(120_000)),
    **{name: render(shape(60_000)) for name, shape in REPLY_SHAPES.items()},
}


@pytest.mark.parametrize("name", DOCUMENTS)
@pytest.mark.parametrize("size", [1, 7, 40, 300, 4096, 16_384, PART_SIZE, 10**7])
def test_each_piece_ends_at_the_first_top_level_end_past_its_size(name: str, size: int) -> None:
    html = DOCUMENTS[name]
    ends = TopLevelEnds(html).ends
    assert ends[-1] == len(html.rstrip()), "the document is not whole elements"
    expected = []
    start = 0
    while later := [end for end in ends if end - start >= size]:
        expected.append(html[start : min(later)])
        start = min(later)
    if start < len(html) or not expected:
        expected.append(html[start:])

    pieces = split_html(html, size)

    assert pieces == expected
    assert len(pieces) > 1 or size >= len(html) - 1


def test_one_element_longer_than_the_size_stays_one_piece() -> None:
    html = "<ul>" + "<li>item</li>" * 1000 + "</ul>"
    assert split_html(html, 100) == [html]
    assert split_html("", 100) == [""]


def finished(text: str) -> Reply:
    message = Message(
        id="msg_long",
        type="message",
        role="assistant",
        model="claude-sonnet-4-6",
        content=[TextBlock(type="text", text=text)],
        stop_reason="end_turn",
        usage=Usage(input_tokens=10, output_tokens=len(text) // 4),
    )
    return Reply.from_parts(message, complete=True, error=None, timing=Timing(0.5, 9.0))


def test_a_long_reply_is_several_outputs_that_read_as_one() -> None:
    text = long_document(400_000)
    reply = finished(text)
    parts = static_parts(reply)

    assert len(parts) > 5
    assert parts[0]["text/plain"].startswith(text[:1000])
    assert all(set(part) == {"text/html"} for part in parts[1:])
    inner = "".join(
        part["text/html"].removeprefix('<div class="nbclaude">').removesuffix("</div>")
        for part in parts
    )
    assert render(text) in inner
    assert all(len(part["text/html"]) < 2 * PART_SIZE for part in parts)
