"""Claude calls the notebook's Python, and replies into Python objects: in a real kernel.

The fake server is scripted with tool round trips (a reply that asks for tools, then one
that answers) and structured replies; each test reads back what the kernel sent it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbclaude.testing import (
    FakeServer,
    structured_reply,
    text_reply,
    tool_call_reply,
    tool_results,
)

from .conftest import TEST_KEY
from .kernels import NotebookKernel, kernel_env, running_kernel

TOOLS = """
import time
from pathlib import Path

CITIES = {
    "Hanoi": {"population": 8_400_000, "area_km2": 3_359},
    "Lagos": {"population": 15_400_000, "area_km2": 1_171},
}

def lookup(city: str) -> dict:
    '''Population and area of a city from our table.

    Args:
        city: The city's name, such as Hanoi.
    '''
    return CITIES[city]

def area(city: str, unit: str = "km2") -> float:
    '''The area of a city.'''
    return CITIES[city]["area_km2"]

def slow(seconds: float) -> str:
    '''Waits, then answers.'''
    Path(MARKER).write_text("started")
    time.sleep(seconds)
    return "done"

everything = [lookup, area]
"""

SCHEMA = """
from pydantic import BaseModel

class Person(BaseModel):
    name: str
    born: int

spec = {"type": "object", "properties": {"year": {"type": "integer"}}, "required": ["year"]}
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotebookKernel]:
    marker = tmp_path_factory.mktemp("tools") / "started"
    with FakeServer(max_response_seconds=60) as fake:
        env = kernel_env(ANTHROPIC_BASE_URL=fake.url, ANTHROPIC_API_KEY=TEST_KEY)
        with running_kernel(env) as (manager, client):
            started = NotebookKernel(manager, client, fake)
            setup = f"%load_ext nbclaude\nMARKER = {str(marker)!r}\n{TOOLS}\n{SCHEMA}"
            cell = started.run(setup)
            assert cell.status == "ok", cell.traceback
            started.marker = marker  # type: ignore[attr-defined]
            yield started


@pytest.fixture
def k(kernel: NotebookKernel) -> NotebookKernel:
    return kernel


def state(k: NotebookKernel, expression: str) -> Any:
    """The JSON value of an expression in the kernel."""
    cell = k.run(f"import json as _json\nprint(_json.dumps({expression}, default=repr))")
    assert cell.status == "ok", cell.traceback
    return json.loads(cell.printed)


def test_a_tool_round_trip_sends_the_result_back_exactly(k: NotebookKernel) -> None:
    before = len(k.fake.requests)
    k.fake.enqueue(
        tool_call_reply(("lookup", {"city": "Hanoi"}), text_before="Let me look it up."),
        # Paced, so that the live view refreshes while the answer streams.
        text_reply("Hanoi has 8.4 million people on 3,359 km2.", chunk_size=5, delay=0.03),
    )

    cell = k.run("%%claude --tools lookup\nHow many people live in Hanoi?")

    assert cell.status == "ok", cell.traceback
    first, second = (request.body for request in k.fake.requests[before:])
    assert first["tools"] == [
        {
            "name": "lookup",
            "description": "Population and area of a city from our table.",
            "input_schema": {
                "additionalProperties": False,
                "properties": {
                    "city": {
                        "description": "The city's name, such as Hanoi.",
                        "title": "City",
                        "type": "string",
                    }
                },
                "required": ["city"],
                "type": "object",
            },
        }
    ]
    asked = second["messages"][1]["content"]
    assert [block["type"] for block in asked] == ["text", "tool_use"]
    (result,) = tool_results(second)
    assert result == {
        "type": "tool_result",
        "tool_use_id": asked[1]["id"],
        "content": '{"population": 8400000, "area_km2": 3359}',
    }
    assert second["tools"] == first["tools"]
    # The live view showed the call and its result as they came...
    assert "result of" in cell.widget_state
    assert "8400000" in cell.widget_state
    # ... and one output keeps the call, its result and the answer, in order, with one
    # usage line.
    html = cell.html
    order = ["Let me look it up.", "lookup", "result of", "8400000", "Hanoi has 8.4 million"]
    positions = [html.find(piece) for piece in order]
    assert -1 not in positions, positions
    assert positions == sorted(positions)
    assert html.count('class="nbclaude-usage"') == 1
    assert "50 in" in html  # both rounds' input tokens, summed
    reply = state(
        k,
        "{'text': _claude.text, 'rounds': len(_claude.rounds), "
        "'calls': [[c.name, c.input, c.result, c.is_error] for c in _claude.tool_calls]}",
    )
    assert reply == {
        "text": "Hanoi has 8.4 million people on 3,359 km2.",
        "rounds": 2,
        "calls": [["lookup", {"city": "Hanoi"}, {"population": 8400000, "area_km2": 3359}, False]],
    }


