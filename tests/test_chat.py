"""``--chat``, templates, dry runs and aliases, through a real shell against the fake server.

Every test asserts on the request bodies the fake server recorded: what was actually sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output

from nbclaude.chat import CellTracker
from nbclaude.errors import ClaudeError
from nbclaude.magic import ClaudeMagics
from nbclaude.prices import DryRun
from nbclaude.testing import (
    FakeServer,
    error_after,
    http_error,
    redacted_thinking,
    reply,
    server_tool_use,
    text,
    text_reply,
    thinking,
    truncate_after,
    web_search_result,
)

from .conftest import TEST_KEY
from .kernels import kernel_env, run_cell, running_kernel

CACHED = {"type": "ephemeral"}


def run(
    ip: InteractiveShell, source: str, cell_id: str | None = None, *, silent: bool = False
) -> tuple[ExecutionResult, CapturedIO]:
    """Run a cell as Jupyter does: with the notebook's cell id, if given."""
    with capture_output() as captured:
        result = ip.run_cell(source, store_history=False, silent=silent, cell_id=cell_id)
    return result, captured


def ok(result: ExecutionResult) -> None:
    assert result.success, result.error_in_exec or result.error_before_exec


def sent(server: FakeServer) -> list[dict[str, Any]]:
    """The bodies of every ``POST /v1/messages`` so far."""
    return [r.body for r in server.requests if r.path == "/v1/messages"]


def messages(server: FakeServer) -> list[dict[str, Any]]:
    """The ``messages`` of the last request."""
    return list(sent(server)[-1]["messages"])


def typed(prompt: str) -> str:
    """A prompt as a cell magic gets it: IPython ends every cell body with a newline."""
    return prompt if prompt.endswith("\n") else prompt + "\n"


def user(prompt: str) -> dict[str, Any]:
    return {"role": "user", "content": typed(prompt)}


def cached_user(prompt: str) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [{"type": "text", "text": typed(prompt), "cache_control": CACHED}],
    }


def answer(content: str, *, cached: bool = False) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": content}
    if cached:
        block["cache_control"] = CACHED
    return {"role": "assistant", "content": [block]}


def magics(ip: InteractiveShell) -> ClaudeMagics:
    return next(c for c in ip.configurables if isinstance(c, ClaudeMagics))


@pytest.fixture(autouse=True)
def _clean_namespace(shell: InteractiveShell) -> Iterator[None]:
    """Drop the names a test defines: the shell outlives the test."""
    before = set(shell.user_ns)
    yield
    for name in set(shell.user_ns) - before:
        del shell.user_ns[name]


# --------------------------------------------------------------------------- conversations


