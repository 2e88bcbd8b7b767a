"""``migrate``: a laptop installation (SQLite + local files) copied to other stores.

Fast, in-process: the target is MongoDB on the mongomock stand-in plus the
Artifactory stand-in server (real HTTP on 127.0.0.1). The end-to-end run
onto real PostgreSQL + S3, with a deployment serving the migrated version,
is tests/e2e/test_migrate_iris.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atoll.api import datasets, models, tchests, versions
from atoll.api.context import AtollContext
from atoll.api.migrate import migrate
from atoll.config import Config
from atoll.domain.records import Dataset, ModelVersion
from atoll.errors import BackendError, UsageError
from atoll.files.artifacts import fetch_artifact
from atoll.testing._repository_server import Answer
from atoll.testing.artifactory_server import ArtifactoryServer
from atoll.testing.mongo import drop_server

FILTER = '{"details.metrics.acc": {"$gte": 0.9}}'


@pytest.fixture
def laptop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AtollContext]:
    """The embedded default (SQLite + local files in ATOLL_HOME) with a model, datasets and versions."""
    monkeypatch.setenv("ATOLL_HOME", str(tmp_path / "home"))
    ctx = AtollContext(config=Config(), cwd=tmp_path)
    models.new_model(ctx, "iris", model_files=[{"name": "clf.pkl", "required": True}, {"name": "notes.txt"}])
    for i, acc in enumerate([0.95, 0.5, 0.99]):
        src = tmp_path / f"v{i}"
        src.mkdir()
        (src / "clf.pkl").write_bytes(f"model {i} ".encode() * 5000)
        (src / "notes.txt").write_text(f"version {i}")
        versions.new_version(ctx, "iris", f"v{i}", details={"metrics": {"acc": acc}}, path=src,
                             compress=(i == 1), lightweight=(i == 2))
    data = tmp_path / "d"
    data.mkdir()
    (data / "measures.csv").write_text("a,b\n1,2\n")
    datasets.new_dataset(ctx, "iris", "d1", path=data)
    tchests.new_tchest(ctx, "artifactory", secret="s3cret", user="ann")
    yield ctx
    ctx.close()


@pytest.fixture
def artifactory() -> Iterator[ArtifactoryServer]:
    with ArtifactoryServer(users={"ann": "s3cret"}) as server:
        yield server


@pytest.fixture
def mongo_url(request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"migrate-{id(request)}"
    yield f"mongomock://{name}/atoll"
    drop_server(name)


def _to_files(server: ArtifactoryServer) -> dict[str, Any]:
    return {"type": "artifactory", "url": server.base_url, "repository": "atoll", "tchest": "artifactory"}


def _migrated_context(laptop: AtollContext, mongo_url: str, server: ArtifactoryServer) -> AtollContext:
    config = Config.model_validate({"metadata": {"url": mongo_url}, "file_store": _to_files(server)})
    return AtollContext(config=config, cwd=laptop.cwd)


def _answers(ctx: AtollContext) -> list[str]:
    import json

    return [v.name for v in versions.list_versions(ctx, "iris", filter=json.loads(FILTER))]


def test_everything_moves_to_mongodb_and_artifactory_and_answers_the_same(
    laptop: AtollContext, mongo_url: str, artifactory: ArtifactoryServer, tmp_path: Path
) -> None:
    before = _answers(laptop)
    assert before == ["v0", "v2"]
    report = migrate(laptop, mongo_url, _to_files(artifactory))
    assert report.verified and not report.resumed
    assert report.records == {"model": 1, "project": 0, "bvers": 0, "ds": 1, "train": 0, "movers": 3,
                              "depl": 0, "tchest": 1, "apikey": 0}
    assert report.copied_files == report.files == 6  # v0: 2 files, v1: 1 archive, v2: 2 lightweight, d1: 1
    stored = {path for repo, path in artifactory.files}
    assert not any(p.startswith("lightweight/") for p in stored)  # lightweight files went to MongoDB

    moved = _migrated_context(laptop, mongo_url, artifactory)
    try:
        assert _answers(moved) == before
        assert moved.metadata.list_blobs("lightweight/") != []
        for record in [*moved.metadata.list(ModelVersion), *moved.metadata.list(Dataset)]:
            out = tmp_path / "fetched" / record.name
            fetch_artifact(moved.files, record, out)  # every sha256 checked against the record
            original = tmp_path / "orig" / record.name
            fetch_artifact(laptop.files, record, original)
            assert sorted(p.read_bytes() for p in out.rglob("*") if p.is_file()) == sorted(
                p.read_bytes() for p in original.rglob("*") if p.is_file())
        assert tchests.open_tchest(moved, "artifactory") == ("ann", "s3cret")  # still decryptable
    finally:
        moved.close()


def test_an_interrupted_migration_resumes_without_copying_again(
    laptop: AtollContext, mongo_url: str, artifactory: ArtifactoryServer
) -> None:
    puts_before_failure = 2  # then the target breaks down (503 until reset)
    original = artifactory.route
    calls = {"put": 0}

    def flaky(request: Any) -> Any:
        if request.method == "PUT" and not request.headers.get("X-Checksum-Deploy"):
            calls["put"] += 1
            if calls["put"] > puts_before_failure:
                return Answer(503, b"Service Unavailable")
        return original(request)

    artifactory.route = flaky  # type: ignore[method-assign]
    with pytest.raises(BackendError, match="answered HTTP 503"):
        migrate(laptop, mongo_url, _to_files(artifactory))
    artifactory.route = original  # type: ignore[method-assign]
    moved = _migrated_context(laptop, mongo_url, artifactory)
    try:
        assert moved.metadata.list(ModelVersion) == []  # files first, records last: no record yet
    finally:
        moved.close()

    copied_before = {path for _repo, path in artifactory.files}
    assert len(copied_before) == puts_before_failure
    artifactory.requests.clear()
    report = migrate(laptop, mongo_url, _to_files(artifactory))
    assert report.resumed and report.verified
    sent_again = [p for m, p, _ in artifactory.requests if m == "PUT" and p.split("/", 3)[3] in copied_before]
    assert sent_again == []
    assert 0 < report.copied_files < report.files
    moved = _migrated_context(laptop, mongo_url, artifactory)
    try:
        assert _answers(moved) == ["v0", "v2"]
    finally:
        moved.close()


def test_a_non_empty_target_is_refused_unless_forced(
    laptop: AtollContext, mongo_url: str, artifactory: ArtifactoryServer
) -> None:
    migrate(laptop, mongo_url, _to_files(artifactory))
    with pytest.raises(UsageError, match=r"target metadata store mongomock://.* is not empty \(1 model"):
        migrate(laptop, mongo_url, _to_files(artifactory))
    with pytest.raises(UsageError, match=r"target file store .* is not empty"):
        migrate(laptop, None, _to_files(artifactory))
    report = migrate(laptop, mongo_url, _to_files(artifactory), force=True)
    assert report.verified and report.records["movers"] == 3


def test_migrating_into_the_store_in_use_is_refused(laptop: AtollContext) -> None:
    with pytest.raises(UsageError, match="is the metadata store in use"):
        migrate(laptop, laptop.config.metadata_url)
    with pytest.raises(UsageError, match="say where to"):
        migrate(laptop)
