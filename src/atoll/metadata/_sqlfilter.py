"""Translate a compiled filter (:mod:`atoll.domain.query`) into SQL.

SQL cannot express MongoDB's array semantics or Python's regex dialect
exactly, so each node becomes two predicates over the ``doc`` column:

* ``sup`` holds for every row that matches (used in ``WHERE``: no row is lost);
* ``sub`` holds only for rows that surely match (the store uses it when it is
  constant true: then SQL alone decides and ``LIMIT`` is pushed down; otherwise
  the rows ``sup`` keeps are checked in Python).

A condition on a path is exact when no step of the path holds an array; when
one does the row is "unknown" (in ``sup``, not in ``sub``) and
:func:`atoll.domain.query.evaluate` decides. ``NOT`` swaps the two, so
``$ne``/``$nin``/``$nor`` stay correct. Every predicate is a non-NULL boolean
(SQL's three-valued logic would break ``NOT``). Operands and paths are bound
parameters, never spliced into the text.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any, ClassVar, TypeAlias, Union

from pydantic import BaseModel

from atoll.domain.query import And, Cond, Node, Not

Expr: TypeAlias = "str | bool"  # SQL text, or a constant known at translation time


@dataclass
class Translation:
    """``where`` keeps every match; ``sure`` marks rows that need no Python check."""

    where: Expr
    sure: Expr
    params: dict[str, Any] = field(default_factory=dict)


class _Json:
    """Dialect-specific JSON accessors; subclasses fill in the SQL."""

    def __init__(self) -> None:
        self.never_array: frozenset[str] = frozenset()
        self.params: dict[str, Any] = {}
        self._paths: dict[tuple[str, ...], str] = {}

    def bind(self, value: Any) -> str:
        name = f"f{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def path(self, parts: tuple[str, ...]) -> str | None:
        """Bound parameter for a path, or None when the dialect cannot name it."""
        if parts not in self._paths:
            value = self.path_value(parts)
            if value is None:
                return None
            self._paths[parts] = self.bind(value)
        return self._paths[parts]

    def path_value(self, parts: tuple[str, ...]) -> Any:
        raise NotImplementedError

    def is_array(self, p: str) -> str:
        raise NotImplementedError

    def has_type(self, p: str, bracket: str) -> str:
        """Non-NULL test that the value at ``p`` is of a bracket (null/bool/number/string/object)."""
        raise NotImplementedError

    def exists(self, p: str) -> str:
        raise NotImplementedError

    def compare(self, p: str, op: str, value: bool | float | str) -> str:
        """Non-NULL ``value_at(p) <op> value`` within the operand's bracket."""
        raise NotImplementedError


_SQL_OPS = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class SqliteJson(_Json):
    """SQLite JSON1: ``json_type`` / ``json_extract`` with ``$."a"."b"`` paths."""

    _TYPES: ClassVar[dict[str, str]] = {
        "null": "'null'",
        "bool": "'true','false'",
        "number": "'integer','real'",
        "string": "'text'",
        "object": "'object'",
    }

    def path_value(self, parts: tuple[str, ...]) -> Any:
        # A quote would end the path segment and SQLite reads a NUL as the end of the path:
        # such paths are evaluated in Python instead.
        if any('"' in part or "\0" in part for part in parts):
            return None
        return "$" + "".join(f'."{part}"' for part in parts)

    def is_array(self, p: str) -> str:
        return f"(json_type(doc, {p}) IS 'array')"

    def has_type(self, p: str, bracket: str) -> str:
        return f"(COALESCE(json_type(doc, {p}) IN ({self._TYPES[bracket]}), 0))"

    def exists(self, p: str) -> str:
        return f"(json_type(doc, {p}) IS NOT NULL)"

    def compare(self, p: str, op: str, value: bool | float | str) -> str:
        sql_op = _SQL_OPS[op]
        if isinstance(value, bool):
            return (
                f"(CASE WHEN json_type(doc, {p}) IN ('true','false') "
                f"THEN (json_type(doc, {p}) = 'true') {sql_op} {self.bind(int(value))} ELSE 0 END)"
            )
        bracket = "number" if isinstance(value, (int, float)) else "string"
        return (
            f"(CASE WHEN json_type(doc, {p}) IN ({self._TYPES[bracket]}) "
            f"THEN json_extract(doc, {p}) {sql_op} {self.bind(value)} ELSE 0 END)"
        )


