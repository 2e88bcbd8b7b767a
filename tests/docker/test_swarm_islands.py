"""The iris example end to end on swarm, with the ``db`` and ``files`` islands as the stores.

A user's session through the CLI (``python -m atoll.cli.main``): an
``ATOLL_HOME`` of its own whose ``atoll.yaml`` says ``container_manager.type:
swarm``, ``metadata.native: true`` and ``file_store.native: true``, a private
namespace (``atoll-s<pid><random>``: no collision with test_swarm.py nor
test_islands.py) and free ports. ``atoll isle db|files setup`` start the
PostgreSQL and S3 islands; model, dataset, project, build, training, a
deployment of 2 replicas reached through the router island, ``depl rm``, and
the islands are stopped. The records must live in PostgreSQL and the files in
S3, not in the embedded SQLite file nor the local file store, and nothing may
be left but the island volumes, which the fixture then removes by exact name
(with the overlay network and the project image).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import blake3
import pytest
import yaml
from test_swarm import EXAMPLE, post

from support.docker_cleanup import remove_by_name
from support.processes import free_port, processes_of

if TYPE_CHECKING:
    from atoll.config import Config
    from docker import DockerClient

pytestmark = pytest.mark.docker

CLF = '{"name": "clf.pkl", "required": true, "max_mb": 10}'
DATA = ['{"name": "measures.csv", "required": true}', '{"name": "species.csv", "required": true}']
ISLANDS = ("db", "files")


@dataclass
class Session:
    """One user's home, project copy and namespace; ``atoll(...)`` runs the CLI there."""

    client: DockerClient
    home: Path
    project_dir: Path
    namespace: str
    project: str
    router_port: int
    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    key: str = ""  # API key of the project (the router requires one)

    def atoll(self, *args: str, timeout: float = 120) -> Any:
        """Run ``atoll -o json ARGS``; return the parsed output (fails the test on a non-zero exit)."""
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "atoll.cli.main", "-o", "json", *args], capture_output=True, text=True,
            timeout=timeout, cwd=self.project_dir, env=self.env, check=False,
        )
        step = " ".join(args[:3] if args[0] == "isle" else args[:2])
        self.timings[step] = self.timings.get(step, 0) + time.monotonic() - started
        assert done.returncode == 0, f"atoll {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
        return json.loads(done.stdout) if done.stdout.strip() else None

    def config(self) -> Config:
        from atoll.config import load_config

        return load_config(cwd=self.project_dir, environ=self.env)

    @property
    def router_url(self) -> str:
        return f"http://127.0.0.1:{self.router_port}/predict?project={self.project}&deploy=svc"


def _owned(client: DockerClient, namespace: str) -> list[str]:
    """Every service, container, secret and volume of the namespace (by name prefix or label)."""
    prefix = f"{namespace}-"
    label = f"io.atoll.namespace={namespace}"
    found = [f"service {s.name}" for s in client.services.list() if s.name.startswith(prefix)]
    found += [f"container {c.name}" for c in client.containers.list(all=True) if c.name.startswith(prefix)]
    secrets = {s.name for s in client.secrets.list() if s.name.startswith(prefix)}
    secrets |= {s.name for s in client.secrets.list(filters={"label": label})}
    found += [f"secret {name}" for name in sorted(secrets)]
    volumes = {v.name for v in client.volumes.list() if v.name.startswith(prefix)}
    volumes |= {v.name for v in client.volumes.list(filters={"label": label})}
    found += [f"volume {name}" for name in sorted(volumes)]
    return found


def _remove_by_name(client: DockerClient, namespace: str, project: str) -> None:
    """Remove, by exact name, everything the session may have created (idempotent)."""
    remove_by_name(
        client,
        namespace,
        services=[f"{namespace}-isle-{i}" for i in ISLANDS] + [f"{namespace}-router", f"{namespace}-{project}-svc"],
        containers=[f"{namespace}-train-{project}-first"],
        volumes=[f"{namespace}-isle-{i}-data" for i in ISLANDS],
        images=[f"atoll/{project}:latest"],
    )


