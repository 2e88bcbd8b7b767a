"""Publisher, progress() and require_*() as a notebook calls them inside a task.

The task directory is staged by the real local manager's staging against a
sqlite metadata store and a local file store, exactly as the local runtime
does; the toolkit then finds its stores through ``ATOLL_STORE_CONFIG``.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from atoll.backends import task_store_config
from atoll.config import load_config
from atoll.containers.base import TaskSpec
from atoll.containers.local import LocalContainerManager
from atoll.containers.local.environment import link_app, task_environment
from atoll.domain.records import (
    BuildVersion,
    Dataset,
    FileSpec,
    Model,
    ModelVersion,
    Project,
    TaskState,
    Training,
)
from atoll.errors import AlreadyExistsError, NotFoundError, UsageError, ValidationError
from atoll.files.artifacts import publish_artifact
from atoll.metadata.base import MetadataStore
from atoll.task.stores import task_stores
from atoll.toolkit import (
    Publisher,
    data_path,
    model_path,
    progress,
    require_dataset,
    require_version,
    tmp_path,
)


@dataclass
class Task:
    root: Path
    metadata: MetadataStore
    build: BuildVersion
    project: Project


def _stage(home: Path, kind_meta: dict, datasets: list[Dataset], monkeypatch: pytest.MonkeyPatch,
           metadata: MetadataStore, files: object, config: object, project: Project, build: BuildVersion) -> Path:
    root = home / "tasks" / "t"
    spec = TaskSpec(kind="train", project=project, build=build, name="t1", datasets=datasets, meta=kind_meta,
                    store_config=task_store_config(config, metadata))  # type: ignore[arg-type]
    staged = LocalContainerManager(config, metadata, files).stage_task(spec, root)  # type: ignore[arg-type]
    link_app(spec, staged)
    for key, value in task_environment(build, staged).items():
        if key.startswith("ATOLL_"):
            monkeypatch.setenv(key, value)
    task_stores.cache_clear()
    return root


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    home = tmp_path / "home"
    monkeypatch.setenv("ATOLL_HOME", str(home))
    config = load_config(tmp_path)
    from atoll.backends import open_file_store, open_metadata_store

    metadata = open_metadata_store(config)
    files = open_file_store(config, metadata)
    metadata.create(Model(
        name="iris-clf",
        model_files=[FileSpec(name="clf.pkl", required=True, max_mb=1)],
        data_files=[FileSpec(name="measures.csv", required=True)],
    ))
    project = metadata.create(Project(name="iris", models=["iris-clf"]))
    data_dir = tmp_path / "ds"
    data_dir.mkdir()
    (data_dir / "measures.csv").write_text("a,b\n1,2\n")
    dataset = publish_artifact(metadata, files, Dataset(name="iris", model="iris-clf"), data_dir,
                               [FileSpec(name="measures.csv", required=True)])
    (tmp_path / "build" / "app").mkdir(parents=True)
    build = metadata.create(BuildVersion(name="latest", proj="iris", location=str(tmp_path / "build"),
                                         env_hash="none", details={"env_dir": str(tmp_path / "env")}))
    training = metadata.create(Training(name="t1", proj="iris", notebook="nb.ipynb", bvers=build,
                                        datasets=[dataset]))
    training.task.state = TaskState.RUNNING
    training = metadata.update(training)
    yield {"home": home, "config": config, "metadata": metadata, "files": files, "project": project,
           "build": build, "dataset": dataset, "training": training, "mp": monkeypatch}
    task_stores.cache_clear()
    metadata.close()


def _in_training(world: dict) -> Path:
    return _stage(world["home"], {"training": world["training"].public_dump()}, [world["dataset"]], world["mp"],
                  world["metadata"], world["files"], world["config"], world["project"], world["build"])


def _in_ide(world: dict, datasets: list[Dataset] | None = None) -> Path:
    return _stage(world["home"], {}, datasets or [], world["mp"], world["metadata"], world["files"],
                  world["config"], world["project"], world["build"])


def test_staged_task_layout(world: dict) -> None:
    root = _in_training(world)
    assert (root / "app").resolve() == (Path(world["build"].location) / "app").resolve()
    assert Path(data_path("measures.csv")).read_text() == "a,b\n1,2\n"
    assert (root / "atoll" / "meta" / "datasets" / "iris-clf.iris.json").is_file()
    assert (root / "atoll" / "secret" / "store.json").stat().st_mode & 0o777 == 0o600
    assert Path(data_path("measures.csv")).stat().st_mode & 0o222 == 0


def test_publisher_defaults_inside_a_training(world: dict) -> None:
    _in_training(world)
    with open(tmp_path("clf.pkl"), "wb") as f:
        pickle.dump({"w": 1}, f)
    version = Publisher()(details={"metrics": {"accuracy": 0.9}})
    assert (version["model"], version["name"]) == ("iris-clf", "t1")
    stored = world["metadata"].get(ModelVersion, "t1", "iris-clf")
    assert stored.details == {"metrics": {"accuracy": 0.9}}
    assert [f.name for f in stored.files] == ["clf.pkl"]
    assert stored.train is not None and stored.train.task.state == TaskState.RUNNING
    assert stored.dataset is not None and stored.dataset.name == "iris"
    with pytest.raises(AlreadyExistsError):
        Publisher()()
    other = Publisher()(version_name="t1-bis", model_name="iris-clf", dataset_name="iris", pretrained="iris-clf:t1")
    assert other["pretrained"] == "iris-clf:t1"


def test_publisher_checks_files_and_names(world: dict) -> None:
    _in_training(world)
    with pytest.raises(ValidationError, match="clf.pkl"):
        Publisher()()  # nothing written to tmp_path()
    assert not world["metadata"].exists(ModelVersion, "t1", "iris-clf")
    Path(tmp_path("clf.pkl")).write_bytes(b"x")
    with pytest.raises(UsageError, match="invalid"):
        Publisher()(version_name="Bad Name")
    with pytest.raises(UsageError, match="dict"):
        Publisher()(details=["not", "a", "dict"])  # type: ignore[arg-type]
    world["metadata"].create(Model(name="other"))
    project = world["metadata"].get(Project, "iris")
    project.models = ["iris-clf", "other"]
    world["project"] = world["metadata"].update(project)
    _in_training(world)
    Path(tmp_path("clf.pkl")).write_bytes(b"x")
    with pytest.raises(UsageError, match="name the model"):
        Publisher()()


def test_publisher_in_the_ide_stages_the_version(world: dict) -> None:
    _in_ide(world)
    Path(tmp_path("clf.pkl")).write_bytes(b"model-bytes")
    version = Publisher()(version_name="tried")
    assert version["train"] is None and version["dataset"] is None
    assert Path(model_path("clf.pkl", version="tried")).read_bytes() == b"model-bytes"


def test_progress_updates_the_running_training(world: dict) -> None:
    _in_training(world)
    progress(0.25)
    assert world["metadata"].get(Training, "t1", "iris").task.progress == 0.25
    with pytest.raises(UsageError):
        progress(1.5)
    _in_ide(world)
    progress(0.5)  # outside a training: nothing to record, no error
    assert world["metadata"].get(Training, "t1", "iris").task.progress == 0.25


def test_require_dataset_and_version_stage_on_demand(world: dict) -> None:
    _in_ide(world)
    staged = require_dataset("iris")
    assert Path(staged, "measures.csv").read_text() == "a,b\n1,2\n"
    assert data_path("measures.csv") == str(Path(staged) / "measures.csv")
    Path(tmp_path("clf.pkl")).write_bytes(b"v1")
    Publisher()(version_name="v1")
    assert Path(require_version("v1"), "clf.pkl").read_bytes() == b"v1"
    assert require_version("v1") == model_path(version="v1")  # staging again is harmless


def test_require_refuses_a_version_recorded_without_files_but_stages_such_a_dataset(world: dict) -> None:
    _in_ide(world)
    world["metadata"].create(ModelVersion(name="bare", model="iris-clf", stored=False))
    world["metadata"].create(Dataset(name="elsewhere", model="iris-clf", stored=False))
    with pytest.raises(NotFoundError, match="model version iris-clf:bare was recorded without files"):
        require_version("bare")
    assert list(Path(require_dataset("elsewhere")).iterdir()) == []  # its files are kept elsewhere


def test_lightweight_publisher_keeps_the_model_in_the_database(world: dict) -> None:
    _in_ide(world)
    Path(tmp_path("clf.pkl")).write_bytes(b"small-model")
    version = Publisher(lightweight=True)(version_name="light")
    assert version["store_key"].startswith("lightweight/versions/iris-clf/light/")
    assert world["metadata"].list_blobs(version["store_key"]) == [version["store_key"] + "clf.pkl"]
    assert world["files"].files.list("versions/") == []  # the file store was not used
    task_stores.cache_clear()
    assert Path(require_version("light"), "clf.pkl").read_bytes() == b"small-model"  # fetched, checksum checked


def test_publisher_takes_the_modelled_frameworks_keywords(world: dict, tmp_path: Path) -> None:
    _in_training(world)
    src = tmp_path / "elsewhere"
    src.mkdir()
    (src / "clf.pkl").write_bytes(b"from-src")
    version = Publisher()(src_path=str(src), uses_dataset=False, version_name="no-ds", details={"k": 1})
    assert (version.name, version.model, version.details.k) == ("no-ds", "iris-clf", 1)  # reads as attributes
    assert version["dataset"] is None  # a dataset was staged, but uses_dataset=False
    assert Path(require_version("no-ds"), "clf.pkl").read_bytes() == b"from-src"

    single = tmp_path / "clf.pkl"  # one file instead of a directory, given first as that framework's src_path
    single.write_bytes(b"one-file")
    one = Publisher()(str(single), version_name="one-file", uses_pretrained=True, pretrained_with="iris-clf:no-ds")
    assert one["pretrained"] == "iris-clf:no-ds" and one["dataset"]["name"] == "iris"
    assert Path(require_version("one-file"), "clf.pkl").read_bytes() == b"one-file"

    with pytest.raises(UsageError, match="uses_dataset=False"):
        Publisher()(src_path=src, uses_dataset=False, dataset_name="iris", version_name="x")
    with pytest.raises(UsageError, match="versions are staged"):  # uses_pretrained, but none was staged
        Publisher()(src_path=src, uses_pretrained=True, version_name="x")
    with pytest.raises(NotFoundError, match="no such file"):
        Publisher()(src_path=tmp_path / "missing", version_name="x")
    assert not world["metadata"].exists(ModelVersion, "x", "iris-clf")


def test_lightweight_can_be_asked_per_call(world: dict) -> None:
    _in_ide(world)
    Path(tmp_path("clf.pkl")).write_bytes(b"small-model")
    version = Publisher()(version_name="light", lightweight=True)
    assert version["store_key"].startswith("lightweight/versions/iris-clf/light/")


def test_the_modelled_frameworks_shortcut_names(world: dict) -> None:
    from atoll.toolkit import movers_meta, require_movers, train_meta, training_meta, version_meta

    _in_training(world)
    assert train_meta() == training_meta() and train_meta().name == "t1" and train_meta().proj == "iris"
    assert movers_meta(ignore=True) == {}  # nothing staged: an empty record instead of an error
    with pytest.raises(NotFoundError):
        movers_meta()
    Path(tmp_path("clf.pkl")).write_bytes(b"v1")
    Publisher()(version_name="v1", details={"metrics": {"acc": 0.5}})
    staged = require_movers("v1")  # the framework's name and argument order: (version, model)
    assert staged == require_movers(version="v1", model="iris-clf")
    assert Path(staged, "clf.pkl").read_bytes() == b"v1"
    meta = movers_meta()
    assert meta == version_meta() and meta.details.metrics.acc == 0.5 and meta.model == "iris-clf"
    with pytest.raises(AttributeError, match="no field 'nope'"):
        meta.nope  # noqa: B018
