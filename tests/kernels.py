"""A real Jupyter kernel for tests: its environment, its lifetime, and running a cell in it."""

from __future__ import annotations

import json
import os
import queue
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

STARTUP_TIMEOUT = 60
"""Seconds a kernel may take to start."""
CELL_TIMEOUT = 120
"""Seconds one cell may take."""


def kernel_env(**settings: str) -> dict[str, str]:
    """The test process's environment without any Anthropic setting, plus ``settings``.

    127.0.0.1 bypasses any proxy the environment names: the fake servers are local.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("ANTHROPIC_")}
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", **settings)
    return env


@contextmanager
def running_kernel(env: dict[str, str]) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    """Start a python3 kernel with ``env``; shut it down, whatever happens."""
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env)
    client = manager.client()
    try:
        client.start_channels()
        client.wait_for_ready(timeout=STARTUP_TIMEOUT)
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def iopub_until_idle(
    client: BlockingKernelClient, msg_id: str, timeout: float = CELL_TIMEOUT
) -> list[dict[str, Any]]:
    """Every iopub message the request ``msg_id`` caused, until the kernel is idle again."""
    deadline = time.monotonic() + timeout
    messages = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"the cell did not finish in {timeout}s")
        message = client.get_iopub_msg(timeout=remaining)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(message)
        if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
            return messages


def run_cell(
    client: BlockingKernelClient,
    code: str,
    timeout: float = CELL_TIMEOUT,
    *,
    cell_id: str | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run ``code``; return its execute_reply content and the iopub messages it caused.

    With ``cell_id``, the request names the cell as JupyterLab does (``metadata.cellId``).
    """
    msg_id = execute(client, code, cell_id=cell_id)
    messages = iopub_until_idle(client, msg_id, timeout)
    reply = client.get_shell_msg(timeout=timeout)
    assert reply["parent_header"]["msg_id"] == msg_id
    return reply["content"], messages


def execute(client: BlockingKernelClient, code: str, *, cell_id: str | None = None) -> str:
    """Send an execute request, naming the cell if given; return its message id."""
    if cell_id is None:
        return client.execute(code)
    content = {
        "code": code,
        "silent": False,
        "store_history": True,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }
    message = client.session.msg("execute_request", content, metadata={"cellId": cell_id})
    client.shell_channel.send(message)
    msg_id: str = message["header"]["msg_id"]
    return msg_id


def run_cell_interrupted(
    manager: KernelManager,
    client: BlockingKernelClient,
    code: str,
    when: Callable[[list[dict[str, Any]]], bool],
    timeout: float = CELL_TIMEOUT,
) -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
    """Run ``code`` and press stop once ``when(iopub messages so far)`` is true.

    The kernel is never interrupted once the cell has ended: a cell that ends first is
    left alone, and the third value says whether the interrupt was sent.

    Returns:
        The execute_reply content, the iopub messages of the cell, whether it was
        interrupted.
    """
    msg_id = client.execute(code)
    deadline = time.monotonic() + timeout
    messages: list[dict[str, Any]] = []
    while not when(messages):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the moment to interrupt never came in {timeout}s")
        try:
            message = client.get_iopub_msg(timeout=0.005)
        except queue.Empty:
            continue
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(message)
        if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
            break
    else:
        manager.interrupt_kernel()
        messages += iopub_until_idle(client, msg_id, timeout)
        return _shell_reply(client, msg_id, timeout), messages, True
    return _shell_reply(client, msg_id, timeout), messages, False


def _shell_reply(client: BlockingKernelClient, msg_id: str, timeout: float) -> dict[str, Any]:
    reply = client.get_shell_msg(timeout=timeout)
    assert reply["parent_header"]["msg_id"] == msg_id
    content: dict[str, Any] = reply["content"]
    return content


def shows(text: str) -> Callable[[list[dict[str, Any]]], bool]:
    """A ``when`` for :func:`run_cell_interrupted`: once the live view shows ``text``."""

    def showing(messages: list[dict[str, Any]]) -> bool:
        return any(
            m["msg_type"] == "comm_msg" and text in str(m["content"]["data"]) for m in messages
        )

    return showing


