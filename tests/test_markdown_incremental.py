"""IncrementalRenderer: exact output for any chunking, and work linear in the reply.

Each check streams a text through the renderer with an ``update()`` after every
chunk, and compares with one-shot rendering:

- the final HTML equals ``render(text)`` byte for byte (invariant 1);
- after each update, the tail is exactly the end of ``render(prefix)``, and the frozen
  HTML plus the tail is all of it (invariant 2), except where the prefix defines a
  link reference or a footnote, which a block frozen earlier may use (the documented
  exception).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.utils import read_fixture_file
from mdit_py_plugins.footnote import footnote_plugin

from nbclaude.markdown import IncrementalRenderer, Update, make_parser, render

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "markdown"
SPEC = json.loads((SHARED_DATA / "commonmark.json").read_text(encoding="utf-8"))
FIXTURE_EXAMPLES = [
    pytest.param(markdown, id=f"{path.stem}:{line}")
    for path in sorted(SHARED_DATA.glob("*.md"))
    for line, _, markdown, _ in read_fixture_file(path)
]


def chunkings(text: str, seed: int, count: int = 4) -> Iterator[list[str]]:
    """The whole text, one character at a time, line by line, and random cuts."""
    yield [text]
    yield list(text)
    yield text.splitlines(keepends=True)
    rng = random.Random(seed)
    for _ in range(count):
        cuts = sorted({rng.randint(1, max(1, len(text) - 1)) for _ in range(rng.randint(1, 8))})
        yield [text[start:end] for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def defines_references(parser: MarkdownIt, text: str) -> bool:
    """Whether ``text`` defines link references or footnotes (the documented exception)."""
    env: dict[str, Any] = {}
    parser.parse(text, env)
    return bool(env.get("references") or env.get("footnotes", {}).get("refs"))


FOOTNOTE_LIST = '<hr class="footnotes-sep'
FOOTNOTE_ITEM = re.compile(r'<li id="([^"]+)" class="footnote-item">')


def assert_footnote_list_alike(
    tail: str, expected: str, prefix: str, parser: MarkdownIt | None
) -> None:
    """The one way a tail may differ from the end of the one-shot HTML: in the footnote
    list, a frozen definition shows as it was rendered when frozen (the documented
    exception). Everything before the list, and the list's items, are the same."""
    assert FOOTNOTE_LIST in tail, "the tail differs, and not in a footnote list"
    assert defines_references(parser or make_parser(), prefix)
    body, _, notes = tail.partition(FOOTNOTE_LIST)
    expected_body, _, expected_notes = expected.partition(FOOTNOTE_LIST)
    assert expected_body.endswith(body)
    assert FOOTNOTE_ITEM.findall(notes) == FOOTNOTE_ITEM.findall(expected_notes)


def stream(
    chunks: list[str],
    *,
    parser: MarkdownIt | None = None,
    reference: Callable[[str], str] = render,
    update_every: int = 1,
) -> int:
    """Stream ``chunks``, checking both invariants; return how many updates were inexact.

    With ``update_every`` above 1, the chunks in between only :meth:`freeze`, as the
    render worker does when it is fed between refreshes: the frozen HTML they return
    goes before the next update's, and together they still make the exact view.
    """
    renderer = IncrementalRenderer(parser=parser)
    frozen = prefix = ""
    inexact = 0
    for number, chunk in enumerate(chunks, start=1):
        renderer.append(chunk)
        prefix += chunk
        if number % update_every and number < len(chunks):
            frozen += renderer.freeze()
            continue
        update = renderer.update()
        frozen += update.frozen
        expected = reference(prefix)
        if not expected.endswith(update.tail):
            assert_footnote_list_alike(update.tail, expected, prefix, parser)
        if frozen + update.tail != expected:
            assert defines_references(parser or make_parser(), prefix), f"live {prefix!r}"
            inexact += 1
    assert renderer.text == prefix
    assert renderer.finish() == reference(prefix)
    return inexact


# --------------------------------------------------------------------------------------
# Exactness over the CommonMark spec, markdown-it's fixtures, and random documents
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", SPEC, ids=lambda entry: str(entry["example"]))
def test_spec_examples_stream_exactly(entry: dict[str, str]) -> None:
    for chunks in chunkings(entry["markdown"], seed=int(entry["example"])):
        stream(chunks)
        stream(chunks, update_every=3)


