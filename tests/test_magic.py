"""``%%claude`` through a real IPython shell and the real SDK, against the fake server."""

from __future__ import annotations

import html
import re

import anthropic
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import nbclaude
from nbclaude import Reply
from nbclaude.magic import ClaudeMagics
from nbclaude.testing import FakeServer, reply, text, text_reply, thinking, tool_use

from .conftest import SSE_DIR, run

TABLE_ANSWER = (
    "## Lists and tuples\n\n"
    "| | list | tuple |\n|---|---|---|\n| mutable | yes | no |\n\n"
    "```python\nxs = [1, 2]\n```\n"
)


def widget_mode(ip: InteractiveShell) -> None:
    ip.run_cell("%config ClaudeMagics.frontend = 'widget'", store_history=False)


def test_load_ext_registers_the_cell_magic(ip: InteractiveShell) -> None:
    assert ip.find_cell_magic("claude") is not None


def test_reload_ext_leaves_exactly_one_registration(ip: InteractiveShell) -> None:
    ip.run_cell("%reload_ext nbclaude", store_history=False)
    ip.run_cell("%reload_ext nbclaude", store_history=False)
    instances = [c for c in ip.configurables if isinstance(c, ClaudeMagics)]
    assert len(instances) == 1
    assert ip.find_cell_magic("claude").__self__ is instances[0]


def test_reply_is_bound_as_a_message_and_the_cell_returns_nothing(
    ip: InteractiveShell, api_env: FakeServer
) -> None:
    api_env.enqueue(text_reply("Hello from **Claude**.", input_tokens=12, output_tokens=7))
    result, captured = run(ip, "%%claude\nSay hello.")
    assert result.success, result.error_in_exec
    assert result.result is None
    answer = ip.user_ns["_claude"]
    assert isinstance(answer, Reply)
    assert isinstance(answer, anthropic.types.Message)
    assert answer.text == "Hello from **Claude**."
    assert answer.complete is True
    assert answer.error is None
    assert answer.usage.input_tokens == 12
    assert answer.usage.output_tokens == 7
    assert answer.usage_summary.cost is not None
    assert "Hello from **Claude**." in captured.stdout


def test_prompt_is_sent_exactly_as_typed(ip: InteractiveShell, api_env: FakeServer) -> None:
    prompt = (
        'Fix this:\n\ndef f(x): return {"a": x, "b": {0}}.format(x)\n'
        '  f"{x!r}" {} {{x+1}} {{ 2 }}\n'
    )
    api_env.enqueue(text_reply("ok"))
    result, _ = run(ip, "%%claude\n" + prompt)
    assert result.success, result.error_in_exec
    body = api_env.requests[-1].body
    assert body is not None
    assert body["messages"] == [{"role": "user", "content": prompt}]
    assert body["stream"] is True


