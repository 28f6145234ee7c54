"""The static view of a reply: sanitized HTML and plain text, with no widgets.

This is what a finished cell keeps in the notebook, so it must read well in JupyterLab,
nbconvert and GitHub, after a restart and without any JavaScript. Everything templated into
HTML here is escaped; model Markdown goes through :mod:`nbclaude.markdown`, which has raw HTML
off and unsafe links dropped. The live view reuses the per-block pieces.

Each block's look is chosen by its kind (:mod:`nbclaude.blocks`). A reply is anything with
the few attributes :class:`Shown` names, which :class:`~nbclaude.reply.Reply` has: this
module does not import the reply, which displays itself through it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from html import escape
from typing import Any, Protocol
from urllib.parse import urlsplit

from . import images, look
from .blocks import kind_of
from .markdown import render

__all__ = [
    "Sent",
    "Shown",
    "block_html",
    "columns_bundle",
    "plain_text",
    "reply_html",
    "rows_bundle",
    "sent_html",
    "sent_text",
    "split_html",
    "static_bundle",
    "static_html",
    "static_parts",
    "text_bundle",
    "thinking_html",
    "usage_html",
]


class Shown(Protocol):
    """What the static view reads of a reply."""

    @property
    def transcript(self) -> Sequence[Any]:
        """The content blocks to show, in order: pydantic models of the SDK's, types it
        does not know, dicts (the results of the user's tools between rounds)."""

    @property
    def text(self) -> str:
        """The answer's text."""

    @property
    def status_line(self) -> str:
        """The usage line under the reply."""

    def notices(self, *, error: bool = True) -> list[str]:
        """What the user must know beyond the content, one line each."""


class Sent(Protocol):
    """Something a prompt attached, as the view shows it (an ``Attachment`` is one)."""

    @property
    def kind(self) -> str:
        """``image``, ``pdf`` or ``text``."""

    @property
    def data(self) -> bytes:
        """The bytes sent."""

    @property
    def media_type(self) -> str:
        """Their MIME type."""

    @property
    def size(self) -> tuple[int, int] | None:
        """An image's pixels as sent."""

    def placeholder(self) -> str:
        """A short stand-in: ``[image 800×600 PNG, 41 KB]``."""

    def describe(self) -> str:
        """The placeholder, and how it was sent."""


def safe_href(url: object) -> str | None:
    """``url`` if it is an http(s) link, else ``None``: result links come from the model."""
    if not isinstance(url, str):
        return None
    return url if urlsplit(url.strip()).scheme.lower() in {"http", "https"} else None


def link(url: object, label: str) -> str:
    """An escaped link that opens safely, or the escaped label alone for an unsafe URL."""
    href = safe_href(url)
    if href is None:
        return escape(label)
    return f'<a href="{escape(href)}" target="_blank" rel="noopener noreferrer">{escape(label)}</a>'


NO_SUMMARY = "<p><em>Claude thought, but the API returned no summary of it.</em></p>"
"""What a thinking section without a summary holds."""


def thinking_html(
    text: str, *, redacted: bool = False, open_: bool = False, rendered: str | None = None
) -> str:
    """A foldable thinking section; a placeholder, never an empty box.

    ``rendered`` is the thinking's Markdown already rendered, when the caller has it.
    """
    if redacted:
        title = "Thinking (redacted)"
        body = "<p><em>This thinking was encrypted by the API; it is kept in the reply.</em></p>"
    elif not text.strip():
        title = "Thinking"
        body = NO_SUMMARY
    else:
        title = "Thinking"
        body = render(text) if rendered is None else rendered
    return f"{thinking_open(title, open_=open_)}{body}</details>"


def thinking_open(title: str = "Thinking", *, open_: bool = False) -> str:
    """The start of a thinking section, up to its content: the live view fills it as it
    streams, and closes it as :func:`thinking_html` does."""
    opened = " open" if open_ else ""
    return (
        f'<details style="{look.THINKING}" class="nbclaude-thinking"{opened}>'
        f'<summary style="{look.THINKING_SUMMARY}">{title}</summary>'
    )


def _pre(text: str) -> str:
    return f'<pre style="{look.TOOL_PRE}">{escape(text)}</pre>'


def _tool(inner: str) -> str:
    return f'<div style="{look.TOOL}" class="nbclaude-tool">{inner}</div>'


def tool_use_html(block: Mapping[str, Any]) -> str:
    """A tool call: its name and input as JSON."""
    kind = "tool" if kind_of(str(block.get("type"))).role == "tool_use" else "server tool"
    name = str(block.get("name", "?"))
    payload = block.get("input", {})
    if isinstance(payload, dict) and set(payload) == {"_partial_json"}:
        shown = str(payload["_partial_json"])
    else:
        shown = json.dumps(payload, indent=2, ensure_ascii=False)
    return _tool(f"<small>{kind}</small> <code>{escape(name)}</code>{_pre(shown)}")


def _search_results_html(block: Mapping[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, dict):  # an error result
        code = content.get("error_code", "unknown error")
        return _tool(f"<small>search failed:</small> {escape(str(code))}")
    items = []
    for result in content if isinstance(content, list) else []:
        if not isinstance(result, dict):
            continue
        title = str(result.get("title") or result.get("url") or "result")
        age = result.get("page_age")
        suffix = f" <small>{escape(str(age))}</small>" if age else ""
        items.append(f"<li>{link(result.get('url'), title)}{suffix}</li>")
    listing = f"<ul>{''.join(items)}</ul>" if items else "<p><em>no results</em></p>"
    return _tool(f"<small>search results</small>{listing}")


def _execution_result_html(block: Mapping[str, Any]) -> str:
    content = block.get("content")
    parts = ["<small>code execution</small>"]
    if isinstance(content, dict):
        if "error_code" in content:
            parts.append(f"<p>failed: {escape(str(content['error_code']))}</p>")
        for stream in ("stdout", "stderr"):
            if content.get(stream):
                parts.append(f"<small>{stream}</small>{_pre(str(content[stream]))}")
        if content.get("return_code") not in (None, 0):
            parts.append(f"<small>exit code {escape(str(content['return_code']))}</small>")
    return _tool("".join(parts))


def _tool_result_html(block: Mapping[str, Any]) -> str:
    """The result of a user's tool, as nbclaude shows it: the tool's name and the result
    (or the error) it sent back."""
    name = escape(str(block.get("name", "?")))
    label = "error from" if block.get("is_error") else "result of"
    content = block.get("content")
    shown = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    return _tool(f"<small>{label}</small> <code>{name}</code>{_pre(shown)}")


def placeholder_html(kind: str) -> str:
    """A short note for a block this version cannot show."""
    return _tool(f"<small>[{escape(kind)} block not shown]</small>")


def citations_html(citations: Iterable[Mapping[str, Any]]) -> str:
    """The sources a text block cites, as a compact list of links."""
    items = []
    for citation in citations:
        title = str(citation.get("title") or citation.get("document_title") or "source")
        items.append(f"<li>{link(citation.get('url'), title)}</li>")
    return _usage(f"<small>Sources</small><ol>{''.join(items)}</ol>")


_RESULT_HTML: Mapping[str, Callable[[Mapping[str, Any]], str]] = {
    "web_search_tool_result": _search_results_html,
    "code_execution_tool_result": _execution_result_html,
    "bash_code_execution_tool_result": _execution_result_html,
    "text_editor_code_execution_tool_result": _execution_result_html,
    "tool_result": _tool_result_html,
}
"""Tool results with a look of their own, by type; others show as placeholders."""


def block_html(
    block: Mapping[str, Any], *, remote_images: bool = False, rendered: str | None = None
) -> str:
    """The static HTML of one content block, in the API's dict shape.

    Args:
        block: The block.
        remote_images: Whether images in its Markdown load from the network.
        rendered: The block's Markdown (text or thinking) already rendered, exactly as
            :func:`nbclaude.markdown.render` would: the live view has it, and rendering a
            long reply twice would double the cost of finishing it.
    """
    kind = kind_of(str(block.get("type")))
    role = kind.role
    if role == "text":
        html = rendered
        if html is None:
            html = render(str(block.get("text") or ""), remote_images=remote_images)
        if block.get("citations"):
            html += citations_html(block["citations"])
        return html
    if role == "thinking":
        return thinking_html(str(block.get("thinking") or ""), rendered=rendered)
    if role == "redacted_thinking":
        return thinking_html("", redacted=True)
    if kind.is_tool_call:
        return tool_use_html(block)
    if (result_html := _RESULT_HTML.get(kind.type)) is not None:
        return result_html(block)
    return placeholder_html(kind.type)


def _ascii_html(text: str) -> str:
    """``text`` escaped, its non-ASCII characters as character references.

    For the lines nbclaude writes around a reply (``·``, ``⚠``): a reply in plain ASCII
    then makes an all-ASCII page, which the kernel encodes for the front end faster than a
    page with one such character in it (a 400 KB reply's bundle: 4.7 ms instead of 5.6).
    """
    return escape(text).encode("ascii", "xmlcharrefreplace").decode("ascii")


def usage_html(reply: Shown) -> str:
    """The usage line under a reply."""
    return _usage(_ascii_html(reply.status_line))


def _usage(inner: str) -> str:
    return f'<div style="{look.USAGE}" class="nbclaude-usage">{inner}</div>'


def notice_html(lines: Iterable[str]) -> str:
    """Warnings, escaped, each in its own box."""
    return "".join(
        f'<div style="{look.NOTICE}" class="nbclaude-notice">{_ascii_html("⚠ " + line)}</div>'
        for line in lines
    )


SMALL_IMAGE = 32 * 1024
"""Without Pillow to make a thumbnail, an image this small is kept whole as its preview."""


def _preview(attachment: Sent) -> str:
    """An ``<img>`` small enough to keep in a notebook, or nothing if none can be made."""
    if attachment.kind != "image":
        return ""
    made = images.thumbnail(attachment.data)
    if made is not None:
        media_type, data = made
        size = images.sniff(data)
        pixels = size.size if size is not None else None
    elif len(attachment.data) <= SMALL_IMAGE:
        media_type, data, pixels = attachment.media_type, attachment.data, attachment.size
        if pixels is not None and max(pixels) > images.THUMBNAIL_EDGE:
            scale = images.THUMBNAIL_EDGE / max(pixels)
            pixels = (max(1, round(pixels[0] * scale)), max(1, round(pixels[1] * scale)))
    else:
        return ""
    dimensions = f' width="{pixels[0]}" height="{pixels[1]}"' if pixels else ""
    uri = f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"
    return f'<img src="{uri}"{dimensions} alt="{escape(attachment.placeholder())}">'


FIGCAPTION = f"font-size: 0.85em; color: {look.MUTED}"


def sent_html(sent: Sequence[Sent]) -> str:
    """What the prompt attached, above the reply: a thumbnail of each image, a caption each.

    Thumbnails are at most :data:`~nbclaude.images.THUMBNAIL_EDGE` pixels on a side, so a
    saved notebook records what Claude saw without carrying what it was sent.
    """
    if not sent:
        return ""
    figures = "".join(
        '<figure style="margin: 0 0.8em 0.4em 0; display: inline-block; vertical-align: top">'
        f'{_preview(attachment)}<figcaption style="{FIGCAPTION}">'
        f"{_ascii_html(attachment.describe())}</figcaption>"
        "</figure>"
        for attachment in sent
    )
    return f'<div class="nbclaude-sent">{figures}</div>'


def sent_text(sent: Sequence[Sent]) -> str:
    """What the prompt attached, as plain text lines (``[sent [image 640×480 PNG, 21 KB]]``)."""
    return "".join(f"[sent {attachment.describe()}]\n" for attachment in sent)


def static_html(
    reply: Shown,
    rendered: Mapping[int, str] | None = None,
    *,
    error: bool = True,
    remote_images: bool = False,
    sent: Sequence[Sent] = (),
) -> str:
    """The whole reply as self-contained, sanitized HTML.

    Args:
        reply: The reply.
        rendered: A block's position in ``reply.transcript`` mapped to its Markdown already
            rendered (see :func:`block_html`).
        error: Show the reply's error as a notice (see ``Reply.notices``).
        remote_images: Whether images in its Markdown load from the network.
        sent: What the prompt attached, shown above the reply (see :func:`sent_html`).
    """
    inner = reply_html(reply, rendered, error=error, remote_images=remote_images)
    return f'<div class="nbclaude">{sent_html(sent)}{inner}</div>'


def reply_html(
    reply: Shown,
    rendered: Mapping[int, str] | None = None,
    *,
    error: bool = True,
    remote_images: bool = False,
) -> str:
    """The reply's blocks, notices and usage line, without the page's wrapper and styles:
    for a view that shows several replies (see :func:`static_html` for the arguments)."""
    done = rendered or {}
    body = "".join(
        block_html(_as_dict(block), remote_images=remote_images, rendered=done.get(position))
        for position, block in enumerate(reply.transcript)
    )
    return f"{body}{notice_html(reply.notices(error=error))}{usage_html(reply)}"


COLUMN_STYLE = "flex: 1 1 22em; min-width: 16em; max-width: 100%; overflow-x: auto"
"""A column of the side-by-side view: as wide as the page allows, wrapping below 16em."""


def columns_bundle(
    labels: Sequence[str],
    replies: Sequence[Shown],
    summary: str,
    rendered: Sequence[Mapping[int, str]] | None = None,
) -> dict[str, str]:
    """Several replies side by side, one column each with its label and usage line; the
    columns wrap on a narrow screen. ``text/plain`` has each reply under its label."""
    done = rendered or [{} for _ in replies]
    columns = "".join(
        f'<div class="nbclaude-column" style="{COLUMN_STYLE}">'
        f"<p><strong>{_ascii_html(label)}</strong></p>"
        f"{reply_html(reply, mine, error=True)}</div>"
        for label, reply, mine in zip(labels, replies, done, strict=True)
    )
    html = (
        '<div class="nbclaude"><div class="nbclaude-columns" '
        'style="display: flex; flex-wrap: wrap; gap: 1.5em; '
        f'align-items: flex-start">{columns}</div>'
        f"{_usage(_ascii_html(summary))}</div>"
    )
    plain = "\n\n".join(
        f"== {label} ==\n{plain_text(reply)}\n[{reply.status_line}]"
        for label, reply in zip(labels, replies, strict=True)
    )
    return {"text/html": html, "text/plain": f"{plain}\n\n{summary}"}


EXCERPT_CHARS = 100
"""Characters of a reply shown on its row before it is opened."""


def _excerpt(reply: Shown) -> str:
    text = " ".join((reply.text or reply.status_line).split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def rows_bundle(labels: Sequence[str], replies: Sequence[Shown], summary: str) -> dict[str, str]:
    """One line per reply (its row, the start of its answer or its error), each opening
    onto the whole reply; the totals first."""
    rows = "".join(
        f'<details class="nbclaude-row"><summary><code>{escape(label)}</code> '
        f"{'[failed] ' if reply.notices() else ''}{_ascii_html(_excerpt(reply))}</summary>"
        f"{reply_html(reply)}</details>"
        for label, reply in zip(labels, replies, strict=True)
    )
    html = f'<div class="nbclaude">{_usage(_ascii_html(summary))}{rows}</div>'
    plain = "\n".join(
        f"{label}: {_excerpt(reply)}" for label, reply in zip(labels, replies, strict=True)
    )
    return {"text/html": html, "text/plain": f"{summary}\n{plain}"}


def _as_dict(block: Any) -> Mapping[str, Any]:
    """A content block in the API's dict shape, whatever carries it."""
    if isinstance(block, Mapping):
        return block
    dumped: Mapping[str, Any] = block.model_dump(exclude_none=True, warnings=False)
    return dumped


def plain_text(reply: Shown, *, error: bool = True, sent: Sequence[Sent] = ()) -> str:
    """What was attached, the answer text, and any notice in brackets.

    A reply with neither text nor notice is its status line, never an empty output.
    """
    extra = "".join(f"\n\n[{line}]" for line in reply.notices(error=error))
    text = reply.text + extra if reply.text else extra.lstrip("\n")
    return sent_text(sent) + (text or reply.status_line)


def static_bundle(
    reply: Shown,
    rendered: Mapping[int, str] | None = None,
    *,
    error: bool = True,
    remote_images: bool = False,
    sent: Sequence[Sent] = (),
) -> dict[str, str]:
    """The MIME bundle a finished cell keeps: ``text/html`` and ``text/plain``.

    Args:
        reply: The reply.
        rendered: Markdown already rendered, by block position (see :func:`static_html`).
        error: Show the reply's error as a notice.
        remote_images: Whether images in its Markdown load from the network.
        sent: What the prompt attached, shown above the reply.
    """
    html = static_html(reply, rendered, error=error, remote_images=remote_images, sent=sent)
    return {"text/html": html, "text/plain": plain_text(reply, error=error, sent=sent)}


def text_bundle(reply: Shown, *, error: bool = True, sent: Sequence[Sent] = ()) -> dict[str, str]:
    """The reply's text as it came, without rendering it: cheap, whatever its length.

    Shown when the user interrupts the rendering of the static view: the reply must not
    be lost, and rendering it again is what was interrupted.
    """
    html = (
        f'<div class="nbclaude">{sent_html(sent)}'
        f'<pre style="white-space: pre-wrap">{escape(reply.text)}</pre>'
        f"{notice_html(reply.notices(error=error))}{usage_html(reply)}</div>"
    )
    return {"text/html": html, "text/plain": plain_text(reply, error=error, sent=sent)}


PART_SIZE = 64 * 1024
"""Characters of HTML in each output of a long reply's static view (see :func:`static_parts`)."""

_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)[^>]*?(/?)>")
_VOID = frozenset({"area", "br", "col", "embed", "hr", "img", "input", "source", "track", "wbr"})
_VOID_TAG_RE = re.compile(rf"<(?:{'|'.join(sorted(_VOID))})\b")


def _deeper_by(html: str, start: int, end: int) -> int:
    """How many more elements are open at ``end`` than at ``start``, both between tags.

    Counted rather than parsed, so a long stretch costs three passes in C: every ``<`` in
    nbclaude's HTML starts a tag, a closing tag (``</``) undoes an opening one, and a
    void element (``<br>`` or ``<br />``: only void ones close themselves) opens nothing.
    """
    tags = html.count("<", start, end)
    closing = html.count("</", start, end)
    void = len(_VOID_TAG_RE.findall(html, start, end))
    return tags - 2 * closing - void


def split_html(html: str, size: int) -> list[str]:
    """Cut HTML into pieces of about ``size`` characters, between top-level elements.

    Args:
        html: A sequence of well-formed elements, as nbclaude writes them: escaped text,
            no comments, no ``<`` or ``>`` inside attribute values, tag names in lower
            case, only void elements closing themselves.
        size: Characters after which a piece ends at the next top-level element's end.

    Returns:
        The pieces, in order; joined, they are ``html``. One piece when it is short, or
        when it is one element.
    """
    pieces = []
    start = 0
    while len(html) - start > size:
        # The depth where the piece reaches its size is counted; from there, tag by tag
        # to the first top-level end.
        at = max(html.rfind("<", start, start + size), start)
        depth = _deeper_by(html, start, at)
        for match in _TAG_RE.finditer(html, at):
            closing, name, self_closing = match.groups()
            if closing:
                depth -= 1
            elif not self_closing and name.lower() not in _VOID:
                depth += 1
            if depth == 0 and match.end() - start >= size:
                pieces.append(html[start : match.end()])
                start = match.end()
                break
        else:
            break
    if start < len(html) or not pieces:
        pieces.append(html[start:])
    return pieces


def static_parts(
    reply: Shown,
    rendered: Mapping[int, str] | None = None,
    *,
    error: bool = True,
    remote_images: bool = False,
    sent: Sequence[Sent] = (),
    part_size: int = PART_SIZE,
) -> list[dict[str, str]]:
    """The static view as several outputs, each of about ``part_size`` characters.

    A browser parses and lays out one output in one task: a reply of a megabyte of HTML
    in one output holds the page still for most of a second when it finishes; in
    outputs of 32 KB, each is a short task of its own. They read as one reply (each is
    wrapped as :func:`static_html` wraps the whole). The first carries the reply's whole
    ``text/plain``; the others have HTML only. A short reply is one bundle, exactly
    :func:`static_bundle`'s.

    Args:
        part_size: Characters of HTML after which an output ends (at an element's end).
        (The others as for :func:`static_bundle`.)
    """
    inner = sent_html(sent) + reply_html(reply, rendered, error=error, remote_images=remote_images)
    bundles = [
        {"text/html": f'<div class="nbclaude">{piece}</div>'}
        for piece in split_html(inner, part_size)
    ]
    bundles[0]["text/plain"] = plain_text(reply, error=error, sent=sent)
    return bundles
