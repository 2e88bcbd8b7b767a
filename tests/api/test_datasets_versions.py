from pathlib import Path
from typing import Any

import pytest

from atoll.api import datasets, models, versions
from atoll.api.context import AtollContext
from atoll.domain.names import is_valid_name
from atoll.domain.records import BuildVersion, Dataset, Project, Task, Training
from atoll.errors import AlreadyExistsError, ConflictError, NotFoundError, UsageError, ValidationError


@pytest.fixture
def iris(ctx: AtollContext) -> AtollContext:
    models.new_model(
        ctx, "iris",
        model_files=[{"name": "clf.pkl", "required": True, "max_mb": 0.001}],
        data_files=[{"name": "data.csv", "required": True}, {"name": "extra.txt"}],
    )
    return ctx


def test_dataset_gets_random_name_and_checksummed_files(iris: AtollContext, tmp_path: Path, make_dir: Any) -> None:
    src = make_dir(tmp_path / "d", {"data.csv": b"a,b\n1,2\n"})
    ds = datasets.new_dataset(iris, "iris", details={"rows": 1}, path=src)
    assert is_valid_name(ds.name)
    assert ds.stored and [f.name for f in ds.files] == ["data.csv"] and len(ds.files[0].blake3 or "") == 64
    assert iris.files.list(ds.store_key or "")
    assert datasets.get_dataset(iris, "iris", ds.name).details == {"rows": 1}


def test_dataset_checks_files_against_the_model(iris: AtollContext, tmp_path: Path, make_dir: Any) -> None:
    with pytest.raises(ValidationError, match="data.csv"):
        datasets.new_dataset(iris, "iris", "d1", path=make_dir(tmp_path / "empty", {"extra.txt": b"x"}))
    with pytest.raises(UsageError, match="--path"):
        datasets.new_dataset(iris, "iris", "d1")
    with pytest.raises(UsageError, match="not a directory"):
        datasets.new_dataset(iris, "iris", "d1", path=tmp_path / "missing")
    with pytest.raises(NotFoundError, match="wine"):
        datasets.new_dataset(iris, "wine", "d1", path=tmp_path)
    assert iris.metadata.list(Dataset) == [] and iris.files.list("") == []


def test_follow_symlinks_stores_what_a_link_points_to(iris: AtollContext, tmp_path: Path, make_dir: Any) -> None:
    src = make_dir(tmp_path / "d", {"data.csv": b"a,b\n"})
    (tmp_path / "notes.txt").write_bytes(b"notes")
    (src / "extra.txt").symlink_to(tmp_path / "notes.txt")
    with pytest.raises(ValidationError, match="--follow-symlinks"):
        datasets.new_dataset(iris, "iris", "d1", path=src)
    ds = datasets.new_dataset(iris, "iris", "d1", path=src, follow_symlinks=True)
    assert sorted(f.name for f in ds.files) == ["data.csv", "extra.txt"]
    (tmp_path / "notes.txt").write_bytes(b"newer notes")
    newer = datasets.update_dataset(iris, "iris", "d1", path=src, follow_symlinks=True)
    assert next(f.size for f in newer.files if f.name == "extra.txt") == len(b"newer notes")


def test_version_over_max_mb_is_refused_and_leaves_nothing(iris: AtollContext, tmp_path: Path, make_dir: Any) -> None:
    with pytest.raises(ValidationError, match="clf.pkl"):
        versions.new_version(iris, "iris", "v1", path=make_dir(tmp_path / "big", {"clf.pkl": 5000}))
    assert iris.files.list("") == []
    with pytest.raises(NotFoundError):
        versions.get_version(iris, "iris", "v1")


