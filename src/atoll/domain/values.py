"""What a free-form JSON value (``details``, ``params``, a filter, a JSON option) may hold.

Stored records are JSON documents read by every backend and every tool, so a
value is refused *before* anything is saved when plain JSON cannot carry it
faithfully: integers beyond 64 bits, NaN and infinities (JSON has no such numbers; they would be saved
as ``null``), text that is not valid Unicode (a lone surrogate, e.g. from an
argument that was not UTF-8), keys that are not strings, and nesting deeper
than :data:`MAX_DEPTH` (which only an attacker or a bug produces, and which
would exhaust a parser's stack further down the line).
"""

from __future__ import annotations

import math
from typing import Any

from atoll.errors import ValidationError

#: Deepest nesting of objects/arrays accepted in a JSON value.
MAX_DEPTH = 64
# Integers every store (SQLite INTEGER, PostgreSQL jsonb casts, orjson) holds exactly.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def check_text(text: str, what: str) -> str:
    """Return ``text``, or raise ValidationError when it is not valid Unicode (a lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"{what}: the text is not valid UTF-8 (character {exc.start + 1} is a lone surrogate)"
        ) from None
    return text


def check_json_value(value: Any, what: str, max_depth: int = MAX_DEPTH) -> Any:
    """Return ``value`` when plain JSON can hold it faithfully, else raise ValidationError (exit 2).

    Iterative, so even a value nested far deeper than ``max_depth`` is refused
    without a RecursionError.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            check_text(item, what)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValidationError(f"{what}: {item} is not a JSON number (no NaN or Infinity)")
        elif isinstance(item, int) and not isinstance(item, bool) and not _INT64_MIN <= item <= _INT64_MAX:
            raise ValidationError(f"{what}: an integer of {item.bit_length()} bits is out of range (64-bit signed)")
        elif isinstance(item, (dict, list, tuple)):
            if depth >= max_depth:
                raise ValidationError(f"{what}: nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, sub in item.items():
                    if not isinstance(key, str):
                        raise ValidationError(f"{what}: object keys must be strings, got {key!r}")
                    check_text(key, what)
                    stack.append((sub, depth + 1))
            else:
                stack.extend((sub, depth + 1) for sub in item)
        elif item is not None and not isinstance(item, (bool, int)):
            raise ValidationError(f"{what}: {type(item).__name__} is not a JSON value")
    return value


__all__ = ["MAX_DEPTH", "check_json_value", "check_text"]
