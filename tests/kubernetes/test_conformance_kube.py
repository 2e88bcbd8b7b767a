"""The container conformance suite on the Kubernetes manager, with pods that really run.

The world is :func:`kube_pods.pod_cluster`: kmock's emulator as the API
server, the test control plane, the Docker kubelet running every pod on the
local engine, the build pushed to a loopback registry, and the db and files
islands as the stores the pods reach (see that module for what stands in for
what). A replica is asked for predictions directly on its pod IP.

Excluded, explicitly below (and listed in the README, *What was verified*):

- ``test_the_ide_answers_only_with_its_token``: the suite reaches the IDE on
  ``http://127.0.0.1:<port>``; on Kubernetes the IDE is a Pod behind a
  ClusterIP Service (``kubectl port-forward``) or a NodePort (30000-32767 on a
  node), neither of which the emulated cluster provides. The IDE pod's
  manifests and lifecycle are covered in ``test_cluster.py`` instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from atoll.backends import open_file_store, open_metadata_store, task_store_config
from atoll.containers.kubernetes.manager import KubernetesContainerManager
from atoll.testing.conformance.containers import (
    ContainerManagerConformance,
    ContainerWorld,
    OnBoardConformance,
    make_world,
)
from kube_pods import PodCluster, pod_cluster

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _kill(cluster: PodCluster) -> Any:
    """SIGKILL the task container of a training's pod from outside (as an OOM kill would end it)."""

    def kill(task_id: str) -> None:
        project, _, name = task_id.split("/")
        pods = [p for p in cluster.emulated.objects("pods", cluster.namespace)
                if (p["metadata"].get("labels") or {}).get("atoll.io/name") == name
                and p["metadata"]["labels"].get("atoll.io/project") == project]
        assert len(pods) == 1, pods
        container = f"{cluster.kubelet_prefix}-{pods[0]['metadata']['name']}-train"[:128]
        cluster.client.containers.get(container).kill()

    return kill


class TestKubernetesContainerManager(ContainerManagerConformance, OnBoardConformance):
    @pytest.fixture(scope="class")
    def world(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerWorld]:
        tmp = tmp_path_factory.mktemp("kube-conf")
        with pod_cluster(tmp, "c") as cluster:
            cluster.images.append(f"{cluster.registry}/atoll/conformance:latest")
            config = cluster.config()
            metadata = open_metadata_store(config)
            manager = KubernetesContainerManager(config, metadata, open_file_store(config, metadata))
            try:
                yield make_world(manager, tmp / "src", task_store_config(config, metadata), kill=_kill(cluster),
                                 timeout=300)
            finally:
                manager.close()
                metadata.close()

    # Not run here: the IDE is not reachable on 127.0.0.1:<port> from a cluster (module docstring).
    test_the_ide_answers_only_with_its_token = None  # type: ignore[assignment]
