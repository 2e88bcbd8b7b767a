"""Records and settings the Kubernetes tests share."""

from __future__ import annotations

from typing import Any

import pytest

from atoll.config import Config, load_config
from atoll.containers.base import TaskSpec
from atoll.domain.records import BuildVersion, Dataset, ModelVersion, Project, StoredFile

DIGEST = "registry.example:5000/atoll/iris@sha256:" + "ab" * 32
STORE = {"version": 1, "metadata": {"url": "postgresql://atoll:s3cr3t-pw@db:5432/atoll"},
         "file_store": {"type": "s3", "options": {"secret_key": "s3cr3t-key"}}}


@pytest.fixture
def kube_config(home: Any) -> Config:
    config = load_config(environ={"ATOLL_HOME": str(home)})
    config.container_manager.type = "kubernetes"
    config.docker.target_registry = "registry.example:5000"
    return config


def task_spec(kind: str = "train", name: str = "t1", **extra: Any) -> TaskSpec:
    project = Project(name="iris")
    build = BuildVersion(name="v1", proj="iris", container_manager="swarm", digest=DIGEST)
    return TaskSpec(kind=kind, project=project, build=build, name=name,  # type: ignore[arg-type]
                    notebook="train.ipynb", **{"store_config": STORE, **extra})


def sample_inputs() -> dict[str, Any]:
    files = [StoredFile(name="measures.csv", size=10, sha256="0" * 64)]
    dataset = Dataset(name="ds1", model="iris-clf", files=files)
    version = ModelVersion(name="mv1", model="iris-clf", files=files)
    return {"datasets": [dataset], "versions": [version]}


# ---------------------------------------------------------------- the emulated cluster

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from atoll.containers.kubernetes.client import KubeClient
from atoll.testing.kube_api import EmulatedCluster
from atoll.testing.kube_control import Outcome, ScriptedKubelet, TestController


@dataclass
class Cluster:
    """An emulated cluster, its control plane and a config pointing at it."""

    emulated: EmulatedCluster
    controller: TestController
    kubelet: ScriptedKubelet
    config: Config
    kube: KubeClient

    def outcome(self, rule: Callable[[dict[str, Any]], Outcome]) -> None:
        self.kubelet.rule = rule


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "the condition") -> Any:
    """Poll ``check`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout:g}s")


@pytest.fixture
def cluster(kube_config: Config, tmp_path: Path) -> Iterator[Cluster]:
    from kubernetes import config as kube_loader

    with EmulatedCluster() as emulated:
        path = emulated.kubeconfig(tmp_path)
        kube_config.container_manager.kubernetes.kubeconfig = str(path)
        kube_config.container_manager.api_timeout = 10
        kubelet = ScriptedKubelet(set_log=emulated.api.set_pod_log)
        with TestController(kube_loader.new_client_from_config(str(path)), kubelet) as controller:
            kube = KubeClient(kube_config)
            try:
                yield Cluster(emulated, controller, kubelet, kube_config, kube)
            finally:
                kube.close()
            assert not controller.errors, controller.errors
