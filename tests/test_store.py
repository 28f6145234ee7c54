"""The persistent store and the response cache, from plain Python and an IPython shell.

Each test has a store of its own (``NBCLAUDE_HOME`` in a temporary folder) and reads it
back with a second ``Store``, as a later kernel would. The kernel tests
(``test_store_kernel.py``) check restarts, several kernels at once and the notebook view.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbclaude
from nbclaude import ClaudeError, Session, ask
from nbclaude.store import FILE_NAME, SCHEMA_VERSION, Store, default_path
from nbclaude.testing import FakeServer, error_after, text_reply

from .conftest import TEST_KEY, run


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty store folder, for this test alone."""
    folder = tmp_path / "home"
    monkeypatch.setenv("NBCLAUDE_HOME", str(folder))
    return folder


@pytest.fixture
def session(api_env: FakeServer, home: Path) -> Iterator[Session]:
    chosen = Session()
    yield chosen
    chosen.close()


def stored_bytes(home: Path) -> bytes:
    """Every byte of the store's files: the database, its write-ahead log, its index."""
    return b"".join(path.read_bytes() for path in sorted(home.glob(FILE_NAME + "*")))


def test_each_call_is_written_as_it_ends_with_what_it_asked_and_got(
    api_env: FakeServer, session: Session, home: Path
) -> None:
    api_env.enqueue(text_reply("Stored **answer**.", output_tokens=5))
    ask("Remember me.", session=session, display="none", max_tokens=300)

    assert default_path() == home / FILE_NAME
    (row,) = Store(home / FILE_NAME).runs()
    values = row.values
    assert values["session"] == session.runs.store.session  # type: ignore[union-attr]
    assert values["request"]["messages"] == [{"role": "user", "content": "Remember me."}]
    assert values["request"]["max_tokens"] == 300
    assert values["reply"]["content"] == [
        {"type": "text", "text": "Stored **answer**.", "citations": None}
    ]
    assert (values["input_tokens"], values["output_tokens"]) == (25, 5)
    assert values["cost"] == pytest.approx(session.runs[0].cost)
    assert values["stop_reason"] == "end_turn"
    assert values["complete"] is True
    assert values["cached"] is False
    assert isinstance(values["started_at"], datetime)
    assert TEST_KEY.encode() not in stored_bytes(home)
    with sqlite3.connect(home / FILE_NAME) as connection:
        version = connection.execute("SELECT value FROM meta").fetchone()[0]
    assert version == str(SCHEMA_VERSION)


def test_runs_all_reads_every_session_and_filters(api_env: FakeServer, home: Path) -> None:
    first, second = Session(), Session()
    ask("From the first.", session=first, display="none")
    ask("From the second.", session=second, display="none")
    nbclaude.core.use_session(second)
    try:
        assert [r.request["messages"][0]["content"] for r in nbclaude.runs()] == [
            "From the second."
        ]
        everything = nbclaude.runs(all=True)
        assert [r.request["messages"][0]["content"] for r in everything] == [
            "From the first.",
            "From the second.",
        ]
        assert len(nbclaude.runs(since=datetime.now() - timedelta(minutes=5))) == 2
        assert len(nbclaude.runs(until="2000-01-01")) == 0
        assert len(nbclaude.runs(since=datetime.now().date().isoformat())) == 2
        frame = everything.to_dataframe()
        assert {"cached", "notebook", "cell_id"} <= set(frame.columns)
    finally:
        nbclaude.core.use_session(None)
        first.close()
        second.close()


def test_a_cache_hit_sends_nothing_costs_nothing_and_says_cached(
    api_env: FakeServer, session: Session
) -> None:
    api_env.enqueue(text_reply("The first answer, once.", output_tokens=6))
    original = ask("Cache me.", session=session, display="none")

    again = ask("Cache me.", session=session, display="none", cache=True)

    assert len(api_env.requests) == 1
    assert again.text == original.text == "The first answer, once."
    assert again.content == original.content
    assert again.complete
    assert again.cached
    assert not original.cached
    assert again.cost == 0
    assert again.usage_summary.line().startswith(
        "claude-sonnet-4-6 · cached · 25 in · 6 out · $0.0000"
    )
    assert [run.cached for run in session.runs] == [False, True]
    assert session.runs[1].cost == 0
    # Off by default: the same request asks the API again.
    api_env.enqueue(text_reply("A second sample."))
    assert ask("Cache me.", session=session, display="none").text == "A second sample."
    assert len(api_env.requests) == 2


def test_any_parameter_makes_another_request(api_env: FakeServer, session: Session) -> None:
    ask("Same words.", session=session, display="none")
    api_env.enqueue(text_reply("Warmer."))
    reply = ask("Same words.", session=session, display="none", cache=True, temperature=0.9)
    assert reply.text == "Warmer."
    assert len(api_env.requests) == 2


def test_fresh_asks_the_api_and_its_reply_is_the_one_cached_next(
    api_env: FakeServer, session: Session
) -> None:
    api_env.enqueue(text_reply("Old."), text_reply("New."))
    ask("Refresh me.", session=session, display="none")
    assert ask("Refresh me.", session=session, display="none", cache=False).text == "New."
    assert ask("Refresh me.", session=session, display="none", cache=True).text == "New."
    assert len(api_env.requests) == 2


def test_incomplete_replies_are_never_cached(api_env: FakeServer, session: Session) -> None:
    api_env.enqueue(error_after(text_reply("Half of it", chunk_size=4), 4), text_reply("Whole."))
    with pytest.raises(ClaudeError):
        ask("Flaky.", session=session, display="none")
    assert ask("Flaky.", session=session, display="none", cache=True).text == "Whole."
    assert len(api_env.requests) == 2


