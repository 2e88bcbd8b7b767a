"""10,000 versions in a SQLite store: the table shows one page of them, sorted over all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from atoll.api.context import AtollContext
from atoll.config import Config
from atoll.domain.records import Model, ModelVersion
from atoll.metadata._sqlindex import write_metrics
from atoll.metadata.base import get_metadata_store
from atoll.ui.app import create_app
from ui.conftest import TOKEN, json_of

N = 10_000


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SQLite store holding one model with 10,000 versions (accuracy = i / N), written in one transaction."""
    url = f"sqlite:///{tmp_path_factory.mktemp('big') / 'atoll.db'}"
    store = get_metadata_store(url)
    store.create(Model(name="big"))
    template = ModelVersion(name="v00000", model="big")
    rows = []
    for i in range(N):
        record = template.model_copy(update={"name": f"v{i:05d}", "details": {"metrics": {"accuracy": i / N}}})
        doc = record.model_dump_json()
        rows.append({"kind": "movers", "scope": "big", "name": record.name, "doc": doc,
                     "created": record.created_at.isoformat(), "modified": record.modified_at.isoformat()})
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the store's own table, filled in bulk: creating one by one takes ~10 s
        conn.execute(sa.text("INSERT INTO records (kind, scope, name, doc, revision, created_at, modified_at) "
                             "VALUES (:kind, :scope, :name, :doc, 1, :created, :modified)"), rows)
        # ...and its metrics index, as the store keeps it for every record it writes.
        for record_id, doc in conn.execute(sa.text("SELECT id, doc FROM records WHERE kind = 'movers'")).all():
            write_metrics(conn, record_id, orjson.loads(doc))
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
    assert listing["items"][0]["name"] == "v09999"  # newest first
    html = big.get("/model/big").text
    assert html.count('<td><a href="/model/big/version/') == 50
    assert "page 1 of 200 (10000 in all)" in html


def test_sorting_spans_every_page(big: TestClient) -> None:
    last = json_of(big, "/model/big?sort=metric:accuracy&order=desc&page=200&size=50")["versions"]
    assert [v["name"] for v in last["items"]][-3:] == ["v00002", "v00001", "v00000"]
    top = json_of(big, "/model/big?sort=metric:accuracy&order=desc&size=500")["versions"]
    assert len(top["items"]) == 500 and top["items"][0]["metrics"] == {"accuracy": 0.9999}


def test_a_filter_pages_what_matches(big: TestClient) -> None:
    listing = json_of(big, '/model/big?filter={"details.metrics.accuracy": {"$gte": 0.99}}&size=40')["versions"]
    assert (listing["total"], listing["pages"]) == (100, 3)


def test_a_page_larger_than_the_limit_is_refused(big: TestClient) -> None:
    assert big.get("/model/big?size=501").status_code == 400