class PostgresJson(_Json):
    """PostgreSQL jsonb: ``#>`` / ``#>>`` with text[] paths, ``jsonb_typeof``."""

    _TYPES: ClassVar[dict[str, str]] = {
        "null": "null",
        "bool": "boolean",
        "number": "number",
        "string": "string",
        "object": "object",
    }

    def path_value(self, parts: tuple[str, ...]) -> Any:
        return list(parts)

    def _at(self, p: str) -> str:
        return f"(doc #> CAST({p} AS text[]))"

    def is_array(self, p: str) -> str:
        return f"(COALESCE(jsonb_typeof({self._at(p)}) = 'array', false))"

    def has_type(self, p: str, bracket: str) -> str:
        return f"(COALESCE(jsonb_typeof({self._at(p)}) = '{self._TYPES[bracket]}', false))"

    def exists(self, p: str) -> str:
        return f"({self._at(p)} IS NOT NULL)"

    def compare(self, p: str, op: str, value: bool | float | str) -> str:
        sql_op = _SQL_OPS[op]
        text = f"(doc #>> CAST({p} AS text[]))"
        typeof = f"jsonb_typeof({self._at(p)})"
        if isinstance(value, bool):
            return (
                f"(CASE WHEN {typeof} = 'boolean' "
                f"THEN (CASE WHEN {text} = 'true' THEN 1 ELSE 0 END) {sql_op} {self.bind(int(value))} "
                "ELSE false END)"
            )
        if isinstance(value, (int, float)):
            # numeric keeps JSON numbers exact; the operand goes as its shortest repr
            operand = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
            return (
                f"(CASE WHEN {typeof} = 'number' "
                f"THEN CAST({text} AS numeric) {sql_op} CAST({self.bind(operand)} AS numeric) ELSE false END)"
            )
        return (
            f"(CASE WHEN {typeof} = 'string' "
            f'THEN {text} COLLATE "C" {sql_op} CAST({self.bind(value)} AS text) ELSE false END)'
        )


def translate(node: Node, dialect: str, never_array: frozenset[str] = frozenset()) -> Translation:
    """Translate a compiled filter for ``dialect`` ("sqlite" or "postgresql").

    ``never_array`` names top-level fields the schema says cannot hold an array
    (see :func:`never_array_roots`): their array check is skipped.
    """
    json = SqliteJson() if dialect == "sqlite" else PostgresJson()
    json.never_array = never_array
    sup, sub = _node(node, json)
    return Translation(where=sup, sure=sub, params=json.params)


@cache
def never_array_roots(model: type[BaseModel]) -> frozenset[str]:
    """Top-level fields of a record type whose declared type rules out a JSON array."""
    out = set()
    for name, info in model.model_fields.items():
        annotation = info.annotation
        options = (
            typing.get_args(annotation)
            if typing.get_origin(annotation) in (Union, types.UnionType)
            else (annotation,)
        )
        if all(_not_array(option) for option in options):
            out.add(name)
    return frozenset(out)


def _not_array(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) or annotation
    if origin is dict or annotation is type(None):
        return True
    if isinstance(origin, type) and issubclass(origin, (str, int, float, bool, BaseModel)):
        return True
    from datetime import datetime

    return isinstance(origin, type) and issubclass(origin, datetime)


def _node(node: Node, json: _Json) -> tuple[Expr, Expr]:
    if isinstance(node, Cond):
        return _cond(node, json)
    if isinstance(node, Not):
        sup, sub = _node(node.child, json)
        return _not(sub), _not(sup)
    pairs = [_node(child, json) for child in node.children]
    combine = _and if isinstance(node, And) else _or
    return combine([p[0] for p in pairs]), combine([p[1] for p in pairs])


def _cond(cond: Cond, json: _Json) -> tuple[Expr, Expr]:
    p = json.path(cond.path)
    if p is None:
        return True, False
    sup, sub = _scalar(cond, p, json)
    first = 2 if cond.path[0] in json.never_array else 1
    prefixes = [json.path(cond.path[:i]) for i in range(first, len(cond.path) + 1)]
    arrays = _or([json.is_array(q) for q in prefixes if q is not None])
    return _or([arrays, sup]), _and([_not(arrays), sub])


def _scalar(cond: Cond, p: str, json: _Json) -> tuple[Expr, Expr]:
    """(sup, sub) of a condition when no step of the path is an array."""
    if cond.op == "exists":
        expr = json.exists(p)
        return (expr, expr) if cond.value else (_not(expr), _not(expr))
    if cond.op == "regex":
        return json.has_type(p, "string"), False
    if cond.op == "eq":
        return _equal(p, cond.value, json)
    if cond.op == "in":
        pairs = [_equal(p, item, json) for item in cond.value]
        return _or([s for s, _ in pairs]), _or([s for _, s in pairs])
    expr = json.compare(p, cond.op, cond.value)
    return expr, expr


def _equal(p: str, value: Any, json: _Json) -> tuple[Expr, Expr]:
    if value is None:  # null or missing
        expr = _not(json.exists(p))
        return _or([expr, json.has_type(p, "null")]), _or([expr, json.has_type(p, "null")])
    if isinstance(value, list):  # a non-array value never equals an array
        return False, False
    if isinstance(value, dict):  # object equality: leave to Python
        return json.has_type(p, "object"), False
    expr = json.compare(p, "eq", value)
    return expr, expr


def _not(expr: Expr) -> Expr:
    return (not expr) if isinstance(expr, bool) else f"(NOT {expr})"


def _and(exprs: list[Expr]) -> Expr:
    if any(e is False for e in exprs):
        return False
    texts = [e for e in exprs if not isinstance(e, bool)]
    if not texts:
        return True
    return texts[0] if len(texts) == 1 else "(" + " AND ".join(texts) + ")"


def _or(exprs: list[Expr]) -> Expr:
    if any(e is True for e in exprs):
        return True
    texts = [e for e in exprs if not isinstance(e, bool)]
    if not texts:
        return False
    return texts[0] if len(texts) == 1 else "(" + " OR ".join(texts) + ")"
