"""The native islands as real swarm services: db (PostgreSQL), files (S3), registry.

Everything runs in a private namespace (``atoll-t<pid>``: services, volumes,
secrets, overlay network) on free loopback ports, with ``ATOLL_HOME`` in a
temporary directory, and is removed by exact name at the end. The island
images (``atoll/isle-<name>:<version>-<recipe hash>``) are product images and
are kept, so later runs reuse them instead of building again.
"""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from atoll.backends import open_file_store, open_metadata_store
from atoll.config import Config, load_config
from atoll.domain.records import Model, TreasureChest
from atoll.errors import BackendError, NotFoundError
from atoll.islands.db import DbIsland
from atoll.islands.files import FilesIsland
from atoll.islands.registry import RegistryIsland
from atoll.islands.swarm import SwarmServiceIsland
from atoll.metadata.base import MetadataStore, get_metadata_store
from atoll.testing.conformance.metadata import MetadataStoreConformance
from support.swarm_islands import islands_settings, remove_islands

if TYPE_CHECKING:
    from docker import DockerClient

pytestmark = pytest.mark.docker

NAMESPACE = f"atoll-t{os.getpid()}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def islands_env(tmp_path_factory: pytest.TempPathFactory, swarm_client: DockerClient,
                python_image: str) -> Iterator[dict[str, str]]:
    """Environment of the islands' config: private home, namespace and ports; cleans up at the end."""
    home = tmp_path_factory.mktemp("islands-home")
    env = {**islands_settings(home, NAMESPACE, python_image), "ATOLL_ROUTER__PORT": str(_free_port())}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)  # atoll.credentials reads ATOLL_HOME from the environment
        try:
            yield env
        finally:
            remove_islands(swarm_client, load_config(cwd=home, environ=env), NAMESPACE)


def _config(env: dict[str, str], **extra: str) -> Config:
    return load_config(cwd=Path(env["ATOLL_HOME"]), environ={**env, **extra})


def _inspect_text(client: DockerClient, island: SwarmServiceIsland) -> str:
    """Everything `docker inspect` shows about the service and its containers."""
    service = client.services.get(island.service_name)
    containers = client.containers.list(filters={"label": f"com.docker.swarm.service.name={island.service_name}"})
    return json.dumps([service.attrs, *[c.attrs for c in containers]])


@pytest.fixture(scope="module")
def db_island(islands_env: dict[str, str], swarm_client: DockerClient) -> DbIsland:
    island = DbIsland(_config(islands_env), swarm_client)
    state = island.setup()
    print(f"\ndb island setup: {state.seconds}s, of which image build: {state.build_seconds or 0:.1f}s")
    return island


def test_db_island_is_a_password_protected_metadata_store_that_keeps_its_data(
    db_island: DbIsland, islands_env: dict[str, str], swarm_client: DockerClient
) -> None:
    import psycopg

    status = db_island.status()
    assert (status.running, status.health) == (True, "healthy")
    again = db_island.setup()
    assert "already running" in again.message

    native = _config(islands_env, ATOLL_METADATA__NATIVE="true")
    store = open_metadata_store(native)
    try:
        created = store.create(Model(name="iris", desc="flowers"))
        assert created.revision == 1
        updated = store.update(created.model_copy(update={"desc": "irises"}))
        assert store.get(Model, "iris").desc == "irises" and updated.revision == 2
        store.create(Model(name="wine"))
        assert [m.name for m in store.list(Model)] == ["iris", "wine"]
        store.delete(Model, "wine")
        with pytest.raises(NotFoundError):
            store.get(Model, "wine")
    finally:
        store.close()

    # The password is generated, kept encrypted in the home store, and required.
    password = db_island.credentials()[1]
    home_store = get_metadata_store(f"sqlite:///{Path(islands_env['ATOLL_HOME']) / 'atoll.db'}")
    try:
        chest = home_store.get(TreasureChest, "atoll-db")
    finally:
        home_store.close()
    assert len(password) >= 24 and password not in chest.secret
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host="127.0.0.1", port=db_island.port, user="atoll", password="wrong", dbname="atoll",
                        connect_timeout=5).close()
    assert password not in _inspect_text(swarm_client, db_island)

    # stop keeps the volume; the next setup finds the old records.
    stopped = db_island.stop()
    assert not stopped.running and db_island.volume_name in stopped.message
    assert swarm_client.volumes.get(db_island.volume_name) is not None
    assert swarm_client.services.list(filters={"name": db_island.service_name}) == []
    assert not db_island.status().running
    db_island.setup()
    store = open_metadata_store(native)
    try:
        assert store.get(Model, "iris").desc == "irises"
    finally:
        store.close()


