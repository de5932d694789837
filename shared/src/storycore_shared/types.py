"""Constrained types for every field a request may store.

Postgres refuses NUL (``\\u0000``) in ``text`` and ``jsonb``, asyncpg cannot encode a lone UTF-16
surrogate, a float column takes no NaN or Infinity, and an ``integer`` column ends at 2^31-1.
A request that breaks one of those rules must be a 422 naming the field, never a 500 from the
database; so request schemas use these types instead of bare ``str``, ``float``, ``int``,
``bool`` and ``dict[str, Any]``::

    class ShotCreate(BaseModel):
        name: Annotated[str, StringConstraints(min_length=1, max_length=255), TextRules]
        note: SafeText | None = None
        duration_seconds: Annotated[FiniteFloat, Field(ge=0.5, le=300)] = 5.0
        order_index: Annotated[Int32, Field(ge=0)] | None = None
        is_public: StrictBool = False
        metadata: JsonObject = Field(default_factory=dict)

``TextRules`` goes after the length constraints, so they stay native string constraints
(``string_too_long``, ``maxLength`` in the schema). Numbers and booleans are strict: ``true``
is not an integer and ``"5"`` is not a number, nor ``5`` a string. The
request body is already decoded strictly (:mod:`storycore_shared.bodies`); these types hold
the same rules for anything validated from another source, and document them.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, GetCoreSchemaHandler, Strict
from pydantic.types import AllowInfNan
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Free-form JSON that is stored (metadata, settings) nests at most this deep.
MAX_JSON_DEPTH = 32

# Any surrogate code point in a Python str is a lone one: the JSON decoder joins valid pairs.
_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> tuple[str, str] | None:
    """``(error type, message)`` when ``value`` cannot be stored as text, else None."""
    found = _FORBIDDEN.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "string_nul_character", "Text must not contain the NUL character (\\u0000)"
    return "string_lone_surrogate", "Text must not contain a lone UTF-16 surrogate"


def json_problem(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> tuple[str, str] | None:
    """``(error type, message)`` when a decoded JSON value cannot be stored as ``jsonb``.

    Checks every key and value at any depth: text as :func:`text_problem`, floats finite,
    integers within int64, only JSON types, at most ``max_depth`` levels.
    """
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, path = stack.pop()
        where = f" (at {path.lstrip('.')})" if path else ""
        if depth > max_depth:
            return "json_too_deep", f"JSON nests deeper than {max_depth} levels{where}"
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            if problem := text_problem(item):
                return problem[0], problem[1] + where
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                return "json_int_out_of_range", f"Integers must fit in 64 bits{where}"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "finite_number", f"Numbers must be finite{where}"
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return "json_type", f"Object keys must be strings{where}"
                if problem := text_problem(key):
                    under = f" under {path.lstrip('.')}" if path else ""
                    return problem[0], f"{problem[1]} (in a key{under})"
                stack.append((child, depth + 1, f"{path}.{key[:40]}"))
        elif isinstance(item, list):
            stack.extend((child, depth + 1, f"{path}.{i}") for i, child in enumerate(item))
        else:
            return "json_type", f"Not a JSON value: {type(item).__name__}{where}"
    return None


def _check_text(value: str) -> str:
    if problem := text_problem(value):
        raise PydanticCustomError(*problem)
    return value


def _check_json(value: Any) -> Any:
    if problem := json_problem(value):
        raise PydanticCustomError(*problem)
    return value


class _TextRules:
    """Makes the string it follows strict and checks it after its other constraints."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        schema = handler(source)
        if schema["type"] == "str":
            schema = {**schema, "strict": True}
        return core_schema.no_info_after_validator_function(_check_text, schema)


TextRules = _TextRules()
"""Metadata for a ``str`` that Postgres can store: no NUL, no lone surrogate, only a string."""

SafeText = Annotated[str, TextRules]
"""A string Postgres can store (see :data:`TextRules`); constrained text is
``Annotated[str, StringConstraints(...), TextRules]``."""

FiniteFloat = Annotated[float, Strict(), AllowInfNan(False)]
"""A finite number (an integer is accepted as one); never NaN, Infinity or a string."""

Int32 = Annotated[int, Strict(), Field(ge=INT32_MIN, le=INT32_MAX)]
"""An integer that fits a Postgres ``integer`` column; never a boolean, a float or a string."""

Int64 = Annotated[int, Strict(), Field(ge=INT64_MIN, le=INT64_MAX)]
"""An integer that fits a Postgres ``bigint`` column."""

StrictBool = Annotated[bool, Strict()]
"""``true`` or ``false`` only: not 1, not ``"yes"``."""

JsonValue = Annotated[Any, AfterValidator(_check_json)]
"""Any JSON value that ``jsonb`` can store (checked at every depth; see :func:`json_problem`)."""

JsonObject = Annotated[dict[str, Any], AfterValidator(_check_json)]
"""A JSON object that ``jsonb`` can store, for free-form fields such as ``metadata``."""
