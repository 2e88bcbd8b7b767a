"""The behaviour every FileStore backend must show.

Use it like fsspec's abstract tests: subclass and provide a ``store`` fixture::

    class TestLocal(FileStoreConformance):
        @pytest.fixture
        def store(self, tmp_path):
            return LocalFileStore(tmp_path / "store")

Besides the primitives, every backend must fetch verified what was published
through it: files recorded with BLAKE3 (the default) and files recorded with
sha256 by an older Atoll alike, and refuse a stored file with one byte
flipped, naming the file and the algorithm. A
:class:`~atoll.files.lightweight.LightweightFileStore` runs these on its
``lightweight/`` keys (the metadata store's blobs).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import blake3
import pytest

from atoll.domain.records import Dataset, FileSpec
from atoll.errors import AtollError, NotFoundError, UsageError, ValidationError
from atoll.files.artifacts import fetch_artifact, key_root, publish_artifact
from atoll.files.base import FileStore
from atoll.files.lightweight import PREFIX as LIGHTWEIGHT_PREFIX
from atoll.files.lightweight import LightweightFileStore
from atoll.metadata.base import MetadataStore
from atoll.testing.memory import MemoryMetadataStore

_DATA = bytes(range(256)) * 4099  # over 1 MiB: more than one BLAKE3 chunk group and one read chunk
_DIGESTS = {"blake3": lambda data: blake3.blake3(data).hexdigest(), "sha256": lambda data: hashlib.sha256(data).hexdigest()}


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


class FileStoreConformance:
    """Subclasses provide a ``store`` fixture returning an empty store."""

    @pytest.fixture
    def store(self) -> FileStore:  # pragma: no cover - overridden
        raise NotImplementedError

    def test_upload_then_download_round_trips_the_bytes(self, store: FileStore, tmp_path: Path) -> None:
        data = bytes(range(256)) * 1000
        store.upload(_write(tmp_path / "in.bin", data), "models/iris/v1/clf.pkl")
        out = tmp_path / "out" / "deep" / "clf.pkl"
        store.download("models/iris/v1/clf.pkl", out)
        assert out.read_bytes() == data
        assert store.exists("models/iris/v1/clf.pkl")

    def test_empty_file_round_trips(self, store: FileStore, tmp_path: Path) -> None:
        store.upload(_write(tmp_path / "empty", b""), "a/empty")
        store.download("a/empty", tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == b""

    def test_upload_overwrites(self, store: FileStore, tmp_path: Path) -> None:
        store.upload(_write(tmp_path / "one", b"first"), "k/file")
        store.upload(_write(tmp_path / "two", b"second"), "k/file")
        store.download("k/file", tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == b"second"
        assert store.list("k/") == ["k/file"]

    def test_download_overwrites_an_existing_local_file(self, store: FileStore, tmp_path: Path) -> None:
        store.upload(_write(tmp_path / "src", b"new"), "x")
        target = _write(tmp_path / "target", b"old contents that are longer")
        store.download("x", target)
        assert target.read_bytes() == b"new"

    def test_list_is_sorted_and_filtered_by_prefix(self, store: FileStore, tmp_path: Path) -> None:
        src = _write(tmp_path / "f", b"x")
        for key in ["b/2", "a/1", "b/1", "b/sub/3", "bb/4", "c"]:
            store.upload(src, key)
        assert store.list() == ["a/1", "b/1", "b/2", "b/sub/3", "bb/4", "c"]
        assert store.list("b/") == ["b/1", "b/2", "b/sub/3"]
        assert store.list("b") == ["b/1", "b/2", "b/sub/3", "bb/4"]
        assert store.list("b/s") == ["b/sub/3"]
        assert store.list("nothing/") == []

    def test_delete_removes_and_tolerates_missing_keys(self, store: FileStore, tmp_path: Path) -> None:
        store.upload(_write(tmp_path / "f", b"x"), "d/one")
        store.delete("d/one")
        assert not store.exists("d/one")
        assert store.list() == []
        store.delete("d/one")  # again: not an error
        store.delete("never/there")

    def test_delete_prefix_removes_only_that_prefix(self, store: FileStore, tmp_path: Path) -> None:
        src = _write(tmp_path / "f", b"x")
        for key in ["ds/iris/a/1", "ds/iris/a/sub/2", "ds/iris/ab/3", "ds/iris/b/4"]:
            store.upload(src, key)
        assert store.delete_prefix("ds/iris/a") == 2
        assert store.list() == ["ds/iris/ab/3", "ds/iris/b/4"]
        assert store.delete_prefix("ds/iris/zzz/") == 0

    def test_upload_dir_and_download_dir(self, store: FileStore, tmp_path: Path) -> None:
        src = tmp_path / "src"
        _write(src / "a.csv", b"a")
        _write(src / "sub" / "b.csv", b"bb")
        _write(src / "sub" / "deeper" / "c.csv", b"ccc")
        keys = store.upload_dir(src, "datasets/iris/d1/")
        assert sorted(keys) == ["datasets/iris/d1/a.csv", "datasets/iris/d1/sub/b.csv",
                                "datasets/iris/d1/sub/deeper/c.csv"]
        dest = tmp_path / "dest"
        paths = store.download_dir("datasets/iris/d1", dest)
        assert sorted(p.relative_to(dest).as_posix() for p in paths) == ["a.csv", "sub/b.csv", "sub/deeper/c.csv"]
        assert (dest / "sub" / "deeper" / "c.csv").read_bytes() == b"ccc"

    @pytest.mark.parametrize("key", ["", "/abs", "a/../b", "../up", "a//b", "a/./b", "trailing/", "."])
    def test_bad_keys_are_refused(self, store: FileStore, tmp_path: Path, key: str) -> None:
        src = _write(tmp_path / "f", b"x")
        with pytest.raises(UsageError, match="invalid file-store key"):
            store.upload(src, key)
        with pytest.raises(UsageError):
            store.download(key, tmp_path / "out")
        with pytest.raises(UsageError):
            store.exists(key)
        with pytest.raises(UsageError):
            store.delete(key)

    def test_missing_key_is_not_found(self, store: FileStore, tmp_path: Path) -> None:
        with pytest.raises(NotFoundError, match="no/such"):
            store.download("no/such", tmp_path / "out")
        assert not (tmp_path / "out").exists()
        assert not store.exists("no/such")

    def test_missing_local_file_is_not_found(self, store: FileStore, tmp_path: Path) -> None:
        with pytest.raises(NotFoundError, match="nope"):
            store.upload(tmp_path / "nope", "k")
        assert store.list() == []

    def test_readers_never_see_a_partial_file(self, store: FileStore, tmp_path: Path) -> None:
        old, new = b"o" * 2_000_000, b"n" * 3_000_000
        store.upload(_write(tmp_path / "old", old), "big")
        _write(tmp_path / "new", new)
        seen: list[bytes] = []
        errors: list[BaseException] = []

        def reader() -> None:
            for i in range(20):
                out = tmp_path / f"read-{i}"
                try:
                    store.download("big", out)
                except AtollError as exc:  # pragma: no cover - reported below
                    errors.append(exc)
                    return
                seen.append(out.read_bytes())

        thread = threading.Thread(target=reader)
        thread.start()
        for _ in range(10):
            store.upload(tmp_path / "new", "big")
            store.upload(tmp_path / "old", "big")
        thread.join(timeout=60)
        assert not errors, errors
        assert seen and all(data in (old, new) for data in seen)

    # Verified fetches: each file checked with the algorithm it was recorded with.

    @staticmethod
    def _metadata(store: FileStore) -> MetadataStore:
        return store.metadata if isinstance(store, LightweightFileStore) else MemoryMetadataStore()

    @staticmethod
    def _flip(store: FileStore, key: str, tmp_path: Path, at: int) -> None:
        """Store the bytes of ``key`` again with one bit of byte ``at`` flipped."""
        store.download(key, tmp_path / "flip")
        data = bytearray((tmp_path / "flip").read_bytes())
        data[at] ^= 0x01
        store.upload(_write(tmp_path / "flip", bytes(data)), key)

    def _publish(self, store: FileStore, tmp_path: Path, algorithm: str | None) -> Dataset:
        src = _write(tmp_path / "src" / "data.csv", _DATA)
        return publish_artifact(self._metadata(store), store, Dataset(name="d1", model="iris"), src.parent,
                                [FileSpec(name="data.csv")], lightweight=isinstance(store, LightweightFileStore),
                                digest=algorithm)

    def _legacy(self, store: FileStore, tmp_path: Path) -> Dataset:
        """A dataset as an Atoll of before BLAKE3 stored it: its record as read back from the store's JSON."""
        lightweight = LIGHTWEIGHT_PREFIX if isinstance(store, LightweightFileStore) else ""
        prefix = f"{lightweight}{key_root(Dataset(name='old', model='iris'))}/0123456789abcdef/"
        store.upload(_write(tmp_path / "old" / "data.csv", _DATA), prefix + "data.csv")
        return Dataset.model_validate({
            "name": "old", "model": "iris", "stored": True, "store_key": prefix,
            "files": [{"name": "data.csv", "size": len(_DATA), "sha256": _DIGESTS["sha256"](_DATA)}],
        })

    def test_new_files_are_recorded_with_blake3_and_fetch_verified(self, store: FileStore, tmp_path: Path) -> None:
        record = self._publish(store, tmp_path, None)
        assert [f.model_dump() for f in record.files] == [
            {"name": "data.csv", "size": len(_DATA), "blake3": _DIGESTS["blake3"](_DATA)}]
        fetch_artifact(store, record, tmp_path / "out")
        assert (tmp_path / "out" / "data.csv").read_bytes() == _DATA

    def test_files_recorded_with_sha256_still_fetch_verified(self, store: FileStore, tmp_path: Path) -> None:
        for record in (self._legacy(store, tmp_path), self._publish(store, tmp_path, "sha256")):
            assert [(f.algorithm, f.digest) for f in record.files] == [("sha256", _DIGESTS["sha256"](_DATA))]
            fetch_artifact(store, record, tmp_path / record.name)
            assert (tmp_path / record.name / "data.csv").read_bytes() == _DATA

    @pytest.mark.parametrize(("algorithm", "at"), [("blake3", 0), ("blake3", len(_DATA) - 1),
                                                   ("sha256", len(_DATA) // 2)])
    def test_a_flipped_byte_is_refused_naming_the_file_and_algorithm(
        self, store: FileStore, tmp_path: Path, algorithm: str, at: int
    ) -> None:
        record = self._legacy(store, tmp_path) if algorithm == "sha256" else self._publish(store, tmp_path, None)
        self._flip(store, f"{record.store_key}data.csv", tmp_path, at)
        with pytest.raises(ValidationError, match=f"checksum mismatch for data.csv: .*[(]{algorithm} [0-9a-f]{{12}}, "
                                                  f"expected {record.files[0].digest[:12]}"):
            fetch_artifact(store, record, tmp_path / "bad")
        assert not (tmp_path / "bad").exists()  # nothing of a refused fetch is left
