"""Structured output: a schema for the reply, and the reply's text parsed into Python.

``--schema Person`` (a pydantic model class) or ``--schema spec`` (a JSON-schema dict) sends
``output_config.format`` with the schema, adapted to what the API accepts by the SDK's own
:func:`anthropic.transform_schema`. The reply's text is then JSON: :meth:`Schema.parse`
validates it into a model instance (or loads it as a dict), and says in one line why not.
Nothing here imports IPython.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pydantic
from anthropic import transform_schema

from .errors import RequestError, one_line

__all__ = ["Schema", "SchemaError", "schema_of"]


_SCHEMA_KEYS = frozenset({"type", "properties", "anyOf", "oneOf", "allOf", "$ref", "enum"})
"""A dict with none of these keys describes no JSON value: it is data, not a schema."""


class SchemaError(RequestError):
    """A value given as a schema is neither a pydantic model class nor a JSON-schema dict."""


@dataclass(frozen=True, slots=True)
class Schema:
    """What a reply must look like, and how to read it into Python."""

    name: str
    """What the user called it (``Person``), for messages."""
    json_schema: Mapping[str, Any]
    """The schema as ``output_config.format`` sends it."""
    model: type[pydantic.BaseModel] | None
    """The pydantic model to validate into, or ``None`` for a JSON-schema dict."""

    def output_format(self) -> dict[str, Any]:
        """``output_config.format`` for this schema."""
        return {"type": "json_schema", "schema": dict(self.json_schema)}

    def parse(self, text: str) -> tuple[Any, str | None]:
        """The reply's text as a validated value, or why it is not one.

        Returns:
            The model instance (or the loaded JSON for a dict schema) and ``None``; or
            ``None`` and one line saying what did not match.
        """
        try:
            if self.model is not None:
                return self.model.model_validate_json(text), None
            return json.loads(text), None
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, error['loc'])) or 'the reply'}: {error['msg']}"
                for error in exc.errors()[:3]
            )
            more = exc.error_count() - 3
            if more > 0:
                problems += f" (and {more} more)"
            return None, self._mismatch(problems)
        except json.JSONDecodeError as exc:
            return None, self._mismatch(f"not JSON ({exc.msg} at character {exc.pos})")

    def _mismatch(self, problems: str) -> str:
        return (
            f"The reply does not match the schema {self.name}: {one_line(problems, 200)}. "
            "Its text is kept in .text; .parsed is None."
        )


def schema_of(value: Any, name: str) -> Schema:
    """The schema a value describes.

    Args:
        value: A pydantic model class, or a JSON-schema dict.
        name: What the user called it, for messages.

    Raises:
        SchemaError: If the value is neither, or the SDK cannot adapt it.
    """
    if isinstance(value, type) and issubclass(value, pydantic.BaseModel):
        model: type[pydantic.BaseModel] | None = value
    elif isinstance(value, Mapping):
        model = None
        if not _SCHEMA_KEYS & set(value):
            raise SchemaError(
                f"--schema {name}: this dict is not a JSON schema (it has none of "
                f"{', '.join(sorted(_SCHEMA_KEYS))})."
            )
    else:
        raise SchemaError(
            f"--schema {name}: a {type(value).__name__} is not a pydantic model class or a "
            "JSON-schema dict."
        )
    try:
        adapted = transform_schema(value if model is not None else dict(value))
    except (TypeError, ValueError, KeyError, pydantic.PydanticUserError) as exc:
        raise SchemaError(
            f"--schema {name}: cannot be sent as a schema ({one_line(str(exc), 160)})."
        ) from None
    return Schema(name, adapted, model)
