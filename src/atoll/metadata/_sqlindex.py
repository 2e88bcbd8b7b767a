"""What makes the SQL store answer in time at a million records: index guards and ordering.

A filter is translated to a predicate over the JSON ``doc`` column (see
:mod:`atoll.metadata._sqlfilter`), which no index can serve. So for the paths
people filter on, the store adds *guards*: extra conditions on indexed data,
each implied by the filter, so they narrow the rows the database reads without
changing the answer.

* ``name`` (``$eq``/``$in``) and ``created_at``/``modified_at`` (``$eq``,
  ``$gt``...) are real columns holding the same strings as the document:
  guarded on the columns, served by b-tree indexes.
* ``details.metrics.<name>`` compared with a number: the numbers a filter could
  compare are copied, at write time, into ``record_metrics(record_id, metric,
  value)``, indexed on ``(metric, value)``. A guard is then
  ``id IN (SELECT record_id ... WHERE metric = ? AND value >= ?)``. Every
  number the filter evaluator would compare is copied (array elements and
  arrays of objects included), and bounds are inclusive, so float rounding
  cannot lose a match. When every condition of a filter has such a guard
  and no stored number lost precision (ints beyond 2**53 leave an ``inf``
  marker), the guards *are* the filter: SQL alone answers, ``count`` is an
  index count. This one table serves any metric name on SQLite and
  PostgreSQL alike, where expression indexes would need the names in advance
  and a GIN index cannot serve ranges.

Only conditions at the top level of the filter (``$and`` of them included)
become guards; under ``$or``/``$not``/``$nor`` the filter runs on every
record of the kind and scope, as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from atoll.domain.query import And, Cond, Node, resolve

#: Top-level fields stored as their own (indexed) columns.
COLUMNS = ("name", "created_at", "modified_at")
_RANGE = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_WIDENED = {"eq": "=", "gt": ">=", "gte": ">=", "lt": "<=", "lte": "<="}  # float rounding is monotonic


def metric_entries(doc: dict[str, Any]) -> list[tuple[str, float]]:
    """``(metric, value)`` for every number a ``details.metrics.<metric>`` condition could compare."""
    details = doc.get("details")
    metrics = details.get("metrics") if isinstance(details, dict) else None
    if isinstance(metrics, dict):
        names = set(metrics)
    elif isinstance(metrics, list):  # arrays of objects, and numeric segments indexing the array
        names = {str(i) for i in range(len(metrics))}
        for element in metrics:
            if isinstance(element, dict):
                names.update(element)
    else:
        return []
    out = set()
    for name in names:
        for value in resolve(doc, ("details", "metrics", name)):
            for item in value if isinstance(value, list) else (value,):
                if isinstance(item, (int, float)) and not isinstance(item, bool) and math.isfinite(item):
                    out.add((name, float(item)))
                    if float(item) != item:  # an int beyond 2**53: marks the metric inexact (see inexact)
                        out.add((name, math.inf))
    return sorted(out)


def write_metrics(conn: sa.Connection, record_id: int, doc: dict[str, Any]) -> None:
    """(Re)write the metric rows of one record, inside the caller's transaction."""
    conn.execute(sa.text("DELETE FROM record_metrics WHERE record_id = :id"), {"id": record_id})
    entries = metric_entries(doc)
    if entries:
        conn.execute(
            sa.text("INSERT INTO record_metrics (record_id, metric, value) VALUES (:id, :metric, :value)"),
            [{"id": record_id, "metric": metric, "value": value} for metric, value in entries],
        )


@dataclass
class Guards:
    """Index-served conditions implied by a filter.

    ``clauses`` narrow the rows (the filter still decides). ``exact``, when not
    None, are conditions equivalent to the whole filter, valid when no number
    of ``metrics`` lost precision in ``record_metrics`` (see :func:`inexact`).
    """

    clauses: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    exact: list[str] | None = None
    metrics: list[str] = field(default_factory=list)

    def bind(self, value: Any) -> str:
        name = f"g{len(self.params)}"
        self.params[name] = value
        return f":{name}"


