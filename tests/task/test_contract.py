"""The task contract: layout, one deadline helper, staging and fetching inputs, store settings."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from atoll.domain.records import Dataset, FileSpec, Model
from atoll.errors import ConfigError, NotFoundError
from atoll.files.artifacts import publish_artifact
from atoll.task.deadline import wait_until
from atoll.task.layout import STORE_CONFIG_ENV, TaskLayout
from atoll.task.staging import fetch_inputs, stage_layout
from atoll.task.stores import open_task_stores, read_store_config, store_settings
from atoll.testing.memory import MemoryMetadataStore
from atoll.testing.memory_files import MemoryFileStore


def test_wait_until_returns_the_first_truthy_value() -> None:
    counter = itertools.count()
    assert wait_until(lambda: next(counter) >= 3 and "ready", timeout=5, every=0.001) == "ready"


def test_wait_until_gives_up_at_the_deadline_after_checking_once() -> None:
    calls: list[int] = []
    assert wait_until(lambda: calls.append(1), timeout=0) is None
    assert calls == [1]
    slept: list[float] = []
    assert wait_until(lambda: None, timeout=0.05, every=10, sleep=slept.append) is None
    assert slept and all(s <= 0.05 for s in slept)  # never sleeps past the deadline


def test_layout_paths_are_the_documented_ones() -> None:
    layout = TaskLayout(Path("/"))
    assert str(layout.app_dir) == "/app" and str(layout.meta_dir) == "/atoll/meta"
    assert str(layout.dataset_dir("iris", "d1")) == "/data/iris.d1"
    assert str(layout.version_dir("iris", "v1")) == "/model/iris.v1"
    assert str(layout.version_meta_file("iris", "v1")) == "/atoll/meta/versions/iris.v1.json"


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[MemoryMetadataStore, MemoryFileStore, Dataset]:
    metadata, files = MemoryMetadataStore(), MemoryFileStore()
    metadata.create(Model(name="iris", data_files=[FileSpec(name="m.csv", required=True)]))
    src = tmp_path / "src"
    src.mkdir()
    (src / "m.csv").write_text("a,b\n")
    record = publish_artifact(metadata, files, Dataset(name="d1", model="iris"), src, [FileSpec(name="m.csv")])
    return metadata, files, record


def test_host_staging_writes_files_fetch_staging_only_their_records(
    tmp_path: Path, dataset: tuple[MemoryMetadataStore, MemoryFileStore, Dataset]
) -> None:
    _, files, record = dataset
    host = stage_layout(TaskLayout(tmp_path / "host"), {"build": {"name": "b"}}, [record], files, {"k": "v"})
    assert (host.dataset_dir("iris", "d1") / "m.csv").read_text() == "a,b\n"
    assert host.store_file.stat().st_mode & 0o777 == 0o600
    fetch = stage_layout(TaskLayout(tmp_path / "fetch"), {"build": {"name": "b"}}, [record], None, {})
    assert fetch.dataset_meta_file("iris", "d1").is_file()
    assert not fetch.dataset_dir("iris", "d1").exists()
    assert fetch_inputs(fetch, files) == [fetch.dataset_dir("iris", "d1")]
    assert (fetch.dataset_dir("iris", "d1") / "m.csv").read_text() == "a,b\n"
    assert fetch_inputs(fetch, files) == []  # already in place


def test_fetching_a_dataset_whose_files_are_gone_fails_and_leaves_nothing(
    tmp_path: Path, dataset: tuple[MemoryMetadataStore, MemoryFileStore, Dataset]
) -> None:
    _, files, record = dataset
    layout = stage_layout(TaskLayout(tmp_path / "t"), {}, [record], None, {})
    for key in files.list(""):
        files.delete(key)
    with pytest.raises(NotFoundError):
        fetch_inputs(layout, files)
    assert list(layout.data_dir.iterdir()) == []


def test_store_settings_round_trip_through_the_secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = store_settings("memory://", "memory", {})
    layout = stage_layout(TaskLayout(tmp_path / "t"), {}, [], None, settings)
    monkeypatch.setenv(STORE_CONFIG_ENV, str(layout.store_file))
    assert read_store_config() == settings
    metadata, files = open_task_stores(read_store_config())
    assert isinstance(metadata, MemoryMetadataStore) and isinstance(files.files, MemoryFileStore)
    with pytest.raises(ConfigError, match="version"):
        open_task_stores({**settings, "version": 99})