@pytest.fixture
def session(swarm_client: DockerClient, python_image: str, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    """A home configured for swarm + native islands, and the iris example copied next to it."""
    suffix = uuid.uuid4().hex[:4]
    namespace, project = f"atoll-s{os.getpid()}{suffix}", f"iris-{suffix}"
    home = tmp_path / "home"
    home.mkdir()
    router_port = free_port()
    (home / "atoll.yaml").write_text(yaml.safe_dump({
        "container_manager": {"type": "swarm", "namespace": namespace, "healthcheck": {"interval": 1},
                              "resource_profiles": {"isle": {"cpu_limit": 1, "memory_limit": 512}}},
        "metadata": {"native": True},
        "file_store": {"native": True},
        "islands": {"db_port": free_port(), "files_port": free_port(), "setup_timeout": 240},
        "router": {"port": router_port},
        "docker": {"python_image": python_image},
    }))
    project_dir = tmp_path / "iris"
    shutil.copytree(EXAMPLE, project_dir, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    # Only the home's atoll.yaml configures the CLI: no ATOLL_* variable of this process leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATOLL_")} | {"ATOLL_HOME": str(home)}
    monkeypatch.setenv("ATOLL_HOME", str(home))  # atoll.credentials finds the key of the chests there
    state = Session(swarm_client, home, project_dir, namespace, project, router_port, env)
    try:
        yield state
    finally:
        _remove_by_name(swarm_client, namespace, project)
        print("\nswarm + islands timings:", {k: round(v, 1) for k, v in state.timings.items()})
        left = _owned(swarm_client, namespace)
        strays = processes_of(home)
        assert left == [] and strays == [], f"left behind after cleanup: {left}, processes {strays}"


def test_iris_runs_on_swarm_with_its_records_in_the_db_island_and_its_files_in_the_files_island(
    session: Session,
) -> None:
    from atoll.backends import native_file_store_settings, native_metadata_url
    from atoll.domain.records import (
        Deployment,
        Model,
        ModelVersion,
        Project,
        TaskState,
        Training,
        TreasureChest,
    )
    from atoll.files.s3 import S3FileStore
    from atoll.metadata.base import get_metadata_store
    from atoll.metadata.sql import SqlMetadataStore

    s, proj = session, session.project
    started = time.monotonic()

    # The islands, set up as a user would; each answers healthy on its free port.
    for island in ISLANDS:  # the files island with a resource profile, as docker inspect shows
        status = s.atoll("isle", island, "setup", *(["--rp", "isle"] if island == "files" else []), timeout=300)
        assert (status["running"], status["health"]) == (True, "healthy"), status
        assert status["service"] == f"{s.namespace}-isle-{island}"
    limits = {island: (s.client.services.get(f"{s.namespace}-isle-{island}").attrs["Spec"]["TaskTemplate"]
                       .get("Resources") or {}).get("Limits") for island in ISLANDS}
    assert not limits["db"] and limits["files"] == {"NanoCPUs": 10**9, "MemoryBytes": 512 * 2**20}
    config = s.config()
    assert config.islands.db_port != 30432 and config.islands.files_port != 30900

    # model -> dataset -> project -> build -> training, all through the CLI.
    s.atoll("model", "new", "--name", "iris-clf", "--desc", "iris classifier", "--model-file", CLF,
            "--data-file", DATA[0], "--data-file", DATA[1])
    s.atoll("ds", "new", "--model", "iris-clf", "--name", "iris", "--path", "datasets/iris")
    s.atoll("proj", "new", "--name", proj, "--model", "iris-clf", "--home-dir", str(s.project_dir))
    s.key = s.atoll("key", "new", "--proj", proj)["key"]
    build = s.atoll("proj", "build", "--name", proj, "--from-home", timeout=600)
    assert build["container_manager"] == "swarm" and build["image_id"].startswith("sha256:"), build
    training = s.atoll("train", "new", "--proj", proj, "--name", "first", "--nb", "notebooks/train.ipynb",
                       "--dataset", "iris-clf:iris", timeout=400)
    assert training["task"]["state"] == "FINISHED", training
    assert f"{s.namespace}-train-{proj}-first" not in [c.name for c in s.client.containers.list(all=True)]

    # The model version's clf.pkl is in the S3 island, under the version's key.
    version = s.atoll("movers", "info", "--model", "iris-clf", "--name", "first")
    assert [f["name"] for f in version["files"]] == ["clf.pkl"]
    _, options = native_file_store_settings(config)
    assert options["url"] == f"http://127.0.0.1:{config.islands.files_port}"
    s3 = S3FileStore(**options)
    try:
        prefix = version["store_key"].rstrip("/") + "/"
        assert prefix.startswith("versions/iris-clf/first/"), prefix
        assert s3.list(prefix) == [f"{prefix}clf.pkl"]
        s3.download(f"{prefix}clf.pkl", s.home.parent / "clf.pkl")
        # published in the training's container: recorded with BLAKE3 (the base image has the package)
        assert blake3.blake3((s.home.parent / "clf.pkl").read_bytes()).hexdigest() == version["files"][0]["blake3"]
        assert any(k.endswith("/measures.csv") for k in s3.list("datasets/iris-clf/iris/"))
    finally:
        s3.close()

    # Two replicas behind the router island predict setosa.
    deployed = time.monotonic()
    s.atoll("depl", "new", "--name", "svc", "--proj", proj, "--nb", "notebooks/predict.ipynb",
            "--movers", "iris-clf:first", "-n", "2", "--timeout", "240", timeout=400)
    service = s.client.services.get(f"{s.namespace}-{proj}-svc")
    assert len([t for t in service.tasks() if t["Status"]["State"] == "running"]) == 2
    for _ in range(4):
        status_code, body = post(s.router_url, key=s.key)
        assert status_code == 200, body
        assert b"setosa" in body
    s.timings["deploy until first prediction"] = time.monotonic() - deployed
    info = s.atoll("depl", "info", "--name", "svc", "--proj", proj)
    assert info["availability"] == "2/2", info

    # The records are in the db island (a PostgreSQL server), read directly with its credentials.
    url = native_metadata_url(config)
    assert url.startswith("postgresql://") and f"127.0.0.1:{config.islands.db_port}/" in url
    db = get_metadata_store(url)
    try:
        assert isinstance(db, SqlMetadataStore)
        record = db.get(Training, "first", proj)
        assert record.task.state == TaskState.FINISHED
        assert db.get(ModelVersion, "first", "iris-clf").files[0].name == "clf.pkl"
        assert db.get(Deployment, "svc", proj).n_tasks == 2
    finally:
        db.close()

    s.atoll("depl", "rm", "--name", "svc", "--proj", proj, timeout=180)
    assert [x for x in s.client.services.list() if x.name == f"{s.namespace}-{proj}-svc"] == []
    assert s.client.secrets.list(filters={"label": ["io.atoll.name=svc", f"io.atoll.namespace={s.namespace}"]}) == []
    assert post(s.router_url, key=s.key)[0] == 404

    db = get_metadata_store(url)
    try:
        assert [d.name for d in db.list(Deployment, scope=proj)] == []
        assert [t.name for t in db.list(Training, scope=proj)] == ["first"]
    finally:
        db.close()

    # ...and not in the embedded SQLite file, which only keeps the islands' credentials;
    # nor is any file in the local file store.
    embedded = get_metadata_store(f"sqlite:///{s.home / 'atoll.db'}")
    try:
        assert embedded.list(Model) == [] and embedded.list(Project) == []
        assert embedded.list(Training, scope=proj) == [] and embedded.list(ModelVersion, scope="iris-clf") == []
        assert sorted(c.name for c in embedded.list(TreasureChest)) == ["atoll-db", "atoll-files"]
    finally:
        embedded.close()
    local_files = s.home / "files"
    assert not local_files.exists() or [p for p in local_files.rglob("*") if p.is_file()] == []

    # Stopping the islands (and the router) leaves only their data volumes.
    for island in (*ISLANDS, "router"):
        stopped = s.atoll("isle", island, "stop", timeout=180)
        assert stopped["running"] is False, stopped
    left = _owned(s.client, s.namespace)
    assert sorted(left) == [f"volume {s.namespace}-isle-{i}-data" for i in sorted(ISLANDS)], left
    s.timings["total"] = time.monotonic() - started
