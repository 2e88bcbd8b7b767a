"""Supply-chain basics of the images Atoll builds: the islands, the base image (tasks) and the
ui island run as a non-root user, and no image carries a credential.

The db and files islands are set up for real in a private namespace (``atoll-sc<pid>``,
free loopback ports, ``ATOLL_HOME`` in a temporary directory), which makes Atoll generate
their password and key pair; then the images' history and configuration, and the running
services, are searched for them. Everything but the (kept, product) images is removed by
exact name at the end.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from atoll.backends import open_file_store
from atoll.config import Config, load_config
from atoll.islands.db import DbIsland
from atoll.islands.files import FilesIsland
from atoll.islands.registry import RegistryIsland
from atoll.islands.swarm import SwarmServiceIsland
from atoll.metadata.base import get_metadata_store
from support.swarm_islands import islands_settings, remove_islands

if TYPE_CHECKING:
    from docker import DockerClient

pytestmark = pytest.mark.docker

NAMESPACE = f"atoll-sc{os.getpid()}"
ISLANDS: tuple[type[SwarmServiceIsland], ...] = (DbIsland, FilesIsland, RegistryIsland)
# Variables naming a secret must point at a file (a Docker secret), never hold one.
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|AUTH", re.IGNORECASE)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, swarm_client: DockerClient,
           python_image: str) -> Iterator[Config]:
    home = tmp_path_factory.mktemp("supply-chain-home")
    env = islands_settings(home, NAMESPACE, python_image)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)  # atoll.credentials reads ATOLL_HOME from the environment
        config = load_config(cwd=home, environ=env)
        try:
            yield config
        finally:
            remove_islands(swarm_client, config, NAMESPACE)


def _root_run(client: DockerClient, image: str, volume: str, path: str, script: str) -> str:
    out = client.containers.run(image, entrypoint=["/bin/sh", "-c", script], user="0:0", network_mode="none",
                                remove=True, volumes={volume: {"bind": path, "mode": "rw"}})
    return out.decode() if isinstance(out, bytes) else str(out)


@pytest.fixture(scope="module")
def running(config: Config, swarm_client: DockerClient) -> dict[str, Any]:
    """The db island, and the files island on a volume a root-run island left root-owned files in."""
    db = DbIsland(config, swarm_client)
    db.setup()
    files = FilesIsland(config, swarm_client)
    image, _ = files.ensure_image(lambda line: None)
    swarm_client.volumes.create(files.volume_name)
    _root_run(swarm_client, image, files.volume_name, "/data",
              "mkdir -p /data/atoll/old && echo kept > /data/atoll/old/note.txt")
    files.setup()
    return {"db": db, "files": files}


@pytest.mark.parametrize("cls", ISLANDS, ids=[c.name for c in ISLANDS])
def test_island_images_are_configured_to_run_as_a_non_root_user(
    cls: type[SwarmServiceIsland], config: Config, swarm_client: DockerClient
) -> None:
    island = cls(config, swarm_client)
    image, _ = island.ensure_image(lambda line: None)
    user = swarm_client.images.get(image).attrs["Config"].get("User") or ""
    assert user.split(":")[0] not in ("", "0", "root"), f"{image} runs as {user or 'root'}"
    out = swarm_client.containers.run(image, entrypoint=["id", "-u"], network_mode="none", remove=True)
    assert int(out.decode().strip()) == island.user[0] != 0  # type: ignore[index]


def test_the_base_and_ui_images_run_as_the_task_user(config: Config, swarm_client: DockerClient) -> None:
    """Tasks (the base image, and every build made from it) and the ui island never run as root by default."""
    from atoll.containers.spec import TASK_USER
    from atoll.containers.swarm.images import ensure_base_image
    from atoll.islands.ui import SwarmUiIsland

    base = ensure_base_image(swarm_client, config, lambda line: None)
    ui, _ = SwarmUiIsland(config, swarm_client).ensure_image(lambda line: None)
    for image in (base, ui):
        assert swarm_client.images.get(image).attrs["Config"].get("User") == "10001:10001", image
        out = swarm_client.containers.run(image, entrypoint=["sh", "-c", "id -u; id -g"], network_mode="none",
                                          remove=True)
        assert tuple(int(n) for n in out.decode().split()) == TASK_USER
        # where a task writes outside its mounts is open to it (and to the host user's uid on swarm)
        script = "touch /atoll/x /atoll/tmp/x /data/x /model/x && echo ok"
        out = swarm_client.containers.run(image, entrypoint=["sh", "-c", script], user="4321:4321",
                                          network_mode="none", remove=True)
        assert out.decode().strip() == "ok"


def test_running_islands_have_no_root_process(running: dict[str, Any], swarm_client: DockerClient) -> None:
    for island in running.values():
        containers = swarm_client.containers.list(
            filters={"label": f"com.docker.swarm.service.name={island.service_name}"})
        assert containers, f"no container of {island.service_name}"
        for container in containers:
            top = container.top(ps_args="-o pid,uid,comm")
            uids = {row[top["Titles"].index("UID")] for row in top["Processes"]}
            assert uids == {str(island.user[0])}, (island.name, top["Processes"])


def test_a_volume_of_a_root_run_island_is_handed_over_and_keeps_its_data(
    running: dict[str, Any], swarm_client: DockerClient, tmp_path: Path
) -> None:
    files: FilesIsland = running["files"]
    not_theirs = _root_run(swarm_client, files.image, files.volume_name, "/data",
                           "find /data ! -user 999 -o ! -group 999")
    assert not_theirs.strip() == ""
    native = load_config(cwd=tmp_path, environ={**os.environ, "ATOLL_FILE_STORE__NATIVE": "true"})
    store = open_file_store(native, get_metadata_store("memory://"))
    try:
        (tmp_path / "new.txt").write_text("written by the non-root server")
        store.upload(tmp_path / "new.txt", "old/new.txt")
        store.download("old/note.txt", tmp_path / "back.txt")
        assert (tmp_path / "back.txt").read_text() == "kept\n"
        assert store.list("old/") == ["old/new.txt", "old/note.txt"]
    finally:
        store.close()


def _images(config: Config, swarm_client: DockerClient) -> list[str]:
    from atoll.containers.swarm.images import ensure_base_image
    from atoll.islands.ui import SwarmUiIsland

    images = [cls(config, swarm_client).image for cls in ISLANDS]
    images.append(ensure_base_image(swarm_client, config, lambda line: None))  # current: nothing to build
    images.append(SwarmUiIsland(config, swarm_client).ensure_image(lambda line: None)[0])
    return images


def test_no_image_or_service_carries_a_credential(
    running: dict[str, Any], config: Config, swarm_client: DockerClient
) -> None:
    generated = [running["db"].credentials()[1], *running["files"].credentials()]
    assert all(len(secret) >= 16 for secret in generated)
    for image in _images(config, swarm_client):
        history = json.dumps(swarm_client.api.history(image))  # what `docker history --no-trunc` shows
        attrs = swarm_client.images.get(image).attrs
        env = attrs["Config"].get("Env") or []
        text = history + json.dumps(attrs)
        assert not [s for s in generated if s in text], f"a generated credential is in {image}"
        for entry in env:
            name, _, value = entry.partition("=")
            if SECRET_NAME.search(name):
                assert name.endswith("_FILE") and value.startswith("/"), f"{image}: {name} holds a value"
    for island in running.values():
        service = swarm_client.services.get(island.service_name).attrs
        inspected = json.dumps(service)
        assert not [s for s in generated if s in inspected], f"a generated credential is in {island.service_name}"
        refs = service["Spec"]["TaskTemplate"]["ContainerSpec"].get("Secrets") or []
        assert refs and all(r["File"]["UID"] == str(island.user[0]) and r["File"]["Mode"] == 0o400 for r in refs)