def test_version_snapshots_dataset_training_and_checks_pretrained(
    iris: AtollContext, tmp_path: Path, make_dir: Any
) -> None:
    datasets.new_dataset(iris, "iris", "d1", path=make_dir(tmp_path / "d", {"data.csv": b"x"}))
    iris.metadata.create(Project(name="demo"))
    iris.metadata.create(
        Training(name="t1", proj="demo", notebook="train.ipynb", bvers=BuildVersion(name="latest", proj="demo"),
                 task=Task(state="FINISHED", progress=1.0))
    )
    src = make_dir(tmp_path / "v", {"clf.pkl": b"model"})
    with pytest.raises(NotFoundError, match="v0"):
        versions.new_version(iris, "iris", "v1", path=src, pretrained="iris:v0")
    with pytest.raises(UsageError, match="MODEL:VERSION"):
        versions.new_version(iris, "iris", "v1", path=src, pretrained="v0")
    v1 = versions.new_version(iris, "iris", "v1", details={"metrics": {"acc": 0.8}}, path=src, dataset="d1",
                              train="t1", proj="demo")
    assert v1.dataset is not None and v1.dataset.name == "d1"
    assert v1.train is not None and v1.train.task.state == "FINISHED"
    v2 = versions.new_version(iris, "iris", "v2", details={"metrics": {"acc": 0.95}}, path=src, pretrained="iris:v1")
    assert v2.pretrained == "iris:v1"
    with pytest.raises(AlreadyExistsError):
        versions.new_version(iris, "iris", "v2", path=src)

    assert [v.name for v in versions.list_versions(iris, "iris", dataset="d1")] == ["v1"]
    assert [v.name for v in versions.list_versions(iris, train="t1", proj="demo")] == ["v1"]
    best = versions.list_versions(iris, "iris", filter={"details.metrics.acc": {"$gt": 0.9}})
    assert [v.name for v in best] == ["v2"]

    # The dataset is referenced: removal asks, and the version keeps its snapshot.
    with pytest.raises(ConflictError, match="v1"):
        datasets.delete_dataset(iris, "iris", "d1")
    datasets.delete_dataset(iris, "iris", "d1", confirm=lambda q: True)
    assert versions.get_version(iris, "iris", "v1").dataset.name == "d1"  # type: ignore[union-attr]


def test_update_replaces_files_and_keeps_the_rest(iris: AtollContext, tmp_path: Path, make_dir: Any) -> None:
    ds = datasets.new_dataset(iris, "iris", "d1", details={"a": 1}, path=make_dir(tmp_path / "d", {"data.csv": b"1"}))
    old_keys = iris.files.list("")
    same = datasets.update_dataset(iris, "iris", "d1", details={"b": 2})
    assert same.details == {"b": 2} and same.files == ds.files and same.revision == 2
    newer = datasets.update_dataset(iris, "iris", "d1", path=make_dir(tmp_path / "d2", {"data.csv": b"22"}))
    assert newer.details == {"b": 2} and newer.files[0].size == 2
    assert not set(old_keys) & set(iris.files.list(""))  # old files gone
    v = versions.new_version(iris, "iris", "v1", path=make_dir(tmp_path / "v", {"clf.pkl": b"m"}))
    assert versions.update_version(iris, "iris", "v1", details={"x": 1}).files == v.files


def test_version_rm_removes_files(iris: AtollContext, tmp_path: Path, make_dir: Any) -> None:
    versions.new_version(iris, "iris", "v1", path=make_dir(tmp_path / "v", {"clf.pkl": b"m"}), compress=True)
    assert iris.files.list("")
    versions.delete_version(iris, "iris", "v1")
    assert iris.files.list("") == []
    with pytest.raises(NotFoundError):
        versions.delete_version(iris, "iris", "v1")


def test_skip_upload_records_without_files(iris: AtollContext, tmp_path: Path, make_dir: Any) -> None:
    ds = datasets.new_dataset(iris, "iris", "d1", path=make_dir(tmp_path / "d", {"data.csv": b"1"}), skip_upload=True)
    assert not ds.stored and ds.files[0].name == "data.csv"
    assert iris.files.list("") == []
    bare = datasets.new_dataset(iris, "iris", "d2", skip_upload=True)
    assert not bare.stored and bare.files == []
    datasets.delete_dataset(iris, "iris", "d2")
