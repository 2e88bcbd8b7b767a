"""Listing pages through the API: order, size and offset of ``list_versions`` / ``list_records``."""

from __future__ import annotations

import pytest

from atoll.api import models, versions
from atoll.api.context import AtollContext
from atoll.api.records import Page, list_records
from atoll.domain.records import ModelVersion
from atoll.errors import UsageError


@pytest.fixture
def five(ctx: AtollContext) -> AtollContext:
    """Model iris with versions v0..v4 (created in that order), acc 0.3, 0.9, 0.1, 0.7, 0.5."""
    models.new_model(ctx, "iris")
    for i, acc in enumerate((0.3, 0.9, 0.1, 0.7, 0.5)):
        ctx.metadata.create(ModelVersion(name=f"v{i}", model="iris", details={"metrics": {"acc": acc}}))
    return ctx


def _names(records: list[ModelVersion]) -> list[str]:
    return [r.name for r in records]


def test_pages_walk_a_sorted_listing(five: AtollContext) -> None:
    best_first = Page(sort="details.metrics.acc", descending=True, limit=2)
    assert _names(versions.list_versions(five, "iris", page=best_first)) == ["v1", "v3"]
    second = Page(sort="details.metrics.acc", descending=True, limit=2, offset=2)
    assert _names(versions.list_versions(five, "iris", page=second)) == ["v4", "v0"]
    newest = Page(sort="created_at", descending=True, limit=1)
    assert _names(list_records(five, ModelVersion, "iris", page=newest)) == ["v4"]
    good = {"details.metrics.acc": {"$gte": 0.5}}
    assert _names(
        versions.list_versions(five, "iris", filter=good, page=Page(sort="name", descending=True))
    ) == [
        "v4",
        "v3",
        "v1",
    ]
    assert _names(versions.list_versions(five, "iris")) == [
        "v0",
        "v1",
        "v2",
        "v3",
        "v4",
    ]  # no page: all, oldest first


def test_bad_pages_are_usage_errors(five: AtollContext) -> None:
    with pytest.raises(UsageError, match="sort field"):
        versions.list_versions(five, page=Page(sort="details.metrics."))
    with pytest.raises(UsageError, match="offset"):
        versions.list_versions(five, page=Page(offset=-1))
