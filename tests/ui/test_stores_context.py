"""The UI over handed-over store settings (the ui island's container): records show, the runtime's parts say why not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from atoll.task.stores import store_settings
from atoll.ui.app import create_app
from atoll.ui.stores_context import NO_RUNTIME, StoresContext, stores_context
from ui.conftest import TOKEN, json_of, populate


@pytest.fixture
def island(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("ATOLL_HOME", str(tmp_path / "home"))
    settings = store_settings(f"sqlite:///{tmp_path / 'atoll.db'}", "local", {"root": str(tmp_path / "files")})
    path = tmp_path / "store.json"
    path.write_bytes(orjson.dumps(settings))
    ctx = stores_context(path)
    assert isinstance(ctx, StoresContext)
    populate(ctx, tmp_path)
    with TestClient(create_app(ctx, TOKEN), headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client
    ctx.close()


def test_the_records_show_from_the_handed_stores(island: TestClient) -> None:
    versions = json_of(island, "/model/iris-clf")["versions"]
    assert versions["total"] == 3 and {v["name"] for v in versions["items"]} == {"first", "second", "by-hand"}
    assert "iris" in island.get("/proj/iris/train/first/notebook").text.lower()  # the file store answers too


def test_the_deployment_page_says_the_runtime_is_out_of_reach(island: TestClient) -> None:
    data = json_of(island, "/proj/iris/depl/iris-svc")
    assert data["note"] == NO_RUNTIME and data["replicas"] == [] and data["deployment"]["availability"] == "?/2"
    html = island.get("/proj/iris/depl/iris-svc").text
    assert 'id="runtime-note"' in html and "run `atoll ui` on the host" in html
    assert island.get("/proj/iris/depl/iris-svc/metrics").json()["replicas"] == []
    refused = island.post("/proj/iris/depl/iris-svc/predict", data={"body": "[1, 2, 3, 4]"})
    assert refused.status_code == 400 and "atoll ui" in refused.text


def test_the_training_page_shows_no_log_and_says_why(island: TestClient) -> None:
    data = json_of(island, "/proj/iris/train/second")
    assert data["log_tail"] == [] and data["log_note"] == NO_RUNTIME and data["task"]["state"] == "RUNNING"
    assert 'id="log-note"' in island.get("/proj/iris/train/second").text
    states = {t["name"]: t["state"] for t in json_of(island, "/proj/iris")["trainings"]}
    assert states == {"first": "FINISHED", "second": "RUNNING"}  # as recorded: nothing reconciled, nothing written


def test_a_missing_settings_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="store settings"):
        stores_context(tmp_path / "nothing.json")
