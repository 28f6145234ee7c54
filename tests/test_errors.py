"""When things go wrong: each failure path, through a real shell and the fake server."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from nbclaude import ClaudeError, Reply
from nbclaude.testing import (
    FakeServer,
    cut_after,
    error_after,
    http_error,
    replay,
    reply,
    stall_after,
    text,
    text_reply,
    unknown_block,
    unknown_event,
)

from .conftest import SSE_DIR, TEST_KEY, run

LONG_ANSWER = "".join(f"Paragraph {i} of a long answer.\n\n" for i in range(200))


@pytest.fixture
def ip_widget(ip: InteractiveShell) -> InteractiveShell:
    ip.run_cell("%config ClaudeMagics.frontend = 'widget'", store_history=False)
    ip.run_cell("%config ClaudeMagics.max_retries = 0", store_history=False)
    return ip


def final_html(captured: object) -> str:
    outputs = captured.outputs  # type: ignore[attr-defined]
    return str(outputs[-1].data["text/html"])


def error_lines(result: object) -> list[str]:
    exc = result.error_in_exec  # type: ignore[attr-defined]
    assert isinstance(exc, ClaudeError)
    return exc._render_traceback_()


def test_error_event_after_200_keeps_the_partial_reply(
    ip_widget: InteractiveShell, api_env: FakeServer
) -> None:
    api_env.enqueue(error_after(text_reply("Partial answer that", chunk_size=5), 6))
    result, captured = run(ip_widget, "%%claude\nhi")
    answer = ip_widget.user_ns["_claude"]
    assert isinstance(answer, Reply)
    assert answer.complete is False
    assert answer.text.startswith("Partial")
    assert answer.error is not None
    assert "overloaded_error" in answer.error
    assert len(error_lines(result)) == 1
    html = final_html(captured)
    assert "Partial" in html
    assert "incomplete" in html


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda s: cut_after(s, 6), "connection broke"),
        (lambda s: __import__("nbclaude.testing").testing.truncate_after(s, 6), "message_stop"),
    ],
    ids=["connection-reset", "no-message-stop"],
)
def test_cut_or_truncated_stream_is_marked_incomplete(
    ip_widget: InteractiveShell, api_env: FakeServer, make: object, words: str
) -> None:
    api_env.enqueue(make(text_reply("Half of the answer goes here.", chunk_size=4)))  # type: ignore[operator]
    result, captured = run(ip_widget, "%%claude\nhi")
    answer = ip_widget.user_ns["_claude"]
    assert answer.complete is False
    assert answer.text
    assert "Half of the answer goes here.".startswith(answer.text)
    assert words in str(answer.error)
    assert result.error_in_exec is not None
    assert "incomplete" in final_html(captured)


def test_read_timeout_mid_stream_keeps_the_partial_reply(
    ip_widget: InteractiveShell, api_env: FakeServer
) -> None:
    ip_widget.run_cell("%config ClaudeMagics.timeout = 0.5", store_history=False)
    api_env.enqueue(stall_after(text_reply("Slow start then silence", chunk_size=4), 5, 5.0))
    _result, _ = run(ip_widget, "%%claude\nhi")
    answer = ip_widget.user_ns["_claude"]
    assert answer.complete is False
    assert answer.text.startswith("Slow")
    assert "stalled" in str(answer.error)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, "invalid"),
        (401, "ANTHROPIC_API_KEY"),
        (403, "Permission denied"),
        (404, "%claude models"),
        (413, "too large"),
        (429, "retry after 1s"),
        (500, "Run the cell again"),
        (529, "overloaded"),
    ],
)
def test_http_errors_say_what_to_do_in_one_line(
    ip_widget: InteractiveShell, api_env: FakeServer, status: int, expected: str
) -> None:
    ip_widget.user_ns["_claude"] = previous = object()
    api_env.enqueue(http_error(status))
    result, captured = run(ip_widget, "%%claude -m claude-nope -o answer\nhi")
    lines = error_lines(result)
    assert len(lines) == 1
    assert expected in lines[0]
    if status == 404:
        assert "claude-nope" in lines[0]
    # Nothing arrived: the failure replaces the previous reply, so no cell reads a stale one.
    failed = ip_widget.user_ns["_claude"]
    assert failed is not previous
    assert ip_widget.user_ns["answer"] is failed
    assert (failed.complete, failed.text, failed.model) == (False, "", "claude-nope")
    assert lines[0].endswith(str(failed.error))
    # The live view is replaced by a line that says there is no reply, never left empty.
    final = captured.outputs[-1].data
    assert "application/vnd.jupyter.widget-view+json" not in final
    assert final["text/plain"].startswith("claude-nope · no reply · ")
    assert "no reply" in final["text/html"]
    assert failed.error not in final["text/html"]  # said once, by the error line


def test_rate_limit_is_retried_by_the_sdk_first(
    ip_widget: InteractiveShell, api_env: FakeServer
) -> None:
    ip_widget.run_cell("%config ClaudeMagics.max_retries = 1", store_history=False)
    api_env.enqueue(http_error(429, headers={"retry-after": "0"}), text_reply("after retry"))
    result, _ = run(ip_widget, "%%claude\nhi")
    assert result.success, result.error_in_exec
    assert ip_widget.user_ns["_claude"].text == "after retry"
    assert len(api_env.requests) == 2


def test_connection_refused_is_one_line(
    ip_widget: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeServer() as gone:
        url = gone.url
    monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
    result, _ = run(ip_widget, "%%claude\nhi")
    lines = error_lines(result)
    assert "Could not connect to the API" in lines[0]
    assert "ANTHROPIC_BASE_URL" in lines[0]


@pytest.mark.parametrize(
    ("stop_reason", "notice"),
    [
        ("max_tokens", "Raise --max-tokens"),
        ("pause_turn", "pause_turn"),
        ("model_context_window_exceeded", "context window"),
    ],
)
def test_stop_reasons_other_than_end_turn_show_a_notice(
    ip_widget: InteractiveShell, api_env: FakeServer, stop_reason: str, notice: str
) -> None:
    api_env.enqueue(text_reply("Cut here", stop_reason=stop_reason))
    result, captured = run(ip_widget, "%%claude\nhi")
    assert result.success, result.error_in_exec
    answer = ip_widget.user_ns["_claude"]
    assert answer.complete is True
    assert answer.stop_reason == stop_reason
    assert notice in final_html(captured)
    assert notice in captured.outputs[-1].data["text/plain"]


def test_refusal_shows_its_category(ip_widget: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(replay(SSE_DIR / "refusal_response.txt", finish_last_event=True))
    _result, captured = run(ip_widget, "%%claude\nhi")
    answer = ip_widget.user_ns["_claude"]
    assert answer.stop_reason == "refusal"
    html = final_html(captured)
    assert "declined" in html
    category = getattr(answer.stop_details, "category", None)
    if category:
        assert category in html


def test_unknown_events_and_blocks_are_tolerated(
    ip_widget: InteractiveShell, api_env: FakeServer
) -> None:
    api_env.enqueue(
        reply(
            text("Before."),
            unknown_event("telemetry_update", {"value": 1}),
            unknown_block("hologram", payload="<script>x</script>"),
            text("After."),
        )
    )
    result, captured = run(ip_widget, "%%claude\nhi")
    assert result.success, result.error_in_exec
    html = final_html(captured)
    assert "Before." in html
    assert "After." in html
    assert "[hologram block not shown]" in html
    assert "<script>" not in html
    assert "telemetry_update" in html


@pytest.fixture
def keyboard_interrupts() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt, as ipykernel arranges while it runs a cell.

    A test run started in the background (``pytest &``, a CI job) inherits SIGINT ignored
    from its shell, and Python then leaves it ignored.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("keyboard_interrupts")
def test_interrupt_closes_the_stream_and_keeps_the_partial_reply(
    ip_widget: InteractiveShell, api_env: FakeServer
) -> None:
    api_env.enqueue(text_reply(LONG_ANSWER, chunk_size=20, delay=0.01))

    def interrupt_once_streaming() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if api_env.requests and api_env.requests[0].events_sent >= 10:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.01)

    threading.Thread(target=interrupt_once_streaming, daemon=True).start()
    result, captured = run(ip_widget, "%%claude\nlong please")
    lines = error_lines(result)
    assert "Interrupted" in lines[0]
    answer = ip_widget.user_ns["_claude"]
    assert answer.complete is False
    assert answer.text
    assert LONG_ANSWER.startswith(answer.text)
    assert len(answer.text) < len(LONG_ANSWER)
    html = final_html(captured)
    last_paragraph = answer.text.rstrip().split("\n\n")[-1]
    assert last_paragraph in html
    assert "incomplete" in html
    assert "(estimated)" in html  # the count never came: not "1 out"
    assert "Interrupted" not in html  # said once, by the error line
    record = api_env.requests[0]
    record.wait_finished(timeout=10)
    assert record.disconnected
    # The shell is ready for the next cell.
    api_env.enqueue(text_reply("still here"))
    result, _ = run(ip_widget, "%%claude\nnext")
    assert result.success, result.error_in_exec
    assert ip_widget.user_ns["_claude"].text == "still here"


def test_the_key_appears_nowhere_on_any_failure_path(
    ip_widget: InteractiveShell, api_env: FakeServer
) -> None:
    ip_widget.run_cell("%xmode Verbose", store_history=False)
    try:
        scripts = [
            http_error(401),
            http_error(400),
            error_after(text_reply("partial"), 4),
            cut_after(text_reply("partial"), 4),
            text_reply("fine"),
        ]
        seen = []
        for script in scripts:
            api_env.enqueue(script)
            result, captured = run(ip_widget, "%%claude\nhi")
            seen.append(captured.stdout + captured.stderr)
            seen.extend(repr(output.data) for output in captured.outputs)
            if result.error_in_exec is not None:
                exc = result.error_in_exec
                if hasattr(exc, "_render_traceback_"):
                    seen.extend(exc._render_traceback_())
                seen.append(repr(exc))
            seen.append(repr(ip_widget.user_ns.get("_claude")))
        result, captured = run(ip_widget, "%config ClaudeMagics")
        seen.append(captured.stdout)
        result, captured = run(ip_widget, "%%claude --max-tokens lots\nhi")
        seen.append(str(result.error_in_exec))
    finally:
        ip_widget.run_cell("%xmode Context", store_history=False)
    assert all(TEST_KEY not in text for text in seen)
    assert all(TEST_KEY[-12:] not in text for text in seen)


def test_usage_errors_are_exactly_usage_error(ip: InteractiveShell, api_env: FakeServer) -> None:
    result, _ = run(ip, "%%claude --thinking 512\nhi")
    assert type(result.error_in_exec) is UsageError
    assert "1024" in str(result.error_in_exec)


def test_a_host_that_takes_no_connection_fails_after_the_connect_timeout(
    ip_widget: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A listener whose queue is full drops new connections unanswered, as a host behind a
    # firewall does: only the connect timeout ends the wait (the read timeout is 600 s).
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        host, port = listener.getsockname()
        with socket.create_connection((host, port)):
            monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://{host}:{port}")
            ip_widget.run_cell("%config ClaudeMagics.connect_timeout = 0.3", store_history=False)
            result, _ = run(ip_widget, "%%claude\nhi")
    lines = error_lines(result)
    assert "Could not connect to the API in time" in lines[0]
    assert "connect_timeout" in lines[0]
