"""The kinds of content block, in one table: what each is, how it streams and goes back.

The stream folds blocks by the delta that carries their content, the views show them by
their role, the conversation marks the ones that may carry ``cache_control``, and the
static HTML picks each one's look by role (and, for tool results, by type). Adding a kind
is a row in :data:`KINDS` (and its look in :mod:`nbclaude.static`, if it needs one of its
own); a type this table does not know is :func:`kind_of`'s ``unknown`` kind, shown as a
placeholder and kept in the reply as it came.

Nothing here imports anything beyond the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["KINDS", "BlockKind", "Role", "kind_of"]

Role = Literal[
    "text",
    "thinking",
    "redacted_thinking",
    "tool_use",
    "server_tool_use",
    "result",
    "input",
    "unknown",
]
"""What a block is to a reader: Claude's text or thinking, a tool call (ours to run, or the
API's), a server tool's result, content a user sends (images, documents, tool results), or
a type this version does not know."""

Delta = Literal["text", "thinking", "partial_json"]
"""The field of a ``content_block_delta`` that carries a block's content."""


@dataclass(frozen=True, slots=True)
class BlockKind:
    """One kind of content block."""

    type: str
    """The block's ``type``, as the API sends it."""
    role: Role
    """What the block is; how it shows follows from it."""
    delta: Delta | None = None
    """The delta field its content streams in, or ``None`` when it arrives whole."""
    cacheable: bool = False
    """Whether the API accepts ``cache_control`` on it when it is sent back."""

    @property
    def is_thinking(self) -> bool:
        """Thinking, summarized or redacted: shown in the section that folds away."""
        return self.role in ("thinking", "redacted_thinking")

    @property
    def is_markdown(self) -> bool:
        """Text or thinking, whose content is Markdown rendered as it streams."""
        return self.role in ("text", "thinking")

    @property
    def is_tool_call(self) -> bool:
        """A call of a tool, whose input streams as JSON."""
        return self.role in ("tool_use", "server_tool_use")


KINDS: Mapping[str, BlockKind] = {
    kind.type: kind
    for kind in (
        BlockKind("text", "text", "text", cacheable=True),
        BlockKind("thinking", "thinking", "thinking"),
        BlockKind("redacted_thinking", "redacted_thinking"),
        BlockKind("tool_use", "tool_use", "partial_json", cacheable=True),
        BlockKind("server_tool_use", "server_tool_use", "partial_json", cacheable=True),
        BlockKind("mcp_tool_use", "server_tool_use", "partial_json"),
        BlockKind("web_search_tool_result", "result", cacheable=True),
        BlockKind("web_fetch_tool_result", "result", cacheable=True),
        BlockKind("code_execution_tool_result", "result", cacheable=True),
        BlockKind("bash_code_execution_tool_result", "result", cacheable=True),
        BlockKind("text_editor_code_execution_tool_result", "result", cacheable=True),
        BlockKind("tool_search_tool_result", "result", cacheable=True),
        BlockKind("mcp_tool_result", "result"),
        BlockKind("container_upload", "result", cacheable=True),
        BlockKind("image", "input", cacheable=True),
        BlockKind("document", "input", cacheable=True),
        BlockKind("search_result", "input", cacheable=True),
        BlockKind("tool_result", "input", cacheable=True),
    )
}
"""Every block type this version knows, by ``type``."""


def kind_of(type_name: str) -> BlockKind:
    """The kind of a block ``type``: its row of :data:`KINDS`, or an ``unknown`` kind.

    Args:
        type_name: The ``type`` the API sent, possibly one newer than this version.

    Returns:
        The kind; an unknown type streams nothing, shows as a placeholder and is kept.
    """
    kind = KINDS.get(type_name)
    return kind if kind is not None else BlockKind(type_name, "unknown")
