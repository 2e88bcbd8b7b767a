"""The container conformance suite on the swarm manager, against the real engine.

Every class gets its own ``ATOLL_HOME`` (embedded SQLite + local file store,
reached by the containers through bind mounts) and its own namespace
``atoll-c<hex>``, so everything Docker holds for it carries that namespace's
label; the fixture removes exactly those objects (and the conformance image)
at the end and fails when something is left. Replicas publish no port: the
suite's ``predict`` asks a replica from inside its own container
(``docker exec``), as a neighbour on the overlay network would.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from atoll.backends import open_file_store, open_metadata_store, task_store_config
from atoll.config import load_config
from atoll.containers.base import ReplicaStatus
from atoll.containers.swarm.manager import SwarmContainerManager
from atoll.testing.conformance.containers import (
    ContainerManagerConformance,
    ContainerWorld,
    OnBoardConformance,
    make_world,
)
from support.docker_cleanup import remove_by_name

if TYPE_CHECKING:
    from docker import DockerClient

pytestmark = [pytest.mark.docker, pytest.mark.slow]

_PREDICT = (
    "import json, sys, urllib.request as u\n"
    "r = u.urlopen(u.Request('http://127.0.0.1:8080/predict', data=sys.argv[1].encode(), method='POST'), timeout=30)\n"
    "print(json.dumps(json.loads(r.read())['result']))\n"
)


def _predict_inside(client: DockerClient) -> Any:
    def predict(replica: ReplicaStatus, body: str) -> Any:
        service, _, slot = replica.name.rpartition(".")
        running = client.containers.list(filters={"label": f"com.docker.swarm.service.name={service}"})
        container = next(c for c in running if c.labels.get("com.docker.swarm.task.name", "")
                         .startswith(f"{service}.{slot}."))
        code, output = container.exec_run(["python", "-c", _PREDICT, body])
        assert code == 0, output
        return json.loads(output.decode().strip().splitlines()[-1])

    return predict


def _owned(client: DockerClient, namespace: str) -> dict[str, list[str]]:
    """Names of the services, containers, secrets and configs labelled with ``namespace``."""
    labelled = {"label": f"io.atoll.namespace={namespace}"}
    return {
        "services": [s.name for s in client.services.list(filters=labelled)],
        "containers": [c.name for c in client.containers.list(all=True, filters=labelled)],
        "secrets": [s.name for s in client.secrets.list(filters=labelled)],
        "configs": [c.name for c in client.configs.list(filters=labelled)],
    }


def _swarm_world(client: DockerClient, python_image: str, tmp: Path, staging: str) -> Iterator[ContainerWorld]:
    namespace = f"atoll-c{uuid.uuid4().hex[:6]}"
    home = tmp / "home"
    config = load_config(tmp, environ={
        "ATOLL_HOME": str(home),
        "ATOLL_CONTAINER_MANAGER__TYPE": "swarm",
        "ATOLL_CONTAINER_MANAGER__NAMESPACE": namespace,
        "ATOLL_CONTAINER_MANAGER__STAGING": staging,
        "ATOLL_CONTAINER_MANAGER__HEALTHCHECK__INTERVAL": "1",
        "ATOLL_DOCKER__PYTHON_IMAGE": python_image,
    })
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ATOLL_HOME", str(home))  # where the manager stages tasks
        metadata = open_metadata_store(config)
        manager = SwarmContainerManager(config, metadata, open_file_store(config, metadata))
        assert manager.staging == staging
        image = "atoll/conformance:latest"
        try:
            yield make_world(manager, tmp / "src", task_store_config(config, metadata),
                             kill=lambda task_id: client.containers.get(manager.container_name(task_id)).kill(),
                             predict=_predict_inside(client), timeout=240)
        finally:
            manager.close()
            metadata.close()
            owned = _owned(client, namespace)
            remove_by_name(client, namespace, services=owned["services"], containers=owned["containers"],
                           images=[image])
            left = {kind: names for kind, names in _owned(client, namespace).items() if names}
            assert not left, f"left behind: {left}"


class TestSwarmContainerManager(ContainerManagerConformance, OnBoardConformance):
    @pytest.fixture(scope="class")
    def world(self, swarm_client: DockerClient, python_image: str,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerWorld]:
        yield from _swarm_world(swarm_client, python_image, tmp_path_factory.mktemp("swarm-conf"), "host")


class TestSwarmFetchStaging(OnBoardConformance):
    """Fetch staging on swarm: the runner in the container fetches the dataset from the file store."""

    @pytest.fixture(scope="class")
    def world(self, swarm_client: DockerClient, python_image: str,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerWorld]:
        yield from _swarm_world(swarm_client, python_image, tmp_path_factory.mktemp("swarm-fetch"), "fetch")
