"""The fake Messages API, driven by the real SDK over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import math
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import InputJSONDelta, RawMessageStreamEvent, SignatureDelta

from nbclaude import testing
from nbclaude.testing import (
    FakeServer,
    Pause,
    Script,
    code_execution_result,
    cut_after,
    error_after,
    http_error,
    paced,
    page,
    redacted_thinking,
    replay,
    reply,
    server_tool_use,
    stall_after,
    text,
    text_reply,
    thinking,
    tool_use,
    truncate_after,
    unknown_block,
    unknown_event,
    web_search_result,
)

from .conftest import SSE_DIR, TEST_KEY

RECORDINGS = sorted(SSE_DIR.glob("*.txt"))
PARAMS: dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": "Say hello"}],
}


@pytest.fixture
def client(server: FakeServer) -> Iterator[anthropic.Anthropic]:
    """The real SDK pointed at the fake server, without retries."""
    with anthropic.Anthropic(base_url=server.url, api_key=TEST_KEY, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def http(server: FakeServer) -> Iterator[httpx2.Client]:
    """A bare HTTP client, for the bytes on the wire."""
    key_headers = {"x-api-key": TEST_KEY, "authorization": f"Bearer {TEST_KEY}"}
    with httpx2.Client(base_url=server.url, headers=key_headers) as bare:
        yield bare


def stream_events(client: anthropic.Anthropic, **params: Any) -> list[RawMessageStreamEvent]:
    with client.messages.create(**{**PARAMS, **params}, stream=True) as stream:
        return list(stream)


def stream_until_failure(
    client: anthropic.Anthropic, **params: Any
) -> tuple[list[str], BaseException]:
    """The types of the events that arrived before the stream failed, and the failure.

    Which class carries a transport failure is the SDK's business (newer releases wrap
    more of them): a test of the server asserts what failed, read from the whole chain.
    """
    received: list[str] = []
    with client.messages.create(**{**PARAMS, **params}, stream=True) as stream:
        try:
            received.extend(event.type for event in stream)
        except Exception as exc:
            return received, exc
    raise AssertionError(f"the stream ended without failing, after {received}")


def failure_text(exc: BaseException) -> str:
    """The messages of an exception and of everything that caused it."""
    messages = []
    while exc is not None:
        messages.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return " <- ".join(messages)


def streamed_text(events: list[RawMessageStreamEvent], delta_type: str = "text_delta") -> str:
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    return "".join(
        getattr(d, d.type.removesuffix("_delta")) for d in deltas if d.type == delta_type
    )


def test_public_names_are_pinned() -> None:
    assert sorted(testing.__all__) == [
        "Block",
        "Cut",
        "DEFAULT_MODEL",
        "ErrorBody",
        "FakeServer",
        "MODELS",
        "Pause",
        "RawChunk",
        "RecordedRequest",
        "SSEEvent",
        "Script",
        "Step",
        "code_execution_result",
        "cut_after",
        "error_after",
        "estimate_input_tokens",
        "http_error",
        "long_markdown",
        "main",
        "paced",
        "page",
        "redacted_thinking",
        "replay",
        "reply",
        "server_tool_use",
        "stall_after",
        "structured_reply",
        "text",
        "text_reply",
        "thinking",
        "tool_call_reply",
        "tool_results",
        "tool_use",
        "truncate_after",
        "unknown_block",
        "unknown_event",
        "web_search_result",
    ]


# --------------------------------------------------------------------------- streaming


def test_text_reply_streams_the_scripted_text(
    server: FakeServer, client: anthropic.Anthropic
) -> None:
    answer = "Hello there! " * 10
    server.enqueue(text_reply(answer, chunk_size=7, input_tokens=42, cache_read=5, cache_write=3))

    events = stream_events(client)

    assert [e.type for e in events[:2]] == ["message_start", "content_block_start"]
    assert [e.type for e in events[-3:]] == ["content_block_stop", "message_delta", "message_stop"]
    assert streamed_text(events) == answer
    deltas = [e for e in events if e.type == "content_block_delta"]
    assert len(deltas) == math.ceil(len(answer) / 7)
    start = events[0]
    assert start.type == "message_start"
    usage = start.message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens) == (42, 5)
    assert usage.cache_creation_input_tokens == 3
    assert usage.cache_creation is not None
    final = events[-2]
    assert final.type == "message_delta"
    assert final.delta.stop_reason == "end_turn"
    assert final.usage.output_tokens == math.ceil(len(answer) / 4)


def test_thinking_streams_then_its_signature(
    server: FakeServer, client: anthropic.Anthropic
) -> None:
    server.enqueue(text_reply("42.", thinking="Six times seven.", signature="sig-abc"))

    events = stream_events(client)

    starts = [e.content_block.type for e in events if e.type == "content_block_start"]
    assert starts == ["thinking", "text"]
    assert streamed_text(events, "thinking_delta") == "Six times seven."
    thinking_deltas = [e.delta for e in events if e.type == "content_block_delta" and e.index == 0]
    assert [d.type for d in thinking_deltas] == ["thinking_delta", "signature_delta"]
    assert thinking_deltas[-1] == SignatureDelta(type="signature_delta", signature="sig-abc")
    assert streamed_text(events) == "42."


def test_tool_use_input_arrives_as_json_that_parses(
    server: FakeServer, client: anthropic.Anthropic
) -> None:
    arguments = {"city": "Paris", "units": "celsius", "days": [1, 2, 3]}
    server.enqueue(reply(tool_use("get_weather", arguments, id="toolu_1"), stop_reason="tool_use"))

    events = stream_events(client)

    start = next(e for e in events if e.type == "content_block_start")
    assert start.content_block.type == "tool_use"
    assert (start.content_block.id, start.content_block.name) == ("toolu_1", "get_weather")
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    partial = [d.partial_json for d in deltas if isinstance(d, InputJSONDelta)]
    assert len(partial) == len(deltas) > 2
    assert json.loads("".join(partial)) == arguments


def test_server_tool_results_and_citations_arrive(
    server: FakeServer, client: anthropic.Anthropic
) -> None:
    citation = {
        "type": "web_search_result_location",
        "cited_text": "Sunny all week",
        "encrypted_index": "ei_1",
        "title": "Forecast",
        "url": "https://example.com/forecast",
    }
    server.enqueue(
        reply(
            server_tool_use("web_search", {"query": "Paris weather"}, id="srvtoolu_1"),
            web_search_result("srvtoolu_1", [{"title": "Forecast", "url": citation["url"]}]),
            server_tool_use("code_execution", {"code": "print(6 * 7)"}, id="srvtoolu_2"),
            code_execution_result("srvtoolu_2", "42\n"),
            text("It is sunny.", citations=[citation]),
        )
    )

    blocks = [e.content_block for e in stream_events(client) if e.type == "content_block_start"]

    assert [b.type for b in blocks] == [
        "server_tool_use",
        "web_search_tool_result",
        "server_tool_use",
        "code_execution_tool_result",
        "text",
    ]
    search = blocks[1]
    assert search.type == "web_search_tool_result"
    assert isinstance(search.content, list)
    assert (search.tool_use_id, search.content[0].url) == ("srvtoolu_1", citation["url"])
    code = blocks[3]
    assert code.type == "code_execution_tool_result"
    assert code.content.type == "code_execution_result"
    assert (code.content.stdout, code.content.return_code) == ("42\n", 0)
    server.enqueue(reply(text("It is sunny.", citations=[citation])))
    deltas = [e.delta for e in stream_events(client) if e.type == "content_block_delta"]
    assert deltas[0].type == "citations_delta"
    assert deltas[0].citation.cited_text == "Sunny all week"


def test_blocks_and_events_from_a_newer_api_pass_through(
    server: FakeServer, client: anthropic.Anthropic
) -> None:
    server.enqueue(
        reply(
            redacted_thinking("opaque=="),
            unknown_event("future_event", {"detail": 1}),
            unknown_block("future_block", payload={"a": 1}),
            text("Done."),
        )
    )

    events = stream_events(client)

    # The SDK gives unknown events and blocks the class of the union's first member,
    # so only `.type` tells them apart.
    assert "future_event" in [e.type for e in events]
    blocks = [e.content_block for e in events if e.type == "content_block_start"]
    assert [b.type for b in blocks] == ["redacted_thinking", "future_block", "text"]
    assert streamed_text(events) == "Done."


SCRIPTS = {
    "text": text_reply("Plain answer, with *markdown*.", chunk_size=5),
    "thinking": text_reply("Answer.", thinking="Considering it carefully.", cache_read=7),
    "tools": reply(
        thinking("Need a tool."),
        text("Checking."),
        tool_use("lookup", {"q": "nbclaude", "limit": 3}),
        stop_reason="tool_use",
    ),
    "server tools": reply(
        server_tool_use("web_search", {"query": "x"}, id="srvtoolu_9"),
        web_search_result("srvtoolu_9", [{"title": "X", "url": "https://x.example"}]),
        text(
            "Found it.",
            citations=[
                {
                    "type": "web_search_result_location",
                    "cited_text": "x",
                    "encrypted_index": "e",
                    "title": "X",
                    "url": "https://x.example",
                }
            ],
        ),
    ),
    "refusal": reply(
        text(""), stop_reason="refusal", stop_details={"type": "refusal", "category": "cyber"}
    ),
}


@pytest.mark.parametrize("script", SCRIPTS.values(), ids=SCRIPTS.keys())
def test_non_streaming_returns_the_message_the_stream_builds(
    server: FakeServer, client: anthropic.Anthropic, script: Script
) -> None:
    server.enqueue(script, script)

    with client.messages.stream(**PARAMS) as stream:
        streamed = stream.get_final_message()
    whole = client.messages.create(**PARAMS)

    assert whole.model_dump() == streamed.model_dump()


# --------------------------------------------------------------------------- recording


def test_requests_are_recorded(server: FakeServer, client: anthropic.Anthropic) -> None:
    client.messages.create(**PARAMS, system="Be brief.")

    server.wait_for_requests(1)
    (request,) = server.requests
    assert (request.method, request.path, request.query) == ("POST", "/v1/messages", "")
    assert request.body == {**PARAMS, "system": "Be brief."}
    assert json.loads(request.raw_body) == request.body
    # SDK 2.x sends the key as a bearer token, not as x-api-key.
    assert request.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert all(name == name.lower() for name in request.headers)
    assert request.request_id.startswith("req_")
    request.wait_finished()
    assert request.finished
    assert not request.disconnected
    assert TEST_KEY not in repr(request)


def test_wait_for_requests_times_out(server: FakeServer) -> None:
    with pytest.raises(TimeoutError, match="got 0"):
        server.wait_for_requests(1, timeout=0.01)


def test_queue_is_first_in_first_out_then_default(
    server: FakeServer, client: anthropic.Anthropic
) -> None:
    server.enqueue(text_reply("first"), text_reply("second"))

    answers = [client.messages.create(**PARAMS).content[0] for _ in range(3)]

    texts = [block.text for block in answers if block.type == "text"]
    assert texts[:2] == ["first", "second"]
    assert "fake" in texts[2]


def test_default_callable_gets_the_request_body() -> None:
    seen: list[dict[str, Any]] = []

    def answer(body: dict[str, Any]) -> Script:
        seen.append(body)
        return text_reply(f"You asked for {body['max_tokens']} tokens.")

    with (
        FakeServer(default=answer) as server,
        anthropic.Anthropic(base_url=server.url, api_key=TEST_KEY, max_retries=0) as own,
    ):
        message = own.messages.create(**PARAMS)

    assert seen == [PARAMS]
    assert message.content[0].type == "text"
    assert message.content[0].text == "You asked for 1024 tokens."


def test_a_failing_default_is_a_500_that_says_so() -> None:
    def broken(body: dict[str, Any]) -> Script:
        raise LookupError("no script for this")

    with (
        FakeServer(default=broken) as server,
        anthropic.Anthropic(base_url=server.url, api_key=TEST_KEY, max_retries=0) as own,
        pytest.raises(anthropic.InternalServerError, match="LookupError: no script"),
    ):
        own.messages.create(**PARAMS)


# --------------------------------------------------------------------------- replay


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_recordings_replay_byte_for_byte(
    server: FakeServer, http: httpx2.Client, path: Path
) -> None:
    server.enqueue(replay(path, delay=0.001))

    response = http.post("/v1/messages", json={**PARAMS, "stream": True})

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.content == path.read_bytes()
    assert server.requests[-1].events_sent == replay(path).event_count


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_recordings_parse_through_the_sdk(
    server: FakeServer, client: anthropic.Anthropic, path: Path
) -> None:
    server.enqueue(replay(path), replay(path, finish_last_event=True))

    as_recorded = stream_events(client)
    finished = stream_events(client)

    assert as_recorded[0].type == "message_start"
    assert finished[-1].type == "message_stop"
    # A file without the closing blank line loses its last event in any SSE client.
    lost = not path.read_bytes().endswith(b"\n\n")
    assert len(finished) == len(as_recorded) + lost


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_recordings_fold_into_a_message(
    server: FakeServer, client: anthropic.Anthropic, path: Path
) -> None:
    server.enqueue(replay(path))

    message = client.messages.create(**PARAMS)

    first_line = path.read_bytes().split(b"\n")[1].removeprefix(b"data: ")
    assert message.id == json.loads(first_line)["message"]["id"]
    assert message.stop_reason is not None


# --------------------------------------------------------------------------- failures


def test_error_after_raises_a_status_error_mid_stream(
    server: FakeServer, client: anthropic.Anthropic
) -> None:
    server.enqueue(error_after(text_reply("Partial answer", chunk_size=4), 4))
    received: list[str] = []

    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.create(**PARAMS, stream=True) as stream,
    ):
        received.extend(event.type for event in stream)

    assert received == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
    ]
    # HTTP said 200, so the SDK picks no status-specific subclass.
    assert type(caught.value) is anthropic.APIStatusError
    assert caught.value.status_code == 200
    assert (caught.value.type, caught.value.api_message) == ("overloaded_error", "Overloaded")


def test_error_after_without_streaming_is_an_http_error(
    server: FakeServer, client: anthropic.Anthropic
) -> None:
    server.enqueue(error_after(text_reply("x"), 2, "rate_limit_error", "Slow down"))

    with pytest.raises(anthropic.RateLimitError, match="Slow down"):
        client.messages.create(**PARAMS)


def test_cut_after_breaks_the_body_mid_stream(
    server: FakeServer, client: anthropic.Anthropic
) -> None:
    server.enqueue(cut_after(text_reply("Partial answer", chunk_size=4), 3))

    received, failure = stream_until_failure(client)

    assert received == ["message_start", "content_block_start", "content_block_delta"]
    assert "incomplete chunked read" in failure_text(failure)
    assert server.requests[-1].events_sent == 3


def test_cut_without_streaming_is_a_connection_error(
    server: FakeServer, client: anthropic.Anthropic
) -> None:
    server.enqueue(cut_after(text_reply("x"), 3), cut_after(text_reply("x"), 0))

    # The SDK's documented class for a request whose connection failed.
    for _ in range(2):
        with pytest.raises(anthropic.APIConnectionError):
            client.messages.create(**PARAMS)


def test_truncate_after_ends_quietly_without_message_stop(
    server: FakeServer, client: anthropic.Anthropic
) -> None:
    server.enqueue(truncate_after(text_reply("Half of it", chunk_size=5), 3))

    events = stream_events(client)

    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
    ]
    assert streamed_text(events) == "Half "


def test_stall_after_trips_the_read_timeout(server: FakeServer) -> None:
    server.enqueue(stall_after(text_reply("Slow", chunk_size=1), 3, 30))

    with anthropic.Anthropic(
        base_url=server.url, api_key=TEST_KEY, max_retries=0, timeout=0.2
    ) as impatient:
        received, failure = stream_until_failure(impatient)

    assert len(received) == 3
    assert "timed out" in failure_text(failure).lower()
    request = server.requests[-1]
    request.wait_finished()
    assert request.disconnected


def test_stall_without_streaming_is_an_sdk_timeout(server: FakeServer) -> None:
    server.enqueue(stall_after(text_reply("Slow"), 1, 30))

    with (
        anthropic.Anthropic(
            base_url=server.url, api_key=TEST_KEY, max_retries=0, timeout=0.2
        ) as impatient,
        pytest.raises(anthropic.APITimeoutError),
    ):
        impatient.messages.create(**PARAMS)


ERROR_CLASSES = [
    (400, anthropic.BadRequestError),
    (401, anthropic.AuthenticationError),
    (403, anthropic.PermissionDeniedError),
    (404, anthropic.NotFoundError),
    (413, anthropic.ContentTooLargeError),
    (429, anthropic.RateLimitError),
    (500, anthropic.InternalServerError),
    (529, anthropic.OverloadedError),
]


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
@pytest.mark.parametrize(
    ("status", "error_class"), ERROR_CLASSES, ids=[str(status) for status, _ in ERROR_CLASSES]
)
def test_http_errors_map_to_the_sdk_exceptions(
    server: FakeServer,
    client: anthropic.Anthropic,
    status: int,
    error_class: type[anthropic.APIStatusError],
    stream: bool,
) -> None:
    server.enqueue(http_error(status))

    with pytest.raises(error_class) as caught:
        client.messages.create(**PARAMS, stream=stream)

    error = caught.value
    assert type(error) is error_class
    assert error.status_code == status
    assert error.request_id == server.requests[-1].request_id
    assert error.body == {
        "type": "error",
        "error": {"type": error.type, "message": error.api_message},
        "request_id": error.request_id,
    }
    if status == 429:
        assert error.response.headers["retry-after"] == "1"


def test_http_error_takes_custom_type_message_and_headers(
    server: FakeServer, client: anthropic.Anthropic
) -> None:
    server.enqueue(http_error(418, "teapot_error", "Short and stout", {"x-extra": "yes"}))

    with pytest.raises(anthropic.APIStatusError, match="Short and stout") as caught:
        client.messages.create(**PARAMS)

    assert (caught.value.status_code, caught.value.type) == (418, "teapot_error")
    assert caught.value.response.headers["x-extra"] == "yes"
    with pytest.raises(ValueError, match="pass error_type"):
        http_error(418)


def test_closing_a_stream_early_is_seen_as_a_disconnect(
    server: FakeServer, client: anthropic.Anthropic
) -> None:
    script = text_reply("word " * 200, chunk_size=5, delay=0.01)
    server.enqueue(script)

    stream = client.messages.create(**PARAMS, stream=True)
    events = iter(stream)
    for _ in range(5):
        next(events)
    stream.close()

    request = server.requests[-1]
    request.wait_finished()
    assert request.disconnected
    assert 5 <= request.events_sent < script.event_count


def test_a_stream_read_to_the_end_is_not_a_disconnect(
    server: FakeServer, client: anthropic.Anthropic
) -> None:
    script = text_reply("All of it.", delay=0.001)
    server.enqueue(script)

    stream_events(client)

    request = server.requests[-1]
    request.wait_finished()
    assert not request.disconnected
    assert request.events_sent == script.event_count


def test_max_response_seconds_cuts_a_response_that_runs_long() -> None:
    with (
        FakeServer(max_response_seconds=0.2) as server,
        anthropic.Anthropic(base_url=server.url, api_key=TEST_KEY, max_retries=0) as sdk,
    ):
        server.enqueue(stall_after(text_reply("never finishes"), 2, 600))
        received, failure = stream_until_failure(sdk)
    assert received == ["message_start", "content_block_start"]
    assert "incomplete chunked read" in failure_text(failure)


def test_stop_cuts_open_streams_and_returns(server: FakeServer) -> None:
    server.enqueue(stall_after(text_reply("waiting"), 2, 600))
    outcome: list[BaseException] = []

    def consume() -> None:
        with anthropic.Anthropic(base_url=server.url, api_key=TEST_KEY, max_retries=0) as sdk:
            outcome.append(stream_until_failure(sdk)[1])

    reader = threading.Thread(target=consume)
    reader.start()
    server.wait_for_requests(1)
    server.stop()
    reader.join(timeout=30)

    assert not reader.is_alive()
    assert "incomplete chunked read" in failure_text(outcome[0])
    server.stop()  # a second stop does nothing


def test_concurrent_streams_are_served_in_parallel(server: FakeServer) -> None:
    server.enqueue(*(text_reply(f"answer {i}", chunk_size=2, delay=0.005) for i in range(4)))
    answers: list[str] = []

    def consume() -> None:
        with anthropic.Anthropic(base_url=server.url, api_key=TEST_KEY, max_retries=0) as sdk:
            answers.append(streamed_text(stream_events(sdk)))

    readers = [threading.Thread(target=consume) for _ in range(4)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=30)

    assert sorted(answers) == [f"answer {i}" for i in range(4)]


def test_a_page_is_served_as_it_is(server: FakeServer, http: httpx2.Client) -> None:
    portal = "<html><head><title>Log in</title></head><body>Wi-Fi</body></html>"
    server.enqueue(page(portal), page(b"\xff not utf-8", "text/plain", status=502))

    first = http.post("/v1/messages", json={**PARAMS, "stream": True})
    second = http.post("/v1/messages", json=PARAMS)

    assert (first.status_code, first.headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert first.text == portal
    assert (second.status_code, second.content) == (502, b"\xff not utf-8")


def test_intercept_answers_every_route_until_it_is_cleared(
    server: FakeServer, http: httpx2.Client
) -> None:
    server.intercept = page('{"status": "ok"}', "application/json")
    answers = [
        http.get("/v1/models"),
        http.post("/v1/messages/count_tokens", json=PARAMS),
        http.post("/v1/messages", json=PARAMS),
        http.get("/anything/else"),
    ]
    assert {(a.status_code, a.text) for a in answers} == {(200, '{"status": "ok"}')}

    server.intercept = None
    assert http.get("/v1/models").json()["data"][0]["id"] == testing.MODELS[0][0]


# --------------------------------------------------------------------------- other endpoints


def test_count_tokens_is_a_deterministic_estimate(client: anthropic.Anthropic) -> None:
    system = "You are terse."
    messages: list[Any] = [
        {"role": "user", "content": "Hello there, friend."},
        {"role": "assistant", "content": [{"type": "text", "text": "Hi."}]},
        {"role": "user", "content": [{"type": "text", "text": "What is 6 * 7?"}]},
    ]

    counted = client.messages.count_tokens(model=PARAMS["model"], system=system, messages=messages)

    characters = len(system) + len("Hello there, friend.") + len("Hi.") + len("What is 6 * 7?")
    assert counted.input_tokens == math.ceil(characters / 4)


def test_models_lists_current_ids_page_by_page(
    server: FakeServer, client: anthropic.Anthropic
) -> None:
    all_models = list(client.models.list())
    paged = list(client.models.list(limit=3))

    ids = {model.id for model in all_models}
    assert ids == {"claude-opus-4-5", "claude-sonnet-4-6", "claude-sonnet-4-5", "claude-haiku-4-5"}
    assert [m.id for m in paged] == [m.id for m in all_models]
    assert all(model.type == "model" and model.display_name for model in all_models)
    assert client.models.retrieve("claude-haiku-4-5").display_name == "Claude Haiku 4.5"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-nonexistent")
    assert [r.query for r in server.requests[1:3]] == [
        "limit=3",
        "limit=3&after_id=claude-haiku-4-5",
    ]


def test_unknown_paths_are_404s_in_the_api_error_shape(
    server: FakeServer, http: httpx2.Client
) -> None:
    response = http.get("/v1/nowhere")

    assert response.status_code == 404
    assert response.json() == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "Not found: /v1/nowhere"},
        "request_id": response.headers["request-id"],
    }
    assert http.post("/v2/messages", json={}).status_code == 404
    assert http.delete("/v1/messages").status_code == 404


def test_every_response_has_a_request_id_and_never_the_key(http: httpx2.Client) -> None:
    responses = [
        http.post("/v1/messages", json=PARAMS),
        http.post("/v1/messages", json={**PARAMS, "stream": True}),
        http.post("/v1/messages/count_tokens", json=PARAMS),
        http.post("/v1/messages", content=b"not json"),
        http.get("/v1/models"),
        http.get("/v1/models/claude-opus-4-5"),
        http.get("/favicon.ico"),
    ]

    for response in responses:
        assert response.headers["request-id"].startswith("req_")
        assert TEST_KEY not in response.text
        assert TEST_KEY not in str(response.headers)
    assert responses[3].status_code == 400


# --------------------------------------------------------------------------- lifecycle


def test_binds_the_loopback_address_only(server: FakeServer) -> None:
    assert server.url == f"http://127.0.0.1:{server.port}"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5):
        pass
    if sys.platform == "linux":  # all of 127/8 is local there, but only .1 is bound
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.2", server.port), timeout=5).close()


def test_a_server_starts_once() -> None:
    server = FakeServer()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
    with server, pytest.raises(RuntimeError, match="only once"):
        server.start()
    with pytest.raises(RuntimeError, match="only once"):
        server.start()


def test_scripts_are_built_from_steps() -> None:
    script = text_reply("abcdef", chunk_size=2)
    pauses = paced(script, 0.5).steps

    assert sum(isinstance(step, Pause) for step in pauses) == script.event_count - 1
    assert stall_after(script, 2, 9).steps[2] == Pause(9)
    assert truncate_after(script, 2).event_count == 2
    with pytest.raises(ValueError, match="between 0 and"):
        cut_after(script, script.event_count + 1)
    with pytest.raises(ValueError, match="chunk_size"):
        text("x", chunk_size=0)


def test_command_line_serves_until_terminated() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "nbclaude.testing", "--delay", "0"],
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        url = first_line.split()[-1]
        with anthropic.Anthropic(base_url=url, api_key=TEST_KEY, max_retries=0) as sdk:
            message = sdk.messages.create(**PARAMS)
        # SIGTERM stops it like Ctrl-C; SIGINT may be ignored in a background test run.
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)

    assert first_line.startswith("Fake Messages API at http://127.0.0.1:")
    assert message.content[0].type == "text"
    assert process.returncode == 0
