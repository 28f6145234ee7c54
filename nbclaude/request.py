"""What one call asks for: its options, checked, and the Messages API body they make.

:meth:`Options.checked` takes every option a cell or :func:`nbclaude.ask` can give and
refuses a bad value with an :class:`OptionError` that names the flag, before anything is
sent. :func:`build_body` turns the options, the prompt and the conversation so far into the
exact JSON body of ``POST /v1/messages``, and :func:`sdk_arguments` into the keyword
arguments of the SDK call that sends that body: the parameters the SDK names go as they
are, any other (a newer API's, or one this SDK leaves out) rides in ``extra_body``.

Nothing here imports IPython or talks to the network.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from .errors import RequestError
from .structured import Schema
from .tools import DEFAULT_MAX_ROUNDS, Tool

__all__ = [
    "EFFORTS",
    "MIN_THINKING_BUDGET",
    "Effort",
    "OptionError",
    "Options",
    "Thinking",
    "build_body",
    "parse_param",
    "sdk_arguments",
]

Thinking = int | Literal["adaptive"] | None
"""A thinking budget in tokens, ``"adaptive"``, or ``None`` for no extended thinking."""

Effort = Literal["low", "medium", "high", "xhigh", "max"]
"""How much effort the model spends (``output_config.effort``)."""

EFFORTS: tuple[Effort, ...] = get_args(Effort)
"""The effort levels, lowest first."""

MIN_THINKING_BUDGET = 1024
"""The smallest ``budget_tokens`` the API accepts."""

_OWN_PARAMETERS: Mapping[str, str] = {
    "model": "-m/--model",
    "max_tokens": "--max-tokens",
    "messages": "the cell itself",
    "stream": "nbclaude, which always streams",
    "system": "-s/--system",
    "thinking": "-t/--thinking",
    "temperature": "--temperature",
    "top_p": "--top-p",
    "top_k": "--top-k",
    "stop_sequences": "--stop",
}
"""Body parameters that have a flag of their own (or are nbclaude's to set), and who sets
them: ``--param`` refuses them rather than let two values race."""

_SDK_OPTIONS = frozenset({"extra_body", "extra_headers", "extra_query", "timeout", "stream"})
"""Keyword arguments of the SDK's ``create`` that are not body parameters."""


class OptionError(RequestError):
    """An option has a value the API would refuse; the message names its flag."""


@dataclass(frozen=True, slots=True)
class Options:
    """Everything that decides one request, after flags have overridden the settings.

    Make one with :meth:`checked`, which refuses bad values; the fields mirror the long
    flags of ``%%claude``.
    """

    model: str
    """Model id, aliases already resolved."""
    max_tokens: int
    """``max_tokens`` for the request."""
    thinking: Thinking = None
    """Extended thinking: a budget, adaptive, or off."""
    effort: Effort | None = None
    """``output_config.effort``, or ``None`` for the model's default."""
    temperature: float | None = None
    """Sampling temperature, 0 to 1."""
    top_p: float | None = None
    """Nucleus sampling, 0 to 1."""
    top_k: int | None = None
    """Sample from the ``top_k`` likeliest tokens only."""
    stop: tuple[str, ...] = ()
    """Stop sequences (``stop_sequences``)."""
    param: Mapping[str, Any] = field(default_factory=dict)
    """Any other body parameter, by name, as JSON values (``--param KEY=JSON``)."""
    system: str | None = None
    """The system prompt, templates already filled."""
    chat: str | None = None
    """The conversation this request continues, or ``None`` for a one-off request."""
    tools: tuple[Tool, ...] = ()
    """Python callables Claude may call; their definitions join ``tools``."""
    max_tool_rounds: int = DEFAULT_MAX_ROUNDS
    """Tool round trips a call makes at most."""
    schema: Schema | None = None
    """The shape the reply must have (``output_config.format``), and how to parse it."""

    @classmethod
    def checked(
        cls,
        *,
        model: str,
        max_tokens: int,
        thinking: int | str | None = None,
        effort: str | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        stop: str | Iterable[str] | None = None,
        param: Mapping[str, Any] | None = None,
        system: str | None = None,
        chat: str | None = None,
        tools: Sequence[Tool] = (),
        max_tool_rounds: int | None = None,
        schema: Schema | None = None,
    ) -> Options:
        """The options, once every value is one the API accepts.

        Args:
            model: The model id.
            max_tokens: At least 1.
            thinking: A budget of at least 1024 tokens and below ``max_tokens``, or
                ``"adaptive"``, or ``None``.
            effort: One of :data:`EFFORTS`, or ``None``.
            temperature: From 0 to 1.
            top_p: From 0 to 1.
            top_k: At least 0.
            stop: One stop sequence or several; none may be empty.
            param: Other body parameters; none may be one with a flag of its own.
            system: The system prompt.
            chat: The conversation's name.
            tools: The tools offered.
            max_tool_rounds: At least 1; 8 by default.
            schema: The reply's schema; ``--param output_config`` may not set a format too.

        Raises:
            OptionError: If a value is out of range or of the wrong kind.
        """
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise OptionError(f"--max-tokens must be a positive integer, not {max_tokens!r}.")
        if effort is not None and effort not in EFFORTS:
            raise OptionError(f"--effort takes {', '.join(EFFORTS)}, not {effort!r}.")
        stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
        if not all(isinstance(sequence, str) and sequence for sequence in stops):
            raise OptionError(f"--stop takes non-empty text, not {stops!r}.")
        extra = dict(param or {})
        for name in extra:
            if name in _OWN_PARAMETERS:
                raise OptionError(f"--param {name}: set it with {_OWN_PARAMETERS[name]} instead.")
        output_config = extra.get("output_config")
        if schema is not None and isinstance(output_config, Mapping) and "format" in output_config:
            raise OptionError("--schema and --param output_config both set the format: keep one.")
        rounds = DEFAULT_MAX_ROUNDS if max_tool_rounds is None else max_tool_rounds
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise OptionError(
                f"--max-tool-rounds must be a positive integer, not {max_tool_rounds!r}."
            )
        return cls(
            model=model,
            max_tokens=max_tokens,
            thinking=_thinking(thinking, max_tokens),
            effort=effort,
            temperature=_fraction("--temperature", temperature),
            top_p=_fraction("--top-p", top_p),
            top_k=_count("--top-k", top_k),
            stop=stops,
            param=extra,
            system=system or None,
            chat=chat,
            tools=tuple(tools),
            max_tool_rounds=rounds,
            schema=schema,
        )


def _thinking(value: int | str | None, max_tokens: int) -> Thinking:
    if value is None:
        return None
    if value == "adaptive":
        return "adaptive"
    try:
        budget = int(value)
    except (TypeError, ValueError):
        raise OptionError(
            f"--thinking takes a token budget (an integer >= {MIN_THINKING_BUDGET}) or no "
            f"value, not {value!r}."
        ) from None
    if budget < MIN_THINKING_BUDGET:
        raise OptionError(
            f"--thinking budget must be at least {MIN_THINKING_BUDGET} tokens, not {budget}."
        )
    if budget >= max_tokens:
        raise OptionError(
            f"--thinking budget ({budget}) must be below max tokens ({max_tokens}); "
            "raise --max-tokens."
        )
    return budget


def _fraction(flag: str, value: float | None) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= 1
    ):
        raise OptionError(f"{flag} must be a number from 0 to 1, not {value!r}.")
    return float(value)