def guards(node: Node, dialect: str) -> Guards:
    """The guards of a compiled filter (see the module docstring)."""
    conds = node.children if isinstance(node, And) else (node,)
    out = Guards()
    exact: list[str] | None = []
    collate = ' COLLATE "C"' if dialect == "postgresql" else ""
    for cond in conds:
        narrow = same = None
        if isinstance(cond, Cond):
            path, op, value = cond.path, cond.op, cond.value
            if path == ("name",) and op == "eq" and isinstance(value, str):
                narrow = same = f"name{collate} = {out.bind(value)}"
            elif path == ("name",) and op == "in" and value and all(isinstance(v, str) for v in value):
                narrow = same = f"name{collate} IN ({', '.join(out.bind(v) for v in value)})"
            elif path in (("created_at",), ("modified_at",)) and op in _RANGE and isinstance(value, str):
                narrow = same = f"{path[0]}{collate} {_RANGE[op]} {out.bind(value)}"
            elif (
                len(path) == 3
                and path[:2] == ("details", "metrics")
                and not path[2].isdigit()  # "01" indexes an array like "1": leave digits to the filter
                and op in _WIDENED
                and isinstance(value, (int, float))
                and not isinstance(value, bool)
            ):
                metric, bound = out.bind(path[2]), out.bind(float(value))
                sub = f"id IN (SELECT record_id FROM record_metrics WHERE metric = {metric} AND value "
                narrow = f"{sub}{_WIDENED[op]} {bound})"
                if float(value) == value:
                    same = f"{sub}{_RANGE[op]} {bound})"
                    out.metrics.append(path[2])
        if narrow is not None:
            out.clauses.append(narrow)
        if exact is not None:
            exact = None if same is None else [*exact, same]
    out.exact = exact
    return out


def inexact(conn: sa.Connection, metrics: list[str]) -> bool:
    """Whether some record holds a number of one of ``metrics`` that a float cannot represent."""
    if not metrics:
        return False
    names = {f"m{i}": name for i, name in enumerate(metrics)}
    found = conn.execute(
        sa.text(
            f"SELECT 1 FROM record_metrics WHERE metric IN ({', '.join(':' + k for k in names)}) "
            "AND value = :inf LIMIT 1"
        ),
        {**names, "inf": math.inf},
    ).first()
    return found is not None


def order_by(path: tuple[str, ...] | None, descending: bool, dialect: str) -> tuple[str, dict[str, Any]]:
    """``ORDER BY`` text (and parameters) following :func:`atoll.metadata.base.sort_key`."""
    direction = " DESC" if descending else ""
    if path is None:
        return f"ORDER BY id{direction}", {}
    if path[0] in COLUMNS and len(path) == 1:  # always strings: an indexed column orders them
        collate = ' COLLATE "C"' if dialect == "postgresql" else ""
        return f"ORDER BY {path[0]}{collate}{direction}, id{direction}", {}
    if dialect == "sqlite":
        p = ":sort_path"
        value: Any = "$" + "".join(f'."{part}"' for part in path)
        rank = (
            f"CASE json_type(doc, {p}) WHEN 'true' THEN 1 WHEN 'false' THEN 1 WHEN 'integer' THEN 2 "
            f"WHEN 'real' THEN 2 WHEN 'text' THEN 3 WHEN 'object' THEN 4 WHEN 'array' THEN 4 ELSE 0 END"
        )
        keys = [
            rank,
            (
                f"CASE WHEN json_type(doc, {p}) IN ('true','false','integer','real','text') "
                f"THEN json_extract(doc, {p}) END"
            ),
        ]
    else:
        p = "CAST(:sort_path AS text[])"
        value = list(path)
        typeof = f"jsonb_typeof(doc #> {p})"
        rank = (
            f"CASE {typeof} WHEN 'boolean' THEN 1 WHEN 'number' THEN 2 WHEN 'string' THEN 3 "
            f"WHEN 'object' THEN 4 WHEN 'array' THEN 4 ELSE 0 END"
        )
        keys = [
            rank,
            (
                f"CASE {typeof} WHEN 'number' THEN CAST(doc #>> {p} AS numeric) "
                f"WHEN 'boolean' THEN CASE WHEN doc #>> {p} = 'true' THEN 1 ELSE 0 END END"
            ),
            f"CASE WHEN {typeof} = 'string' THEN doc #>> {p} END COLLATE \"C\"",
        ]
    return "ORDER BY " + ", ".join(f"{key}{direction}" for key in [*keys, "id"]), {"sort_path": value}


__all__ = ["COLUMNS", "Guards", "guards", "inexact", "metric_entries", "order_by", "write_metrics"]
