"""Artifactory and Nexus file stores, against the stand-in servers in atoll.testing.

The servers speak each product's documented REST subset over real HTTP on
127.0.0.1 (no Artifactory or Nexus can run here); the stores are the real
code a user runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from atoll.errors import BackendError, BackendUnavailableError, NotFoundError
from atoll.files.artifactory import ArtifactoryFileStore
from atoll.files.base import FileStore, get_file_store
from atoll.testing._repository_server import RepositoryServer
from atoll.testing.artifactory_server import ArtifactoryServer
from atoll.testing.conformance.files import FileStoreConformance
from atoll.testing.nexus_server import NexusServer

USERS = {"ann": "s3cret"}
FAST = {"backoff": 0.01, "timeout": 5}


def _open(kind: str, server: RepositoryServer, **options: object) -> FileStore:
    base = server.base_url
    settings: dict[str, object] = {"url": base, "repository": "atoll", "user": "ann", "password": "s3cret"}
    settings.update(FAST)
    settings.update(options)
    return get_file_store(kind, **settings)


@pytest.fixture
def artifactory() -> Iterator[ArtifactoryServer]:
    with ArtifactoryServer(users=USERS, tokens=("AKCp-key",)) as server:
        yield server


@pytest.fixture
def nexus() -> Iterator[NexusServer]:
    with NexusServer(users=USERS, tokens=("nx-token",)) as server:
        yield server


class TestArtifactoryFileStore(FileStoreConformance):
    @pytest.fixture
    def store(self, artifactory: ArtifactoryServer) -> Iterator[FileStore]:
        store = _open("artifactory", artifactory)
        yield store
        store.close()


class TestNexusFileStore(FileStoreConformance):
    @pytest.fixture
    def store(self, nexus: NexusServer) -> Iterator[FileStore]:
        store = _open("nexus", nexus)
        yield store
        store.close()


@pytest.fixture(params=["artifactory", "nexus"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, RepositoryServer]]:
    server_cls = ArtifactoryServer if request.param == "artifactory" else NexusServer
    with server_cls(users=USERS, tokens=("AKCp-key", "nx-token")) as server:
        yield request.param, server


def _file(tmp_path: Path, data: bytes, name: str = "f") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- wire details --------------------------------------------------------------


def test_artifactory_deploy_sends_checksums_and_lists_with_the_storage_api(
    artifactory: ArtifactoryServer, tmp_path: Path
) -> None:
    store = _open("artifactory", artifactory, prefix="team")
    data = b"model bytes" * 1000
    store.upload(_file(tmp_path, data), "models/iris/v1/clf.pkl")
    assert artifactory.files[("atoll", "team/models/iris/v1/clf.pkl")] == data
    methods = [(m, p.split("?")[0]) for m, p, _ in artifactory.requests]
    assert ("PUT", "/artifactory/atoll/team/models/iris/v1/clf.pkl") in methods
    assert store.list("models/") == ["models/iris/v1/clf.pkl"]
    assert any(p.startswith("/artifactory/api/storage/atoll/team/models?") and "deep=1" in p
               for _, p, _ in artifactory.requests)


def test_artifactory_checksum_deploy_sends_no_bytes_for_known_content(
    artifactory: ArtifactoryServer, tmp_path: Path
) -> None:
    store = _open("artifactory", artifactory)
    src = _file(tmp_path, b"x" * 100_000)
    store.upload(src, "a/first")
    artifactory.requests.clear()
    store.upload(src, "b/second")
    assert [(m, n) for m, _, n in artifactory.requests] == [("PUT", 0)]  # one body-less PUT
    assert artifactory.files[("atoll", "b/second")] == b"x" * 100_000


def test_artifactory_refuses_a_body_that_does_not_match_its_checksums(
    artifactory: ArtifactoryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If bytes change in flight the server stores nothing and the upload fails."""
    from atoll.files import _http_store

    src = _file(tmp_path, b"original")
    real = _http_store._chunks
    monkeypatch.setattr(_http_store, "_chunks", lambda path: iter([b"tampered"]))
    store = _open("artifactory", artifactory)
    with pytest.raises(BackendError, match=r"artifactory repository 'atoll' at .* answered HTTP 409"):
        store.upload(src, "k")
    monkeypatch.setattr(_http_store, "_chunks", real)
    assert store.list() == []


