"""The offline demo: ``%claude demo`` through a real shell, and the canned replies it serves."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import httpx2
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from nbclaude import Reply, demo
from nbclaude.attachments import attachment_of
from nbclaude.markdown import render
from nbclaude.testing import FakeServer, Pause, SSEEvent

from .attachment_files import image_bytes
from .conftest import ROOT, TEST_KEY, run

QUICKSTART = ROOT / "notebooks" / "quickstart.ipynb"


def demo_server(ip: InteractiveShell) -> FakeServer | None:
    """The demo server of the loaded ``ClaudeMagics``, if the demo is on."""
    magics = ip.find_line_magic("claude").__self__
    running: demo.Demo | None = magics.session.demo
    return None if running is None else running.server


def body(prompt: str, **extra: Any) -> dict[str, Any]:
    """A request body as ``%%claude`` sends it."""
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 8192,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        **extra,
    }


LOOKUP = {
    "name": "lookup",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
"""The quickstart's tool, as the request defines it."""

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "born": {"type": "integer"}},
    "required": ["name", "born"],
    "additionalProperties": False,
}
"""The quickstart's schema, as the request sends it."""


def test_after_the_tools_ran_the_demo_shows_their_results() -> None:
    results = [
        {"type": "tool_result", "tool_use_id": "t1", "content": '{"population": 8400000}'},
        {"type": "tool_result", "tool_use_id": "t2", "content": "KeyError: 'X'", "is_error": True},
    ]
    messages = [
        {"role": "user", "content": "Which city?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "lookup"}]},
        {"role": "user", "content": results},
    ]
    request = {**body(""), "messages": messages, "tools": [LOOKUP]}
    blocks, deltas, final = streamed(demo.canned_reply(request, delay=0))
    answer = joined(deltas, "text")
    assert blocks == ["text"]
    assert final["stop_reason"] == "end_turn"
    assert '| 1 | ok | `{"population": 8400000}` |' in answer
    assert "| 2 | error | `KeyError: 'X'` |" in answer


def streamed(script: Any) -> tuple[list[str], list[dict[str, Any]], dict[str, Any]]:
    """The block types, the deltas and the final ``message_delta`` of a script."""
    blocks, deltas, final = [], [], {}
    for step in script.steps:
        if not isinstance(step, SSEEvent):
            continue
        if step.name == "content_block_start":
            blocks.append(step.data["content_block"]["type"])
        elif step.name == "content_block_delta":
            deltas.append(dict(step.data["delta"]))
        elif step.name == "message_delta":
            final = dict(step.data["delta"])
    return blocks, deltas, final


def joined(deltas: list[dict[str, Any]], key: str) -> str:
    return "".join(d.get(key, "") for d in deltas)


def claude_cells(path: Path) -> list[tuple[str, str]]:
    """``(magic line, prompt)`` of every ``%%claude`` cell of a notebook."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = []
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and source.startswith("%%claude"):
            line, _, prompt = source.partition("\n")
            found.append((line, prompt))
    return found


# --------------------------------------------------------------------------- the magic


def test_demo_answers_without_a_key_and_says_it_is_canned(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    result, captured = run(ip, "%claude demo")
    assert result.success, result.error_in_exec
    banner = captured.outputs[0].data
    assert "canned replies" in banner["text/html"]
    assert "canned replies" in banner["text/plain"]

    result, captured = run(ip, "%%claude\nWhat is a Python generator?")
    assert result.success, result.error_in_exec
    answer = ip.user_ns["_claude"]
    assert isinstance(answer, Reply)
    assert answer.complete
    assert "yield" in answer.text
    assert answer.model == demo.MODEL
    assert answer.usage_summary.cost is None  # a canned reply costs nothing
    assert answer.usage_summary.line().startswith("demo: canned reply · ")
    assert "demo: canned reply" in answer._repr_mimebundle_()["text/html"]
    assert "ANTHROPIC_API_KEY" not in os.environ


def test_demo_never_sends_the_real_key_and_leaves_the_environment_alone(
    ip: InteractiveShell, api_env: FakeServer
) -> None:
    environ_before = dict(os.environ)
    run(ip, "%claude demo")
    result, _ = run(ip, "%%claude\nWhat is a generator?")
    assert result.success, result.error_in_exec
    server = demo_server(ip)
    assert server is not None
    (request,) = server.requests
    headers = json.dumps(request.headers)
    assert demo.API_KEY in headers
    assert TEST_KEY not in headers
    assert api_env.requests == []  # the configured API got nothing
    assert dict(os.environ) == environ_before


def test_demo_off_goes_back_to_the_api_and_a_missing_key_is_an_error(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    run(ip, "%claude demo")
    server = demo_server(ip)
    assert server is not None
    result, captured = run(ip, "%claude demo off")
    assert result.success, result.error_in_exec
    assert "off" in captured.stdout
    assert demo_server(ip) is None
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{server.url}/v1/models", timeout=5)

    result, _ = run(ip, "%%claude\nhello")
    assert type(result.error_in_exec) is UsageError
    assert "ANTHROPIC_API_KEY" in str(result.error_in_exec)


def test_a_missing_key_never_starts_the_demo(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    result, _ = run(ip, "%%claude\nhello")
    assert type(result.error_in_exec) is UsageError
    assert demo_server(ip) is None


def test_demo_twice_keeps_one_server_and_off_twice_is_harmless(ip: InteractiveShell) -> None:
    run(ip, "%claude demo")
    first = demo_server(ip)
    result, captured = run(ip, "%claude demo on")
    assert result.success, result.error_in_exec
    assert demo_server(ip) is first
    assert "canned replies" in captured.outputs[0].data["text/plain"]
    run(ip, "%claude demo off")
    result, captured = run(ip, "%claude demo off")
    assert result.success, result.error_in_exec
    assert "not on" in captured.stdout


def test_demo_with_an_unknown_argument_is_a_usage_error(ip: InteractiveShell) -> None:
    result, _ = run(ip, "%claude demo please")
    assert type(result.error_in_exec) is UsageError
    assert demo_server(ip) is None


def test_unload_ext_stops_the_demo_and_its_threads_are_daemons(ip: InteractiveShell) -> None:
    run(ip, "%claude demo")
    server = demo_server(ip)
    assert server is not None
    threads = [t for t in threading.enumerate() if t.name.startswith("nbclaude-fake-server")]
    assert threads
    assert all(t.daemon for t in threads)
    ip.run_cell("%unload_ext nbclaude", store_history=False)
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{server.url}/v1/models", timeout=5)
    ip.run_cell("%load_ext nbclaude", store_history=False)  # the fixture unloads it again


def test_help_lists_the_demo(ip: InteractiveShell) -> None:
    _, captured = run(ip, "%claude help")
    assert "demo" in captured.stdout


# --------------------------------------------------------------------------- canned replies


@pytest.mark.parametrize(("line", "prompt"), claude_cells(QUICKSTART), ids=lambda value: value[:30])
def test_every_quickstart_prompt_has_a_fitting_reply(line: str, prompt: str) -> None:
    if "--tools" in line:
        # The demo calls the tool for each city the prompt names, then shows the results.
        script = demo.canned_reply(body(prompt, tools=[LOOKUP]), delay=0)
        blocks, deltas, final = streamed(script)
        assert blocks == ["text", "tool_use", "tool_use", "tool_use"]
        assert final["stop_reason"] == "tool_use"
        inputs = joined(deltas, "partial_json").replace("}{", "}\n{").splitlines()
        assert [json.loads(i) for i in inputs] == [{"city": c} for c in ("Hanoi", "Lagos", "Lima")]
        return
    if "--schema" in line:
        schema = {"type": "json_schema", "schema": PERSON}
        script = demo.canned_reply(body(prompt, output_config={"format": schema}), delay=0)
        _, deltas, _ = streamed(script)
        assert json.loads(joined(deltas, "text")) == {"name": "Ada Lovelace", "born": 1815}
        return
    if "{{ fig }}" not in prompt:
        assert demo.choose(body(prompt)).pattern is not None, "falls back to the generic reply"
        return
    # The plot is sent as an image: the demo says what arrived, since it cannot look.
    before, _, after = prompt.partition("{{ fig }}")
    plot = attachment_of(image_bytes(500, 300), "{{ fig }}")
    assert plot is not None
    content = [{"type": "text", "text": before}, plot.block(), {"type": "text", "text": after}]
    canned = demo.choose(body(content))  # type: ignore[arg-type]
    assert canned.name == "attachments"
    assert "| 1 | `[image 500×300 PNG, " in canned.answer
    tokens = re.search(r"about \*\*(\d+) input tokens\*\*", canned.answer)
    assert tokens is not None
    assert int(tokens[1]) > 500 * 300 // 750  # the image's tokens, and the text's


def test_list_vs_tuple_has_a_heading_a_table_and_code() -> None:
    answer = demo.choose(body("Explain the difference between a list and a tuple.")).answer
    assert answer.startswith("## ")
    assert "|---|" in answer
    assert "```python\n" in answer


def test_thinking_comes_first_only_when_asked_for() -> None:
    prompt = "Is 2**61 - 1 prime? Explain briefly."
    thinking = {"type": "enabled", "budget_tokens": 2048, "display": "summarized"}
    blocks, deltas, _ = streamed(demo.canned_reply(body(prompt, thinking=thinking)))
    assert blocks == ["thinking", "text"]
    assert "Lucas–Lehmer" in joined(deltas, "thinking")
    assert any(d["type"] == "signature_delta" for d in deltas)
    assert "2,305,843,009,213,693,951" in joined(deltas, "text")
    blocks, _, _ = streamed(demo.canned_reply(body(prompt)))
    assert blocks == ["text"]


def test_a_tool_prompt_ends_with_a_tool_call() -> None:
    blocks, deltas, final = streamed(demo.canned_reply(body("Call a tool to get the weather")))
    assert blocks == ["text", "tool_use"]
    assert json.loads(joined(deltas, "partial_json")) == {
        "location": "Paris, France",
        "unit": "celsius",
    }
    assert final["stop_reason"] == "tool_use"


def test_the_fallback_explains_the_demo_and_echoes_nothing() -> None:
    secret = "my password is hunter2"
    script = demo.canned_reply(body(f"Remember this: {secret}", system=secret))
    _, deltas, final = streamed(script)
    reply_text = joined(deltas, "text")
    assert "canned reply" in reply_text
    assert "%claude demo off" in reply_text
    assert "hunter2" not in json.dumps(
        [step.data for step in script.steps if isinstance(step, SSEEvent)]
    )
    assert final["stop_reason"] == "end_turn"


def test_replies_stream_at_a_reading_pace() -> None:
    script = demo.canned_reply(body("list vs tuple?"), delay=0.015)
    steps = list(script.steps)
    deltas = [
        i
        for i, s in enumerate(steps)
        if isinstance(s, SSEEvent) and s.name == "content_block_delta"
    ]
    assert len(deltas) > 50
    assert all(steps[i - 1] == Pause(0.015) for i in deltas)
    assert all(len(joined([steps[i].data["delta"]], "text")) <= demo.TEXT_CHUNK for i in deltas)


@pytest.mark.parametrize("canned", demo.REPLIES, ids=lambda canned: canned.name)
def test_thinking_streams_long_enough_to_watch_before_the_answer(canned: demo.Canned) -> None:
    # Thinking shows unfolded until the answer starts: at the answer's pace it would fold
    # away within a fraction of a second, however long or short it is.
    request = body("", thinking={"type": "adaptive"})
    request["messages"] = [{"role": "user", "content": canned.name}]
    script = demo.canned_reply(request, delay=0.015)
    waits: dict[str, list[float]] = {}
    kind, waited = "", 0.0
    for step in script.steps:
        if isinstance(step, Pause):
            waited += step.seconds
            continue
        if isinstance(step, SSEEvent) and step.name == "content_block_start":
            kind = step.data["content_block"]["type"]
        elif isinstance(step, SSEEvent) and step.name == "content_block_delta":
            waits.setdefault(kind, []).append(waited)
        waited = 0.0
    assert demo.choose(request) is canned
    assert 1.5 <= demo.THINKING_SECONDS <= 2.5
    assert sum(waits["thinking"]) == pytest.approx(demo.THINKING_SECONDS)
    assert len(waits["thinking"]) >= 10  # it streams in small steps, not a few jumps
    assert max(waits["thinking"]) <= 0.25
    assert set(waits["text"]) == {0.015}  # the answer keeps its own pace


def test_prompts_in_content_blocks_and_later_turns_are_read() -> None:
    request = body("")
    request["messages"] = [
        {"role": "user", "content": "What is a generator?"},
        {"role": "assistant", "content": "A lazy iterator."},
        {"role": "user", "content": [{"type": "text", "text": "And a tuple?"}]},
    ]
    assert demo.choose(request).name == "list vs tuple"


@pytest.mark.parametrize("canned", demo.REPLIES, ids=lambda canned: canned.name)
def test_canned_thinking_renders_as_written(canned: demo.Canned) -> None:
    # Code such as 2**61 in plain text pairs its stars into bold: it goes in code spans.
    assert "<strong>" not in render(canned.thinking)
    assert "**" not in re.sub(r"`[^`]*`", "", canned.thinking)
