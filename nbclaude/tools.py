"""Claude calls your Python: tool definitions from functions, and running the calls.

A :class:`Tool` is a Python callable the user offered (``--tools lookup`` or
``ask(tools=[lookup])``). Its definition (name, description, JSON schema of the input) comes
from the function's signature, type hints and docstring through the SDK's own
:func:`anthropic.beta_tool`, which also validates each call's input against them. When a
reply stops for ``tool_use``, :func:`call_tools` runs each call in this process and makes its
``tool_result`` block: what the function returned (text, JSON, or an image), or the
exception in one line with ``is_error``. A function that raises is not a failure of the
cell: Claude reads the error and goes on.

Only the functions named are offered, and they run with the user's permissions. Nothing
here imports IPython.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
from anthropic import beta_tool

from .attachments import AttachmentError, attachment_of, block_placeholder
from .errors import RequestError, one_line
from .reply import ToolCall

__all__ = [
    "DEFAULT_MAX_ROUNDS",
    "SHOWN_CHARS",
    "Tool",
    "ToolDefinitionError",
    "call_tool",
    "tools_of",
]

DEFAULT_MAX_ROUNDS = 8
"""Tool round trips a call makes at most, unless ``--max-tool-rounds`` says otherwise."""

SHOWN_CHARS = 600
"""Characters of a tool's result the view shows; Claude is sent all of it."""

_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
"""The names the API accepts for a tool."""


class ToolDefinitionError(RequestError):
    """A tool cannot be offered: not callable, a bad name, or parameters without a schema."""


@dataclass(frozen=True, slots=True)
class Tool:
    """A Python callable offered to Claude, with the definition the API is sent."""

    name: str
    """The tool's name, as Claude calls it."""
    function: Callable[..., Any]
    """The callable itself."""
    definition: Mapping[str, Any]
    """``name``, ``description`` and ``input_schema``, as the ``tools`` parameter takes them."""
    _validated: Any
    """The SDK's function tool: it checks a call's input against the signature, then calls."""

    def __call__(self, arguments: Mapping[str, Any]) -> Any:
        """Call the function with Claude's input, checked against its signature.

        Raises:
            ValueError: If the input does not fit the signature (one line saying where).
            Exception: Whatever the function raises.
        """
        try:
            return self._validated.call(dict(arguments))
        except ValueError as exc:
            cause = exc.__cause__
            if isinstance(cause, pydantic.ValidationError):
                problems = "; ".join(
                    f"{'.'.join(map(str, error['loc'])) or 'input'}: {error['msg']}"
                    for error in cause.errors()
                )
                raise ValueError(f"invalid arguments for {self.name}: {problems}") from None
            raise


def tools_of(values: Iterable[tuple[str, Any]]) -> tuple[Tool, ...]:
    """The tools for these callables, each under its name.

    Args:
        values: ``(name, callable)`` pairs: the name the user gave (``--tools lookup``), or
            the function's own for a list.

    Raises:
        ToolDefinitionError: If a value is not callable, a name is not one the API takes or
            is given twice, or a function's parameters cannot become a JSON schema.
    """
    tools: dict[str, Tool] = {}
    for name, value in values:
        if not callable(value):
            raise ToolDefinitionError(
                f"--tools {name}: a {type(value).__name__} is not callable; name functions."
            )
        if not _TOOL_NAME.fullmatch(name):
            raise ToolDefinitionError(
                f"--tools {name}: a tool's name is 1 to 64 letters, digits, '_' or '-'; "
                "define the function with a def and a name."
            )
        if name in tools:
            raise ToolDefinitionError(f"--tools {name}: named twice.")
        tools[name] = _tool(name, value)
    return tuple(tools.values())


def _tool(name: str, function: Callable[..., Any]) -> Tool:
    try:
        validated = beta_tool(function, name=name)
        definition: dict[str, Any] = dict(validated.to_dict())
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError) as exc:
        raise ToolDefinitionError(
            f"--tools {name}: its parameters cannot be described to Claude "
            f"({one_line(str(exc), 140)}). Use parameters of JSON-like types: str, int, "
            "float, bool, lists, dicts, pydantic models."
        ) from None
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(
            f"--tools {name}: cannot be offered as a tool ({one_line(str(exc), 140)})."
        ) from None
    if not definition.get("description"):
        definition.pop("description", None)
    return Tool(name, function, definition, validated)


def _describe(block: Mapping[str, Any]) -> str:
    return block_placeholder(block) or str(block.get("text", ""))


def call_tool(tools: Sequence[Tool], use: Mapping[str, Any]) -> ToolCall:
    """Run one ``tool_use`` block's call, however it ends but for an interrupt.

    Args:
        tools: The tools offered.
        use: The ``tool_use`` block, in the API's shape.

    Returns:
        The call: its result as Claude will be sent it, or its error in one line.

    Raises:
        KeyboardInterrupt: If the user interrupted the function: the caller stops the loop.
    """
    call_id, name = str(use.get("id", "")), str(use.get("name", ""))
    arguments = use.get("input")
    tool = next((tool for tool in tools if tool.name == name), None)
    if tool is None:
        offered = ", ".join(tool.name for tool in tools)
        message = f"There is no tool named {name!r}; the tools are {offered}."
        return ToolCall(call_id, name, arguments, None, True, message, message)
    if not isinstance(arguments, Mapping):
        message = f"The input of {name} must be a JSON object, not {arguments!r}."
        return ToolCall(call_id, name, arguments, None, True, message, message)
    try:
        result = tool(arguments)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # the user's function: any failure goes back to Claude
        message = one_line(f"{type(exc).__name__}: {exc}", 500)
        return ToolCall(call_id, name, arguments, exc, True, message, message)
    content = _content(result)
    if isinstance(content, tuple):
        shown = " ".join(_describe(block) for block in content)
    else:
        shown = _cut(repr(result))
    return ToolCall(call_id, name, arguments, result, False, content, shown)


def _cut(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _content(result: Any) -> str | tuple[Mapping[str, Any], ...]:
    """A function's result as Claude is sent it: text, JSON, or an image block."""
    if isinstance(result, str):
        return result
    try:
        image = attachment_of(result, "the tool's result")
    except AttachmentError:
        image = None
    if image is not None and image.kind == "image":
        return (image.block(),)
    try:
        return json.dumps(result, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(result)
