"""The one-pass copy and digest (BLAKE3 or sha256) of the local store: what is hashed is what the
copy holds, and a file that fails verification is never visible under its name."""

from __future__ import annotations

import errno
import hashlib
import itertools
import mmap
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import blake3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atoll.domain.records import Dataset, FileSpec
from atoll.errors import BackendError, UsageError, ValidationError
from atoll.files import copy_hash
from atoll.files.artifacts import fetch_artifact, publish_artifact
from atoll.files.lightweight import LightweightFileStore
from atoll.files.local import TMP_PREFIX, LocalFileStore
from atoll.testing.memory import MemoryMetadataStore

SMALL_CHUNK = 64 * 1024  # a multiple of the mmap granularity: many chunks without a big file


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(copy_hash, "CHUNK", SMALL_CHUNK)
    return SMALL_CHUNK


@pytest.fixture(params=["blake3", "sha256"])
def algorithm(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(5 * SMALL_CHUNK + 12345))  # several chunks and a partial last one
    return path


def _expect(path: Path, algorithm: str = "sha256") -> tuple[int, str]:
    data = path.read_bytes()
    return len(data), (blake3.blake3(data) if algorithm == "blake3" else hashlib.sha256(data)).hexdigest()


def test_a_large_file_is_copied_and_hashed_in_chunks(small_chunks: int, blob: Path, tmp_path: Path,
                                                     algorithm: str) -> None:
    target = tmp_path / "copy"
    assert copy_hash.copy_hashing(blob, target, algorithm) == _expect(blob, algorithm)
    assert target.read_bytes() == blob.read_bytes()


def test_the_default_chunk_also_copies_a_file_over_one_chunk(tmp_path: Path, algorithm: str) -> None:
    source = tmp_path / "big"
    source.write_bytes(os.urandom(copy_hash.CHUNK + 4097))
    assert copy_hash.copy_hashing(source, tmp_path / "copy", algorithm) == _expect(source, algorithm)
    assert (tmp_path / "copy").read_bytes() == source.read_bytes()


@pytest.mark.parametrize("size", [0, 1, SMALL_CHUNK])
def test_empty_tiny_and_exactly_one_chunk(small_chunks: int, tmp_path: Path, size: int, algorithm: str) -> None:
    source = tmp_path / "f"
    source.write_bytes(os.urandom(size))
    assert copy_hash.copy_hashing(source, tmp_path / "copy", algorithm) == _expect(source, algorithm)


