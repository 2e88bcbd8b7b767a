"""Paging, sorting, and the cached version rows behind the versions table.

A model may hold tens of thousands of versions; the table shows one page,
sorted by any column, so every version's name, date and metrics are needed,
but not the whole record (a version embeds snapshots of its training and
dataset; validating 10,000 of them costs most of a second).
:class:`VersionRows` therefore keeps light rows per (model, filter) and
reads the versions again only when the store changed: when the number of
matching versions differs or one was written after the newest the rows saw
(every store write stamps ``modified_at``). Both checks are cheap queries.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter

from atoll.api import versions as versions_api
from atoll.api.context import AtollContext
from atoll.api.records import and_filters
from atoll.domain.records import ModelVersion
from atoll.errors import UsageError

DEFAULT_SIZE = 50
MAX_SIZE = 500
CACHED_QUERIES = 32
_TIME = TypeAdapter(datetime)


@dataclass(frozen=True)
class Page:
    """Which page of a listing to show (1-based)."""

    number: int = 1
    size: int = DEFAULT_SIZE

    @classmethod
    def parse(cls, page: str | None, size: str | None) -> Page:
        """From query parameters; bad values are a :class:`UsageError` (400)."""
        try:
            number = int(page) if page else 1
            length = int(size) if size else DEFAULT_SIZE
        except ValueError as exc:
            raise UsageError(f"page and size must be whole numbers (got page={page!r}, size={size!r})") from exc
        if number < 1 or not 1 <= length <= MAX_SIZE:
            raise UsageError(f"page must be >= 1 and size between 1 and {MAX_SIZE}")
        return cls(number, length)

    def of(self, items: list[Any]) -> dict[str, Any]:
        """This page of ``items`` plus the figures the pager shows."""
        total = len(items)
        start = (self.number - 1) * self.size
        return {
            "items": items[start : start + self.size],
            "page": self.number,
            "size": self.size,
            "total": total,
            "pages": max(1, math.ceil(total / self.size)),
        }


def version_row(version: ModelVersion) -> dict[str, Any]:
    """What the versions table shows of one version."""
    metrics = (version.details or {}).get("metrics")
    return {
        "name": version.name,
        "created_at": _json_time(version.created_at),
        "modified_at": _json_time(version.modified_at),
        "metrics": {k: v for k, v in metrics.items() if _scalar(v)} if isinstance(metrics, dict) else {},
        "dataset": version.dataset.name if version.dataset else None,
        "train": version.train.name if version.train else None,
        "proj": version.train.proj if version.train else None,
        "files": len(version.files),
        "size": sum(f.size for f in version.files),
        "pretrained": version.pretrained,
    }


def _json_time(value: datetime) -> str:
    # What the stores' JSON form holds (pydantic writes UTC as "Z"), so it compares with
    # ``modified_at`` inside a filter; isoformat is ~10x cheaper than pydantic's serializer.
    return value.isoformat().replace("+00:00", "Z") if value.utcoffset() == timedelta(0) else _TIME.dump_python(
        value, mode="json")


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float, str)) and not isinstance(value, bool)


def sort_rows(rows: list[dict[str, Any]], key: str, descending: bool) -> list[dict[str, Any]]:
    """Rows sorted by ``name``, ``created_at`` or ``metric:<name>``; rows lacking the metric go last.

    ``rows`` come oldest first; ties keep that order ascending and the reverse
    descending (so "newest first" holds among versions created in the same instant).

    Raises:
        UsageError: an unknown sort key.
    """
    ordered = rows[::-1] if descending else rows
    if key.startswith("metric:"):
        metric = key.removeprefix("metric:")
        present = [r for r in ordered if _number(r["metrics"].get(metric)) is not None]
        missing = [r for r in ordered if _number(r["metrics"].get(metric)) is None]
        present.sort(key=lambda r: _number(r["metrics"][metric]) or 0.0, reverse=descending)
        return present + missing
    if key not in ("name", "created_at"):
        raise UsageError(f"cannot sort by {key!r}: use name, created_at or metric:<name>")
    return sorted(ordered, key=lambda r: r[key], reverse=descending)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def metric_names(rows: list[dict[str, Any]]) -> list[str]:
    """Every metric some row has, sorted."""
    return sorted({name for row in rows for name in row["metrics"]})


class VersionRows:
    """Light rows of a model's versions matching a filter, re-read only when the store changed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[int, str, list[dict[str, Any]]]] = {}

    def rows(self, ctx: AtollContext, model: str, flt: dict[str, Any] | None) -> list[dict[str, Any]]:
        """Rows of ``model``'s versions matching ``flt``, oldest first.

        Raises:
            NotFoundError / UsageError: from the API (unknown model, malformed filter).
        """
        key = (model, json.dumps(flt, sort_keys=True))
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and self._unchanged(ctx, model, flt, cached[0], cached[1]):
            return cached[2]
        rows = [version_row(v) for v in versions_api.list_versions(ctx, model, filter=flt)]
        newest = max((r["modified_at"] for r in rows), default="")
        with self._lock:
            if len(self._cache) >= CACHED_QUERIES:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = (len(rows), newest, rows)
        return rows

    @staticmethod
    def _unchanged(ctx: AtollContext, model: str, flt: dict[str, Any] | None, count: int, newest: str) -> bool:
        # The store's count and limit: two indexed queries instead of reading every version.
        store = ctx.metadata
        if store.count(ModelVersion, scope=model, filter=flt) != count:
            return False
        if not newest:
            return count == 0
        later = and_filters(flt, {"modified_at": {"$gt": newest}})
        return not store.list(ModelVersion, scope=model, filter=later, limit=1)
