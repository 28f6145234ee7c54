"""What went wrong, in one line: expected failures, and the messages that describe them.

Every failure a user can meet (an HTTP error, a cut connection, an answer that is not the
API's, an interrupt) ends as one line that says what happened and what to do, raised as a
:class:`ClaudeError` that IPython shows as that line alone. The SDK wraps transport
failures in its own classes, differently from release to release: messages go by what
failed (read along the ``__cause__`` chain), not by which class carried it.

Nothing here imports IPython.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anthropic
import httpx2

if TYPE_CHECKING:
    from .reply import Reply

__all__ = [
    "BASE_URL_SETTINGS",
    "ClaudeError",
    "RequestError",
    "describe_error",
    "one_line",
    "unexpected_answer",
]


class ClaudeError(Exception):
    """An expected failure: the message says what happened and what to do, in one line.

    IPython shows exceptions with ``_render_traceback_`` by calling it instead of printing
    a traceback, so a failed cell ends in error (and "Run All" stops) with just this line.
    Line breaks and runs of spaces in the message are folded, so it stays one line.
    """

    def __init__(
        self,
        message: str,
        *,
        reply: Reply | None = None,
        replies: Sequence[Reply] | None = None,
    ) -> None:
        super().__init__(" ".join(str(message).split()))
        self.reply = reply
        """What arrived before the failure (``complete`` false, ``error`` set), if a
        request was sent; a complete reply when only showing it was interrupted."""
        self.replies = replies
        """For a call of several requests (rows, models, a batch): every reply, the
        failed ones with ``error`` set (an ``nbclaude.Replies``)."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mClaudeError\x1b[0m: {self}"]


class RequestError(ValueError):
    """A request that is not sent as it stands; the message says why, in one line.

    A bad option, a template that cannot be filled, the API key in the request, or no
    key at all: nothing was sent. ``%%claude`` shows it as a ``UsageError``.
    """


BASE_URL_SETTINGS = "ANTHROPIC_BASE_URL, or %config ClaudeMagics.base_url"
"""Where the API's address is set, for messages about an endpoint that is not the API."""


def unexpected_answer(response: httpx2.Response, media_type: str) -> str | None:
    """Why a successful response is not what the API sends, or ``None`` if it is.

    A proxy, a captive portal or a wrong base URL answers 200 with a page of its own.
    The SDK reads no event from it (the reply would just look cut short), and parses it
    into objects without the fields they need.

    Args:
        response: The response, its body read or not: only its first bytes are read.
        media_type: What the API answers with: ``text/event-stream`` for a stream,
            ``application/json`` otherwise.

    Returns:
        One line that says what came instead and where the API's address is set.
    """
    content_type = response.headers.get("content-type", "")
    if content_type.partition(";")[0].strip().lower() == media_type:
        return None
    first = next(response.iter_bytes(), b"")
    shown = one_line(first[:PREVIEW_BYTES].decode("utf-8", "replace"), 80) or "an empty body"
    kind = "an event stream" if media_type == "text/event-stream" else "JSON"
    return (
        f"The API endpoint did not answer with {kind}: it sent "
        f"{content_type or 'no content type'} ({shown}). Check the base URL "
        f"({BASE_URL_SETTINGS})."
    )


PREVIEW_BYTES = 2048
"""Bytes of an unexpected body read to say what it is."""

_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG_RE = re.compile(r"<[^>]*>|<[^>]*$")


def one_line(text: str, limit: int = 160) -> str:
    """``text`` as one short line: an HTML page as its title or its text, cut at ``limit``.

    Error bodies and unexpected answers come from proxies as often as from the API: a
    502 page is many lines of HTML, and an error line must stay one line.

    Args:
        text: The body, or the message carrying it.
        limit: The most characters kept; a cut line ends with ``…``.

    Returns:
        The line, without markup or line breaks.
    """
    if "<" in text and ">" in text:
        title = _TITLE_RE.search(text)
        text = html.unescape(title[1] if title else _TAG_RE.sub(" ", text))
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def describe_error(
    exc: BaseException, params: Mapping[str, Any] | None = None, *, mid_stream: bool = False
) -> str:
    """One line saying what went wrong and what to do about it. Never includes a key.

    The SDK wraps transport failures in its own classes, more of them in newer releases:
    the message goes by what failed (the transport error at the root), not by the wrapper.

    Args:
        exc: What the SDK or the transport raised.
        params: The request, to name the model in a 404.
        mid_stream: Whether part of the reply had already arrived.
    """
    if isinstance(exc, anthropic.APIStatusError):
        return _describe_status(exc, params or {})
    chain = _causes(exc)
    timed_out = any(
        isinstance(e, anthropic.APITimeoutError | httpx2.TimeoutException) for e in chain
    )
    if mid_stream:
        if timed_out:
            return (
                "The stream stalled: no data arrived within the timeout, so the reply is "
                "incomplete. Run the cell again, or raise %config ClaudeMagics.timeout."
            )
        root = chain[-1]
        return (
            f"The connection broke mid-reply ({type(root).__name__}: "
            f"{one_line(str(root), 100)}): the reply is incomplete. Run the cell again."
        )
    if any(isinstance(cause, httpx2.ConnectTimeout) for cause in chain):
        return (
            "Could not connect to the API in time (%config ClaudeMagics.connect_timeout): "
            f"check your network connection and the base URL ({BASE_URL_SETTINGS})."
        )
    if timed_out:
        return (
            "The request timed out: the API did not answer within %config "
            "ClaudeMagics.timeout, on any attempt. Run the cell again, or raise the timeout."
        )
    if any(
        isinstance(cause, anthropic.APIConnectionError | httpx2.TransportError) for cause in chain
    ):
        return (
            "Could not connect to the API: check your network connection "
            f"(and the base URL: {BASE_URL_SETTINGS})."
        )
    return f"{type(exc).__name__}: {one_line(str(exc))}"


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, following ``__cause__`` to what failed first."""
    chain = [exc]
    while (cause := chain[-1].__cause__) is not None and cause not in chain:
        chain.append(cause)
    return chain


def _describe_status(exc: anthropic.APIStatusError, params: Mapping[str, Any]) -> str:
    detail = one_line(_api_message(exc.body) or str(exc.message))
    kind = _api_error_type(exc.body)
    status = exc.status_code
    if status < 400:
        # An ``error`` event after the API had answered 200.
        return (
            f"The API stopped the reply with {kind or 'an error'} ({detail}): it is "
            "incomplete. Run the cell again."
        )
    code = f"{status} {kind}" if kind else str(status)
    if status == 400:
        return f"The request was invalid ({code}): {detail}"
    if status == 401:
        return "Authentication failed (401): check that ANTHROPIC_API_KEY holds a valid key."
    if status == 403:
        return f"Permission denied (403): this key may not do that: {detail}"
    if status == 404:
        model = params.get("model", "")
        return (
            f"Not found (404): {detail}. Check the model name {model!r}; "
            "%claude models lists the models you can use."
        )
    if status == 413:
        return "The request is too large (413): shorten the prompt or the conversation."
    if status == 429:
        wait = exc.response.headers.get("retry-after")
        hint = f"retry after {wait}s" if wait else "wait a little and run the cell again"
        return f"Rate limited (429), still after the SDK's retries: {hint}. {detail}"
    if status == 529:
        return "The API is overloaded (529): run the cell again in a moment."
    if status >= 500:
        return f"The API failed ({code}): {detail}. Run the cell again in a moment."
    return f"The API answered {code}: {detail}"


def _api_error_type(body: object) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("type"), str):
            return str(error["type"])
    return None


def _api_message(body: object) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return None