def test_out_binds_the_same_object(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(text_reply("bound"))
    result, _ = run(ip, "%%claude -o answer\nhi")
    assert result.success, result.error_in_exec
    assert ip.user_ns["answer"] is ip.user_ns["_claude"]


def test_config_model_and_flag_reach_the_request(ip: InteractiveShell, api_env: FakeServer) -> None:
    ip.run_cell("%config ClaudeMagics.model = 'claude-haiku-4-5'", store_history=False)
    api_env.enqueue(text_reply("a"), text_reply("b"))
    run(ip, "%%claude\nfirst")
    run(ip, "%%claude --model claude-opus-4-6 --max-tokens 300\nsecond")
    first, second = (r.body for r in api_env.requests[-2:])
    assert first is not None
    assert second is not None
    assert first["model"] == "claude-haiku-4-5"
    assert second["model"] == "claude-opus-4-6"
    assert second["max_tokens"] == 300


def test_system_prompt_arrives_without_its_quotes(
    ip: InteractiveShell, api_env: FakeServer
) -> None:
    api_env.enqueue(text_reply("terse"), text_reply("terse"))
    run(ip, '%%claude -s "You are terse. Answer in one line."\nhi')
    run(ip, "%%claude --system 'Single quotes too.'\nhi")
    bodies = [r.body for r in api_env.requests[-2:]]
    assert bodies[0] is not None
    assert bodies[1] is not None
    assert bodies[0]["system"] == "You are terse. Answer in one line."
    assert bodies[1]["system"] == "Single quotes too."


def test_thinking_budget_and_adaptive_thinking(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(
        text_reply("Tuples are immutable.", thinking="Let me compare them."),
        text_reply("adaptive"),
    )
    result, _ = run(ip, "%%claude --thinking 2048 -o answer\nlist vs tuple?")
    assert result.success, result.error_in_exec
    run(ip, "%%claude -t\nagain")
    budget, adaptive = (r.body for r in api_env.requests[-2:])
    assert budget is not None
    assert adaptive is not None
    assert budget["thinking"] == {"type": "enabled", "budget_tokens": 2048, "display": "summarized"}
    assert adaptive["thinking"] == {"type": "adaptive", "display": "summarized"}
    answer = ip.user_ns["answer"]
    assert answer.thinking == "Let me compare them."
    assert answer.text == "Tuples are immutable."
    signatures = [b.signature for b in answer.content if b.type == "thinking"]
    assert signatures
    assert all(signatures)


@pytest.mark.parametrize(
    "flags",
    [
        "--max-tokens lots",
        "--no-such-flag",
        "--thinking 100",
        "--thinking -5",
        "--thinking 4096 --max-tokens 4096",
        "--thinking plenty",
        "-o 'not a name'",
        "--max-tokens 0",
    ],
)
def test_bad_flags_raise_usage_error_and_send_nothing(
    ip: InteractiveShell, api_env: FakeServer, flags: str
) -> None:
    result, _ = run(ip, f"%%claude {flags}\nhello")
    assert type(result.error_in_exec) is UsageError
    assert api_env.requests == []


def test_empty_cell_is_a_usage_error(ip: InteractiveShell, api_env: FakeServer) -> None:
    result, _ = run(ip, "%%claude\n   \n")
    assert type(result.error_in_exec) is UsageError
    assert api_env.requests == []


def test_missing_key_is_one_line_and_sends_nothing(
    ip: InteractiveShell, api_env: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    result, _captured = run(ip, "%%claude\nhello")
    assert type(result.error_in_exec) is UsageError
    assert "ANTHROPIC_API_KEY" in str(result.error_in_exec)
    assert api_env.requests == []


def test_widget_is_replaced_by_a_static_bundle(ip: InteractiveShell, api_env: FakeServer) -> None:
    widget_mode(ip)
    api_env.enqueue(text_reply(TABLE_ANSWER, thinking="Compare mutability.", chunk_size=7))
    result, captured = run(ip, "%%claude -t 2048\nlist vs tuple")
    assert result.success, result.error_in_exec
    first, last = captured.outputs[0], captured.outputs[-1]
    assert "application/vnd.jupyter.widget-view+json" in first.data
    assert last.update is True
    assert set(last.data) == {"text/html", "text/plain"}
    html = last.data["text/html"]
    assert "<table " in html
    assert '<h2 class="tocSkip">Lists and tuples</h2>' in html
    thinking = r'<details [^>]*class="nbclaude-thinking"><summary [^>]*>Thinking</summary>'
    assert re.search(thinking, html)
    assert "Compare mutability." in html
    assert "claude-sonnet-4-6" in html  # the usage line
    assert last.data["text/plain"] == TABLE_ANSWER
    # Same display id: the widget is replaced, not followed.
    assert first.transient == last.transient
    # An ASCII reply makes an ASCII page: the usage line's dots are character references.
    assert TABLE_ANSWER.isascii()
    assert html.isascii()
    assert "claude-sonnet-4-6 &#183; " in html


def test_what_the_sdk_warns_about_the_request_is_a_notice_not_a_raw_warning(
    ip: InteractiveShell, api_env: FakeServer
) -> None:
    # The installed SDK's own lists: whichever models it warns about in this version.
    from anthropic._data import DEPRECATED_MODELS, MODELS_TO_WARN_WITH_THINKING_ENABLED

    if not DEPRECATED_MODELS or not MODELS_TO_WARN_WITH_THINKING_ENABLED:
        pytest.skip("this version of the SDK warns about no model")
    deprecated = next(iter(DEPRECATED_MODELS))
    thinking_warned = next(iter(MODELS_TO_WARN_WITH_THINKING_ENABLED))
    widget_mode(ip)
    api_env.enqueue(text_reply("old"), text_reply("budget"), text_reply("fine"))
    cells = [
        (f"%%claude -m {deprecated}\nhi", ["deprecated", deprecated]),
        (f"%%claude -m {thinking_warned} -t 2048\nhi", ["adaptive", thinking_warned]),
        ("%%claude\nhi", []),
    ]
    for cell, words in cells:
        result, captured = run(ip, cell)
        assert result.success, result.error_in_exec  # a warning is not a failure
        assert captured.stderr == ""  # no raw warning with a path into nbclaude
        notices = re.findall(
            r'class="nbclaude-notice">(.*?)</div>', captured.outputs[-1].data["text/html"]
        )
        lines = ip.user_ns["_claude"].sdk_warnings
        assert len(lines) == len(notices) == (1 if words else 0)
        for word in words:
            assert word in lines[0]
            assert word in html.unescape(notices[0])


def test_a_finished_cell_leaves_no_widget_models_open(
    ip: InteractiveShell, api_env: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every widget model is a comm to the front end; ``comm.create_comm`` is the documented
    # hook a kernel replaces to carry them. Keep each one to see that all were closed.
    import comm
    from comm.base_comm import BaseComm

    opened: list[BaseComm] = []

    class KeptComm(BaseComm):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            opened.append(self)

        def publish_msg(self, *args: object, **kwargs: object) -> None:
            pass

    monkeypatch.setattr(comm, "create_comm", KeptComm)
    widget_mode(ip)
    api_env.enqueue(text_reply(TABLE_ANSWER, thinking="Compare.", chunk_size=5))
    result, _ = run(ip, "%%claude -t 1024 --max-tokens 4096\nlist vs tuple")
    assert result.success, result.error_in_exec
    assert len(opened) >= 2  # the live reply, and its layout
    assert [c for c in opened if not c._closed] == []


def test_reply_displays_as_the_static_view(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(text_reply("# Title"))
    run(ip, "%%claude\nhi")
    bundle = ip.user_ns["_claude"]._repr_mimebundle_()
    assert '<h1 class="tocSkip">Title</h1>' in bundle["text/html"]
    assert bundle["text/plain"] == "# Title"


def test_tool_blocks_render_compactly(ip: InteractiveShell, api_env: FakeServer) -> None:
    widget_mode(ip)
    api_env.enqueue(
        reply(
            thinking("Need the weather.", signature="sig"),
            text("Let me check."),
            tool_use("get_weather", {"city": "Paris <b>"}),
            stop_reason="tool_use",
        )
    )
    result, captured = run(ip, "%%claude\nweather?")
    assert result.success, result.error_in_exec
    html = captured.outputs[-1].data["text/html"]
    assert "get_weather" in html
    assert "Paris &lt;b&gt;" in html
    answer = ip.user_ns["_claude"]
    assert [b.type for b in answer.content] == ["thinking", "text", "tool_use"]
    assert answer.content[2].input == {"city": "Paris <b>"}


@pytest.mark.parametrize("path", sorted(SSE_DIR.glob("*.txt")), ids=lambda p: p.stem)
def test_each_recorded_stream_renders(
    ip: InteractiveShell, api_env: FakeServer, path: object
) -> None:
    from nbclaude.testing import replay

    widget_mode(ip)
    api_env.enqueue(replay(path))  # type: ignore[arg-type]
    result, captured = run(ip, "%%claude\nreplay")
    answer = ip.user_ns["_claude"]
    assert isinstance(answer, Reply)
    final = captured.outputs[-1]
    assert set(final.data) == {"text/html", "text/plain"}
    if answer.complete:
        assert result.success, result.error_in_exec
    else:
        assert answer.error
        assert result.error_in_exec is not None


def test_terminal_view_streams_text_and_prints_usage(
    ip: InteractiveShell, api_env: FakeServer
) -> None:
    api_env.enqueue(text_reply("Plain words.", thinking="hmm", output_tokens=5))
    result, captured = run(ip, "%%claude -t 1024 --max-tokens 2000\nhi")
    assert result.success, result.error_in_exec
    out = captured.stdout
    assert "[thinking]" in out
    assert "hmm" in out
    assert "Plain words." in out
    assert "5 out" in out


def test_tool_calls_show_their_input_in_a_terminal(
    ip: InteractiveShell, api_env: FakeServer
) -> None:
    api_env.enqueue(
        reply(
            text("Let me check."),
            tool_use("get_weather", {"city": "Paris", "unit": "celsius"}),
            stop_reason="tool_use",
        )
    )
    result, captured = run(ip, "%%claude\nweather?")
    assert result.success, result.error_in_exec
    out = captured.stdout
    assert "[tool_use: get_weather]" in out
    assert '"city": "Paris"' in out.split("[tool_use: get_weather]")[1]


def test_quotes_in_flags_work_as_in_a_shell(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(text_reply("ok"))
    result, _ = run(ip, "%%claude -s \"say \\\"hi\\\" and 'bye'\" -m 'sonnet'\nhi")
    assert result.success, result.error_in_exec
    body = api_env.requests[-1].body
    assert body["system"] == "say \"hi\" and 'bye'"
    assert body["model"] == "claude-sonnet-4-6"

    result, _ = run(ip, '%%claude -s "never closed\nhi')
    assert type(result.error_in_exec) is UsageError
    assert "unclosed quote" in str(result.error_in_exec)
    assert len(api_env.requests) == 1


@pytest.mark.parametrize("name", ["class", "print", "list", "_", "__", "_i3", "_5", "Out", "a-b"])
def test_out_refuses_a_name_python_or_ipython_needs(
    ip: InteractiveShell, api_env: FakeServer, name: str
) -> None:
    result, _ = run(ip, f"%%claude -o {name}\nhi")
    assert type(result.error_in_exec) is UsageError
    assert name in str(result.error_in_exec)
    assert api_env.requests == []


def test_help_is_plain_text(ip: InteractiveShell) -> None:
    result, captured = run(ip, "%claude help")
    assert result.success, result.error_in_exec
    lines = captured.stdout.splitlines()
    assert lines[0].startswith("nbclaude: a cell that starts with %%claude [FLAGS] sends")
    assert "`" not in captured.stdout
    commands = lines.index("Commands: %claude COMMAND, on a line of its own.")
    for command in ("help", "history", "reset", "usage", "models", "demo", "cache", "batch"):
        assert any(line.startswith(f"  {command} ") for line in lines[commands:]), command


def test_help_lists_every_flag_and_setting_in_columns_that_fit(ip: InteractiveShell) -> None:
    _, captured = run(ip, "%claude help")
    lines = captured.stdout.splitlines()
    # Fits a terminal or a notebook output without wrapping, in characters any font has.
    assert max(len(line) for line in lines) <= 100
    assert captured.stdout.isascii()
    # Every flag of the %%claude line and every setting has a row...
    terms = [line[2:] for line in lines if re.match(r"  \S", line)]
    for action in ClaudeMagics.claude.parser._actions:
        flags = ", ".join(action.option_strings)
        assert any(re.match(rf"{re.escape(flags)}(\s|$)", term) for term in terms), flags
    for name in ClaudeMagics.class_own_traits(config=True):
        assert any(term.startswith(f"{name} = ") for term in terms), name
    assert "  model = 'claude-sonnet-4-6'  Model id used when a cell gives no --model." in lines
    # ...and every description, wrapped or not, starts in the same column.
    rows = [re.match(r"  \S.*?  +(?=\S)", line) for line in lines]
    starts = {row.end() for row in rows if row is not None}
    starts |= {len(line) - len(line.lstrip()) for line in lines if line.startswith("   ")}
    assert len(starts) == 1, starts


def test_help_shows_settings_as_they_are_now_however_long(ip: InteractiveShell) -> None:
    run(ip, "%config ClaudeMagics.model = 'claude-haiku-4-5-20251001'")
    run(ip, f"%config ClaudeMagics.system = {'Answer briefly. ' * 20!r}")
    _, captured = run(ip, "%claude help")
    lines = captured.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    # A row too wide for the first column has its description start on the next line.
    row = lines.index("  model = 'claude-haiku-4-5-20251001'")
    assert lines[row + 1].strip() == "Model id used when a cell gives no --model."
    # A long value is cut short.
    (system,) = [line for line in lines if line.startswith("  system = 'Answer briefly.")]
    assert system.endswith("...")
    assert len(system) < 60


def test_unloading_stops_the_render_worker(ip: InteractiveShell) -> None:
    from nbclaude.worker import shared_worker

    widget_mode(ip)
    worker = shared_worker()
    assert worker is not None
    assert worker.is_alive()
    ip.run_cell("%unload_ext nbclaude", store_history=False)
    assert not worker.is_alive()
    assert shared_worker(start=False) is None
    ip.run_cell("%load_ext nbclaude", store_history=False)


def test_every_request_parameter_has_a_flag(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(text_reply("ok"))
    line = (
        "--effort low --temperature 0.3 --top-p 0.95 --top-k 20 --stop END --stop 'two words'"
        ' --param metadata=\'{"user_id": "u-7"}\' --param service_tier=\'"auto"\''
    )
    result, _ = run(ip, f"%%claude {line}\nhi")
    assert result.success, result.error_in_exec
    body = api_env.requests[-1].body
    assert body["output_config"] == {"effort": "low"}
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.3, 0.95, 20)
    assert body["stop_sequences"] == ["END", "two words"]
    assert body["metadata"] == {"user_id": "u-7"}
    assert body["service_tier"] == "auto"
    assert nbclaude.runs()[-1].flags == line


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        ("--temperature 1.5", "--temperature"),
        ("--temperature warm", "--temperature"),
        ("--top-p 2", "--top-p"),
        ("--top-k -1", "--top-k"),
        ("--top-k many", "--top-k"),
        ("--effort extreme", "--effort"),
        ("--stop ''", "--stop"),
        ("--param nothing", "--param"),
        ("--param 'metadata={oops'", "--param metadata"),
        ("--param 'top_p=0.5'", "--top-p"),
        ("--param 'stream=false'", "--param stream"),
    ],
)
def test_a_bad_parameter_is_a_usage_error_that_names_its_flag(
    ip: InteractiveShell, api_env: FakeServer, flags: str, named: str
) -> None:
    result, _ = run(ip, f"%%claude {flags}\nhi")
    assert type(result.error_in_exec) is UsageError
    assert named in str(result.error_in_exec)
    assert api_env.requests == []


def test_dry_run_counts_only_what_decides_the_input(
    ip: InteractiveShell, api_env: FakeServer
) -> None:
    result, captured = run(ip, "%%claude --dry-run --temperature 0.2 --effort max -o dry\nhi")
    assert result.success, result.error_in_exec
    (counted,) = api_env.requests
    assert counted.path == "/v1/messages/count_tokens"
    assert "temperature" not in counted.body
    assert "max_tokens" not in counted.body
    assert counted.body["output_config"] == {"effort": "max"}
    # The report shows the whole request as it would be sent.
    request = ip.user_ns["dry"].request
    assert (request["temperature"], request["stream"]) == (0.2, True)
    assert '"temperature": 0.2' in captured.stdout
