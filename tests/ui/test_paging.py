"""10,000 versions in a SQLite store: the store sorts, filters and cuts one page; the pager counts them all.

Every 500th version (``i % 500 == 7``) has no metrics at all, and only the
newest 50 have a ``loss``: what a user sees when a metric is absent is part
of the contract (empty cell, sorted last, columns from the page's rows).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from atoll.api.context import AtollContext
from atoll.config import Config
from atoll.domain.records import Model, ModelVersion
from atoll.metadata._sqlindex import write_metrics
from atoll.metadata.base import get_metadata_store
from atoll.ui.app import create_app
from atoll.ui.paging import Page, version_page
from ui.conftest import TOKEN, json_of

N = 10_000
NO_METRICS = [f"v{i:05d}" for i in range(N) if i % 500 == 7]  # 20 versions, in creation order


def _metrics(i: int) -> dict[str, float]:
    if i % 500 == 7:
        return {}
    return {"accuracy": i / N, **({"loss": 1 - i / N} if i >= N - 50 else {})}


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SQLite store holding one model with 10,000 versions, written in one transaction."""
    url = f"sqlite:///{tmp_path_factory.mktemp('big') / 'atoll.db'}"
    store = get_metadata_store(url)
    store.create(Model(name="big"))
    template = ModelVersion(name="v00000", model="big")
    rows = []
    for i in range(N):
        details = {"metrics": _metrics(i)} if _metrics(i) else {}
        record = template.model_copy(update={"name": f"v{i:05d}", "details": details})
        rows.append({"kind": "movers", "scope": "big", "name": record.name, "doc": record.model_dump_json(),
                     "created": record.created_at.isoformat(), "modified": record.modified_at.isoformat()})
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the store's own tables, filled in bulk: creating one by one takes ~10 s
        conn.execute(sa.text("INSERT INTO records (kind, scope, name, doc, revision, created_at, modified_at) "
                             "VALUES (:kind, :scope, :name, :doc, 1, :created, :modified)"), rows)
        for record_id, doc in conn.execute(sa.text("SELECT id, doc FROM records WHERE kind = 'movers'")):
            write_metrics(conn, record_id, ModelVersion.model_validate_json(doc).model_dump(mode="json"))
    engine.dispose()
    store.close()
    yield url


@pytest.fixture
def big(big_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("ATOLL_HOME", str(tmp_path / "home"))
    ctx = AtollContext(config=Config(metadata={"url": big_store}), cwd=tmp_path)
    with TestClient(create_app(ctx, TOKEN), headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client
    ctx.close()


def test_a_page_holds_50_of_10000_versions_and_the_pager_counts_them_all(big: TestClient) -> None:
    data = json_of(big, "/model/big")
    listing = data["versions"]
    assert (listing["total"], listing["pages"], listing["size"], len(listing["items"])) == (N, 200, 50, 50)
    assert [v["name"] for v in listing["items"][:2]] == ["v09999", "v09998"]  # newest first
    html = big.get("/model/big").text
    assert html.count('<td><a href="/model/big/version/') == 50
    assert "page 1 of 200 (10000 in all)" in html


def test_the_metric_columns_are_those_of_the_page(big: TestClient) -> None:
    assert json_of(big, "/model/big")["metrics"] == ["accuracy", "loss"]  # the newest 50 have a loss
    assert json_of(big, "/model/big?page=2")["metrics"] == ["accuracy"]
    sorted_by_loss = json_of(big, "/model/big?page=2&sort=metric:loss")  # the sorted metric keeps its column
    assert sorted_by_loss["metrics"] == ["accuracy", "loss"]


def test_sorting_spans_every_page_and_versions_without_the_metric_come_last(big: TestClient) -> None:
    top = json_of(big, "/model/big?sort=metric:accuracy&order=desc&size=500")["versions"]
    assert len(top["items"]) == 500 and top["items"][0]["metrics"]["accuracy"] == 0.9999
    last = json_of(big, "/model/big?sort=metric:accuracy&order=desc&page=200")["versions"]["items"]
    assert [v["name"] for v in last[-21:]] == ["v00000", *NO_METRICS[::-1]]
    first = json_of(big, "/model/big?sort=metric:accuracy&order=asc")["versions"]["items"]
    assert [v["name"] for v in first[:3]] == ["v00000", "v00001", "v00002"]
    straddling = json_of(big, "/model/big?sort=metric:accuracy&order=asc&page=200")["versions"]
    assert [v["name"] for v in straddling["items"][-21:]] == ["v09999", *NO_METRICS]
    assert straddling["total"] == N
    html = big.get("/model/big?sort=metric:accuracy&order=asc&page=200").text
    assert html.count('class="num metric absent" data-metric="accuracy"') == 20


@pytest.mark.slow
def test_pages_of_one_order_hold_every_version_once(big_store: str, tmp_path: Path) -> None:
    ctx = AtollContext(config=Config(metadata={"url": big_store}), cwd=tmp_path)
    seen: list[str] = []
    for number in range(1, 22):  # 21 pages of 500 in ascending metric order: the last one is short
        rows, total = version_page(ctx, "big", None, Page(number, 500), "metric:accuracy", False)
        seen += [r["name"] for r in rows]
    ctx.close()
    assert total == N and len(seen) == N and len(set(seen)) == N


def test_a_filter_pages_what_matches(big: TestClient) -> None:
    listing = json_of(big, '/model/big?filter={"details.metrics.accuracy": {"$gte": 0.99}}&size=40')["versions"]
    assert (listing["total"], listing["pages"]) == (100, 3)
    assert len(listing["items"]) == 40


@pytest.mark.parametrize("query", ["size=501", "page=0", "sort=colour", "sort=metric:a..b", "filter={\"$bad\": 1}"])
def test_a_bad_page_sort_or_filter_is_refused(big: TestClient, query: str) -> None:
    answer = big.get(f"/model/big?{query}", headers={"Accept": "application/json"})
    assert answer.status_code == 400 and answer.json()["error"]
