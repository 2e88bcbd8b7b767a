"""MongoDB-style filters over a record's JSON form.

A filter is a dict such as ``{"details.metrics.acc": {"$gt": 0.9}}`` applied
to ``record.model_dump(mode="json")``. Every metadata backend answers filters
exactly like :func:`matches` (the SQL store pushes down what it can and
finishes here).

Supported::

    field operators   $eq $ne $gt $gte $lt $lte $in $nin $exists
                      $regex (+ $options from "imsx") $not
    logical           $and $or $nor (lists of filters), $not (a filter; an
                      extension: MongoDB only allows $not on a field)
    implicit          {"a": 1} is {"a": {"$eq": 1}}

Semantics follow MongoDB for the common cases: dotted paths walk nested
objects, a numeric segment indexes an array, and a path through an array of
objects reaches every element's field; a condition on a path holding an array
matches when the array itself or any element matches. Comparisons only hold
within one type bracket (numbers, int and float mixed, with numbers; strings
with strings by code point; booleans with booleans); datetimes are ISO
strings and compare as strings. ``{"a": null}`` matches a null or missing
``a``; ``$ne`` and ``$nin`` match missing fields. ``$regex`` uses Python's
``re`` syntax with ``re.search`` (unanchored, as MongoDB).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, TypeAlias

from atoll.domain.values import check_json_value
from atoll.errors import UsageError

FIELD_OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$regex", "$not")
LOGICAL_OPERATORS = ("$and", "$or", "$nor", "$not")
#: Deepest nesting of a filter's objects and arrays (a ``$not`` costs two levels).
MAX_FILTER_DEPTH = 32
_REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


# -- compiled form, shared by the evaluator and the SQL translation ---------


@dataclass(frozen=True)
class Cond:
    """One condition on one path: ``op`` is eq, gt, gte, lt, lte, in, exists or regex."""

    path: tuple[str, ...]
    op: str
    value: Any
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


Node: TypeAlias = "Cond | And | Or | Not"


def parse_filter(text: str) -> dict[str, Any]:
    """Parse a ``--filter`` argument (JSON text) into a filter dict.

    Raises:
        UsageError: the text is not JSON or not a JSON object.
    """
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"malformed --filter JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise UsageError(f'malformed --filter JSON: expected an object like {{"name": "x"}}, got {text!r}')
    validate_filter(value)
    return value


def validate_filter(flt: Any) -> None:
    """Raise UsageError (one line) when ``flt`` is not a valid filter."""
    compile_filter(flt)


def matches(doc: dict[str, Any], flt: dict[str, Any] | Node) -> bool:
    """True when the JSON document ``doc`` matches the filter."""
    node = flt if isinstance(flt, (Cond, And, Or, Not)) else compile_filter(flt)
    return evaluate(node, doc)


def compile_filter(flt: Any) -> Node:
    """Validate a filter and turn it into a small tree of Cond/And/Or/Not.

    Raises:
        UsageError: unknown operator, bad operand or malformed structure, or
            nested deeper than :data:`MAX_FILTER_DEPTH` (checked first, without
            recursion, so no filter can exhaust a stack here or in a database).
    """
    check_json_value(flt, "filter", max_depth=MAX_FILTER_DEPTH)
    return _compile(flt)


def _compile(flt: Any) -> Node:
    if not isinstance(flt, dict):
        raise UsageError(f"a filter must be a JSON object, got {_show(flt)}")
    children: list[Node] = []
    for key, value in flt.items():
        if not isinstance(key, str):
            raise UsageError(f"filter keys must be strings, got {key!r}")
        if key.startswith("$"):
            children.append(_compile_logical(key, value))
        else:
            children.append(_compile_field(_path(key), value))
    return children[0] if len(children) == 1 else And(tuple(children))


def _compile_logical(op: str, value: Any) -> Node:
    if op == "$not":
        return Not(_compile(value))
    if op not in ("$and", "$or", "$nor"):
        raise UsageError(
            f"unknown operator {op} (supported: {', '.join(LOGICAL_OPERATORS)} at the top level)"
        )
    if not isinstance(value, list) or not value:
        raise UsageError(f"{op} needs a non-empty list of filters, got {_show(value)}")
    subs = tuple(_compile(item) for item in value)
    if op == "$and":
        return And(subs)
    if op == "$or":
        return Or(subs)
    return Not(Or(subs))


def _path(key: str) -> tuple[str, ...]:
    parts = tuple(key.split("."))
    if any(not part or part.startswith("$") for part in parts):
        raise UsageError(f"invalid field path {key!r}: use dot-separated names such as details.metrics.acc")
    return parts


def _is_operator_doc(value: Any, where: str) -> bool:
    if not isinstance(value, dict) or not value:
        return False
    dollars = [isinstance(k, str) and k.startswith("$") for k in value]
    if all(dollars):
        return True
    if any(dollars):
        raise UsageError(f"cannot mix operators and field names in the condition on {where!r}")
    return False


def _compile_field(path: tuple[str, ...], value: Any) -> Node:
    where = ".".join(path)
    if not _is_operator_doc(value, where):
        return Cond(path, "eq", _json_value(value, where))
    conds: list[Node] = []
    for op, operand in value.items():
        if op == "$options":
            if "$regex" not in value:
                raise UsageError(f"$options needs $regex in the condition on {where!r}")
            continue
        conds.append(_compile_op(path, where, op, operand, value.get("$options")))
    return conds[0] if len(conds) == 1 else And(tuple(conds))


def _compile_op(path: tuple[str, ...], where: str, op: str, operand: Any, options: Any) -> Node:
    if op in ("$eq", "$ne"):
        cond = Cond(path, "eq", _json_value(operand, where))
        return cond if op == "$eq" else Not(cond)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if operand is None or not isinstance(operand, (bool, int, float, str)):
            raise UsageError(f"{op} on {where!r} needs a number, string or boolean, got {_show(operand)}")
        return Cond(path, op[1:], operand)
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise UsageError(f"{op} on {where!r} needs a list, got {_show(operand)}")
        cond = Cond(path, "in", tuple(_json_value(item, where) for item in operand))
        return cond if op == "$in" else Not(cond)
    if op == "$exists":
        if not isinstance(operand, bool):
            raise UsageError(f"$exists on {where!r} needs true or false, got {_show(operand)}")
        return Cond(path, "exists", operand)
    if op == "$regex":
        return Cond(path, "regex", operand, _regex(where, operand, options))
    if op == "$not":
        if not _is_operator_doc(operand, where):
            raise UsageError(f'$not on {where!r} needs an operator object such as {{"$gt": 1}}')
        return Not(_compile_field(path, operand))
    raise UsageError(f"unknown operator {op} on {where!r} (supported: {', '.join(FIELD_OPERATORS)})")


def _regex(where: str, pattern: Any, options: Any) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise UsageError(f"$regex on {where!r} needs a string pattern, got {_show(pattern)}")
    flags = 0
    if options is not None:
        if not isinstance(options, str) or any(c not in _REGEX_FLAGS for c in options):
            raise UsageError(f"$options on {where!r} must be letters from 'imsx', got {_show(options)}")
        for c in options:
            flags |= _REGEX_FLAGS[c]
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise UsageError(f"invalid $regex on {where!r}: {exc}") from exc


def _json_value(value: Any, where: str) -> Any:
    """Check an operand is plain JSON (what a stored document can hold)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v, where) for k, v in value.items()}
    raise UsageError(f"the condition on {where!r} compares with {type(value).__name__}, not a JSON value")