def test_a_raising_tool_sends_the_error_to_claude_and_the_loop_goes_on(k: NotebookKernel) -> None:
    before = len(k.fake.requests)
    k.fake.enqueue(
        tool_call_reply(("lookup", {"city": "Atlantis"})),
        text_reply("Atlantis is not in your table."),
    )

    cell = k.run("%%claude --tools lookup\nHow many people live in Atlantis?")

    assert cell.status == "ok", cell.traceback
    assert "Traceback" not in cell.printed
    (result,) = tool_results(k.fake.requests[before + 1].body)
    assert result["is_error"] is True
    assert result["content"] == "KeyError: 'Atlantis'"
    assert "error from" in cell.html
    assert "Atlantis is not in your table." in cell.html


def test_several_tools_in_one_turn_each_get_their_result(k: NotebookKernel) -> None:
    before = len(k.fake.requests)
    k.fake.enqueue(
        tool_call_reply(
            ("lookup", {"city": "Lagos"}),
            ("area", {"city": "Hanoi"}),
            ("lookup", {"city": 42}),  # the wrong type: refused before the function runs
        ),
        text_reply("Lagos is the denser."),
    )

    cell = k.run("%%claude --tools everything\nWhich is denser, Lagos or Hanoi?")

    assert cell.status == "ok", cell.traceback
    asked = k.fake.requests[before + 1].body["messages"][1]["content"]
    results = tool_results(k.fake.requests[before + 1].body)
    assert [r["tool_use_id"] for r in results] == [block["id"] for block in asked]
    assert [r["content"] for r in results[:2]] == [
        '{"population": 15400000, "area_km2": 1171}',
        "3359",
    ]
    assert results[2]["is_error"] is True
    assert results[2]["content"].startswith("ValueError: invalid arguments for lookup: city:")
    names = [tool["name"] for tool in k.fake.requests[before].body["tools"]]
    assert names == ["lookup", "area"]


def test_the_round_limit_stops_the_loop_in_one_line_and_keeps_the_rounds(
    k: NotebookKernel,
) -> None:
    before = len(k.fake.requests)
    k.fake.enqueue(*[tool_call_reply(("area", {"city": "Hanoi"})) for _ in range(3)])

    cell = k.run("%%claude --tools area --max-tool-rounds 2\nKeep asking.")

    assert "after 2 rounds, the --max-tool-rounds limit" in cell.error_line()
    assert len(k.fake.requests) - before == 3  # two round trips, then it stopped
    assert cell.html.count("result of") == 2
    assert state(k, "[len(_claude.rounds), _claude.complete, _claude.error is not None]") == [
        3,
        True,
        True,
    ]


def test_an_interrupt_inside_a_tool_stops_the_loop_and_keeps_what_came(
    k: NotebookKernel,
) -> None:
    marker: Path = k.marker  # type: ignore[attr-defined]
    marker.unlink(missing_ok=True)
    before = len(k.fake.requests)
    k.fake.enqueue(tool_call_reply(("slow", {"seconds": 30}), text_before="Waiting on you."))

    cell, pressed = k.run_interrupted("%%claude --tools slow\nWait for me.", marker.exists)

    assert pressed
    assert "Interrupted while slow ran" in cell.error_line()
    assert len(k.fake.requests) - before == 1  # no result was sent
    assert "Waiting on you." in cell.html
    assert state(k, "[_claude.text, len(_claude.rounds)]") == ["Waiting on you.", 1]
    assert state(k, "1 + 1") == 2  # the kernel is still usable