def _count(flag: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise OptionError(f"{flag} must be a whole number, 0 or more, not {value!r}.")
    return value


def parse_param(text: str) -> tuple[str, Any]:
    """One ``--param KEY=JSON``: the parameter's name and its value.

    Args:
        text: ``KEY=JSON``, such as ``metadata={"user_id": "u1"}`` or ``service_tier="auto"``.

    Raises:
        OptionError: If there is no ``=``, the key is not a name, or the value not JSON.
    """
    name, equals, value = text.partition("=")
    name = name.strip()
    if not equals or not name.isidentifier():
        raise OptionError(f"--param takes KEY=JSON, such as metadata={{...}}, not {text!r}.")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError as exc:
        raise OptionError(
            f"--param {name}: the value is not JSON ({exc.msg}); quote a string as "
            f"{name}='\"text\"'."
        ) from None


def build_body(
    prompt: str | Sequence[Mapping[str, Any]],
    options: Options,
    history: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The JSON body of ``POST /v1/messages``, ``stream`` aside.

    Args:
        prompt: The user message's content, templates already filled: text, sent exactly
            as given, or content blocks.
        options: The checked options.
        history: Earlier messages of the conversation, oldest first, in the API's shape.

    Returns:
        The body, with the prompt as the last user message.
    """
    body: dict[str, Any] = {
        "model": options.model,
        "max_tokens": options.max_tokens,
        "messages": [
            *history,
            {"role": "user", "content": prompt if isinstance(prompt, str) else list(prompt)},
        ],
    }
    if options.system:
        body["system"] = options.system
    if options.thinking == "adaptive":
        body["thinking"] = {"type": "adaptive", "display": "summarized"}
    elif isinstance(options.thinking, int):
        body["thinking"] = {
            "type": "enabled",
            "budget_tokens": options.thinking,
            "display": "summarized",
        }
    for name in ("temperature", "top_p", "top_k"):
        if (value := getattr(options, name)) is not None:
            body[name] = value
    if options.stop:
        body["stop_sequences"] = list(options.stop)
    body.update(options.param)
    if options.tools:
        offered = body.get("tools")
        given = list(offered) if isinstance(offered, list) else []  # server tools (--param)
        body["tools"] = [*given, *(dict(tool.definition) for tool in options.tools)]
    output: dict[str, Any] = {}
    if options.effort is not None:
        output["effort"] = options.effort
    if options.schema is not None:
        output["format"] = options.schema.output_format()
    if output:
        output_config = body.get("output_config")
        merged = dict(output_config) if isinstance(output_config, Mapping) else {}
        body["output_config"] = {**merged, **output}
    return body


def sdk_arguments(
    method: Callable[..., Any], body: Mapping[str, Any], *, extra: bool = True
) -> dict[str, Any]:
    """The keyword arguments that make ``method`` send ``body``.

    Parameters the SDK method names go as they are; the others (a newer API's, or
    sampling parameters a release leaves out) in ``extra_body``, which the SDK merges
    into the JSON, so the body on the wire is ``body``.

    Args:
        method: The SDK method, such as ``client.messages.create``.
        body: The request body.
        extra: Send the parameters ``method`` does not name in ``extra_body``. Off, they
            are left out: ``count_tokens`` takes only the parameters that decide the
            input, and refuses ``max_tokens`` and the sampling parameters.

    Returns:
        The arguments.
    """
    named = set(inspect.signature(method).parameters) - _SDK_OPTIONS
    arguments = {name: value for name, value in body.items() if name in named}
    others = {name: value for name, value in body.items() if name not in named}
    if extra and others:
        arguments["extra_body"] = others
    return arguments
