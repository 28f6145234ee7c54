"""The API key: where the SDK reads it from, and refusing any request that would carry it.

A filled template can hold anything the notebook holds, ``os.environ`` included: a request,
a dry run's printout or a run log that carries the key would leak it. Every value filled
into a prompt and every request body is checked against the credentials in the
environment before anything is sent or shown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import RequestError

__all__ = ["SECRET_VARIABLES", "SecretError", "api_secrets", "check_no_secrets"]


class SecretError(RequestError):
    """The request would carry the API key; nothing should be sent or shown."""


SECRET_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
"""The environment variables the SDK reads credentials from."""

_MIN_SECRET_CHARS = 8
"""Shorter values are not looked for: a real key is about a hundred characters, and a
short placeholder would match ordinary text."""


def api_secrets(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The credentials in ``environ`` that a request must never carry.

    Args:
        environ: The environment, such as ``os.environ``.

    Returns:
        The values of :data:`SECRET_VARIABLES` that are set and long enough to look for.
    """
    values = (environ.get(name, "").strip() for name in SECRET_VARIABLES)
    return tuple(value for value in values if len(value) >= _MIN_SECRET_CHARS)


def check_no_secrets(params: Mapping[str, Any], secrets: Sequence[str]) -> None:
    """Refuse a request that carries a credential anywhere (prompt, system, history...).

    Args:
        params: The request.
        secrets: What :func:`api_secrets` found.

    Raises:
        SecretError: If any of ``secrets`` appears in the request.
    """
    if not secrets:
        return
    body = json.dumps(params, ensure_ascii=False, default=str)
    if any(secret in body for secret in secrets):
        raise SecretError(
            "The request contains your API key: it is never sent or shown. Take it out of "
            "the prompt, the system prompt or the values they fill. Nothing was sent."
        )