def test_a_schema_that_validates_binds_the_model(k: NotebookKernel) -> None:
    k.fake.enqueue(structured_reply({"name": "Ada Lovelace", "born": 1815}))

    cell = k.run("%%claude --schema Person -o ada\nWho wrote the first published algorithm?")

    assert cell.status == "ok", cell.traceback
    output_config = k.body()["output_config"]
    assert output_config["format"]["type"] == "json_schema"
    assert output_config["format"]["schema"]["required"] == ["name", "born"]
    assert state(k, "[type(ada.parsed).__name__, ada.parsed.born, ada is _claude]") == [
        "Person",
        1815,
        True,
    ]


def test_a_reply_that_does_not_match_keeps_its_text_and_parsed_is_none(k: NotebookKernel) -> None:
    k.fake.enqueue(structured_reply({"name": "Ada Lovelace", "born": "December 1815"}))

    cell = k.run("%%claude --schema Person\nWho wrote the first published algorithm?")

    line = cell.error_line()
    assert "does not match the schema Person: born: Input should be a valid integer" in line
    assert state(k, "[_claude.parsed, _claude.text]") == [
        None,
        '{"name": "Ada Lovelace", "born": "December 1815"}',
    ]


def test_a_json_schema_dict_gives_a_dict(k: NotebookKernel) -> None:
    k.fake.enqueue(structured_reply({"year": 1843}))
    cell = k.run("%%claude --schema spec\nWhen was the note published?")
    assert cell.status == "ok", cell.traceback
    assert k.body()["output_config"]["format"]["schema"]["additionalProperties"] is False
    assert state(k, "_claude.parsed") == {"year": 1843}


def test_tools_and_a_schema_together(k: NotebookKernel) -> None:
    k.fake.enqueue(
        tool_call_reply(("lookup", {"city": "Lagos"})),
        structured_reply({"year": 2024}),
    )
    cell = k.run("%%claude --tools lookup --schema spec\nLook it up, then give the year.")
    assert cell.status == "ok", cell.traceback
    assert "tools" in k.body()
    assert "output_config" in k.body()
    assert state(k, "[_claude.parsed, len(_claude.tool_calls)]") == [{"year": 2024}, 1]


def test_the_whole_tool_exchange_joins_the_conversation(k: NotebookKernel) -> None:
    assert k.run("%claude reset --all").status == "ok"
    k.fake.enqueue(
        tool_call_reply(("lookup", {"city": "Hanoi"})),
        text_reply("Hanoi: 8.4 million."),
        text_reply("Lagos has more."),
    )
    assert k.run("%%claude --chat --tools lookup\nHow big is Hanoi?").status == "ok"

    cell = k.run("%%claude --chat\nAnd is Lagos bigger?")

    assert cell.status == "ok", cell.traceback
    messages = k.body()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert messages[1]["content"][0]["type"] == "tool_use"
    assert messages[2]["content"][0]["type"] == "tool_result"
    assert messages[2]["content"][0]["tool_use_id"] == messages[1]["content"][0]["id"]
    history = k.run("%claude history").printed
    assert "[tool_use lookup]" in history
    assert "[tool_result]" in history


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("--tools nowhere", "--tools nowhere: name 'nowhere' is not defined"),
        ("--tools CITIES", "--tools CITIES: a dict is not callable"),
        ("--tools frame_tool", "--tools frame_tool: its parameters cannot be described"),
        ("--schema CITIES", "--schema CITIES: this dict is not a JSON schema"),
        ("--schema lookup", "--schema lookup: a function is not a pydantic model class"),
        ("--tools lookup --max-tool-rounds 0", "--max-tool-rounds must be a positive integer"),
    ],
)
def test_what_cannot_be_offered_is_a_usage_error_and_nothing_is_sent(
    k: NotebookKernel, line: str, expected: str
) -> None:
    setup = "import pandas\ndef frame_tool(df: pandas.DataFrame) -> int:\n    return len(df)"
    assert k.run(setup).status == "ok"
    before = len(k.fake.requests)
    cell = k.run(f"%%claude {line}\nHello")
    assert expected in cell.usage_error()
    assert len(k.fake.requests) == before
