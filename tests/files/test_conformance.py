"""Every file-store backend that runs here passes the same suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from atoll.errors import NotFoundError, UsageError
from atoll.files.base import FileStore, get_file_store
from atoll.files.lightweight import LightweightFileStore
from atoll.files.local import LocalFileStore
from atoll.testing.conformance.files import FileStoreConformance
from atoll.testing.memory import MemoryMetadataStore
from atoll.testing.memory_files import MemoryFileStore


class TestMemoryFileStore(FileStoreConformance):
    @pytest.fixture
    def store(self) -> FileStore:
        return MemoryFileStore()


class TestLocalFileStore(FileStoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> FileStore:
        return LocalFileStore(tmp_path / "store")


class TestLightweightFileStore(FileStoreConformance):
    """Keys outside ``lightweight/`` go to the wrapped store; the verified fetches use the blobs."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> FileStore:
        return LightweightFileStore(LocalFileStore(tmp_path / "store"), MemoryMetadataStore())


def test_registry_opens_both_backends(tmp_path: Path) -> None:
    assert isinstance(get_file_store("memory"), MemoryFileStore)
    store = get_file_store("local", root=tmp_path / "s")
    assert isinstance(store, LocalFileStore)
    assert (tmp_path / "s").is_dir()


def test_local_keys_are_files_under_the_root(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "store")
    src = tmp_path / "f"
    src.write_bytes(b"payload")
    store.upload(src, "datasets/iris/d1/a.csv")
    assert (tmp_path / "store" / "datasets" / "iris" / "d1" / "a.csv").read_bytes() == b"payload"


def test_local_delete_prunes_empty_directories(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "store")
    src = tmp_path / "f"
    src.write_bytes(b"x")
    store.upload(src, "a/b/c/file")
    store.upload(src, "a/keep")
    store.delete("a/b/c/file")
    assert sorted(p.name for p in (tmp_path / "store").rglob("*")) == ["a", "keep"]


def test_local_refuses_a_symlink_that_leaves_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "store"
    root.mkdir()
    os.symlink(outside, root / "escape")
    store = LocalFileStore(root)
    src = tmp_path / "f"
    src.write_bytes(b"x")
    with pytest.raises(UsageError, match="leaves the store"):
        store.upload(src, "escape/file")
    assert list(outside.iterdir()) == []


def test_local_refuses_a_directory_as_source_and_leaves_nothing(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "store")
    src = tmp_path / "dir-not-file"
    src.mkdir()
    with pytest.raises(NotFoundError, match="no such file"):
        store.upload(src, "k")
    assert [p for p in (tmp_path / "store").rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("algorithm", ["blake3", "sha256"])
def test_local_upload_hashing_returns_size_and_digest(tmp_path: Path, algorithm: str) -> None:
    import hashlib

    import blake3

    store = LocalFileStore(tmp_path / "store", fsync=False)
    data = os.urandom(3_000_001)
    src = tmp_path / "f"
    src.write_bytes(data)
    size, digest = store.upload_hashing(src, "h/f", algorithm)
    expected = blake3.blake3(data) if algorithm == "blake3" else hashlib.sha256(data)
    assert (size, digest) == (len(data), expected.hexdigest())
    assert (tmp_path / "store" / "h" / "f").read_bytes() == data


def test_local_files_get_the_usual_permissions(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "store")
    src = tmp_path / "f"
    src.write_bytes(b"x")
    old = os.umask(0o022)
    try:
        store.upload(src, "k/f")
        store.download("k/f", tmp_path / "back")
    finally:
        os.umask(old)
    assert (tmp_path / "store" / "k" / "f").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "back").stat().st_mode & 0o777 == 0o644