def test_an_unknown_algorithm_is_refused_before_anything_is_written(blob: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown file digest 'md5': use blake3 or sha256"):
        copy_hash.copy_hashing(blob, tmp_path / "copy", "md5")
    assert not (tmp_path / "copy").exists()


def _refuse(err: int) -> Callable[..., int]:
    def refuse(*_args: object) -> int:
        raise OSError(err, os.strerror(err))
    return refuse


@pytest.mark.parametrize("without", ["copy_file_range", "copy_file_range+sendfile"])
def test_without_kernel_copies_the_copy_falls_back(small_chunks: int, blob: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, without: str) -> None:
    monkeypatch.setattr(os, "copy_file_range", _refuse(errno.EXDEV), raising=False)
    if "sendfile" in without:
        monkeypatch.setattr(os, "sendfile", _refuse(errno.EINVAL))
    assert copy_hash.copy_hashing(blob, tmp_path / "copy", "blake3") == _expect(blob, "blake3")
    assert (tmp_path / "copy").read_bytes() == blob.read_bytes()


def test_a_kernel_copy_that_copies_nothing_falls_back(small_chunks: int, blob: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "copy_file_range", lambda *_a: 0, raising=False)  # FUSE/overlay behaviour
    assert copy_hash.copy_hashing(blob, tmp_path / "copy", "blake3") == _expect(blob, "blake3")


def test_without_mmap_the_copy_is_read_back(small_chunks: int, blob: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, algorithm: str) -> None:
    def no_mmap(*_args: object, **_kw: object) -> mmap.mmap:
        raise OSError(errno.ENODEV, "no mmap here")

    monkeypatch.setattr(mmap, "mmap", no_mmap)
    assert copy_hash.copy_hashing(blob, tmp_path / "copy", algorithm) == _expect(blob, algorithm)


def test_a_copy_failing_half_way_raises_and_stops_the_hasher(small_chunks: int, blob: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalFileStore(tmp_path / "store")
    store.upload(blob, "k/blob")
    real = os.sendfile
    calls: list[int] = []

    def failing(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        calls.append(count)
        if len(calls) == 3:
            raise OSError(errno.EIO, "disk on fire")
        return real(out_fd, in_fd, offset, count)

    monkeypatch.setattr(os, "copy_file_range", _refuse(errno.ENOSYS), raising=False)
    monkeypatch.setattr(os, "sendfile", failing)
    with pytest.raises(OSError, match="disk on fire"):
        copy_hash.copy_hashing(blob, tmp_path / "copy", "blake3")
    calls.clear()
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BackendError, match="disk on fire"):
        store.download_verified("k/blob", out / "blob", lambda size, digest: None, algorithm="blake3")
    assert list(out.iterdir()) == []  # the temporary is gone, nothing appeared


def test_download_verified_shows_the_file_only_once_accepted(small_chunks: int, blob: Path, tmp_path: Path,
                                                             algorithm: str) -> None:
    store = LocalFileStore(tmp_path / "store")
    store.upload(blob, "k/blob")
    out = tmp_path / "out"
    out.mkdir()
    seen: list[tuple[int, str, bool, list[str]]] = []

    def verify(size: int, digest: str) -> None:  # runs after the whole copy, before the rename
        seen.append((size, digest, (out / "blob").exists(), [p.name for p in out.iterdir()]))

    store.download_verified("k/blob", out / "blob", verify, algorithm=algorithm)
    (size, digest, visible, names), = seen
    assert (size, digest) == _expect(blob, algorithm) and not visible
    assert len(names) == 1 and names[0].startswith(TMP_PREFIX)  # only the hidden temporary, complete
    assert (out / "blob").read_bytes() == blob.read_bytes()

    def refuse(size: int, digest: str) -> None:
        raise ValidationError("no")

    with pytest.raises(ValidationError):
        store.download_verified("k/blob", out / "again", refuse, algorithm=algorithm)
    assert sorted(p.name for p in out.iterdir()) == ["blob"]


@pytest.mark.parametrize("wrapped", [False, True])
@pytest.mark.parametrize("where", [0, "middle", -1])
def test_a_flipped_byte_is_caught_on_fetch(small_chunks: int, blob: Path, tmp_path: Path, wrapped: bool,
                                           where: int | str, algorithm: str) -> None:
    meta = MemoryMetadataStore()
    local = LocalFileStore(tmp_path / "store")
    files = LightweightFileStore(local, meta, digest=algorithm) if wrapped else local
    src = tmp_path / "src"
    src.mkdir()
    blob.rename(src / "blob.bin")
    record = publish_artifact(meta, files, Dataset(name="d", model="m"), src, [FileSpec(name="blob.bin")],
                              digest=None if wrapped else algorithm)
    # the bytes stored, hashed while copied, with the store's algorithm (or the one asked)
    assert (record.files[0].algorithm, record.files[0].digest) == (algorithm, _expect(src / "blob.bin", algorithm)[1])
    fetch_artifact(files, record, tmp_path / "ok")
    assert (tmp_path / "ok" / "blob.bin").read_bytes() == (src / "blob.bin").read_bytes()
    stored = tmp_path / "store" / str(record.store_key) / "blob.bin"
    data = bytearray(stored.read_bytes())
    data[len(data) // 2 if where == "middle" else int(where)] ^= 0x01
    stored.write_bytes(bytes(data))
    with pytest.raises(ValidationError, match=f"checksum mismatch for blob.bin: .*[(]{algorithm} "):
        fetch_artifact(files, record, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=3 * SMALL_CHUNK + 100), where=st.floats(0, 1, exclude_max=True),
       bit=st.integers(0, 7), algorithm=st.sampled_from(["blake3", "sha256"]))
def test_any_flipped_bit_of_any_file_is_refused(small_chunks: int, tmp_path: Path, data: bytes, where: float,
                                                bit: int, algorithm: str) -> None:
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        root = Path(tmp)
        (root / "src").mkdir()
        (root / "src" / "f.bin").write_bytes(data)
        store = LocalFileStore(root / "store", fsync=False)
        record = publish_artifact(MemoryMetadataStore(), store, Dataset(name="d", model="m"), root / "src", [],
                                  digest=algorithm)
        stored = root / "store" / str(record.store_key) / "f.bin"
        flipped = bytearray(data)
        flipped[int(where * len(data))] ^= 1 << bit
        stored.write_bytes(bytes(flipped))
        with pytest.raises(ValidationError, match=f"checksum mismatch for f.bin: .*[(]{algorithm} "):
            fetch_artifact(store, record, root / "out")
        assert not (root / "out").exists()


def test_a_file_that_cannot_be_mapped_is_hashed_by_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           algorithm: str) -> None:
    from atoll.files import digest

    class NoMmap:
        def __init__(self, real: object) -> None:
            self.real = real

        def update_mmap(self, _path: str) -> None:
            raise OSError(errno.ENODEV, "no mmap here")

        def __getattr__(self, name: str) -> object:
            return getattr(self.real, name)

    real_new_hash = digest.new_hash
    monkeypatch.setattr(digest, "new_hash", lambda *a, **kw: NoMmap(real_new_hash(*a, **kw)))
    path = tmp_path / "f"
    path.write_bytes(os.urandom(3 * (1 << 20) + 5))
    assert digest.digest_file(path, algorithm) == _expect(path, algorithm)[1]


def test_writeback_starts_each_chunk_on_linux_and_changes_nothing_copied(
    small_chunks: int, blob: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[int, int]] = []
    real = copy_hash._writeback_starter()
    if real is None:
        pytest.skip("sync_file_range is Linux's")

    def spy(fd: int, offset: int, size: int) -> object:
        started.append((offset, size))
        return real(fd, offset, size)

    monkeypatch.setattr(copy_hash, "_writeback_starter", lambda: spy)
    assert copy_hash.copy_hashing(blob, tmp_path / "copy", "blake3", writeback=True) == _expect(blob, "blake3")
    assert (tmp_path / "copy").read_bytes() == blob.read_bytes()
    # every byte was handed to writeback once, in order, chunk by chunk as it was copied
    assert len(started) > 1 and started[0][0] == 0
    assert all(off == prev + n for (prev, n), (off, _) in itertools.pairwise(started))
    assert sum(n for _, n in started) == blob.stat().st_size
