"""LazyModelServer as ``train new --target-deploy`` and the modelled framework's notebooks use it.

In-process: the ASGI app is driven directly over a fake task directory.
"""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_serving import _call as drive_app
from test_serving import make_task

from atoll.errors import UsageError
from atoll.toolkit.serving import LazyModelServer, OnlinePredict


def _call(server: Any, method: str, path: str, query: bytes = b"", body: bytes = b"r") -> tuple[int, Any]:
    status, answer = asyncio.run(drive_app(server.app, method, path, body, query))
    return status, orjson.loads(answer)


def _load(path: str, meta: dict[str, Any]) -> str:
    return (Path(path) / "weights.txt").read_text()


def _predict(body: str, model: str, meta: Any) -> dict[str, Any]:
    return {"weights": model, "name": meta.name, "model": meta["model"]}  # meta reads as attributes too


@pytest.fixture
def task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = make_task(tmp_path / "task", ("v1", "v2"))
    (root / "model" / "other.v1").mkdir(parents=True)
    (root / "model" / "other.v1" / "weights.txt").write_text("other-weights")
    (root / "atoll" / "meta" / "versions" / "other.v1.json").write_bytes(orjson.dumps({"name": "v1", "model": "other"}))
    monkeypatch.setenv("ATOLL_TASK_DIR", str(root))
    monkeypatch.setenv("ATOLL_REPLICA", "r0")
    monkeypatch.delenv("ATOLL_STORE_CONFIG", raising=False)
    return root


def test_signature_and_defaults_are_the_modelled_frameworks() -> None:
    params = inspect.signature(LazyModelServer).parameters
    assert list(params)[:4] == ["predict_func", "load_model_func", "model_name", "max_models"]
    assert params["model_name"].default is None
    assert params["max_models"].default == 100


def test_positional_model_name_and_max_models(task: Path) -> None:
    server = LazyModelServer(_predict, _load, "wine", 7)
    assert (server.model_name, server.max_models) == ("wine", 7)
    default = LazyModelServer(_predict, _load)
    assert (default.model_name, default.max_models) == (None, 100)
    with pytest.raises(UsageError, match="model_name"):
        LazyModelServer(_predict, _load, model_name="Not A Name")
    with pytest.raises(UsageError, match="max_models"):
        LazyModelServer(_predict, _load, max_models=True)  # type: ignore[arg-type]


def test_health_says_which_server_runs(task: Path) -> None:
    lazy, online = LazyModelServer(_predict, _load), OnlinePredict(lambda body: body)
    lazy._started()
    online._started()
    assert _call(lazy, "GET", "/health") == (200, {"status": "ok", "server": "LazyModelServer"})
    assert _call(online, "GET", "/health") == (200, {"status": "ok", "server": "OnlinePredict"})


def test_model_name_resolves_bare_versions_and_refuses_other_models(task: Path) -> None:
    server = LazyModelServer(_predict, _load, model_name="other")
    status, answer = _call(server, "POST", "/predict")  # the default is model_name's first staged version
    assert status == 200 and answer["metadata"]["model_version"] == "other:v1"
    status, answer = _call(server, "POST", "/predict", b"model_version=v1")
    assert status == 200 and answer["result"] == {"weights": "other-weights", "name": "v1", "model": "other"}
    status, answer = _call(server, "POST", "/predict", b"model_version=wine:v2")
    assert status == 400 and "serves versions of other only" in answer["error"]


def test_update_with_default_makes_the_version_the_one_served_without_model_version(task: Path) -> None:
    server = LazyModelServer(_predict, _load, model_name="wine")
    assert _call(server, "POST", "/predict")[1]["result"]["weights"] == "weights-v1"
    status, answer = _call(server, "POST", "/update", b"model_version=v2")  # a reload only
    assert status == 200 and answer == {"status": "loaded", "model_version": "wine:v2", "replica": "r0",
                                        "default": "wine:v1"}
    assert _call(server, "POST", "/predict")[1]["metadata"]["model_version"] == "wine:v1"
    status, answer = _call(server, "POST", "/update", b"model_version=wine:v2&default=true")
    assert status == 200 and answer["default"] == "wine:v2"
    status, answer = _call(server, "POST", "/predict")
    assert answer["result"]["weights"] == "weights-v2"
    assert answer["metadata"]["model_version"] == "wine:v2"
    assert server.loaded == ["wine:v1", "wine:v2"]
    status, answer = _call(server, "POST", "/update", b"model_version=v1&default=maybe")
    assert status == 400 and "expected true or false" in answer["error"]
    assert _call(server, "POST", "/predict")[1]["metadata"]["model_version"] == "wine:v2"
