"""Paging and sorting of the UI's tables, done by the metadata store.

A model may hold tens of thousands of versions; the versions table shows one
page of them. The store sorts, filters and pages (``MetadataStore.list`` with
``sort``/``limit``/``offset``, pushed down to SQL with indexes) and counts the
matches, so a page costs the records it shows plus one count, whatever the
number of versions, on the first visit as on later ones: nothing is cached.

The metric columns are the metrics found in the page's rows (plus the one the
table is sorted by): a metric no version on this page has gets no column here,
and a version without a metric some other row has shows an empty cell.
Versions lacking the sorted metric come last in both orders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter

from atoll.api import records as records_api
from atoll.api import versions as versions_api
from atoll.api.context import AtollContext
from atoll.api.records import and_filters
from atoll.domain.records import ModelVersion, Record
from atoll.errors import UsageError

DEFAULT_SIZE = 50
MAX_SIZE = 500
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

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    def part(self, sort: str | None = None, descending: bool = False) -> records_api.Page:
        """This page as the store's ``limit``/``offset``, in the given order."""
        return records_api.Page(limit=self.size, offset=self.offset, sort=sort, descending=descending)

    def listing(self, items: list[Any], total: int) -> dict[str, Any]:
        """The page's ``items`` (already cut by the store) plus the figures the pager shows."""
        return {
            "items": items,
            "page": self.number,
            "size": self.size,
            "total": total,
            "pages": max(1, math.ceil(total / self.size)),
        }


def records_page(ctx: AtollContext, kind: type[Record], page: Page, scope: str | None = None) -> tuple[list[Any], int]:
    """One page of ``kind`` in creation order, and how many there are in all."""
    items = records_api.list_records(ctx, kind, scope, page=page.part())
    return items, ctx.metadata.count(kind, scope=scope)


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


def sort_field(key: str) -> str:
    """The record field a table sort key orders by: ``name``, ``created_at`` or ``metric:<name>``.

    Raises:
        UsageError: an unknown sort key (a malformed metric name is refused by the store).
    """
    if key in ("name", "created_at"):
        return key
    if key.startswith("metric:") and key != "metric:":
        return "details.metrics." + key.removeprefix("metric:")
    raise UsageError(f"cannot sort by {key!r}: use name, created_at or metric:<name>")


def version_page(
    ctx: AtollContext, model: str, flt: dict[str, Any] | None, page: Page, sort: str, descending: bool
) -> tuple[list[dict[str, Any]], int]:
    """Rows of one page of ``model``'s versions matching ``flt`` in the asked order, and the number of matches.

    Ties keep creation order (ascending) or its reverse (descending). Versions
    lacking the sorted metric come last either way: the store puts missing
    values first in ascending order, so that order is read in two parts.

    Raises:
        NotFoundError / UsageError: from the API (malformed filter, sort key or metric name).
    """
    field = sort_field(sort)
    total = ctx.metadata.count(ModelVersion, scope=model, filter=flt)
    if not field.startswith("details.metrics.") or descending:
        found = versions_api.list_versions(ctx, model, filter=flt, page=page.part(field, descending))
        return [version_row(v) for v in found], total
    present = and_filters(flt, {field: {"$ne": None}})
    n_present = ctx.metadata.count(ModelVersion, scope=model, filter=present)
    found = []
    if page.offset < n_present:
        found = versions_api.list_versions(ctx, model, filter=present, page=page.part(field))
    if len(found) < page.size:
        rest = records_api.Page(limit=page.size - len(found), offset=max(0, page.offset - n_present))
        found += versions_api.list_versions(ctx, model, filter=and_filters(flt, {field: None}), page=rest)
    return [version_row(v) for v in found], total


def metric_columns(rows: list[dict[str, Any]], sort: str) -> list[str]:
    """The metrics some row of the page has, sorted, plus the one the table is sorted by."""
    names = {name for row in rows for name in row["metrics"]}
    if sort.startswith("metric:"):
        names.add(sort.removeprefix("metric:"))
    return sorted(names)
