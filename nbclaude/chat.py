"""Conversations across cells: turns keyed by notebook cell, so a re-run replaces, not repeats.

A turn is one user prompt and the complete assistant reply to it. Each turn remembers the
cell that made it, as a :data:`TurnKey`: the notebook's cell id (which Jupyter front ends
send with every execute request, and IPython hands to ``pre_run_cell`` listeners) and how
many turns that execution of the cell had already made in the conversation. Re-running a
cell finds its turn again and replaces it and every turn after it, as if the conversation
had been rewound to that cell.

Where there is no cell id (terminal IPython, ``shell.run_cell`` without one, front ends that
do not send it), the key is ``None`` and the turn is always appended: nothing is ever
dropped on a guess. ``%claude history`` shows what is there and ``%claude reset`` clears it.

Nothing here imports IPython: :class:`CellTracker` only needs the ``cell_id`` attribute of
the object IPython passes to ``pre_run_cell``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from .attachments import block_placeholder
from .blocks import kind_of
from .reply import Reply

__all__ = [
    "DEFAULT_CHAT",
    "CellTracker",
    "Chats",
    "Conversation",
    "Turn",
    "TurnKey",
    "assistant_content",
]

DEFAULT_CHAT = "main"
"""The conversation ``--chat`` continues when it is given no name."""

TurnKey = tuple[str, int]
"""Which cell made a turn: its cell id and how many turns that execution made before."""

_EPHEMERAL: Mapping[str, str] = {"type": "ephemeral"}


@dataclass(frozen=True, slots=True)
class Turn:
    """One exchange of a conversation: what the user sent and what Claude answered."""

    key: TurnKey | None
    """The cell that made the turn, or ``None`` when it had no cell id (never replaced)."""
    prompt: str | tuple[Mapping[str, Any], ...]
    """The user message's content as sent, templates filled: text, or content blocks."""
    content: tuple[Mapping[str, Any], ...]
    """The assistant's content blocks in the API's shape, thinking signatures included."""
    model: str
    """The model that answered."""
    between: tuple[Mapping[str, Any], ...] = ()
    """A tool loop's messages between the prompt and the answer: Claude's calls of the
    user's tools, and their results, in turn."""

    def messages(self) -> list[dict[str, Any]]:
        """The turn as Messages API messages, user first and the answer last (fresh copies):
        two, or more when Claude called the user's tools in between."""
        prompt = self.prompt if isinstance(self.prompt, str) else copy.deepcopy(list(self.prompt))
        return [
            {"role": "user", "content": prompt},
            *(copy.deepcopy(dict(message)) for message in self.between),
            {"role": "assistant", "content": copy.deepcopy(list(self.content))},
        ]


def assistant_content(reply: Reply) -> tuple[dict[str, Any], ...]:
    """A reply's content blocks as plain dicts the API accepts back.

    Every field the API sent is kept (thinking signatures, tool ids and inputs, citations,
    server tool results, block types newer than this SDK); ``None`` fields and nbclaude's
    own state are dropped, and so are empty text blocks, which the API refuses.

    Args:
        reply: A complete reply.

    Returns:
        The blocks, in order.
    """
    blocks = []
    for block in reply.content:
        data: dict[str, Any] = (
            block.model_dump(mode="json", by_alias=True, exclude_none=True)
            if isinstance(block, BaseModel)
            else dict(block)
        )
        if data.get("type") == "text" and not data.get("text"):
            continue
        blocks.append(data)
    return tuple(blocks)


class Conversation:
    """The turns of one named conversation, oldest first."""

    def __init__(self, name: str) -> None:
        self.name = name
        """The name given to ``--chat``."""
        self._turns: list[Turn] = []

    @property
    def turns(self) -> tuple[Turn, ...]:
        """The turns, oldest first."""
        return tuple(self._turns)

    def __len__(self) -> int:
        return len(self._turns)

    def position(self, key: TurnKey | None) -> int:
        """Where a turn made by ``key`` goes: its old place if the cell ran before, else the end.

        Args:
            key: The cell's key, or ``None`` when it has no cell id.

        Returns:
            The index of the turn it replaces, or the number of turns.
        """
        if key is not None:
            for index, turn in enumerate(self._turns):
                if turn.key == key:
                    return index
        return len(self._turns)

    def history(self, key: TurnKey | None, *, cache: bool = True) -> list[dict[str, Any]]:
        """The messages that come before the turn ``key`` makes, ready to send.

        Args:
            key: The cell's key, or ``None`` when it has no cell id.
            cache: Mark the last block that can carry it with ``cache_control``, so the
                conversation so far is written to (and next time read from) the prompt
                cache.

        Returns:
            The messages, oldest first; new copies, so callers may change them.
        """
        messages = [
            message for turn in self._turns[: self.position(key)] for message in turn.messages()
        ]
        if cache:
            _mark_last_cacheable(messages)
        return messages

    def record(
        self, key: TurnKey | None, prompt: str | Sequence[Mapping[str, Any]], reply: Reply
    ) -> bool:
        """Add a finished exchange, replacing this cell's old turn and every turn after it.

        An incomplete or failed reply, or one with no content to send back, is not added
        and changes nothing.

        Args:
            key: The cell's key, or ``None`` to append.
            prompt: The user message's content as sent: text, or content blocks.
            reply: Claude's reply.

        Returns:
            Whether the turn was added.
        """
        content = assistant_content(reply)
        if not reply.complete or reply.error is not None or not content:
            return False
        del self._turns[self.position(key) :]
        sent = prompt if isinstance(prompt, str) else tuple(copy.deepcopy(list(prompt)))
        between = tuple(
            message
            for round_ in reply.rounds[:-1]
            for message in (
                {"role": "assistant", "content": list(assistant_content(round_.reply))},
                {"role": "user", "content": [call.block() for call in round_.calls]},
            )
        )
        self._turns.append(Turn(key, sent, content, reply.model, between))
        return True

    def clear(self) -> None:
        """Forget every turn."""
        self._turns.clear()

    def describe(self) -> str:
        """The conversation as plain text, as ``%claude history`` prints it."""
        if not self._turns:
            return f"Conversation {self.name!r} is empty."
        count = len(self._turns)
        lines = [f"Conversation {self.name!r}: {count} turn{'s' if count != 1 else ''}."]
        for number, turn in enumerate(self._turns, start=1):
            cell = f" · cell {turn.key[0]}" if turn.key is not None else ""
            lines += ["", f"── {number} · user{cell}", _describe_prompt(turn.prompt)]
            for message in turn.between:
                lines += ["", f"── {number} · {message['role']} · tools"]
                lines += [_describe_block(block) for block in message["content"]]
            lines += ["", f"── {number} · assistant · {turn.model}"]
            lines += [_describe_block(block) for block in turn.content]
        return "\n".join(lines)