def test_a_chat_sends_the_earlier_turns_in_order(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(text_reply("A1"), text_reply("A2"), text_reply("A3"))
    ok(run(ip, "%%claude --chat\nQ1\n", "cell-1")[0])
    ok(run(ip, "%%claude --chat\nQ2\n", "cell-2")[0])
    ok(run(ip, "%%claude --chat\nQ3\n", "cell-3")[0])
    first, second, third = (body["messages"] for body in sent(api_env))
    assert first == [user("Q1\n")]
    assert second == [user("Q1\n"), answer("A1", cached=True), user("Q2\n")]
    assert third == [
        user("Q1\n"),
        answer("A1"),
        user("Q2\n"),
        answer("A2", cached=True),
        user("Q3\n"),
    ]


def test_rerunning_a_cell_replaces_its_turn_and_the_turns_after_it(
    ip: InteractiveShell, api_env: FakeServer
) -> None:
    api_env.enqueue(*(text_reply(f"A{n}") for n in range(1, 6)))
    ok(run(ip, "%%claude --chat\nQ1", "cell-1")[0])
    ok(run(ip, "%%claude --chat\nQ2", "cell-2")[0])
    ok(run(ip, "%%claude --chat\nQ3", "cell-3")[0])
    # The user edits the second cell and runs it again.
    ok(run(ip, "%%claude --chat\nQ2, reworded", "cell-2")[0])
    assert messages(api_env) == [user("Q1"), answer("A1", cached=True), user("Q2, reworded")]
    turns = magics(ip).session.chats["main"].turns
    assert [turn.prompt for turn in turns] == [typed("Q1"), typed("Q2, reworded")]
    # Then runs the third cell again: it follows the new second turn, once.
    ok(run(ip, "%%claude --chat\nQ3", "cell-3")[0])
    assert messages(api_env) == [
        user("Q1"),
        answer("A1"),
        user("Q2, reworded"),
        answer("A4", cached=True),
        user("Q3"),
    ]
    assert [turn.key for turn in magics(ip).session.chats["main"].turns] == [
        ("cell-1", 0),
        ("cell-2", 0),
        ("cell-3", 0),
    ]


def test_rerunning_the_first_cell_starts_over(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(text_reply("A1"), text_reply("A2"), text_reply("A1 again"))
    ok(run(ip, "%%claude --chat\nQ1", "cell-1")[0])
    ok(run(ip, "%%claude --chat\nQ2", "cell-2")[0])
    ok(run(ip, "%%claude --chat\nQ1", "cell-1")[0])
    assert messages(api_env) == [user("Q1")]
    assert len(magics(ip).session.chats["main"]) == 1


def test_plain_cells_are_independent_of_chats(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(text_reply("A1"), text_reply("plain"), text_reply("A2"))
    ok(run(ip, "%%claude --chat\nQ1", "cell-1")[0])
    ok(run(ip, "%%claude\nOne-off question", "cell-2")[0])
    assert messages(api_env) == [user("One-off question")]
    ok(run(ip, "%%claude --chat\nQ2", "cell-3")[0])
    assert messages(api_env) == [user("Q1"), answer("A1", cached=True), user("Q2")]


def test_named_chats_are_separate(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(*(text_reply(name) for name in ("R1", "C1", "R2", "C2")))
    ok(run(ip, "%%claude --chat review\nreview this", "r1")[0])
    ok(run(ip, "%%claude --chat code\nwrite that", "c1")[0])
    ok(run(ip, "%%claude --chat review\nand this", "r2")[0])
    assert messages(api_env) == [user("review this"), answer("R1", cached=True), user("and this")]
    ok(run(ip, "%%claude --chat=code -m haiku\nmore", "c2")[0])
    assert messages(api_env) == [user("write that"), answer("C1", cached=True), user("more")]
    assert magics(ip).session.chats.names() == ["code", "review"]


def test_thinking_and_server_tool_blocks_go_back_as_received(
    ip: InteractiveShell, api_env: FakeServer
) -> None:
    citation = {
        "type": "web_search_result_location",
        "url": "https://example.com/tuples",
        "title": "Tuples",
        "encrypted_index": "enc-index",
        "cited_text": "Tuples are immutable.",
    }
    api_env.enqueue(
        reply(
            thinking("Let me search.", signature="sig-one"),
            redacted_thinking("opaque-bytes"),
            server_tool_use("web_search", {"query": "tuples"}, id="srvtoolu_1"),
            web_search_result("srvtoolu_1", [{"title": "Tuples", "url": citation["url"]}]),
            text("", chunk_size=5),
            text("Tuples are immutable.", citations=[citation]),
        ),
        text_reply("Yes."),
    )
    ok(run(ip, "%%claude --chat -t 2048\nAre tuples mutable?", "cell-1")[0])
    ok(run(ip, "%%claude --chat -t 2048\nSure?", "cell-2")[0])
    assistant = messages(api_env)[1]
    assert assistant["role"] == "assistant"
    blocks = assistant["content"]
    assert blocks[0] == {"type": "thinking", "thinking": "Let me search.", "signature": "sig-one"}
    assert blocks[1] == {"type": "redacted_thinking", "data": "opaque-bytes"}
    assert blocks[2] == {
        "type": "server_tool_use",
        "id": "srvtoolu_1",
        "name": "web_search",
        "input": {"query": "tuples"},
    }
    assert blocks[3]["type"] == "web_search_tool_result"
    assert blocks[3]["tool_use_id"] == "srvtoolu_1"
    assert blocks[3]["content"][0]["encrypted_content"]
    # The empty text block is dropped (the API refuses empty text); the cited one is kept.
    assert blocks[4] == {
        "type": "text",
        "text": "Tuples are immutable.",
        "citations": [citation],
        "cache_control": CACHED,
    }
    assert len(blocks) == 5


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(lambda: error_after(text_reply("half an answer"), 4), id="error-event"),
        pytest.param(lambda: truncate_after(text_reply("half an answer"), 4), id="truncated"),
        pytest.param(lambda: http_error(400), id="http-400"),
    ],
)
def test_a_failed_turn_is_not_added(
    ip: InteractiveShell, api_env: FakeServer, failure: Any
) -> None:
    api_env.enqueue(text_reply("A1"), failure(), text_reply("A3"))
    ok(run(ip, "%%claude --chat\nQ1", "cell-1")[0])
    result, _ = run(ip, "%%claude --chat\nQ2", "cell-2")
    assert isinstance(result.error_in_exec, ClaudeError)
    assert len(magics(ip).session.chats["main"]) == 1
    ok(run(ip, "%%claude --chat\nQ3", "cell-3")[0])
    assert messages(api_env) == [user("Q1"), answer("A1", cached=True), user("Q3")]


def test_a_failed_rerun_keeps_the_old_turns(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(text_reply("A1"), text_reply("A2"), http_error(400))
    ok(run(ip, "%%claude --chat\nQ1", "cell-1")[0])
    ok(run(ip, "%%claude --chat\nQ2", "cell-2")[0])
    result, _ = run(ip, "%%claude --chat\nQ1 again", "cell-1")
    assert isinstance(result.error_in_exec, ClaudeError)
    assert [turn.prompt for turn in magics(ip).session.chats["main"].turns] == [
        typed("Q1"),
        typed("Q2"),
    ]


def test_without_a_cell_id_every_run_appends(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(text_reply("A1"), text_reply("A2"))
    ok(run(ip, "%%claude --chat\ncontinue")[0])
    ok(run(ip, "%%claude --chat\ncontinue")[0])
    assert messages(api_env) == [user("continue"), answer("A1", cached=True), user("continue")]
    assert [turn.key for turn in magics(ip).session.chats["main"].turns] == [None, None]


def test_a_silent_run_does_not_borrow_the_previous_cell_id(
    ip: InteractiveShell, api_env: FakeServer
) -> None:
    api_env.enqueue(text_reply("A1"), text_reply("A2"))
    ok(run(ip, "%%claude --chat\nQ1", "cell-1")[0])
    ok(run(ip, "%%claude --chat\nQ2", silent=True)[0])
    assert [turn.key for turn in magics(ip).session.chats["main"].turns] == [("cell-1", 0), None]


def test_one_cell_sending_several_turns_replaces_them_all_on_rerun(
    ip: InteractiveShell, api_env: FakeServer
) -> None:
    api_env.enqueue(*(text_reply(f"A{n}") for n in range(1, 5)))
    loop = (
        "for question in ('Q1\\n', 'Q2\\n'):\n"
        "    get_ipython().run_cell_magic('claude', '--chat', question)\n"
    )
    ok(run(ip, loop, "loop-cell")[0])
    ok(run(ip, loop, "loop-cell")[0])
    assert messages(api_env) == [user("Q1"), answer("A3", cached=True), user("Q2")]
    turns = magics(ip).session.chats["main"].turns
    assert [turn.key for turn in turns] == [("loop-cell", 0), ("loop-cell", 1)]


def test_the_cell_tracker_follows_pre_run_cell_and_post_execute() -> None:
    tracker = CellTracker()
    assert tracker.next_key("main") is None

    class Info:
        cell_id = "abc"

    tracker.pre_run_cell(Info())
    assert tracker.cell_id == "abc"
    assert tracker.next_key("main") == ("abc", 0)
    assert tracker.next_key("main") == ("abc", 1)
    assert tracker.next_key("other") == ("abc", 0)
    tracker.post_execute()
    assert tracker.next_key("main") is None


def test_the_event_hooks_are_registered_once_and_removed_on_unload(
    ip: InteractiveShell,
) -> None:
    def ours(event: str) -> list[Any]:
        return [
            cb
            for cb in ip.events.callbacks[event]
            if isinstance(getattr(cb, "__self__", None), CellTracker)
        ]

    ip.run_cell("%reload_ext nbclaude", store_history=False)
    ip.run_cell("%reload_ext nbclaude", store_history=False)
    assert len(ours("pre_run_cell")) == 1
    assert len(ours("post_execute")) == 1
    assert ours("pre_run_cell")[0].__self__ is magics(ip).cells
    ip.run_cell("%unload_ext nbclaude", store_history=False)
    assert ours("pre_run_cell") == []
    assert ours("post_execute") == []
    ip.run_cell("%load_ext nbclaude", store_history=False)


def test_history_and_reset_commands(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(
        text_reply("Tuples are immutable.", thinking="Compare them.", signature="sig"),
        text_reply("Other chat."),
    )
    ok(run(ip, "%%claude --chat -t 1024 --max-tokens 2000\nlist vs tuple?", "cell-1")[0])
    ok(run(ip, "%%claude --chat other\nhello", "cell-2")[0])
    _, captured = run(ip, "%claude history")
    assert captured.stdout == (
        "Conversation 'main': 1 turn.\n"
        "\n"
        "── 1 · user · cell cell-1\n"
        "list vs tuple?\n"
        "\n"
        "── 1 · assistant · claude-sonnet-4-6\n"
        "[thinking, 13 characters, signed]\n"
        "Tuples are immutable.\n"
        "Other conversations: other.\n"
    )
    _, captured = run(ip, "%claude history other")
    assert "hello" in captured.stdout
    _, captured = run(ip, "%claude reset")
    assert captured.stdout == "Forgot conversation 'main'.\n"
    _, captured = run(ip, "%claude history")
    assert captured.stdout.startswith("Conversation 'main' is empty.\n")
    _, captured = run(ip, "%claude reset main")
    assert captured.stdout == "Conversation 'main' is empty: nothing to forget.\n"
    _, captured = run(ip, "%claude reset --all")
    assert captured.stdout == "Forgot 1 conversation.\n"
    assert magics(ip).session.chats.names() == []
    result, _ = run(ip, "%claude history 'not a name'")
    assert type(result.error_in_exec) is UsageError


def test_after_reset_the_chat_starts_fresh(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(text_reply("A1"), text_reply("A2"))
    ok(run(ip, "%%claude --chat\nQ1", "cell-1")[0])
    run(ip, "%claude reset")
    ok(run(ip, "%%claude --chat\nQ2", "cell-2")[0])
    assert messages(api_env) == [user("Q2")]


# --------------------------------------------------------------------------- prompt caching


def test_cache_control_skips_thinking_blocks(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(
        reply(thinking("only thinking", signature="s"), stop_reason="max_tokens"),
        text_reply("A2"),
    )
    ok(run(ip, "%%claude --chat -t 1024 --max-tokens 2000\nQ1", "cell-1")[0])
    ok(run(ip, "%%claude --chat\nQ2", "cell-2")[0])
    assert messages(api_env) == [
        cached_user("Q1"),
        {
            "role": "assistant",
            "content": [{"type": "thinking", "thinking": "only thinking", "signature": "s"}],
        },
        user("Q2"),
    ]


def test_cache_control_can_be_turned_off(ip: InteractiveShell, api_env: FakeServer) -> None:
    ip.run_cell("%config ClaudeMagics.cache_chats = False", store_history=False)
    api_env.enqueue(text_reply("A1"), text_reply("A2"))
    ok(run(ip, "%%claude --chat\nQ1", "cell-1")[0])
    ok(run(ip, "%%claude --chat\nQ2", "cell-2")[0])
    assert messages(api_env) == [user("Q1"), answer("A1"), user("Q2")]


def test_cache_reads_and_writes_show_in_the_usage_line(
    ip: InteractiveShell, api_env: FakeServer
) -> None:
    api_env.enqueue(text_reply("A1", cache_write=1500), text_reply("A2", cache_read=1500))
    ok(run(ip, "%%claude --chat\nQ1", "cell-1")[0])
    result, captured = run(ip, "%%claude --chat\nQ2", "cell-2")
    ok(result)
    assert "cache 1,500 read / 0 written" in captured.stdout
    assert ip.user_ns["_claude"].usage_summary.cache_read_tokens == 1500


# --------------------------------------------------------------------------- templates


def test_templates_fill_prompt_and_system_and_leave_other_braces(
    ip: InteractiveShell, api_env: FakeServer
) -> None:
    ip.user_ns["topic"] = "tuples"
    ip.user_ns["config"] = type("Config", (), {"lang": "Python"})()
    prompt = (
        "Explain {{ topic }} in {{config.lang}}.\n"
        'def f(x): return {"a": x, "b": {0}}.format(x)\n'
        '  f"{x!r}" {} {{ x + 1 }} {{ not a name }} {{{topic}}}\n'
    )
    api_env.enqueue(text_reply("ok"))
    ok(run(ip, f'%%claude -s "You teach {{{{ config.lang }}}}."\n{prompt}')[0])
    body = sent(api_env)[-1]
    assert body["system"] == "You teach Python."
    assert body["messages"] == [
        user(
            "Explain tuples in Python.\n"
            'def f(x): return {"a": x, "b": {0}}.format(x)\n'
            '  f"{x!r}" {} {{ x + 1 }} {{ not a name }} {{{topic}}}\n'
        )
    ]


def test_system_setting_is_templated_too(ip: InteractiveShell, api_env: FakeServer) -> None:
    ip.user_ns["persona"] = "a pirate"
    # %config runs through IPython's own {var} expansion, which halves doubled braces.
    ip.run_cell("%config ClaudeMagics.system = 'Talk like {{{{ persona }}}}.'", store_history=False)
    assert magics(ip).system == "Talk like {{ persona }}."
    api_env.enqueue(text_reply("Arr."))
    ok(run(ip, "%%claude\nhi")[0])
    assert sent(api_env)[-1]["system"] == "Talk like a pirate."


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("%%claude\nSummarise {{ undefined_thing }}", "'undefined_thing' is not defined"),
        ("%%claude\n{{ obj.missing }}", "has no attribute 'missing'"),
        ('%%claude -s "{{ nowhere }}"\nhi', "'nowhere' is not defined"),
        ("%%claude --chat --dry-run\n{{ undefined_thing }}", "not defined"),
    ],
)
def test_undefined_names_are_refused_before_sending(
    ip: InteractiveShell, api_env: FakeServer, source: str, message: str
) -> None:
    ip.user_ns["obj"] = object()
    result, _ = run(ip, source, "cell-1")
    assert type(result.error_in_exec) is UsageError
    assert message in str(result.error_in_exec)
    assert api_env.requests == []
    assert len(magics(ip).runs) == 0
    assert len(magics(ip).session.chats["main"]) == 0


def test_an_undefined_name_says_how_to_send_braces(
    ip: InteractiveShell, api_env: FakeServer
) -> None:
    result, _ = run(ip, "%%claude\nJinja: {{ user.name }}")
    assert str(result.error_in_exec) == (
        "{{ user.name }}: name 'user' is not defined. Define it in a cell above, or pass "
        "--raw to send the cell without filling {{ }}. Nothing was sent."
    )


def test_raw_sends_the_cell_exactly(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(text_reply("ok"))
    source = "Jinja: {{ user.name }} and {{undefined}}\n"
    ok(run(ip, '%%claude --raw -s "{{ also }}"\n' + source)[0])
    body = sent(api_env)[-1]
    assert body["messages"] == [user(source)]
    assert body["system"] == "{{ also }}"


def test_a_dataframe_is_sent_as_a_markdown_table(ip: InteractiveShell, api_env: FakeServer) -> None:
    ip.user_ns["df"] = pd.DataFrame({"model": ["opus", "haiku"], "score": [0.9, 0.7]})
    api_env.enqueue(text_reply("ok"))
    ok(run(ip, "%%claude\nWhich is best?\n\n{{ df }}")[0])
    assert messages(api_env) == [
        user(
            "Which is best?\n\n"
            "DataFrame: 2 rows × 2 columns\n\n"
            "|  | model | score |\n|---|---|---|\n| 0 | opus | 0.9 |\n| 1 | haiku | 0.7 |"
        )
    ]


def test_the_last_reply_can_be_templated(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(text_reply("A haiku about tuples."), text_reply("ok"))
    ok(run(ip, "%%claude\nWrite a haiku.")[0])
    ok(run(ip, "%%claude\nCritique this: {{ _claude }}")[0])
    assert messages(api_env) == [user("Critique this: A haiku about tuples.")]


def test_a_chat_remembers_the_filled_prompt(ip: InteractiveShell, api_env: FakeServer) -> None:
    ip.user_ns["n"] = 1
    api_env.enqueue(text_reply("A1"), text_reply("A2"))
    ok(run(ip, "%%claude --chat\nValue {{ n }}", "cell-1")[0])
    ip.user_ns["n"] = 2
    ok(run(ip, "%%claude --chat\nNow {{ n }}", "cell-2")[0])
    assert messages(api_env) == [user("Value 1"), answer("A1", cached=True), user("Now 2")]


# --------------------------------------------------------------------------- dry runs


def test_dry_run_sends_only_a_token_count(ip: InteractiveShell, api_env: FakeServer) -> None:
    ip.user_ns["topic"] = "tuples"
    api_env.enqueue(text_reply("A1"))
    ok(run(ip, "%%claude --chat\nQ1", "cell-1")[0])
    before = ip.user_ns["_claude"]
    requests_before = len(api_env.requests)
    result, captured = run(
        ip, '%%claude --chat --dry-run -t 1024 --max-tokens 4000 -s "Be brief."\nAbout {{ topic }}?'
    )
    ok(result)
    new = api_env.requests[requests_before:]
    assert [(r.method, r.path) for r in new] == [("POST", "/v1/messages/count_tokens")]
    counted = new[0].body
    assert counted == {
        "model": "claude-sonnet-4-6",
        "system": "Be brief.",
        "thinking": {"type": "enabled", "budget_tokens": 1024, "display": "summarized"},
        "messages": [user("Q1"), answer("A1", cached=True), user("About tuples?")],
    }
    out = captured.stdout
    assert out.startswith("Dry run: nothing was sent to the Messages API.\nPOST /v1/messages\n")
    assert '"content": "About tuples?\\n"' in out
    assert '"max_tokens": 4000' in out
    assert '"stream": true' in out
    assert "input tokens (count_tokens) · input $" in out
    # Nothing else changed: no turn, no log entry, the last reply still bound.
    assert len(magics(ip).session.chats["main"]) == 1
    assert len(magics(ip).runs) == 1
    assert ip.user_ns["_claude"] is before


def test_dry_run_binds_the_request_with_out(ip: InteractiveShell, api_env: FakeServer) -> None:
    ok(run(ip, "%%claude --dry-run -o plan -m haiku\nhello")[0])
    plan = ip.user_ns["plan"]
    assert isinstance(plan, DryRun)
    assert plan.request == {
        "model": "claude-haiku-4-5",
        "max_tokens": 8192,
        "messages": [user("hello")],
        "stream": True,
    }
    assert plan.input_tokens >= 1
    assert plan.input_cost == pytest.approx(plan.input_tokens * 1.0 / 1e6)
    assert [r.path for r in api_env.requests] == ["/v1/messages/count_tokens"]


def test_dry_run_http_error_is_one_line(ip: InteractiveShell, api_env: FakeServer) -> None:
    ip.run_cell(f"%config ClaudeMagics.base_url = '{api_env.url}/nowhere'", store_history=False)
    result, _ = run(ip, "%%claude --dry-run\nhello")
    assert isinstance(result.error_in_exec, ClaudeError)
    assert "Not found (404)" in str(result.error_in_exec)


# --------------------------------------------------------------------------- models


def test_aliases_pick_the_model(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(*(text_reply("ok") for _ in range(4)))
    ok(run(ip, "%%claude -m opus\nhi")[0])
    ok(run(ip, "%%claude --model haiku\nhi")[0])
    ip.run_cell("%config ClaudeMagics.aliases = {'fast': 'claude-haiku-4-5'}", store_history=False)
    ip.run_cell("%config ClaudeMagics.model = 'fast'", store_history=False)
    ok(run(ip, "%%claude\nhi")[0])
    ok(run(ip, "%%claude -m sonnet\nhi")[0])
    assert [body["model"] for body in sent(api_env)] == [
        "claude-opus-4-6",
        "claude-haiku-4-5",
        "claude-haiku-4-5",
        "claude-sonnet-4-6",
    ]


def test_bad_aliases_setting_is_a_usage_error(ip: InteractiveShell, api_env: FakeServer) -> None:
    ip.run_cell("%config ClaudeMagics.aliases = {'x': 5}", store_history=False)
    result, _ = run(ip, "%%claude\nhi")
    assert type(result.error_in_exec) is UsageError
    assert api_env.requests == []


def test_models_lists_what_the_api_offers(ip: InteractiveShell, api_env: FakeServer) -> None:
    result, captured = run(ip, "%claude models")
    ok(result)
    assert [(r.method, r.path) for r in api_env.requests] == [("GET", "/v1/models")]
    lines = captured.stdout.splitlines()
    assert lines[0].split() == ["model", "name", "released", "aliases"]
    rows = {line.split("  ")[0]: line for line in lines[1:5]}
    assert set(rows) == {
        "claude-sonnet-4-6",
        "claude-opus-4-5",
        "claude-haiku-4-5",
        "claude-sonnet-4-5",
    }
    assert rows["claude-sonnet-4-6"].endswith("2026-02-17  sonnet")
    assert rows["claude-haiku-4-5"].endswith("haiku")
    assert lines[-1] == "Aliases for models not listed: opus → claude-opus-4-6."


def test_models_without_a_key_is_a_usage_error(
    ip: InteractiveShell, api_env: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    result, _ = run(ip, "%claude models")
    assert type(result.error_in_exec) is UsageError
    assert api_env.requests == []


@pytest.mark.parametrize("flags", ["--chat 'two words'", "--chat a/b"])
def test_bad_chat_names_are_usage_errors(
    ip: InteractiveShell, api_env: FakeServer, flags: str
) -> None:
    result, _ = run(ip, f"%%claude {flags}\nhi")
    assert type(result.error_in_exec) is UsageError
    assert api_env.requests == []


# --------------------------------------------------------------------------- a real kernel


def test_a_real_kernel_hands_over_cell_ids_so_a_rerun_replaces(api_env: FakeServer) -> None:
    env = kernel_env(ANTHROPIC_BASE_URL=api_env.url, ANTHROPIC_API_KEY=TEST_KEY)
    with running_kernel(env) as (_, client):
        api_env.enqueue(text_reply("A1"), text_reply("A2"), text_reply("A2 again"))
        # Each cell names itself in its request's metadata, as JupyterLab does.
        for source, cell_id in [
            ("%load_ext nbclaude", "cell-0"),
            ("%%claude --chat\nQ1", "cell-1"),
            ("%%claude --chat\nQ2", "cell-2"),
            ("%%claude --chat\nQ2", "cell-2"),
        ]:
            content, _ = run_cell(client, source, cell_id=cell_id)
            assert content["status"] == "ok", content
    assert messages(api_env) == [user("Q1"), answer("A1", cached=True), user("Q2")]
