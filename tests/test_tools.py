"""Tools and schemas from plain Python: ``nbclaude.ask(tools=..., schema=...)``.

The kernel tests (``test_tools_kernel.py``) run the same from ``%%claude`` cells; these
check what only Python reaches: the definitions made from functions, a tool that returns an
image, the run log and the reply's record of every round.
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image
from pydantic import BaseModel

from nbclaude import ClaudeError, Session, ask
from nbclaude.structured import SchemaError
from nbclaude.testing import (
    FakeServer,
    structured_reply,
    text_reply,
    tool_call_reply,
    tool_results,
)
from nbclaude.tools import SHOWN_CHARS, ToolDefinitionError, tools_of


@pytest.fixture
def session(api_env: FakeServer) -> Iterator[Session]:
    chosen = Session()
    yield chosen
    chosen.close()


def forecast(city: str, days: int = 3, metric: bool = True) -> list[dict[str, Any]]:
    """The weather for the next days.

    Args:
        city: Where.
        days: How many days, 1 to 7.
    """
    return [{"day": day, "city": city, "celsius": 20 + day} for day in range(days)]


def chart(title: str) -> Image.Image:
    """A chart of the data."""
    return Image.new("RGB", (300, 200), "white")


def long_text(n: int) -> str:
    """A long answer."""
    return "x" * n


def test_a_definition_comes_from_the_signature_the_hints_and_the_docstring(
    api_env: FakeServer, session: Session
) -> None:
    ask("Hi", tools=[forecast], session=session, display="none")
    (definition,) = api_env.requests[-1].body["tools"]
    assert definition["name"] == "forecast"
    assert definition["description"] == "The weather for the next days."
    schema = definition["input_schema"]
    assert schema["required"] == ["city"]
    assert schema["properties"]["city"] == {
        "description": "Where.",
        "title": "City",
        "type": "string",
    }
    assert schema["properties"]["days"]["type"] == "integer"
    assert schema["properties"]["days"]["default"] == 3
    assert schema["properties"]["metric"]["type"] == "boolean"


def test_a_tool_that_returns_an_image_sends_it_as_image_content(
    api_env: FakeServer, session: Session
) -> None:
    api_env.enqueue(tool_call_reply(("chart", {"title": "Sales"})), text_reply("A white chart."))

    reply = ask("Draw it.", tools=[chart], session=session, display="none")

    (result,) = tool_results(api_env.requests[-1].body)
    (image,) = result["content"]
    assert image["type"] == "image"
    assert image["source"]["media_type"] == "image/png"
    data = base64.b64decode(image["source"]["data"])
    assert Image.open(io.BytesIO(data)).size == (300, 200)
    (call,) = reply.tool_calls
    assert call.shown.startswith("[image 300×200 PNG, ")


def test_each_round_is_a_call_in_the_run_log_and_the_usage_line_sums_them(
    api_env: FakeServer, session: Session
) -> None:
    api_env.enqueue(
        tool_call_reply(("forecast", {"city": "Oslo", "days": 2})),
        tool_call_reply(("forecast", {"city": "Bergen", "days": 1})),
        text_reply("Colder in Bergen.", output_tokens=7),
    )

    reply = ask("Compare.", tools=[forecast], session=session, display="none")

    assert len(session.runs) == 3
    assert [run.complete for run in session.runs] == [True, True, True]
    assert len(reply.rounds) == 3
    rounds_output = sum(r.reply.usage.output_tokens for r in reply.rounds)
    assert reply.usage_summary.output_tokens == rounds_output
    assert reply.usage_summary.input_tokens == 75
    assert reply.usage.output_tokens == 7  # the last round's own usage is untouched
    assert reply.cost == pytest.approx(sum(r.reply.cost or 0 for r in reply.rounds))
    # Displayed later, the reply shows every round, as the cell did.
    html = reply._repr_mimebundle_()["text/html"]
    assert html.count("result of") == 2
    assert html.index("Oslo") < html.index("Bergen") < html.index("Colder in Bergen.")


def test_an_unknown_tool_and_a_long_result_are_handled(
    api_env: FakeServer, session: Session
) -> None:
    api_env.enqueue(
        tool_call_reply(("delete_everything", {}), ("long_text", {"n": 5000})),
        text_reply("Done."),
    )
    reply = ask("Go.", tools=[long_text], session=session, display="none")
    unknown, long = tool_results(api_env.requests[-1].body)
    assert unknown["is_error"] is True
    assert (
        unknown["content"] == "There is no tool named 'delete_everything'; the tools are long_text."
    )
    assert long["content"] == "x" * 5000  # Claude gets all of it
    assert len(reply.tool_calls[1].shown) == SHOWN_CHARS  # the view, a readable part


def test_without_tools_a_tool_use_reply_ends_the_call(
    api_env: FakeServer, session: Session
) -> None:
    api_env.enqueue(tool_call_reply(("forecast", {"city": "Oslo"})))
    reply = ask("Hi", session=session, display="none")
    assert reply.stop_reason == "tool_use"
    assert len(api_env.requests) == 1


def test_a_schema_from_python(api_env: FakeServer, session: Session) -> None:
    class City(BaseModel):
        name: str
        population: int

    api_env.enqueue(structured_reply({"name": "Oslo", "population": 709_000}))
    reply = ask("Biggest city of Norway?", schema=City, session=session, display="none")
    assert reply.parsed == City(name="Oslo", population=709_000)

    api_env.enqueue(structured_reply(["not", "an", "object"]))
    with pytest.raises(ClaudeError, match="does not match the schema City") as raised:
        ask("Again?", schema=City, session=session, display="none")
    assert raised.value.reply is not None
    assert raised.value.reply.parsed is None
    assert raised.value.reply.text == '["not", "an", "object"]'


@pytest.mark.parametrize(
    ("options", "error", "expected"),
    [
        ({"tools": [lambda x: x]}, ToolDefinitionError, "<lambda>: a tool's name is"),
        ({"tools": [forecast, forecast]}, ToolDefinitionError, "forecast: named twice"),
        ({"tools": [print]}, ToolDefinitionError, "--tools print"),
        ({"schema": {"Oslo": 1}}, SchemaError, "is not a JSON schema"),
        ({"schema": int}, SchemaError, "a type is not a pydantic model class"),
    ],
)
def test_what_cannot_be_offered_is_refused_before_sending(
    api_env: FakeServer, session: Session, options: dict[str, Any], error: type, expected: str
) -> None:
    with pytest.raises(error, match=expected):
        ask("Hi", session=session, display="none", **options)
    assert api_env.requests == []


def test_dry_run_counts_the_tools(api_env: FakeServer, session: Session) -> None:
    options = session.options(tools=tools_of([("forecast", forecast)]))
    dry_run = session.dry_run("Weather?", options)
    assert '"name": "forecast"' in dry_run.report()
    assert api_env.requests[-1].body["tools"][0]["name"] == "forecast"


def test_a_result_that_holds_the_key_is_neither_sent_nor_shown(
    api_env: FakeServer, session: Session
) -> None:
    def settings() -> dict[str, str]:
        """The process's settings."""
        return dict(os.environ)

    api_env.enqueue(tool_call_reply(("settings", {})), text_reply("I could not read them."))
    reply = ask("What are my settings?", tools=[settings], session=session, display="text")
    (result,) = tool_results(api_env.requests[-1].body)
    assert result["is_error"] is True
    assert "contains the API key" in result["content"]
    key = os.environ["ANTHROPIC_API_KEY"]
    assert key not in json.dumps(api_env.requests[-1].body)
    assert key not in reply._repr_mimebundle_()["text/html"]
    assert reply.tool_calls[0].result is None
    assert key not in json.dumps([run.request for run in session.runs], default=str)


def test_an_image_a_tool_returned_is_a_placeholder_in_the_run_log(
    api_env: FakeServer, session: Session
) -> None:
    api_env.enqueue(tool_call_reply(("chart", {"title": "Sales"})), text_reply("A chart."))
    ask("Draw it.", tools=[chart], session=session, display="none")
    logged = json.dumps(session.runs[-1].request, ensure_ascii=False)
    assert "[image 300×200 PNG, " in logged
    assert "iVBOR" not in logged
