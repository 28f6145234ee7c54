"""``nbclaude.ask``: one request from any Python, with the options of ``%%claude``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbclaude
from nbclaude import ClaudeError, Reply, RequestError, Session
from nbclaude.core import NoKeyError
from nbclaude.keys import SecretError
from nbclaude.request import OptionError
from nbclaude.testing import FakeServer, error_after, http_error, text_reply

from .conftest import TEST_KEY, run
from .kernels import kernel_env, run_cell, running_kernel, saved_outputs

PLAIN_PYTHON = """
import json, sys
import nbclaude

reply = nbclaude.ask("Say hello.", model="haiku", max_tokens=100)
print(json.dumps({
    "text": reply.text,
    "complete": reply.complete,
    "model": reply.model,
    "ipython": "IPython" in sys.modules,
    "ipywidgets": "ipywidgets" in sys.modules,
    "runs": len(nbclaude.runs()),
}))
"""


@pytest.fixture
def session(api_env: FakeServer) -> Iterator[Session]:
    """A session of its own, showing nothing, against the fake server."""
    chosen = Session()
    yield chosen
    chosen.close()


def test_ask_from_plain_python_imports_neither_ipython_nor_ipywidgets(
    api_env: FakeServer,
) -> None:
    api_env.enqueue(text_reply("Hello from a script.", model="claude-haiku-4-5"))
    env = kernel_env(ANTHROPIC_BASE_URL=api_env.url, ANTHROPIC_API_KEY=TEST_KEY)
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_PYTHON], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert len(lines) == 1, "ask() printed something of its own in plain Python"
    assert json.loads(lines[0]) == {
        "text": "Hello from a script.",
        "complete": True,
        "model": "claude-haiku-4-5",
        "ipython": False,
        "ipywidgets": False,
        "runs": 1,
    }
    assert api_env.requests[-1].body["model"] == "claude-haiku-4-5"


def test_ask_sends_every_option_as_the_api_names_it(api_env: FakeServer, session: Session) -> None:
    api_env.enqueue(text_reply("ok"))
    reply = nbclaude.ask(
        ["First part.", "Second part."],
        model="opus",
        max_tokens=4096,
        thinking=2048,
        effort="high",
        temperature=0.25,
        top_p=0.9,
        top_k=40,
        stop=["END", "STOP"],
        param={"metadata": {"user_id": "u-1"}, "service_tier": "auto"},
        system="Be brief.",
        display="none",
        session=session,
    )
    assert reply.text == "ok"
    body = api_env.requests[-1].body
    assert body == {
        "model": "claude-opus-4-6",
        "max_tokens": 4096,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "First part."},
                    {"type": "text", "text": "Second part."},
                ],
            }
        ],
        "system": "Be brief.",
        "thinking": {"type": "enabled", "budget_tokens": 2048, "display": "summarized"},
        "temperature": 0.25,
        "top_p": 0.9,
        "top_k": 40,
        "stop_sequences": ["END", "STOP"],
        "metadata": {"user_id": "u-1"},
        "service_tier": "auto",
        "output_config": {"effort": "high"},
        "stream": True,
    }
    # The run log keeps the body that went on the wire.
    assert session.runs[-1].request == body


@pytest.mark.parametrize(
    ("options", "flag"),
    [
        ({"temperature": 1.5}, "--temperature"),
        ({"top_p": -0.1}, "--top-p"),
        ({"top_k": -3}, "--top-k"),
        ({"effort": "extreme"}, "--effort"),
        ({"stop": [""]}, "--stop"),
        ({"max_tokens": 0}, "--max-tokens"),
        ({"thinking": 100}, "--thinking"),
        ({"param": {"temperature": 0.5}}, "--temperature"),
        ({"param": {"messages": []}}, "--param messages"),
    ],
)
def test_ask_refuses_a_bad_value_before_sending_anything(
    api_env: FakeServer, session: Session, options: dict[str, Any], flag: str
) -> None:
    with pytest.raises(OptionError, match=flag.replace("-", r"\-")) as caught:
        nbclaude.ask("hi", display="none", session=session, **options)
    assert isinstance(caught.value, RequestError)
    assert "\n" not in str(caught.value)
    assert api_env.requests == []


def test_ask_raises_one_line_with_what_arrived(api_env: FakeServer, session: Session) -> None:
    api_env.enqueue(error_after(text_reply("Half of it, then", chunk_size=5), 5), http_error(401))
    with pytest.raises(ClaudeError, match="overloaded_error") as caught:
        nbclaude.ask("hi", display="none", session=session)
    partial = caught.value.reply
    assert isinstance(partial, Reply)
    assert (partial.complete, partial.text) == (False, "Half of it, then"[: len(partial.text)])
    assert partial.text

    with pytest.raises(ClaudeError, match="Authentication failed") as caught:
        nbclaude.ask("hi", display="none", session=session)
    assert caught.value.reply is not None
    assert caught.value.reply.content == []
    assert [run.complete for run in session.runs] == [False, False]


def test_ask_refuses_the_key_and_a_missing_key(
    api_env: FakeServer, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SecretError):
        nbclaude.ask(f"Remember {TEST_KEY}", display="none", session=session)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(NoKeyError, match="ANTHROPIC_API_KEY"):
        nbclaude.ask("hi", display="none", session=session)
    assert api_env.requests == []


def test_ask_continues_a_conversation(api_env: FakeServer, session: Session) -> None:
    api_env.enqueue(text_reply("Paris."), text_reply("About two million."))
    nbclaude.ask("Capital of France?", chat="geo", display="none", session=session)
    nbclaude.ask("Its population?", chat="geo", display="none", session=session)
    messages = api_env.requests[-1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"][-1]["text"] == "Paris."
    assert len(session.chats["geo"]) == 2


def test_ask_prints_the_reply_when_asked_to(
    api_env: FakeServer, session: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    api_env.enqueue(text_reply("Streamed to stdout."))
    nbclaude.ask("hi", display="text", session=session)
    out = capsys.readouterr().out
    assert "Streamed to stdout." in out
    assert "claude-sonnet-4-6 · " in out  # the usage line


def test_ask_and_the_magic_share_one_session(ip: InteractiveShell, api_env: FakeServer) -> None:
    api_env.enqueue(text_reply("from the magic"), text_reply("from ask"))
    result, _ = run(ip, "%%claude --chat\nfirst")
    assert result.success, result.error_in_exec
    result, captured = run(ip, "from nbclaude import ask\nsecond = ask('second', chat='main')")
    assert result.success, result.error_in_exec
    assert "from ask" in captured.stdout  # terminal IPython: the reply streams as text
    assert [run.chat for run in nbclaude.runs()] == ["main", "main"]
    assert [m["role"] for m in api_env.requests[-1].body["messages"]] == [
        "user",
        "assistant",
        "user",
    ]


def test_ask_in_a_kernel_shows_the_live_view_then_the_static_one(api_env: FakeServer) -> None:
    api_env.enqueue(text_reply("# Shown\n\nin the notebook."))
    env = kernel_env(ANTHROPIC_BASE_URL=api_env.url, ANTHROPIC_API_KEY=TEST_KEY)
    with running_kernel(env) as (_, client):
        content, messages = run_cell(client, "import nbclaude\nreply = nbclaude.ask('hi')")
        assert content["status"] == "ok", content
        shown = [o for o in saved_outputs(messages) if o["output_type"] == "display_data"]
        assert len(shown) == 1
        assert '<h1 class="tocSkip">Shown</h1>' in shown[0]["data"]["text/html"]
        assert any(m["msg_type"] == "comm_open" for m in messages), "no live widget"
        content, messages = run_cell(client, "print(reply.text)")
        assert "in the notebook." in "".join(
            m["content"]["text"] for m in messages if m["msg_type"] == "stream"
        )
    assert os.environ.get("ANTHROPIC_API_KEY") == TEST_KEY