def test_artifactory_download_verifies_the_sha256(artifactory: ArtifactoryServer, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    store = _open("artifactory", artifactory)
    store.upload(_file(tmp_path, b"good bytes"), "k")
    from atoll.testing import artifactory_server

    real = artifactory_server._checksum_headers
    monkeypatch.setattr(
        artifactory_server, "_checksum_headers",
        lambda data: {**real(data), "X-Checksum-Sha256": hashlib.sha256(b"other").hexdigest()},
    )
    out = tmp_path / "out"
    with pytest.raises(BackendError, match="sha256 .* is not the stored"):
        store.download("k", out)
    assert not out.exists()


def test_artifactory_api_key_is_sent_as_its_header(artifactory: ArtifactoryServer, tmp_path: Path) -> None:
    store = _open("artifactory", artifactory, user="", password="AKCp-key")  # a chest with an empty user
    store.upload(_file(tmp_path, b"x"), "k")
    assert store.exists("k")


def test_nexus_lists_every_page(nexus: NexusServer, tmp_path: Path) -> None:
    store = _open("nexus", nexus)
    src = _file(tmp_path, b"x")
    keys = [f"ds/iris/d1/part-{i:02d}.csv" for i in range(25)] + ["other/file"]
    for key in keys:
        store.upload(src, key)
    assert store.list("ds/") == sorted(keys[:25])
    pages = [p for m, p, _ in nexus.requests if p.startswith("/service/rest/v1/assets")]
    assert len(pages) == 3 and "continuationToken=" in pages[-1]


def test_nexus_token_is_sent_as_bearer(nexus: NexusServer, tmp_path: Path) -> None:
    store = _open("nexus", nexus, user="api-key", password="nx-token")
    store.upload(_file(tmp_path, b"x"), "k")
    assert nexus.files[("atoll", "k")] == b"x"


# -- errors and faults, both backends ---------------------------------------------


def test_bad_credentials_are_one_line_naming_the_repository(
    served: tuple[str, RepositoryServer], tmp_path: Path
) -> None:
    kind, server = served
    store = _open(kind, server, password="wrong")
    with pytest.raises(BackendError) as info:
        store.upload(_file(tmp_path, b"x"), "k")
    assert str(info.value) == (
        f"cannot upload k: {kind} repository 'atoll' at {server.base_url} "
        "refused the credentials (HTTP 401)"
    )
    assert "wrong" not in str(info.value)


def test_a_missing_repository_is_named(served: tuple[str, RepositoryServer], tmp_path: Path) -> None:
    kind, server = served
    store = _open(kind, server, repository="nope")
    with pytest.raises(BackendError, match=rf"^cannot upload k: {kind} repository 'nope' at .* does not exist"):
        store.upload(_file(tmp_path, b"x"), "k")


def test_5xx_answers_are_retried_then_succeed(served: tuple[str, RepositoryServer], tmp_path: Path) -> None:
    kind, server = served
    store = _open(kind, server)
    store.upload(_file(tmp_path, b"payload"), "k")
    server.faults.fail_next(2, status=503)
    store.download("k", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"payload"
    server.faults.fail_next(2, status=502)
    assert store.list() == ["k"]


def test_4xx_answers_are_not_retried(served: tuple[str, RepositoryServer], tmp_path: Path) -> None:
    kind, server = served
    store = _open(kind, server)
    server.requests.clear()
    with pytest.raises(NotFoundError, match=rf"no file 'missing' in {kind} repository 'atoll'"):
        store.download("missing", tmp_path / "out")
    assert len(server.requests) == 1


def test_persistent_5xx_gives_up_after_the_bounded_attempts(
    served: tuple[str, RepositoryServer], tmp_path: Path
) -> None:
    kind, server = served
    store = _open(kind, server, max_attempts=3)
    server.faults.fail_next(10, status=500)
    server.requests.clear()
    with pytest.raises(BackendError, match=r"answered HTTP 500 \(after 3 attempts\)"):
        store.upload(_file(tmp_path, b"x"), "k")
    assert len(server.requests) == 3
    server.faults.reset()
    assert store.list() == []  # nothing recorded by the failed upload


def test_a_truncated_download_is_retried_and_never_left_behind(
    served: tuple[str, RepositoryServer], tmp_path: Path
) -> None:
    kind, server = served
    store = _open(kind, server, max_attempts=2)
    data = bytes(range(256)) * 4000
    store.upload(_file(tmp_path, data), "big")
    server.faults.truncate_next(1)
    store.download("big", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    server.faults.truncate_next(5)
    with pytest.raises(BackendUnavailableError, match="truncated"):
        store.download("big", tmp_path / "again")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "out"]


def test_a_slow_server_times_out_as_unavailable(served: tuple[str, RepositoryServer], tmp_path: Path) -> None:
    kind, server = served
    store = _open(kind, server, timeout=0.2, max_attempts=2)
    server.faults.slow = 1.0
    with pytest.raises(BackendUnavailableError, match=rf"{kind} repository 'atoll' at .* is unreachable"):
        store.exists("k")


def test_an_unreachable_server_is_unavailable(tmp_path: Path) -> None:
    with NexusServer() as server:
        url = server.url
    store = get_file_store("nexus", url=url, repository="atoll", max_attempts=2, backoff=0.01)
    with pytest.raises(BackendUnavailableError, match=r"is unreachable \(ConnectError, after 2 attempts\)"):
        store.list()


def test_settings_reach_the_store_from_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from atoll.backends import file_store_settings
    from atoll.config import load_config
    from atoll.testing.memory import MemoryMetadataStore

    monkeypatch.chdir(tmp_path)
    (tmp_path / "atoll.yaml").write_text(
        "file_store:\n  type: artifactory\n  url: repo.example.com/artifactory\n  repository: ml\n"
        "  use_ssl: true\n  check_certificate: false\n"
    )
    config = load_config(cwd=tmp_path, environ={"ATOLL_HOME": str(tmp_path / "home")})
    type_, options = file_store_settings(config, MemoryMetadataStore())
    assert type_ == "artifactory"
    store = get_file_store(type_, **options)
    assert isinstance(store, ArtifactoryFileStore)
    assert store.url == "https://repo.example.com/artifactory"
    assert store.repository == "ml"
