"""The run log and ``%claude usage``: what was recorded matches what the server saw and said."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
from anthropic.types import Message
from IPython.core.interactiveshell import InteractiveShell

import nbclaude
from nbclaude.errors import ClaudeError
from nbclaude.log import Run, RunLog
from nbclaude.reply import Reply, Timing
from nbclaude.testing import FakeServer, error_after, http_error, text_reply

from .conftest import run


def bodies(server: FakeServer) -> list[Any]:
    return [r.body for r in server.requests if r.path == "/v1/messages"]


# --------------------------------------------------------------------------- through the shell


def test_every_call_is_recorded_with_the_request_the_server_saw(
    ip: InteractiveShell, api_env: FakeServer
) -> None:
    api_env.enqueue(
        text_reply("first", input_tokens=12, output_tokens=7),
        text_reply(
            "second",
            input_tokens=30,
            output_tokens=9,
            cache_read=100,
            cache_write=40,
            thinking="hm",
            model="claude-haiku-4-5",
        ),
    )
    result, _ = run(ip, "%%claude\nQ1")
    assert result.success, result.error_in_exec
    result, _ = run(ip, "%%claude --chat notes -m haiku -t 1024 --max-tokens 2000\nQ2")
    assert result.success, result.error_in_exec

    log = nbclaude.runs()
    assert len(log) == 2
    first, second = log
    assert isinstance(first, Run)
    assert [run.request for run in log] == bodies(api_env)
    assert first.model == "claude-sonnet-4-6"
    assert (first.input_tokens, first.output_tokens) == (12, 7)
    assert first.chat is None
    assert first.flags == ""
    assert first.complete is True
    assert first.error is None
    assert first.stop_reason == "end_turn"
    assert first.cost == pytest.approx((12 * 3.0 + 7 * 15.0) / 1e6)
    assert first.time_to_first_token is not None
    assert first.duration >= first.time_to_first_token
    assert first.started_at.tzinfo is not None

    assert second.model == "claude-haiku-4-5"
    assert second.chat == "notes"
    assert second.flags == "--chat notes -m haiku -t 1024 --max-tokens 2000"
    assert (second.cache_read_tokens, second.cache_write_tokens) == (100, 40)
    assert second.thinking_tokens == 1
    assert second.cost == pytest.approx((30 * 1.0 + 9 * 5.0 + 100 * 0.1 + 40 * 1.25) / 1e6)
    # The records match what the reply says about itself.
    assert ip.user_ns["_claude"].usage_summary.cost == second.cost


def test_failed_calls_are_recorded_too(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(http_error(400), error_after(text_reply("partial answer"), 4))
    result, _ = run(ip, "%%claude\nbad request")
    assert isinstance(result.error_in_exec, ClaudeError)
    result, _ = run(ip, "%%claude\ncut short")
    assert isinstance(result.error_in_exec, ClaudeError)

    before_stream, mid_stream = nbclaude.runs()
    assert [before_stream.request, mid_stream.request] == bodies(api_env)
    assert before_stream.complete is False
    assert before_stream.error is not None
    assert "400" in before_stream.error
    assert (before_stream.input_tokens, before_stream.output_tokens) == (0, 0)
    assert before_stream.cost == 0  # nothing was billed
    assert before_stream.time_to_first_token is None
    assert before_stream.duration >= 0
    assert before_stream.stop_reason is None

    assert mid_stream.complete is False
    assert mid_stream.error is not None
    assert "overloaded_error" in mid_stream.error
    assert mid_stream.input_tokens == 25
    assert mid_stream.stop_reason is None


def test_usage_shows_each_call_and_the_totals(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(
        text_reply("a", input_tokens=1000, output_tokens=200),
        text_reply("b", input_tokens=500, output_tokens=100, cache_read=2000, cache_write=300),
    )
    run(ip, "%%claude\nQ1")
    run(ip, "%%claude --chat\nQ2")
    result, captured = run(ip, "%claude usage")
    assert result.success, result.error_in_exec
    (output,) = captured.outputs
    assert set(output.data) == {"text/html", "text/plain"}
    html = output.data["text/html"]
    assert html.startswith('<table class="nbclaude-runs">')
    assert html.count("<tr>") == 3  # the header and two calls
    assert '<tr class="nbclaude-total">' in html
    cost = (1000 * 3 + 200 * 15 + 500 * 3 + 100 * 15 + 2000 * 0.3 + 300 * 3.75) / 1e6
    totals = nbclaude.runs().totals()
    assert totals.cost == pytest.approx(cost)
    assert (totals.calls, totals.failed) == (2, 0)
    assert (totals.input_tokens, totals.output_tokens) == (1500, 300)
    assert (totals.cache_read_tokens, totals.cache_write_tokens) == (2000, 300)
    assert f"<td>${cost:.4f}</td>" in html
    assert "<td>1,500</td><td>300</td><td>2,000</td><td>300</td>" in html
    plain = output.data["text/plain"].splitlines()
    assert plain[0].split()[:4] == ["#", "time", "model", "chat"]
    assert plain[2].split()[0] == "1"
    assert plain[3].split()[3] == "main"
    assert plain[-1].split()[:5] == ["total", "1,500", "300", "2,000", "300"]


def test_usage_before_any_call(ip: InteractiveShell, api_env: FakeServer) -> None:
    _, captured = run(ip, "%claude usage")
    (output,) = captured.outputs
    assert output.data["text/plain"] == "No calls yet."
    result, _ = run(ip, "%claude usage everything")
    assert result.error_in_exec is not None


def test_the_log_as_a_dataframe(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(text_reply("a", input_tokens=5), text_reply("b", input_tokens=6))
    run(ip, "%%claude\nQ1")
    run(ip, "%%claude -m haiku\nQ2")
    frame = nbclaude.runs().to_dataframe()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == [field.name for field in dataclasses.fields(Run)]
    assert frame["input_tokens"].tolist() == [5, 6]
    assert frame["complete"].tolist() == [True, True]
    assert frame["request"][1]["model"] == "claude-haiku-4-5"


def test_reload_starts_a_new_log(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(text_reply("a"))
    run(ip, "%%claude\nQ1")
    assert len(nbclaude.runs()) == 1
    ip.run_cell("%reload_ext nbclaude", store_history=False)
    assert len(nbclaude.runs()) == 0


def test_runs_needs_the_extension(ip: InteractiveShell) -> None:
    ip.run_cell("%unload_ext nbclaude", store_history=False)
    try:
        with pytest.raises(RuntimeError, match="load_ext nbclaude"):
            nbclaude.runs()
    finally:
        ip.run_cell("%load_ext nbclaude", store_history=False)


# --------------------------------------------------------------------------- the log itself


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


NOON = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


def make_reply(model: str, input_tokens: int, output_tokens: int) -> Reply:
    message = Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "hi"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
    )
    return Reply.from_parts(message, complete=True, error=None, timing=Timing(0.25, 1.5))


def test_records_are_frozen_and_requests_are_private_copies() -> None:
    log = RunLog(now=lambda: NOON)
    request: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    record = log.record(log.start(), request, reply=make_reply("m", 1, 1))
    request["messages"][0]["content"] = "changed"
    assert record.request["messages"][0]["content"] == "x"
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.model = "other"  # type: ignore[misc]
    assert not hasattr(record, "__dict__")


def test_an_early_failure_takes_its_duration_from_the_clock() -> None:
    clock = Clock()
    log = RunLog(clock=clock, now=lambda: NOON)
    started = log.start()
    clock.now += 2.5
    record = log.record(started, {"model": "claude-opus-4-6"}, error="Rate limited (429)")
    assert record.duration == 2.5
    assert record.model == "claude-opus-4-6"
    assert record.started_at == NOON
    assert record.error == "Rate limited (429)"


def test_the_text_table_with_an_unpriced_model() -> None:
    log = RunLog(now=lambda: NOON)
    log.record(log.start(), {}, reply=make_reply("claude-sonnet-4-6", 1000, 100), chat="main")
    log.record(log.start(), {}, reply=make_reply("mystery-model", 10, 10))
    rule = (
        "-----  --------  -----------------  ----  -----  ------  ----------  -----------"
        "  ---------  -----------  --------  --------  --------"
    )
    assert log.text_table().splitlines() == [
        "#      time      model              chat  input  output  cache read  cache write"
        "       cost  first token  duration  stop      complete",
        rule,
        "1      12:00:00  claude-sonnet-4-6  main  1,000     100           0            0"
        "    $0.0045        0.25s     1.50s  end_turn  yes",
        "2      12:00:00  mystery-model               10      10           0            0"
        "          —        0.25s     1.50s  end_turn  yes",
        rule,
        "total                                     1,010     110           0            0"
        "  $0.0045 *                  3.00s            2/2",
        "* 1 call with no known price left out of the cost.",
    ]
    totals = log.totals()
    assert totals.unpriced == 1
    assert totals.cost == pytest.approx(0.0045)


def test_the_html_table_escapes_everything() -> None:
    log = RunLog(now=lambda: NOON)
    log.record(log.start(), {}, reply=make_reply("<b>model</b>", 1, 1), chat="<i>")
    html = log.html_table()
    assert "<b>" not in html
    assert "<i>" not in html
    assert "&lt;b&gt;model&lt;/b&gt;" in html
    assert log._repr_mimebundle_() == {"text/html": html, "text/plain": log.text_table()}


def test_to_dataframe_of_an_empty_log_has_the_columns() -> None:
    frame = RunLog().to_dataframe()
    assert list(frame.columns) == [field.name for field in dataclasses.fields(Run)]
    assert len(frame) == 0
