"""The task layout as a notebook sees it through atoll.toolkit.paths."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from atoll.errors import NotFoundError, UsageError
from atoll.toolkit import paths


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(record))


@pytest.fixture
def task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A task root with one dataset and one model version staged."""
    monkeypatch.setenv("ATOLL_TASK_DIR", str(tmp_path))
    (tmp_path / "data" / "wine.red").mkdir(parents=True)
    (tmp_path / "data" / "wine.red" / "train.csv").write_text("a,b\n")
    (tmp_path / "model" / "wine.v1").mkdir(parents=True)
    meta = tmp_path / "atoll" / "meta"
    _write(meta / "project.json", {"name": "cellar"})
    _write(meta / "build.json", {"name": "b1", "proj": "cellar"})
    _write(meta / "training.json", {"name": "t1", "proj": "cellar"})
    _write(meta / "datasets" / "wine.red.json", {"name": "red", "model": "wine"})
    _write(meta / "versions" / "wine.v1.json", {"name": "v1", "model": "wine"})
    return tmp_path


def test_single_staged_dataset_and_version_need_no_names(task: Path) -> None:
    assert paths.data_path() == str(task / "data" / "wine.red")
    assert paths.data_path("train.csv") == str(task / "data" / "wine.red" / "train.csv")
    assert paths.model_path("clf.pkl") == str(task / "model" / "wine.v1" / "clf.pkl")
    assert paths.dataset_meta() == {"name": "red", "model": "wine"}
    assert paths.version_meta() == {"name": "v1", "model": "wine"}


def test_records_of_the_task(task: Path) -> None:
    assert paths.project_meta()["name"] == "cellar"
    assert paths.build_meta()["name"] == "b1"
    assert paths.training_meta() == {"name": "t1", "proj": "cellar"}


def test_missing_record_is_not_found(task: Path) -> None:
    with pytest.raises(NotFoundError, match="deployment"):
        paths.deployment_meta()


def test_several_staged_needs_a_name_and_lists_them(task: Path) -> None:
    (task / "data" / "wine.white").mkdir()
    (task / "data" / "beer.ipa").mkdir()
    with pytest.raises(UsageError, match="wine:red.*wine:white") as err:
        paths.data_path()
    assert "beer:ipa" in str(err.value)
    with pytest.raises(UsageError):
        paths.data_path(model="wine")
    assert paths.data_path(model="wine", dataset="white") == str(task / "data" / "wine.white")
    assert paths.data_path(dataset="ipa") == str(task / "data" / "beer.ipa")
    assert paths.data_path(model="beer") == str(task / "data" / "beer.ipa")


def test_unknown_name_is_not_found_and_lists_staged(task: Path) -> None:
    with pytest.raises(NotFoundError, match=r"version v9 .*staged: wine:v1"):
        paths.model_path(version="v9")
    with pytest.raises(NotFoundError):
        paths.dataset_meta(model="beer")


def test_nothing_staged_is_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATOLL_TASK_DIR", str(tmp_path))
    with pytest.raises(NotFoundError, match="staged: none"):
        paths.data_path()
    with pytest.raises(NotFoundError):
        paths.model_path()
    with pytest.raises(NotFoundError):
        paths.version_meta()


def test_tmp_path_is_created_on_demand(task: Path) -> None:
    assert not (task / "atoll" / "tmp").exists()
    target = paths.tmp_path("clf.pkl")
    assert target == str(task / "atoll" / "tmp" / "clf.pkl")
    assert (task / "atoll" / "tmp").is_dir()
    assert paths.tmp_path() == str(task / "atoll" / "tmp")


def test_task_root_defaults_to_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATOLL_TASK_DIR", raising=False)
    assert paths.task_root() == Path("/")


def test_corrupt_record_is_a_usage_error(task: Path) -> None:
    (task / "atoll" / "meta" / "project.json").write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        paths.project_meta()