def _describe_prompt(prompt: str | Sequence[Mapping[str, Any]]) -> str:
    if isinstance(prompt, str):
        return prompt.rstrip("\n")
    return "\n\n".join(_describe_block(block) for block in prompt).rstrip("\n")


def _describe_block(block: Mapping[str, Any]) -> str:
    kind = kind_of(str(block.get("type")))
    if (placeholder := block_placeholder(block)) is not None:
        return placeholder
    if kind.role == "text":
        return str(block.get("text", ""))
    if kind.role == "thinking":
        signed = "signed" if block.get("signature") else "unsigned"
        return f"[thinking, {len(str(block.get('thinking', ''))):,} characters, {signed}]"
    if kind.is_tool_call:
        return f"[{kind.type} {block.get('name', '')}]"
    return f"[{kind.type}]"


def _mark_last_cacheable(messages: list[dict[str, Any]]) -> None:
    """Put ``cache_control`` on the last block that may carry it, making strings blocks."""
    for message in reversed(messages):
        content = message["content"]
        if isinstance(content, str):
            if not content:
                continue
            message["content"] = [
                {"type": "text", "text": content, "cache_control": dict(_EPHEMERAL)}
            ]
            return
        for block in reversed(content):
            if kind_of(str(block.get("type"))).cacheable:
                block["cache_control"] = dict(_EPHEMERAL)
                return


class Chats:
    """Every conversation of a session, by name."""

    def __init__(self) -> None:
        self._by_name: dict[str, Conversation] = {}

    def __getitem__(self, name: str) -> Conversation:
        """The conversation called ``name``, started empty if it is new."""
        conversation = self._by_name.get(name)
        if conversation is None:
            conversation = self._by_name[name] = Conversation(name)
        return conversation

    def names(self) -> list[str]:
        """The names of the conversations that have turns, sorted."""
        return sorted(name for name, conversation in self._by_name.items() if conversation)

    def reset(self, name: str) -> bool:
        """Forget the conversation ``name``; return whether it had turns."""
        conversation = self._by_name.pop(name, None)
        return bool(conversation)

    def reset_all(self) -> int:
        """Forget every conversation; return how many had turns."""
        count = len(self.names())
        self._by_name.clear()
        return count


class CellTracker:
    """Knows which notebook cell is running, from IPython's ``pre_run_cell`` event.

    Register :meth:`pre_run_cell` for ``pre_run_cell`` and :meth:`post_execute` for
    ``post_execute``. ``post_execute`` fires after every execution, silent ones included,
    so a ``%%claude`` run silently (which gets no ``pre_run_cell``) never borrows the id
    of the cell before it.
    """

    def __init__(self) -> None:
        self._cell_id: str | None = None
        self._counts: dict[str, int] = {}

    @property
    def cell_id(self) -> str | None:
        """The id of the running cell, or ``None`` if the front end sent none."""
        return self._cell_id

    def pre_run_cell(self, info: Any) -> None:
        """Note the cell about to run (``info`` is IPython's ``ExecutionInfo``)."""
        cell_id = getattr(info, "cell_id", None)
        self._cell_id = str(cell_id) if cell_id else None
        self._counts = {}

    def post_execute(self) -> None:
        """Forget the cell that just ran."""
        self._cell_id = None
        self._counts = {}

    def next_key(self, chat: str) -> TurnKey | None:
        """The key of the next turn this cell makes in ``chat``, or ``None`` without a cell id.

        A cell usually makes one turn per run; one that sends several (a loop over
        ``run_cell_magic``) gets a key for each, in order.
        """
        if self._cell_id is None:
            return None
        count = self._counts.get(chat, 0)
        self._counts[chat] = count + 1
        return (self._cell_id, count)