def _show(value: Any) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


# -- evaluation ------------------------------------------------------------


def evaluate(node: Node, doc: Any) -> bool:
    """Evaluate a compiled filter against one JSON document."""
    if isinstance(node, Cond):
        return _eval_cond(node, doc)
    if isinstance(node, And):
        return all(evaluate(child, doc) for child in node.children)
    if isinstance(node, Or):
        return any(evaluate(child, doc) for child in node.children)
    return not evaluate(node.child, doc)


def resolve(doc: Any, path: tuple[str, ...]) -> list[Any]:
    """Values a path reaches (empty when missing), walking arrays as MongoDB does."""
    out: list[Any] = []
    _resolve(doc, path, 0, out)
    return out


def _resolve(value: Any, path: tuple[str, ...], i: int, out: list[Any]) -> None:
    if i == len(path):
        out.append(value)
        return
    key = path[i]
    if isinstance(value, dict):
        if key in value:
            _resolve(value[key], path, i + 1, out)
    elif isinstance(value, list):
        if key.isdigit() and int(key) < len(value):
            _resolve(value[int(key)], path, i + 1, out)
        for element in value:
            if isinstance(element, dict):
                _resolve(element, path, i, out)


def _bracket(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def json_equal(a: Any, b: Any) -> bool:
    """Equality within a type bracket (so ``True != 1``, ``1 == 1.0``)."""
    kind = _bracket(a)
    if kind != _bracket(b):
        return False
    if kind == "array":
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if kind == "object":
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _candidates(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        out.append(value)
        if isinstance(value, list):
            out.extend(value)
    return out


def _eval_cond(cond: Cond, doc: Any) -> bool:
    values = resolve(doc, cond.path)
    if cond.op == "exists":
        return bool(values) is cond.value
    if cond.op == "eq":
        if cond.value is None and not values:
            return True
        return any(json_equal(c, cond.value) for c in _candidates(values))
    if cond.op == "in":
        if not values and any(item is None for item in cond.value):
            return True
        cands = _candidates(values)
        return any(json_equal(c, item) for item in cond.value for c in cands)
    if cond.op == "regex":
        pattern = cond.pattern
        return pattern is not None and any(
            isinstance(c, str) and pattern.search(c) is not None for c in _candidates(values)
        )
    return any(_compare(cond.op, c, cond.value) for c in _candidates(values))


def _compare(op: str, a: Any, b: Any) -> bool:
    kind = _bracket(a)
    if kind != _bracket(b) or kind not in ("number", "string", "bool"):
        return False
    if op == "gt":
        return bool(a > b)
    if op == "gte":
        return bool(a >= b)
    if op == "lt":
        return bool(a < b)
    return bool(a <= b)


__all__ = [
    "And",
    "Cond",
    "Node",
    "Not",
    "Or",
    "compile_filter",
    "evaluate",
    "json_equal",
    "matches",
    "parse_filter",
    "resolve",
    "validate_filter",
]