def printed(messages: list[dict[str, Any]]) -> str:
    """What the cell printed to stdout and stderr."""
    return "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")


def saved_outputs(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The outputs a notebook would save for the cell: displays as last updated, in order.

    ``update_display_data`` replaces the data of every earlier output with its display id,
    as a front end does; streams, results and errors are kept as they came.
    """
    outputs: list[dict[str, Any]] = []
    for message in messages:
        kind, content = message["msg_type"], message["content"]
        if kind == "update_display_data":
            display_id = content.get("transient", {}).get("display_id")
            for output in outputs:
                if output.get("display_id") == display_id:
                    output["data"] = content["data"]
        elif kind in ("display_data", "execute_result"):
            display_id = content.get("transient", {}).get("display_id")
            outputs.append({"output_type": kind, "data": content["data"], "display_id": display_id})
        elif kind == "stream":
            outputs.append(
                {"output_type": "stream", "name": content["name"], "text": content["text"]}
            )
        elif kind == "error":
            outputs.append({"output_type": "error", "traceback": content["traceback"]})
    return outputs


class Cell:
    """What one cell did, as a notebook would keep it."""

    def __init__(self, content: dict[str, Any], messages: list[dict[str, Any]]) -> None:
        self.status: str = content["status"]
        """``ok`` or ``error``."""
        self.traceback: list[str] = content.get("traceback", [])
        """The error's lines, empty if the cell succeeded."""
        self.outputs = saved_outputs(messages)
        """The outputs a notebook would save."""
        self.printed = printed(messages)
        """What went to stdout and stderr."""
        self.saved_size = len(json.dumps(self.outputs))
        """Characters the saved outputs take as JSON."""
        self.widget_state = "".join(
            json.dumps(m["content"]["data"])
            for m in messages
            if m["msg_type"] in ("comm_open", "comm_msg")
        )
        """Everything the live widget was sent."""

    @property
    def html(self) -> str:
        """The HTML of every output, as last updated."""
        return "".join(o["data"].get("text/html", "") for o in self.outputs if "data" in o)

    @property
    def thumbnails(self) -> list[str]:
        """The base64 data of each image the saved outputs keep."""
        return re.findall(r'src="data:image/[a-z]+;base64,([^"]*)"', self.html)

    def usage_error(self) -> str:
        """The cell's UsageError, which IPython prints as one line on stderr."""
        assert self.status == "error"
        assert self.printed.startswith("UsageError: ")
        assert self.printed.count("\n") == 1
        return self.printed

    def error_line(self) -> str:
        """The cell's error, which must be a single line."""
        assert self.status == "error"
        assert len(self.traceback) == 1, self.traceback
        assert "\n" not in self.traceback[0]
        return self.traceback[0]


class NotebookKernel:
    """A kernel with a fake API, for tests that run cells in it one after another."""

    def __init__(self, manager: KernelManager, client: BlockingKernelClient, fake: Any) -> None:
        self.manager = manager
        self.client = client
        self.fake = fake
        """The ``FakeServer`` the kernel talks to."""

    def run(self, source: str, *, cell_id: str | None = None) -> Cell:
        """Run a cell, naming it if ``cell_id`` is given."""
        return Cell(*run_cell(self.client, source, cell_id=cell_id))

    def run_interrupted(self, source: str, when: Callable[[], bool]) -> tuple[Cell, bool]:
        """Run a cell and press stop once ``when()`` is true; say whether it was pressed."""
        content, messages, pressed = run_cell_interrupted(
            self.manager, self.client, source, lambda messages: when()
        )
        return Cell(content, messages), pressed

    def body(self, request: int = -1) -> dict[str, Any]:
        """The body of a request the fake API received, the last by default."""
        body: dict[str, Any] = self.fake.requests[request].body
        return body

    def content(self) -> list[dict[str, Any]]:
        """The content of the last request's last message."""
        content: list[dict[str, Any]] = self.body()["messages"][-1]["content"]
        return content