@pytest.mark.parametrize("markdown", FIXTURE_EXAMPLES)
def test_markdown_it_fixtures_stream_exactly(markdown: str) -> None:
    for chunks in chunkings(markdown, seed=len(markdown)):
        stream(chunks)
        stream(chunks, update_every=3)


@pytest.mark.parametrize(
    "markdown", ["> a|b\n> -|-\n>", "> a|b\n> -|-\n>\n", "- > a|b\n  > -|-\n  >"]
)
def test_a_table_in_a_quote_that_ends_the_reply_streams_exactly(markdown: str) -> None:
    # markdown-it-py before 4.3 raised IndexError here, which killed the render worker.
    for chunks in [list(markdown), *chunkings(markdown, seed=7)]:
        stream(chunks)


def test_plain_commonmark_parser_reproduces_the_spec() -> None:
    """The renderer is generic: with markdown-it's CommonMark preset it gives spec HTML."""
    commonmark = MarkdownIt("commonmark")
    deviations = []
    for entry in SPEC:
        for chunks in list(chunkings(entry["markdown"], seed=int(entry["example"]), count=1))[2:]:
            stream(chunks, parser=commonmark, reference=commonmark.render)
        if commonmark.render(entry["markdown"]) != entry["html"]:
            deviations.append(entry["example"])
    # markdown-it-py's own known deviations (empty block quotes), not the renderer's.
    assert len(deviations) <= 5, deviations


# Lines that change the meaning of lines around them, to build random documents from.
TRICKY_LINES = [
    *["", "", "", "  ", "text", "more text", "para *em", "em* more", "  continued"],
    *["- a", "- b", "* c", "+ d", "1. e", "2. f", "3) g", "10. h", "-", "1.", "- [ ] task"],
    *["  - nested", "    indented", "     five", "\t- tab", "  > quoted in list"],
    *["> q", "> > qq", ">", "```", "```python", "~~~", "===", "---", "***", "- - -"],
    *["# h", "## h2 #", "#", "#tag", "| a | b |", "|---|---|", "| c | d |", "| x", "|-"],
    *["[x]: /u", "[x]: /u 'title", "'title'", "title'", "(t)", "[x]", "[y]", "![x]"],
    *['[y]: http://y "T"', "[^1]: note", "[^1]", "<http://auto.link>", "<div>", "</div>"],
    *["$$", "\\[", "\\]", "  $$", "$$ y $$", "x $y$ z", "$a_1$ and $5", "a $$b$$ c"],
    *["\\(a\\)", "**bold", "bold**", "`code", "code`", "\\", "a\r\nb", "\r", "x\0y"],
]