def test_clearing_the_cache_keeps_the_history(
    home: Path, ip: InteractiveShell, api_env: FakeServer
) -> None:
    api_env.enqueue(text_reply("One."), text_reply("Two."))
    run(ip, "%%claude\nClear me.")
    _, captured = run(ip, "%claude cache on")
    assert "The response cache is on" in captured.stdout
    assert str(home) in captured.stdout
    run(ip, "%%claude\nClear me.")
    assert len(api_env.requests) == 1
    _, captured = run(ip, "%claude cache clear")
    assert "Forgot 1 cached reply" in captured.stdout
    run(ip, "%%claude\nClear me.")
    assert len(api_env.requests) == 2
    assert len(Store(home / FILE_NAME).runs()) == 3
    _, captured = run(ip, "%claude cache off")
    assert "The response cache is off" in captured.stdout
    result, _ = run(ip, "%claude cache sometimes")
    assert "%claude cache takes on, off or clear" in str(result.error_in_exec)


def test_usage_all_totals_every_session_by_model(
    home: Path, ip: InteractiveShell, api_env: FakeServer
) -> None:
    other = Session()
    ask("Elsewhere.", session=other, display="none", model="haiku")
    other.close()
    run(ip, "%%claude\nHere.")
    _, captured = run(ip, "%claude usage --all")
    text = captured.outputs[0].data["text/plain"]
    assert "2 calls since" in text
    assert "claude-haiku-4-5" in text
    assert "claude-sonnet-4-6" in text
    assert "all models" in text


def test_a_corrupt_store_never_fails_a_call_and_says_so_once(
    api_env: FakeServer, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home.mkdir()
    (home / FILE_NAME).write_bytes(b"this is not a database, " * 100)
    chosen = Session()
    api_env.enqueue(text_reply("Still answered."), text_reply("Twice."))
    assert ask("One.", session=chosen, display="none").text == "Still answered."
    assert ask("Two.", session=chosen, display="none", cache=True).text == "Twice."
    errors = capsys.readouterr().err.splitlines()
    assert errors == [
        f"nbclaude: {home / FILE_NAME}: not an nbclaude store (the file is corrupt, or "
        "something else): calls are kept in memory only, until the kernel restarts.",
        f"nbclaude: {home / FILE_NAME}: not an nbclaude store (the file is corrupt, or "
        "something else): the response cache cannot be read; asking the API.",
    ]
    assert len(chosen.runs) == 2
    nbclaude.core.use_session(chosen)
    try:
        assert len(nbclaude.runs(all=True)) == 2  # this session's, from memory
    finally:
        nbclaude.core.use_session(None)
        chosen.close()


def test_a_locked_store_waits_briefly_then_keeps_the_call_in_memory(
    api_env: FakeServer, session: Session, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ask("Make the file.", session=session, display="none")
    other = sqlite3.connect(home / FILE_NAME, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        api_env.enqueue(text_reply("Answered while locked."))
        assert ask("Locked?", session=session, display="none").text == "Answered while locked."
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert "database is locked: calls are kept in memory only" in capsys.readouterr().err
    assert len(session.runs) == 2
    ask("Unlocked again.", session=session, display="none")
    assert len(Store(home / FILE_NAME).runs()) == 2  # the first and the third


def test_a_folder_that_cannot_be_made_never_fails_a_call(
    api_env: FakeServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("NBCLAUDE_HOME", str(blocker / "home"))
    chosen = Session()
    api_env.enqueue(text_reply("Fine."))
    assert ask("Where?", session=chosen, display="none").text == "Fine."
    assert "calls are kept in memory only" in capsys.readouterr().err
    chosen.close()


READ_ONLY = """
import json, os, sys
import nbclaude
from nbclaude.testing import FakeServer, text_reply

with FakeServer() as fake:
    os.environ["ANTHROPIC_BASE_URL"] = fake.url
    fake.enqueue(text_reply("Read-only is fine."))
    reply = nbclaude.ask("Write me?", display="none")
    print(json.dumps([reply.text, len(nbclaude.runs()), len(nbclaude.runs(all=True))]))
"""


def test_a_read_only_store_is_read_but_never_fails_a_call(
    api_env: FakeServer, session: Session, home: Path
) -> None:
    ask("Before it was read-only.", session=session, display="none")
    session.close()
    session.runs.store.close()  # type: ignore[union-attr]
    mounted = _read_only_copy(home)
    env = {"NBCLAUDE_HOME": str(mounted), "ANTHROPIC_API_KEY": TEST_KEY, "PATH": "/usr/bin:/bin"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", READ_ONLY], env=env, capture_output=True, text=True, timeout=60
        )
    finally:
        subprocess.run(["umount", str(mounted)], check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '["Read-only is fine.", 1, 1]'
    assert "read-only" in done.stderr or "readonly" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2


def _read_only_copy(home: Path) -> Path:
    """The store's folder, copied onto a file system mounted read-only."""
    target = home.parent / "read-only"
    target.mkdir()
    if os.geteuid() != 0:
        shutil.copytree(home, target, dirs_exist_ok=True)
        for path in [target, *target.iterdir()]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        return target
    mounted = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(target)], check=False)
    if mounted.returncode != 0:
        pytest.skip("this machine lets root neither mount a file system nor be refused a write")
    shutil.copytree(home, target, dirs_exist_ok=True)
    subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True)
    return target


def test_the_demo_s_replies_never_answer_the_api(api_env: FakeServer, session: Session) -> None:
    session.start_demo()
    demo = ask("Is 2**61 - 1 prime?", session=session, display="none")
    session.stop_demo()
    api_env.enqueue(text_reply("From the API."))
    real = ask("Is 2**61 - 1 prime?", session=session, display="none", cache=True)
    assert demo.model == "demo: canned reply"
    assert real.text == "From the API."
    assert not real.cached
