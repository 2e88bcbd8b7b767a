"""Stores opened from the config, with treasure-chest credentials resolved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from atoll import credentials
from atoll.backends import (
    file_store_settings,
    metadata_url,
    open_file_store,
    open_metadata_store,
    task_store_config,
    with_credentials,
)
from atoll.config import Config
from atoll.domain.records import Model, TreasureChest
from atoll.errors import ConfigError
from atoll.files.lightweight import LightweightFileStore
from atoll.files.local import LocalFileStore
from atoll.metadata.base import get_metadata_store
from atoll.task.stores import open_task_stores
from atoll.testing.memory import MemoryMetadataStore


def _config(**sections: Any) -> Config:
    return Config.model_validate(sections)


def _chest(name: str, user: str, secret: str) -> TreasureChest:
    return TreasureChest(name=name, user=user, secret=credentials.encrypt(secret))


def test_default_config_opens_sqlite_and_local_files_in_home(home: Path) -> None:
    config = _config()
    metadata = open_metadata_store(config)
    try:
        files = open_file_store(config, metadata)
        assert isinstance(files, LightweightFileStore) and isinstance(files.files, LocalFileStore)
        assert files.root == home / "files"
        assert (home / "atoll.db").exists()
        assert files.digest == "blake3"  # new files are recorded with BLAKE3 unless file_store.digest says sha256
    finally:
        metadata.close()


def test_task_store_config_round_trips_through_json(home: Path, tmp_path: Path) -> None:
    config = _config(file_store={"path": str(tmp_path / "fs"), "digest": "sha256"})
    metadata = open_metadata_store(config)
    try:
        metadata.create(Model(name="iris"))
        settings = json.loads(json.dumps(task_store_config(config, metadata)))
    finally:
        metadata.close()
    assert settings["file_store"] == {"type": "local", "options": {"root": str(tmp_path / "fs")}, "digest": "sha256"}
    task_meta, task_files = open_task_stores(settings)
    try:
        assert task_meta.get(Model, "iris").name == "iris"  # same store, seen from "on board"
        assert task_files.digest == "sha256"  # what the task publishes is recorded as configured
        src = tmp_path / "f"
        src.write_text("x")
        task_files.upload(src, "k/f")
        assert (tmp_path / "fs" / "k" / "f").read_text() == "x"
    finally:
        task_meta.close()


def test_file_store_credentials_come_from_the_chest(home: Path) -> None:
    metadata = MemoryMetadataStore()
    metadata.create(_chest("s3-creds", "AKIA123", "very/secret+key"))
    config = _config(file_store={"type": "s3", "url": "http://127.0.0.1:9000", "tchest": "s3-creds"})
    type_, options = file_store_settings(config, metadata)
    assert type_ == "s3"
    assert options == {
        "url": "http://127.0.0.1:9000", "bucket": "atoll", "region": "us-east-1",
        "user": "AKIA123", "password": "very/secret+key",
    }
    settings = task_store_config(config, metadata)
    assert settings["file_store"]["options"]["password"] == "very/secret+key"


def test_unknown_chest_is_a_config_error_naming_the_setting(home: Path) -> None:
    config = _config(file_store={"type": "s3", "url": "http://127.0.0.1:9000", "tchest": "gone"})
    with pytest.raises(ConfigError, match="file_store.tchest: treasure chest 'gone' does not exist"):
        file_store_settings(config, MemoryMetadataStore())


@pytest.mark.parametrize("type_", ["cassandra", "gcs"])
def test_unknown_file_store_type_is_a_config_error_naming_the_supported_ones(home: Path, type_: str) -> None:
    config = _config(file_store={"type": type_, "url": "http://127.0.0.1:8082", "repository": "r"})
    supported = "artifactory, local, memory, nexus, s3"
    with pytest.raises(ConfigError, match=f"unknown file store '{type_}'; supported: {supported}"):
        file_store_settings(config, MemoryMetadataStore())
    with pytest.raises(ConfigError, match=f"unknown file store '{type_}'"):
        task_store_config(config, MemoryMetadataStore())


def test_metadata_chest_is_read_from_the_home_store(home: Path) -> None:
    home_store = get_metadata_store(f"sqlite:///{home / 'atoll.db'}")
    try:
        home_store.create(_chest("pg", "atoll", "p@ss:w/rd"))
    finally:
        home_store.close()
    config = _config(metadata={"url": "postgresql://old:creds@127.0.0.1:5432/atoll", "tchest": "pg"})
    assert metadata_url(config) == "postgresql://atoll:p%40ss%3Aw%2Frd@127.0.0.1:5432/atoll"


def test_metadata_chest_with_sqlite_is_refused(home: Path) -> None:
    with pytest.raises(ConfigError, match="unset metadata.tchest"):
        metadata_url(_config(metadata={"tchest": "pg"}))


def test_with_credentials_without_password() -> None:
    assert with_credentials("mongodb://h:27017/db", "u", "") == "mongodb://u@h:27017/db"


@pytest.mark.parametrize(
    "bad",
    [{}, {"metadata": {"url": "memory://"}}, {"metadata": {"url": 1}, "file_store": {"type": "memory"}},
     {"version": 99, "metadata": {"url": "memory://"}, "file_store": {"type": "memory"}}],
)
def test_malformed_task_settings_are_config_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="task's store settings"):
        open_task_stores(bad)


def test_native_islands_need_a_setup_first(home: Path) -> None:
    with pytest.raises(ConfigError, match="atoll isle files setup"):
        file_store_settings(_config(file_store={"native": True}), MemoryMetadataStore())
    with pytest.raises(ConfigError, match="atoll isle db setup"):
        metadata_url(_config(metadata={"native": True}))
