"""Datasets and model versions: checked, stored files first, record last, verified on fetch."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import blake3
import pytest

from atoll.domain.records import Dataset, FileSpec, ModelVersion
from atoll.errors import AlreadyExistsError, BackendError, NotFoundError, ValidationError
from atoll.files.artifacts import (
    ARCHIVE_NAME,
    check_files,
    delete_artifact_files,
    fetch_artifact,
    publish_artifact,
)
from atoll.files.base import FileStore
from atoll.files.local import LocalFileStore
from atoll.testing.memory import MemoryMetadataStore
from atoll.testing.memory_files import MemoryFileStore

SPECS = [
    FileSpec(name="train.csv", required=True, max_mb=1),
    FileSpec(name="notes.txt", required=False),
    FileSpec(name="extra.bin", required=False),
]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _b3(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    d = tmp_path / "src"
    d.mkdir()
    (d / "train.csv").write_bytes(b"a,b\n1,2\n")
    (d / "extra.bin").write_bytes(os.urandom(1000))
    return d


@pytest.fixture
def meta() -> MemoryMetadataStore:
    return MemoryMetadataStore()


@pytest.fixture(params=["memory", "local"])
def files(request: pytest.FixtureRequest, tmp_path: Path) -> FileStore:
    if request.param == "memory":
        return MemoryFileStore()
    return LocalFileStore(tmp_path / "store")


def _all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# check_files


def test_check_lists_the_declared_files(src: Path) -> None:
    assert [p.name for p in check_files(SPECS, src, compress=False)] == ["extra.bin", "train.csv"]


def test_undeclared_files_are_refused_when_the_model_declares_files(src: Path) -> None:
    (src / "unexpected.txt").write_text("?")
    with pytest.raises(ValidationError, match="unexpected.txt is not declared"):
        check_files(SPECS, src, compress=False)
    assert len(check_files([], src, compress=False)) == 3  # no schema: anything goes


def test_symbolic_links_are_refused_unless_followed(src: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("root:x:0:0")
    (src / "notes.txt").symlink_to(outside)
    for compress in (False, True):
        with pytest.raises(ValidationError, match="symbolic link.*--follow-symlinks"):
            check_files(SPECS, src, compress=compress)
    assert "notes.txt" in [p.name for p in check_files(SPECS, src, compress=False, follow_symlinks=True)]
    (src / "notes.txt").unlink()
    (src / "sub").mkdir()
    (src / "sub" / "passwd").symlink_to(outside)  # inside a --compress archive too
    with pytest.raises(ValidationError, match="symbolic link"):
        check_files(SPECS, src, compress=True)
    (src / "sub" / "passwd").unlink()
    (src / "sub" / "dir").symlink_to(tmp_path)
    with pytest.raises(ValidationError, match="link to a directory"):
        check_files(SPECS, src, compress=True, follow_symlinks=True)


def test_a_followed_link_stores_the_file_it_points_to(src: Path, tmp_path: Path, meta, files) -> None:
    target = tmp_path / "real-notes.txt"
    target.write_bytes(b"notes")
    (src / "notes.txt").symlink_to(target)
    with pytest.raises(ValidationError):
        publish_artifact(meta, files, Dataset(name="d0", model="m"), src, SPECS)
    assert meta.list(Dataset) == [] and files.list("") == []
    record = publish_artifact(meta, files, Dataset(name="d1", model="m"), src, SPECS, compress=True,
                              follow_symlinks=True)
    notes = next(f for f in record.files if f.name == "notes.txt")
    assert notes.blake3 == _b3(b"notes") and notes.size == 5


def test_missing_required_file_is_named(src: Path) -> None:
    (src / "train.csv").unlink()
    with pytest.raises(ValidationError, match="required file missing from .*: train.csv") as info:
        check_files(SPECS, src, compress=False)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_file_over_max_mb_names_file_size_and_limit(src: Path) -> None:
    (src / "train.csv").write_bytes(b"x" * (1024 * 1024 + 1))
    with pytest.raises(ValidationError) as info:
        check_files(SPECS, src, compress=False)
    message = str(info.value)
    assert "train.csv" in message and "1.00 MB (1048577 bytes)" in message and "1 MB limit" in message
    assert "\n" not in message


def test_subdirectory_refused_unless_compressed(src: Path) -> None:
    (src / "images").mkdir()
    (src / "images" / "a.png").write_bytes(b"png")
    with pytest.raises(ValidationError, match="images is a directory"):
        check_files(SPECS, src, compress=False)
    names = [p.relative_to(src).as_posix() for p in check_files(SPECS, src, compress=True)]
    assert names == ["extra.bin", "images/a.png", "train.csv"]


def test_missing_or_non_directory_source_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such directory"):
        check_files([], tmp_path / "nope", compress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotFoundError, match="not a directory"):
        check_files([], tmp_path / "file", compress=False)


def test_empty_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no files to store"):
        check_files([], tmp_path, compress=False)


# publish + fetch


def test_publish_then_fetch_round_trip(meta: MemoryMetadataStore, files: FileStore, src: Path, tmp_path: Path) -> None:
    record = publish_artifact(meta, files, Dataset(name="d1", model="iris"), src, SPECS)
    assert record.stored and not record.compressed and record.revision == 1
    assert record.store_key is not None and record.store_key.startswith("datasets/iris/d1/")
    assert {f.name: f.blake3 for f in record.files} == {  # BLAKE3 by default
        "extra.bin": _b3((src / "extra.bin").read_bytes()),
        "train.csv": _b3(b"a,b\n1,2\n"),
    }
    assert meta.get(Dataset, "d1", "iris") == record
    assert sorted(files.list("datasets/iris/d1/")) == [record.store_key + "extra.bin", record.store_key + "train.csv"]

    dest = fetch_artifact(files, record, tmp_path / "staged" / "iris.d1")
    assert (dest / "train.csv").read_bytes() == b"a,b\n1,2\n"
    assert (dest / "extra.bin").read_bytes() == (src / "extra.bin").read_bytes()
    for path in _all_files(dest):
        assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def test_model_versions_go_under_versions(meta: MemoryMetadataStore, src: Path) -> None:
    files = MemoryFileStore()
    record = publish_artifact(meta, files, ModelVersion(name="v1", model="iris"), src, SPECS)
    assert record.store_key is not None and record.store_key.startswith("versions/iris/v1/")
    assert all(k.startswith("versions/iris/v1/") for k in files.list())


def test_compress_round_trip_with_subdirectories(
    meta: MemoryMetadataStore, files: FileStore, src: Path, tmp_path: Path
) -> None:
    (src / "images" / "deep").mkdir(parents=True)
    (src / "images" / "deep" / "a.png").write_bytes(b"\x89PNG" * 100)
    record = publish_artifact(meta, files, Dataset(name="d1", model="iris"), src, SPECS, compress=True)
    assert record.compressed and record.store_key is not None and record.store_key.endswith("/" + ARCHIVE_NAME)
    assert files.list() == [record.store_key]
    assert sorted(f.name for f in record.files) == ["extra.bin", "images/deep/a.png", "train.csv"]
    dest = fetch_artifact(files, record, tmp_path / "out")
    assert (dest / "images" / "deep" / "a.png").read_bytes() == b"\x89PNG" * 100
    assert (dest / "extra.bin").read_bytes() == (src / "extra.bin").read_bytes()
    assert sorted(p.relative_to(dest).as_posix() for p in _all_files(dest)) == [
        "extra.bin", "images/deep/a.png", "train.csv"
    ]


def test_tampered_stored_file_is_caught_and_partial_dest_removed(
    meta: MemoryMetadataStore, src: Path, tmp_path: Path
) -> None:
    files = LocalFileStore(tmp_path / "store")
    record = publish_artifact(meta, files, Dataset(name="d1", model="iris"), src, SPECS)
    stored = tmp_path / "store" / str(record.store_key) / "train.csv"
    stored.write_bytes(b"a,b\n6,6\n")  # same size, other bytes
    dest = tmp_path / "out"
    with pytest.raises(ValidationError, match="checksum mismatch for train.csv"):
        fetch_artifact(files, record, dest)
    assert not dest.exists()


def test_tampered_archive_is_caught(meta: MemoryMetadataStore, src: Path, tmp_path: Path) -> None:
    files = MemoryFileStore()
    record = publish_artifact(meta, files, Dataset(name="d1", model="iris"), src, SPECS, compress=True)
    key = str(record.store_key)
    data = bytearray(files.objects[key])
    data[len(data) // 2] ^= 0xFF
    files.objects[key] = bytes(data)
    with pytest.raises(ValidationError, match="checksum mismatch for"):
        fetch_artifact(files, record, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("algorithm", ["blake3", "sha256"])
def test_an_archive_member_is_checked_with_its_recorded_algorithm(
    meta: MemoryMetadataStore, src: Path, tmp_path: Path, algorithm: str
) -> None:
    files = MemoryFileStore()
    record = publish_artifact(meta, files, Dataset(name="d1", model="iris"), src, SPECS, compress=True,
                              digest=algorithm)
    train = next(f for f in record.files if f.name == "train.csv")
    assert (train.algorithm, train.digest) == (algorithm, {"blake3": _b3, "sha256": _sha}[algorithm](b"a,b\n1,2\n"))
    fetch_artifact(files, record, tmp_path / "ok")
    (src / "train.csv").write_bytes(b"a,b\n1,3\n")  # one byte other: a valid archive of other bytes
    other = publish_artifact(meta, files, Dataset(name="d2", model="iris"), src, SPECS, compress=True)
    files.objects[str(record.store_key)] = files.objects[str(other.store_key)]
    with pytest.raises(ValidationError, match=f"checksum mismatch for train.csv: .*[(]{algorithm} "):
        fetch_artifact(files, record, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_fetch_into_an_existing_directory_removes_only_its_own_files_on_failure(
    meta: MemoryMetadataStore, src: Path, tmp_path: Path
) -> None:
    files = MemoryFileStore()
    record = publish_artifact(meta, files, Dataset(name="d1", model="iris"), src, SPECS)
    files.objects[str(record.store_key) + "train.csv"] = b"tampered"
    dest = tmp_path / "existing"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep me")
    with pytest.raises(ValidationError, match="checksum mismatch for train.csv"):
        fetch_artifact(files, record, dest)
    assert [p.name for p in dest.iterdir()] == ["mine.txt"]


def test_fetch_of_an_unstored_record_is_not_found(meta: MemoryMetadataStore, src: Path, tmp_path: Path) -> None:
    record = publish_artifact(meta, MemoryFileStore(), Dataset(name="d1", model="iris"), src, SPECS, skip_upload=True)
    with pytest.raises(NotFoundError, match="no stored files"):
        fetch_artifact(MemoryFileStore(), record, tmp_path / "out")


def test_duplicate_name_leaves_existing_files_untouched(
    meta: MemoryMetadataStore, files: FileStore, src: Path, tmp_path: Path
) -> None:
    first = publish_artifact(meta, files, Dataset(name="d1", model="iris"), src, SPECS)
    before = {k: _download(files, k, tmp_path) for k in files.list()}
    (src / "train.csv").write_bytes(b"other,data\n")
    with pytest.raises(AlreadyExistsError, match="already exists"):
        publish_artifact(meta, files, Dataset(name="d1", model="iris"), src, SPECS)
    assert {k: _download(files, k, tmp_path) for k in files.list()} == before
    assert meta.get(Dataset, "d1", "iris") == first
    fetch_artifact(files, first, tmp_path / "still-good")


def _download(files: FileStore, key: str, tmp_path: Path) -> bytes:
    out = tmp_path / "dl" / key
    files.download(key, out)
    return out.read_bytes()


class _FailingSecondUpload(MemoryFileStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def upload(self, local_path: Path, key: str) -> None:
        self.calls += 1
        if self.calls == 2:
            super().upload(local_path, key)  # the bytes land, then the store fails
            raise BackendError("file store refused the upload")
        super().upload(local_path, key)


class _LocalFailingSecondUpload(LocalFileStore):
    calls = 0

    def upload(self, local_path: Path, key: str) -> None:
        self.calls += 1
        if self.calls == 2:
            raise BackendError("file store refused the upload")
        super().upload(local_path, key)


@pytest.mark.parametrize("kind", ["memory", "local"])
def test_upload_failing_half_way_leaves_no_record_and_no_files(
    meta: MemoryMetadataStore, src: Path, tmp_path: Path, kind: str
) -> None:
    files: FileStore = _FailingSecondUpload() if kind == "memory" else _LocalFailingSecondUpload(tmp_path / "store")
    with pytest.raises(BackendError, match="refused"):
        publish_artifact(meta, files, Dataset(name="d1", model="iris"), src, SPECS)
    assert files.list() == []
    assert not meta.exists(Dataset, "d1", "iris")
    if kind == "local":
        assert _all_files(tmp_path / "store") == []


def test_record_failure_removes_uploaded_files(meta: MemoryMetadataStore, src: Path) -> None:
    class _RefusingStore(MemoryMetadataStore):
        def create(self, record):  # type: ignore[no-untyped-def]
            raise BackendError("database is down")

    files = MemoryFileStore()
    with pytest.raises(BackendError, match="database is down"):
        publish_artifact(_RefusingStore(), files, Dataset(name="d1", model="iris"), src, SPECS, compress=True)
    assert files.list() == []


def test_interrupt_during_upload_rolls_back(meta: MemoryMetadataStore, src: Path) -> None:
    class _Interrupted(MemoryFileStore):
        def upload(self, local_path: Path, key: str) -> None:
            super().upload(local_path, key)
            if len(self.objects) == 2:
                raise KeyboardInterrupt

    files = _Interrupted()
    with pytest.raises(KeyboardInterrupt):
        publish_artifact(meta, files, Dataset(name="d1", model="iris"), src, SPECS)
    assert files.list() == [] and not meta.exists(Dataset, "d1", "iris")


def test_skip_upload_records_hashes_only(meta: MemoryMetadataStore, src: Path) -> None:
    files = MemoryFileStore()
    record = publish_artifact(meta, files, Dataset(name="d1", model="iris"), src, SPECS, skip_upload=True)
    assert record.stored is False and record.store_key is None
    assert {f.name: (f.size, f.blake3) for f in record.files}["train.csv"] == (8, _b3(b"a,b\n1,2\n"))
    assert files.list() == []
    assert meta.get(Dataset, "d1", "iris").stored is False


def test_check_failure_uploads_nothing_and_records_nothing(meta: MemoryMetadataStore, src: Path) -> None:
    (src / "train.csv").unlink()
    files = MemoryFileStore()
    with pytest.raises(ValidationError):
        publish_artifact(meta, files, Dataset(name="d1", model="iris"), src, SPECS)
    assert files.list() == [] and not meta.exists(Dataset, "d1", "iris")


def test_replace_swaps_files_and_removes_the_old_ones(
    meta: MemoryMetadataStore, files: FileStore, src: Path, tmp_path: Path
) -> None:
    first = publish_artifact(meta, files, Dataset(name="d1", model="iris"), src, SPECS)
    (src / "train.csv").write_bytes(b"new,data\n")
    second = publish_artifact(meta, files, Dataset(name="d1", model="iris"), src, SPECS, replace=True)
    assert second.revision == first.revision + 1 and second.created_at == first.created_at
    assert second.store_key != first.store_key
    assert all(k.startswith(str(second.store_key)) for k in files.list())
    dest = fetch_artifact(files, second, tmp_path / "out")
    assert (dest / "train.csv").read_bytes() == b"new,data\n"


def test_replace_without_existing_record_creates(meta: MemoryMetadataStore, src: Path) -> None:
    record = publish_artifact(meta, MemoryFileStore(), Dataset(name="d1", model="iris"), src, SPECS, replace=True)
    assert record.revision == 1


def test_delete_artifact_files(meta: MemoryMetadataStore, files: FileStore, src: Path) -> None:
    plain = publish_artifact(meta, files, Dataset(name="d1", model="iris"), src, SPECS)
    packed = publish_artifact(meta, files, Dataset(name="d2", model="iris"), src, SPECS, compress=True)
    assert delete_artifact_files(files, plain) == 2
    assert files.list() == [packed.store_key]
    assert delete_artifact_files(files, packed) == 1
    assert files.list() == []
    assert delete_artifact_files(files, packed) == 0  # again: nothing left, no error


def test_losing_a_race_on_the_name_keeps_the_winners_files(
    meta: MemoryMetadataStore, files: FileStore, src: Path, tmp_path: Path
) -> None:
    winner = publish_artifact(meta, files, Dataset(name="d1", model="iris"), src, SPECS)
    winner_keys = files.list()

    class _StaleReads(MemoryMetadataStore):
        """Answers "not found" as if the winner wrote just after our check."""

        def get(self, kind, name, scope=""):  # type: ignore[no-untyped-def]
            raise NotFoundError("not yet")

        def create(self, record):  # type: ignore[no-untyped-def]
            return meta.create(record)

    (src / "train.csv").write_bytes(b"loser,data\n")
    with pytest.raises(AlreadyExistsError):
        publish_artifact(_StaleReads(), files, Dataset(name="d1", model="iris"), src, SPECS)
    assert files.list() == winner_keys
    dest = fetch_artifact(files, winner, tmp_path / "out")
    assert (dest / "train.csv").read_bytes() == b"a,b\n1,2\n"