@pytest.mark.parametrize("seed", range(20))
def test_random_documents_stream_exactly(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(15):
        text = "\n".join(rng.choice(TRICKY_LINES) for _ in range(rng.randint(1, 30)))
        text += rng.choice(["", "\n"])
        for chunks in list(chunkings(text, seed=rng.randrange(2**16), count=2))[2:]:
            stream(chunks)


# Lines for what make_parser adds to CommonMark: task lists, bare URLs, footnotes.
FEATURE_LINES = [
    *["", "", "", "text", "para *em", "  continued", "    indented", "- item", "---"],
    *["[^1]: note", "[^a]: other *x* [^1]", "[^1]:", "[^b]: see www.example.com"],
    *["  [^a]: nested", "> [^b]: quoted", "[^a]: | t |", "text[^1] more", "[^a] and [^1]"],
    *["[^zz] [^b]", "[^1][^1][^a]", "\\[^1]", "[^1]\\", "[link [^1]](http://x)", "# h [^b]"],
    *["- [ ] task [^a]", "- [x] done www.example.com", "* [X] big", "1. [ ] num", "> - [ ]"],
    *["see https://example.com/a_b.", "mail a@b.co", "setup.py", "javascript:alert(1)"],
    *["| a | b |", "|---|---|", "| [^1] | www.x.org |", "[x]: /u", "[x] [^1]", "$x$ [^1]$"],
]


@pytest.mark.parametrize("seed", range(20))
def test_random_documents_with_tasks_links_and_footnotes_stream_exactly(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(10):
        text = "\n".join(rng.choice(FEATURE_LINES) for _ in range(rng.randint(1, 30)))
        text += rng.choice(["", "\n"])
        for chunks in list(chunkings(text, seed=rng.randrange(2**16), count=2))[2:]:
            stream(chunks)
        stream(chunks, update_every=3)


FEATURE_EXAMPLES = {
    "tasks": "- [ ] todo\n- [x] done\n\n1. [X] *numbered*\n   - [ ] nested\n\n> - [ ] quoted\n",
    "links": (
        "See www.example.com, https://example.com/a_b and someone@example.com.\n\n"
        "Not setup.py, nor javascript:alert(1).\n\n- https://example.com/x\n\n"
        "| a | www.b.org |\n|---|---|\n| c | d@e.org |\n"
    ),
    "footnotes at the end": (
        "Claim[^1] and another[^note].\n\nMore text[^1].\n\n"
        "[^1]: First.\n[^note]: Second, see https://example.com.\n\n    A second paragraph.\n"
    ),
    "footnotes first": "[^a]: Defined first.\n\nUse[^a], again[^a].\n\n- item[^a]\n\nEnd.\n",
    "footnotes between": (
        "One[^x].\n\n[^x]: Note x, see[^y].\n\nTwo[^y].\n\n[^y]: Note y.\n\nThree[^x][^y].\n"
    ),
    # Frozen notes show in later tails as the core rules left them: run once, not twice.
    "a frozen note with links and tasks": (
        "Ref[^t].\n\n[^t]: Not http\\://example.com/ but www.example.com.\n\n"
        "    - [ ] a task in a note\n\nAfter.\n\nAgain[^t].\n"
    ),
}


@pytest.mark.parametrize("markdown", FEATURE_EXAMPLES.values(), ids=FEATURE_EXAMPLES.keys())
def test_tasks_links_and_footnotes_stream_exactly(markdown: str) -> None:
    for chunks in chunkings(markdown, seed=len(markdown), count=8):
        stream(chunks)
        stream(chunks, update_every=3)


# --------------------------------------------------------------------------------------
# What is frozen, and when
# --------------------------------------------------------------------------------------


def updates(chunks: list[str]) -> list[Update]:
    renderer = IncrementalRenderer()
    result = []
    for chunk in chunks:
        renderer.append(chunk)
        result.append(renderer.update())
    return result


@pytest.mark.parametrize(
    "chunks",
    [
        ["Title\n", "=====\n"],  # a setext underline makes the paragraph a heading
        ["a\n", "---\n"],
        ["| a | b |\n", "|---|---|\n"],  # a delimiter row makes the paragraph a table
        ["- a\n", "- b\n", "\n", "- c\n"],  # a blank line, then an item: the list is loose
        ["> quote\n", "lazy continuation\n"],
        ["    code\n", "\n", "    more code\n"],
        ["```\n", "code\n", "\n", "# not a heading\n"],
        ["$$\n", "x\n", "\n", "- y\n"],
        ["[x]: /url\n", "'title\n", "more\n", "title'\n"],  # a title on later lines
    ],
)
def test_nothing_is_frozen_while_the_only_block_may_change(chunks: list[str]) -> None:
    assert all(update.frozen == "" for update in updates(chunks))
    stream(chunks)


@pytest.mark.parametrize(("partial", "whole"), [("#", "#tag"), ("2", "2. item"), ("-", "---")])
def test_a_partial_line_is_never_taken_for_a_block_start(partial: str, whole: str) -> None:
    first, second = updates(["para\n\n", partial])
    assert first.frozen == second.frozen == ""
    stream(["para\n\n", partial, whole[len(partial) :], "\n"])


def test_finished_blocks_are_frozen_once() -> None:
    first, second, third = updates(["# Title\n\nSome ", "text.\n\n- a\n", "- b\n"])
    assert first == Update(frozen="", tail='<h1 class="tocSkip">Title</h1>\n<p>Some</p>\n')
    assert second == Update(
        frozen='<h1 class="tocSkip">Title</h1>\n<p>Some text.</p>\n',
        tail="<ul>\n<li>a</li>\n</ul>\n",
    )
    assert third == Update(frozen="", tail="<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n")


def test_a_definition_keeps_the_lines_that_may_become_its_title() -> None:
    chunks = ["[x]: /u\n", "'title\n", "foo\n", "title'\n", "\n", "[x]\n"]
    assert stream(chunks) == 0
    assert '<a href="/u" title="title\nfoo\ntitle"' in render("".join(chunks))


def test_line_endings_split_across_chunks() -> None:
    stream(["a\r", "\nb\r", "\r\n\r", "- c\r\n", "\r\n# d\r"])


def test_update_without_new_text_repeats_the_tail() -> None:
    renderer = IncrementalRenderer()
    assert renderer.update() == Update(frozen="", tail="")
    renderer.append("a\n\nb")
    renderer.append("")
    renderer.update()
    before = renderer.parsed_chars
    assert renderer.update() == Update(frozen="", tail="<p>a</p>\n<p>b</p>\n")
    assert renderer.parsed_chars == before
    assert renderer.text == "a\n\nb"
    assert renderer.finish() == render("a\n\nb")
    assert renderer.finish() == render("a\n\nb")  # finish() leaves the renderer as it was


def test_remote_images_option_and_parser_option_are_exclusive() -> None:
    renderer = IncrementalRenderer(remote_images=True)
    renderer.append("![a](https://img.example/a.png)")
    assert renderer.finish() == render("![a](https://img.example/a.png)", remote_images=True)
    with pytest.raises(TypeError):
        IncrementalRenderer(parser=make_parser(), remote_images=True)


# --------------------------------------------------------------------------------------
# The documented exception: definitions that arrive after a frozen block uses them
# --------------------------------------------------------------------------------------


def test_a_late_definition_is_exact_at_finish() -> None:
    text = "See [the docs].\n\nMore text.\n\nEven more.\n\n[the docs]: https://example.com\n"
    renderer = IncrementalRenderer()
    live = ""
    for line in text.splitlines(keepends=True):
        renderer.append(line)
        live += renderer.update().frozen
    assert live.startswith("<p>See [the docs].</p>\n")  # frozen before the definition came
    assert render(text).startswith('<p>See <a href="https://example.com"')
    before = renderer.parsed_chars
    assert renderer.finish() == render(text)
    assert renderer.parsed_chars - before >= len(text)  # one full rendering


def test_an_early_definition_needs_no_full_rendering() -> None:
    text = "[docs]: https://example.com\n\nSee [docs].\n\nMore.\n\nEven more.\n"
    renderer = IncrementalRenderer()
    for line in text.splitlines(keepends=True):
        renderer.append(line)
        renderer.update()
    before = renderer.parsed_chars
    assert renderer.finish() == render(text)
    assert renderer.parsed_chars - before < len(text) / 2


def _number_headings(state: StateCore) -> None:
    """A core rule with document-wide state: headings numbered across the document."""
    for token in state.tokens:
        if token.type == "heading_open":
            state.env["headings"] = state.env.get("headings", 0) + 1
            token.attrSet("id", f"h{state.env['headings']}")


def test_parsers_with_document_wide_state_are_exact_at_finish() -> None:
    parser = MarkdownIt("commonmark")
    parser.core.ruler.push("number_headings", _number_headings)
    text = "# a\n\ntext\n\n# b\n\nmore\n"
    renderer = IncrementalRenderer(parser=parser)
    for line in text.splitlines(keepends=True):
        renderer.append(line)
        renderer.update()
    expected = '<h1 id="h1">a</h1>\n<p>text</p>\n<h1 id="h2">b</h1>\n<p>more</p>\n'
    assert parser.render(text) == expected
    assert renderer.finish() == expected


# --------------------------------------------------------------------------------------
# Footnotes while streaming
# --------------------------------------------------------------------------------------

FOOTNOTE_ID = re.compile(r'id="fn(?:ref)?-([0-9a-f]+)-')


def live_views(chunks: list[str]) -> tuple[IncrementalRenderer, list[tuple[str, str]]]:
    """Stream ``chunks``; return the renderer and (frozen HTML so far, tail) per update."""
    renderer = IncrementalRenderer()
    frozen = ""
    views = []
    for chunk in chunks:
        renderer.append(chunk)
        update = renderer.update()
        frozen += update.frozen
        views.append((frozen, update.tail))
    return renderer, views


def test_footnotes_defined_at_the_end_show_in_the_list_as_they_arrive() -> None:
    text = "Claim[^1].\n\nMore[^2].\n\nEnd.\n\n[^1]: One.\n[^2]: Two.\n"
    renderer, views = live_views(text.splitlines(keepends=True))
    final = render(text)
    (doc_id,) = set(FOOTNOTE_ID.findall(final))
    # Frozen before their definitions came, the references show as text until finish.
    frozen, tail = views[6]
    assert frozen == "<p>Claim[^1].</p>\n<p>More[^2].</p>\n<p>End.</p>\n"
    # The list shows each note once its definition has arrived, as the final HTML will.
    assert FOOTNOTE_ITEM.findall(tail) == [f"fn-{doc_id}-1"]
    assert "One." in tail
    assert "Two." not in tail
    frozen, tail = views[7]
    assert FOOTNOTE_ITEM.findall(tail) == [f"fn-{doc_id}-1", f"fn-{doc_id}-2"]
    assert final.endswith(tail)
    assert frozen + tail != final
    before = renderer.parsed_chars
    assert renderer.finish() == final
    assert renderer.parsed_chars - before >= len(text)  # one full rendering


def test_a_footnote_defined_before_its_references_streams_exactly() -> None:
    text = "[^a]: Defined first.\n\nUse[^a].\n\nAgain[^a].\n\nEnd.\n"
    assert stream(text.splitlines(keepends=True)) == 0
    renderer, views = live_views(text.splitlines(keepends=True))
    assert '<a href="#fn-' in views[-1][0]  # frozen as links
    before = renderer.parsed_chars
    assert renderer.finish() == render(text)
    assert renderer.parsed_chars - before < len(text) / 2  # no full rendering


def test_a_late_footnote_renumbers_the_frozen_ones_only_at_finish() -> None:
    text = "[^e]: Early.\n\nA[^late].\n\nB[^e].\n\nC.\n\n[^late]: Late.\n"
    assert stream(text.splitlines(keepends=True)) > 0
    _, views = live_views(text.splitlines(keepends=True))
    frozen, _ = views[-1]
    assert "<p>A[^late].</p>" in frozen
    assert re.search(r'B<sup class="footnote-ref"><a href="#fn-\w+-1"', frozen)  # then
    assert re.search(r'B<sup class="footnote-ref"><a href="#fn-\w+-2"', render(text))  # now


def test_footnote_ids_do_not_change_while_streaming() -> None:
    text = "Intro.\n\n[^n]: Note.\n\nUse[^n].\n\nMore[^n] and [^m].\n\n[^m]: Other.\n"
    final_ids = set(FOOTNOTE_ID.findall(render(text)))
    assert len(final_ids) == 1
    _, views = live_views(list(text))
    shown = {doc_id for frozen, tail in views for doc_id in FOOTNOTE_ID.findall(frozen + tail)}
    assert shown == final_ids


def stream_lines(text: str) -> tuple[int, int]:
    """Stream ``text`` line by line; return the characters parsed, in all and at most."""
    renderer = IncrementalRenderer()
    most = 0
    for line in text.splitlines(keepends=True):
        renderer.append(line)
        before = renderer.parsed_chars
        renderer.update()
        most = max(most, renderer.parsed_chars - before)
    assert renderer.finish() == render(text)
    return renderer.parsed_chars, most


def test_freezing_goes_on_after_a_footnote_definition() -> None:
    def reply(paragraphs: int) -> str:
        body = "".join(f"Paragraph {n} refers to the note[^1].\n\n" for n in range(paragraphs))
        return "Intro[^1].\n\n[^1]: The note.\n\n" + body

    short_total, short_most = stream_lines(reply(300))
    long_total, long_most = stream_lines(reply(1200))
    # Each update parses the last paragraph or two, not the reply so far ...
    assert max(short_most, long_most) < 250
    # ... so four times the text is four times the work, not sixteen.
    assert long_total < 4.2 * short_total
    # Finding the references of frozen blocks parses their text once more, at most.
    without_footnotes, _ = stream_lines(reply(1200).replace("[^1]", ""))
    assert long_total < 2 * without_footnotes


def test_other_parsers_with_footnotes_are_exact_at_finish() -> None:
    """Without make_parser's ids, and with inline footnotes, which only finish gets exact."""
    blocks_only = MarkdownIt("commonmark").use(footnote_plugin, inline=False)
    with_inline = MarkdownIt("commonmark").use(footnote_plugin)
    for markdown in FEATURE_EXAMPLES.values():
        for chunks in chunkings(markdown, seed=len(markdown)):
            stream(chunks, parser=blocks_only, reference=blocks_only.render)
    text = "A^[inline *one*] b[^1].\n\n[^1]: Note ^[two].\n\nC^[three][^1].\n"
    for chunks in chunkings(text, seed=1):
        renderer = IncrementalRenderer(parser=with_inline)
        for chunk in chunks:
            renderer.append(chunk)
            renderer.update()
        assert renderer.finish() == with_inline.render(text)


# --------------------------------------------------------------------------------------
# Work: linear in the reply, counted in characters handed to the parser
# --------------------------------------------------------------------------------------


def typical_reply(size: int, seed: int = 0) -> str:
    """About ``size`` characters of the Markdown a model writes."""
    rng = random.Random(seed)
    words = ["the", "model", "streams", "tokens", "into", "a", "cell", "while", "each"]
    words += ["finished", "block", "renders", "once", "and", "only", "open", "tail", "again"]

    def sentence() -> str:
        chosen = [rng.choice(words) for _ in range(rng.randint(6, 18))]
        i = rng.randrange(len(chosen))
        word = chosen[i]
        chosen[i] = rng.choice(
            [f"**{word}**", f"*{word}*", f"`{word}()`", f"[{word}](https://example.com/{i})"]
        )
        if rng.random() < 0.2:
            chosen[i] += rng.choice([f" ${i}", f" $x_{i}$"])  # prices and math
        return " ".join(chosen).capitalize() + "."

    def block() -> str:
        kind = rng.choice(["heading", "text", "text", "text", "list", "numbers", "code", "table"])
        count = rng.randint(2, 6)
        if kind == "heading":
            return "#" * rng.randint(1, 3) + " " + sentence()[:-1]
        if kind == "list":
            return "\n".join(f"- {sentence()}" for _ in range(count))
        if kind == "numbers":
            return "\n".join(f"{n}. {sentence()}" for n in range(1, count + 1))
        if kind == "code":
            body = "\n".join(
                f"def f{n}(x):\n    return x * {n}  # {sentence()}" for n in range(count)
            )
            return f"```python\n{body}\n```"
        if kind == "table":
            rows = "\n".join(f"| {rng.choice(words)} | {n} | {sentence()} |" for n in range(count))
            return f"| name | value | note |\n|---|---:|:---|\n{rows}"
        return "\n".join(" ".join(sentence() for _ in range(3)) for _ in range(count // 2))

    blocks: list[str] = []
    while sum(map(len, blocks)) < size:
        blocks.append(block())
    return "\n\n".join(blocks) + "\n"


def stream_in_small_chunks(text: str) -> tuple[int, int]:
    """Stream ``text`` in chunks of 16 to 96 characters, updating after each.

    Returns:
        The characters handed to the parser in total, and the most in one update.
    """
    rng = random.Random(len(text))
    renderer = IncrementalRenderer()
    most = position = 0
    while position < len(text):
        step = rng.randint(16, 96)
        renderer.append(text[position : position + step])
        position += step
        before = renderer.parsed_chars
        renderer.update()
        most = max(most, renderer.parsed_chars - before)
    renderer.finish()  # exactness is tested above; here only its work counts
    return renderer.parsed_chars, most


def test_work_is_linear_in_the_length_of_the_reply() -> None:
    short, long = typical_reply(100_000), typical_reply(400_000)
    short_total, short_most = stream_in_small_chunks(short)
    long_total, long_most = stream_in_small_chunks(long)
    assert long_total < 20 * len(long)
    # Four times the text, four times the work (up to the mix of blocks) ...
    assert 0.8 < (long_total / len(long)) / (short_total / len(short)) < 1.25
    # ... because no update costs more than the biggest block, wherever it comes.
    assert max(short_most, long_most) < 10_000


def with_footnotes(text: str, every: int = 25) -> str:
    """``text`` with a paragraph referring to a footnote after every ``every``-th block,
    and the footnote's definition right after it."""
    blocks = text.split("\n\n")
    for n in range(len(blocks) - 1, 0, -every):
        blocks[n + 1 : n + 1] = [
            f"As the note says[^{n}], and *more*.",
            f"[^{n}]: Note {n}, with a link: https://example.com/{n}.",
        ]
    return "\n\n".join(blocks)


def test_work_stays_linear_with_footnotes() -> None:
    short, long = with_footnotes(typical_reply(100_000)), with_footnotes(typical_reply(400_000))
    assert short.count("]: Note") >= 10
    short_total, short_most = stream_in_small_chunks(short)
    long_total, long_most = stream_in_small_chunks(long)
    assert long_total < 20 * len(long)
    assert 0.8 < (long_total / len(long)) / (short_total / len(short)) < 1.25
    assert max(short_most, long_most) < 10_000