class TestDbIslandConformance(MetadataStoreConformance):
    @pytest.fixture
    def store(self, db_island: DbIsland, islands_env: dict[str, str]) -> Iterator[MetadataStore]:
        import psycopg

        db_island.setup()  # running already unless a test stopped it
        user, password = db_island.credentials()
        with psycopg.connect(host="127.0.0.1", port=db_island.port, user=user, password=password,
                             dbname="atoll", autocommit=True) as conn:
            tables = [row[0] for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE '%alembic%'")]
            for table in tables:
                conn.execute(f'TRUNCATE "{table}"')
        store = open_metadata_store(_config(islands_env, ATOLL_METADATA__NATIVE="true"))
        yield store
        store.close()


def test_files_island_serves_the_s3_file_store(
    islands_env: dict[str, str], swarm_client: DockerClient, tmp_path: Path
) -> None:
    island = FilesIsland(_config(islands_env), swarm_client)
    state = island.setup()
    print(f"\nfiles island setup: {state.seconds}s, of which image build: {state.build_seconds or 0:.1f}s")
    assert state.health == "healthy"

    native = _config(islands_env, ATOLL_FILE_STORE__NATIVE="true")
    files = open_file_store(native, get_metadata_store("memory://"))
    try:
        data = os.urandom(300_000)
        (tmp_path / "clf.pkl").write_bytes(data)
        files.upload(tmp_path / "clf.pkl", "models/iris/v1/clf.pkl")
        files.download("models/iris/v1/clf.pkl", tmp_path / "back.pkl")
        assert (tmp_path / "back.pkl").read_bytes() == data
        assert files.list("models/") == ["models/iris/v1/clf.pkl"]
    finally:
        files.close()

    access, secret = island.credentials()
    inspected = _inspect_text(swarm_client, island)
    assert secret not in inspected and access not in inspected

    from atoll.files.s3 import S3FileStore

    intruder = S3FileStore(island.url, bucket="atoll", access_key=access, secret_key="not-the-secret")
    with pytest.raises(BackendError, match="refused the credentials"):
        intruder.list()


def test_tasks_on_the_overlay_network_reach_the_islands_by_service_name(
    db_island: DbIsland, islands_env: dict[str, str], swarm_client: DockerClient, python_image: str
) -> None:
    from docker.errors import NotFound

    files = FilesIsland(_config(islands_env), swarm_client)
    files.setup()
    db_island.setup()
    probe = (
        "import socket, urllib.request, urllib.error\n"
        f"socket.create_connection(('{db_island.service_name}', 5432), 5).close()\n"
        "try:\n"
        f"    urllib.request.urlopen('http://{files.network_address}/atoll', timeout=5)\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code)\n"
    )
    name = f"{NAMESPACE}-probe"
    try:
        out = swarm_client.containers.run(python_image, ["python3", "-c", probe], name=name,
                                          network=db_island.network_name, remove=False)
    finally:
        try:
            swarm_client.containers.get(name).remove(force=True)
        except NotFound:
            pass
    # The db port answers, and the S3 server refuses an unsigned request.
    assert out.decode().strip() in ("400", "401", "403")


def _tiny_image_context() -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", b"FROM scratch\nCOPY hello.txt /hello.txt\n"),
                           ("hello.txt", f"hello {time.time()}\n".encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_registry_island_takes_a_push_and_gives_it_back_by_digest(
    islands_env: dict[str, str], swarm_client: DockerClient
) -> None:
    from docker.errors import ImageNotFound

    port = islands_env["ATOLL_ISLANDS__REGISTRY_PORT"]
    island = RegistryIsland(_config(islands_env, ATOLL_DOCKER__TARGET_REGISTRY=f"127.0.0.1:{port}"), swarm_client)
    state = island.setup()
    print(f"\nregistry island setup: {state.seconds}s, of which image build: {state.build_seconds or 0:.1f}s")
    assert state.url == f"127.0.0.1:{port}"

    repo = f"{island.url}/{NAMESPACE}/tiny"
    image, _ = swarm_client.images.build(fileobj=_tiny_image_context(), custom_context=True, tag=f"{repo}:1",
                                         rm=True, forcerm=True)
    pulled_ref = None
    try:
        lines = list(swarm_client.images.push(repo, "1", stream=True, decode=True))
        assert not [line for line in lines if "error" in line]
        digest = next(line["aux"]["Digest"] for line in lines if "Digest" in line.get("aux", {}))
        swarm_client.images.remove(f"{repo}:1")
        with pytest.raises(ImageNotFound):
            swarm_client.images.get(f"{repo}:1")
        pulled_ref = f"{repo}@{digest}"
        pulled = swarm_client.images.pull(pulled_ref)
        assert pulled.id == image.id
    finally:
        for ref in (pulled_ref, f"{repo}:1", image.id):
            if ref:
                try:
                    swarm_client.images.remove(ref, force=True)
                except ImageNotFound:
                    pass


def test_cli_setup_refuses_a_foreign_store_and_status_reports_health(
    db_island: DbIsland, islands_env: dict[str, str], tmp_path: Path
) -> None:
    import subprocess
    import sys

    def atoll(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "atoll.cli.main", *args], capture_output=True, text=True, timeout=120, check=False,
            cwd=tmp_path, env={**os.environ, **islands_env, **env},
        )

    refused = atoll("isle", "db", "setup", ATOLL_METADATA__URL="postgresql://someone:pw@db.example.com/atoll")
    assert refused.returncode == 2
    assert "configured as foreign" in refused.stderr and "pw@" not in refused.stderr

    db_island.setup()
    shown = atoll("-o", "json", "isle", "db", "status")
    assert shown.returncode == 0, shown.stderr
    status: dict[str, Any] = json.loads(shown.stdout)
    assert (status["running"], status["health"], status["service"]) == (True, "healthy", f"{NAMESPACE}-isle-db")


def test_get_me_started_sets_up_the_configured_islands_and_says_so(
    db_island: DbIsland, islands_env: dict[str, str], tmp_path: Path
) -> None:
    import subprocess
    import sys

    env = {**os.environ, **islands_env, "ATOLL_METADATA__NATIVE": "true"}

    def atoll(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "atoll.cli.main", *args], capture_output=True, text=True,
                              timeout=300, cwd=tmp_path, env=env, check=False)

    db_island.stop()
    try:
        done = atoll("-o", "json", "get-me-started")
        assert done.returncode == 0, done.stderr
        steps = {step["island"]: step for step in json.loads(done.stdout)}
        assert sorted(steps) == ["db", "router"]
        assert steps["db"]["done"] == "set up" and db_island.status().health == "healthy"
        assert steps["router"]["done"] in ("set up", "already running")
        again = json.loads(atoll("-o", "json", "get-me-started").stdout)
        assert {step["done"] for step in again} == {"already running"}
    finally:
        atoll("isle", "router", "stop")
